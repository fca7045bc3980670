//! Sign-up, e-mail verification, login sessions.

use std::net::SocketAddr;

use axum::{
    extract::{ConnectInfo, FromRequestParts, State},
    http::{header, request::Parts, HeaderMap, HeaderValue, StatusCode},
    response::{IntoResponse, Response},
    Json,
};
use chrono::{Duration, Utc};
use quicmeet_store::{new_token, PasswordCheck, Session, User};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::validate;
use crate::{
    error::{ApiError, ApiJson, ApiResult},
    mail::Mail,
    SharedState,
};

/// Name of the login cookie.
pub const SESSION_COOKIE: &str = "qm_session";
/// How long an e-mail verification link stays valid.
pub const VERIFY_TTL_HOURS: i64 = 24;

// The schemas carry the validators' rules (`validate.rs`), so what the published contract
// calls valid is what the server accepts.

#[derive(Deserialize, ToSchema)]
pub struct SignupRequest {
    /// At most 100 characters, not blank, no control characters.
    #[schema(
        min_length = 1,
        max_length = 100,
        pattern = "^[^\\x00-\\x1f\\x7f-\\x9f]*[^\\s\\x00-\\x1f\\x7f-\\x9f][^\\x00-\\x1f\\x7f-\\x9f]*$",
        example = "Ada Lovelace"
    )]
    pub name: String,
    #[schema(
        max_length = 254,
        pattern = "^[^\\s,<>@\\x00-\\x1f\\x7f-\\x9f]{1,64}@[^\\s,<>@.\\x00-\\x1f\\x7f-\\x9f]+(\\.[^\\s,<>@.\\x00-\\x1f\\x7f-\\x9f]+)+$",
        example = "ada@example.org"
    )]
    pub email: String,
    /// 8 to 256 characters.
    #[schema(min_length = 8, max_length = 256, format = Password)]
    pub password: String,
}

#[derive(Deserialize, ToSchema)]
pub struct VerifyRequest {
    /// The token from the verification link.
    #[schema(min_length = 1, max_length = 200)]
    pub token: String,
}

#[derive(Deserialize, ToSchema)]
pub struct ResendRequest {
    #[schema(
        max_length = 254,
        pattern = "^[^\\s,<>@\\x00-\\x1f\\x7f-\\x9f]{1,64}@[^\\s,<>@.\\x00-\\x1f\\x7f-\\x9f]+(\\.[^\\s,<>@.\\x00-\\x1f\\x7f-\\x9f]+)+$",
        example = "ada@example.org"
    )]
    pub email: String,
}

#[derive(Deserialize, ToSchema)]
pub struct LoginRequest {
    #[schema(
        max_length = 254,
        pattern = "^[^\\s,<>@\\x00-\\x1f\\x7f-\\x9f]{1,64}@[^\\s,<>@.\\x00-\\x1f\\x7f-\\x9f]+(\\.[^\\s,<>@.\\x00-\\x1f\\x7f-\\x9f]+)+$",
        example = "ada@example.org"
    )]
    pub email: String,
    #[schema(format = Password)]
    pub password: String,
}

#[derive(Serialize, ToSchema)]
pub struct UserView {
    pub id: String,
    pub name: String,
    pub email: String,
    pub verified: bool,
    pub team: String,
}

impl From<&User> for UserView {
    fn from(u: &User) -> Self {
        Self {
            id: u.id.clone(),
            name: u.name.clone(),
            email: u.email.clone(),
            verified: u.verified,
            team: u.team.clone(),
        }
    }
}

#[derive(Serialize, ToSchema)]
pub struct UserResponse {
    pub user: UserView,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

#[derive(Serialize, ToSchema)]
pub struct MessageResponse {
    pub message: String,
}

/// The client's address, from the socket or (with --trust-proxy) X-Forwarded-For.
pub struct ClientIp(pub String);

impl FromRequestParts<SharedState> for ClientIp {
    type Rejection = std::convert::Infallible;
    async fn from_request_parts(
        parts: &mut Parts,
        state: &SharedState,
    ) -> Result<Self, Self::Rejection> {
        if state.config.trust_proxy {
            if let Some(ip) = parts
                .headers
                .get("x-forwarded-for")
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.split(',').next())
            {
                return Ok(ClientIp(ip.trim().to_owned()));
            }
        }
        let ip = parts
            .extensions
            .get::<ConnectInfo<SocketAddr>>()
            .map(|c| c.0.ip().to_string())
            .unwrap_or_else(|| "unknown".to_owned());
        Ok(ClientIp(ip))
    }
}

fn bearer_or_cookie(headers: &HeaderMap) -> Option<String> {
    if let Some(v) = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
    {
        if let Some(t) = v.strip_prefix("Bearer ") {
            return Some(t.trim().to_owned());
        }
    }
    for v in headers.get_all(header::COOKIE) {
        let Ok(v) = v.to_str() else { continue };
        for part in v.split(';') {
            if let Some((k, val)) = part.trim().split_once('=') {
                if k == SESSION_COOKIE && !val.is_empty() {
                    return Some(val.to_owned());
                }
            }
        }
    }
    None
}

/// The signed-in user, if any. Use `CurrentUser` for routes that need one.
pub struct MaybeUser(pub Option<(User, String)>);

impl FromRequestParts<SharedState> for MaybeUser {
    type Rejection = ApiError;
    async fn from_request_parts(
        parts: &mut Parts,
        state: &SharedState,
    ) -> Result<Self, Self::Rejection> {
        let Some(token) = bearer_or_cookie(&parts.headers) else {
            return Ok(MaybeUser(None));
        };
        let Some(session) = state.store.session(&token, Utc::now())? else {
            return Ok(MaybeUser(None));
        };
        Ok(MaybeUser(
            state.store.user(&session.user_id)?.map(|u| (u, token)),
        ))
    }
}

/// A signed-in user; answers 401 otherwise.
pub struct CurrentUser(pub User, pub String);

impl FromRequestParts<SharedState> for CurrentUser {
    type Rejection = ApiError;
    async fn from_request_parts(
        parts: &mut Parts,
        state: &SharedState,
    ) -> Result<Self, Self::Rejection> {
        match MaybeUser::from_request_parts(parts, state).await?.0 {
            Some((u, t)) => Ok(CurrentUser(u, t)),
            None => Err(ApiError::unauthenticated()),
        }
    }
}

fn limit(
    state: &SharedState,
    which: &'static str,
    rl: &crate::ratelimit::RateLimiter,
    key: &str,
) -> ApiResult<()> {
    rl.check(key).map_err(|wait| {
        state.metrics.rate_limited.inc(which);
        ApiError::rate_limited(wait)
    })
}

async fn blocking<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> ApiResult<T> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(ApiError::internal)
}

fn team_of(state: &SharedState, email: &str) -> String {
    state
        .config
        .team
        .clone()
        .unwrap_or_else(|| email.rsplit('@').next().unwrap_or_default().to_owned())
}

/// Stores a fresh single-use verification token (durably) and mails its link.
async fn issue_verification(state: &SharedState, user: &User) -> ApiResult<()> {
    let token = new_token();
    state.store.put_verify_token(
        &token,
        &user.id,
        Utc::now(),
        Duration::hours(VERIFY_TTL_HOURS),
    )?;
    state.store.flush().await?;
    send_verification(state, user, &token);
    Ok(())
}

fn send_verification(state: &SharedState, user: &User, token: &str) {
    let link = format!("{}/verify?token={}", state.public_url, token);
    tracing::info!(email = %user.email, link = %link, "verification link");
    state.mailer.send_later(
        state.config.mail_from.clone(),
        Mail {
            to: user.email.clone(),
            to_name: user.name.clone(),
            subject: "Verify your e-mail address for QuicMeet".into(),
            text: format!(
                "Hello {},\n\nPlease confirm your e-mail address by opening this link:\n\n{}\n\n\
                 The link works once and expires in {} hours. If you did not sign up for \
                 QuicMeet, ignore this mail.\n",
                user.name, link, VERIFY_TTL_HOURS
            ),
            calendar: None,
            kind: "verify",
        },
        state.metrics.clone(),
    );
}

/// Create an account and send a verification link.
#[utoipa::path(
    post, path = "/api/auth/signup", request_body = SignupRequest,
    responses(
        (status = 201, description = "Account made; a verification link is mailed", body = UserResponse),
        (status = 400, description = "Invalid input: `bad_json`, `invalid_field` or a field's own code", body = crate::api::ErrorBody),
        (status = 409, description = "The address has an account: `email_taken`", body = crate::api::ErrorBody),
        (status = 413, description = "The body is larger than 16 KiB: `body_too_large`", body = crate::api::ErrorBody),
        (status = 415, description = "The body is not sent as application/json: `bad_content_type`", body = crate::api::ErrorBody),
        (status = 429, description = "Rate limited: `rate_limited`, with Retry-After", body = crate::api::ErrorBody)
    )
)]
pub async fn signup(
    State(state): State<SharedState>,
    ClientIp(ip): ClientIp,
    ApiJson(req): ApiJson<SignupRequest>,
) -> ApiResult<impl IntoResponse> {
    limit(&state, "signup", &state.limits.signup_ip, &ip)?;
    let checked = (|| {
        let name = validate::name(&req.name)?;
        let email = validate::email(&req.email)?;
        validate::password(&req.password)?;
        Ok::<_, ApiError>((name, email))
    })();
    let (name, email) = checked.inspect_err(|_| state.metrics.signups.inc("invalid"))?;
    limit(&state, "signup", &state.limits.mail_per_address, &email)?;
    let password = req.password;
    let hash = blocking(move || quicmeet_store::hash_password(&password)).await??;
    let user = User {
        id: new_token(),
        team: team_of(&state, &email),
        name,
        email,
        password_hash: hash,
        verified: false,
        created_at: Utc::now(),
    };
    if let Err(e) = state.store.create_user(&user) {
        if matches!(e, quicmeet_store::StoreError::EmailTaken) {
            state.metrics.signups.inc("email_taken");
        }
        return Err(e.into());
    }
    issue_verification(&state, &user).await?;
    state.metrics.signups.inc("created");
    Ok((
        StatusCode::CREATED,
        Json(UserResponse {
            user: (&user).into(),
            message: Some(format!(
                "We sent a verification link to {}. Open it to finish signing up.",
                user.email
            )),
        }),
    ))
}

/// Confirm an e-mail address with the token from the link.
#[utoipa::path(
    post, path = "/api/auth/verify", request_body = VerifyRequest,
    responses(
        (status = 200, description = "Address confirmed", body = UserResponse),
        (status = 400, description = "Unknown or used token (`token_invalid`) or invalid input", body = crate::api::ErrorBody),
        (status = 410, description = "The link expired: `token_expired`", body = crate::api::ErrorBody),
        (status = 413, description = "The body is larger than 16 KiB: `body_too_large`", body = crate::api::ErrorBody),
        (status = 415, description = "The body is not sent as application/json: `bad_content_type`", body = crate::api::ErrorBody)
    )
)]
pub async fn verify(
    State(state): State<SharedState>,
    ApiJson(req): ApiJson<VerifyRequest>,
) -> ApiResult<Json<UserResponse>> {
    if req.token.is_empty() || req.token.len() > 200 {
        return Err(ApiError::bad_request(
            "token_invalid",
            "This link is not valid or has already been used.",
        ));
    }
    let user = state.store.consume_verify_token(&req.token, Utc::now())?;
    state.store.flush().await?;
    Ok(Json(UserResponse {
        user: (&user).into(),
        message: Some("Your e-mail address is confirmed. You can log in now.".into()),
    }))
}

/// Send a new verification link. Answers the same whether or not the address has an account.
#[utoipa::path(
    post, path = "/api/auth/resend", request_body = ResendRequest,
    responses(
        (status = 202, description = "Accepted (the same answer whether or not the address has an account)", body = MessageResponse),
        (status = 400, description = "Invalid input: `bad_json`, `invalid_field` or a field's own code", body = crate::api::ErrorBody),
        (status = 413, description = "The body is larger than 16 KiB: `body_too_large`", body = crate::api::ErrorBody),
        (status = 415, description = "The body is not sent as application/json: `bad_content_type`", body = crate::api::ErrorBody),
        (status = 429, description = "Rate limited: `rate_limited`, with Retry-After", body = crate::api::ErrorBody)
    )
)]
pub async fn resend(
    State(state): State<SharedState>,
    ClientIp(ip): ClientIp,
    ApiJson(req): ApiJson<ResendRequest>,
) -> ApiResult<impl IntoResponse> {
    limit(&state, "resend", &state.limits.resend_ip, &ip)?;
    let email = validate::email(&req.email)?;
    limit(&state, "resend", &state.limits.resend_account, &email)?;
    limit(&state, "resend", &state.limits.mail_per_address, &email)?;
    if let Some(user) = state.store.user_by_email(&email)? {
        if !user.verified {
            issue_verification(&state, &user).await?;
        }
    }
    Ok((
        StatusCode::ACCEPTED,
        Json(MessageResponse {
            message: "If this address has an unverified account, a new link is on its way.".into(),
        }),
    ))
}

fn session_cookie(state: &SharedState, token: &str, max_age_secs: i64) -> HeaderValue {
    let secure = if state.public_url.starts_with("https://") || state.config.tls_enabled() {
        "; Secure"
    } else {
        ""
    };
    HeaderValue::from_str(&format!(
        "{SESSION_COOKIE}={token}; Path=/; HttpOnly; SameSite=Lax; Max-Age={max_age_secs}{secure}"
    ))
    .unwrap_or_else(|_| HeaderValue::from_static("qm_session=; Path=/"))
}

/// Log in with e-mail and password; sets the session cookie.
#[utoipa::path(
    post, path = "/api/auth/login", request_body = LoginRequest,
    responses(
        (status = 200, description = "Signed in; sets the session cookie", body = UserResponse),
        (status = 400, description = "Invalid input: `bad_json`, `invalid_field` or a field's own code", body = crate::api::ErrorBody),
        (status = 401, description = "Wrong address or password: `invalid_credentials`", body = crate::api::ErrorBody),
        (status = 403, description = "Address not verified yet: `email_not_verified`", body = crate::api::ErrorBody),
        (status = 413, description = "The body is larger than 16 KiB: `body_too_large`", body = crate::api::ErrorBody),
        (status = 415, description = "The body is not sent as application/json: `bad_content_type`", body = crate::api::ErrorBody),
        (status = 429, description = "Rate limited: `rate_limited`, with Retry-After", body = crate::api::ErrorBody)
    )
)]
pub async fn login(
    State(state): State<SharedState>,
    ClientIp(ip): ClientIp,
    ApiJson(req): ApiJson<LoginRequest>,
) -> ApiResult<Response> {
    limit(&state, "login", &state.limits.login_ip, &ip)?;
    let email = validate::email(&req.email).inspect_err(|_| state.metrics.logins.inc("invalid"))?;
    limit(&state, "login", &state.limits.login_account, &email)?;
    let user = state.store.user_by_email(&email)?;
    // Verify against a dummy hash when the account does not exist, so "no such e-mail" and
    // "wrong password" take the same time and get the same answer.
    let phc = user
        .as_ref()
        .map(|u| u.password_hash.clone())
        .unwrap_or_else(|| state.dummy_hash.clone());
    let password = req.password;
    let check = blocking(move || quicmeet_store::verify_password(&password, &phc)).await?;
    let user = match (user, check) {
        (Some(u), PasswordCheck::Match) => u,
        _ => {
            state.metrics.logins.inc("invalid_credentials");
            return Err(ApiError::new(
                StatusCode::UNAUTHORIZED,
                "invalid_credentials",
                "The e-mail address or password is wrong.",
            ));
        }
    };
    if !user.verified {
        state.metrics.logins.inc("unverified");
        return Err(ApiError::forbidden(
            "email_not_verified",
            "Verify your e-mail address first: open the link we sent you, or ask for a new one.",
        ));
    }
    let token = new_token();
    let now = Utc::now();
    let ttl = Duration::hours(state.config.session_ttl_hours as i64);
    state.store.put_session(
        &token,
        &Session {
            user_id: user.id.clone(),
            created_at: now,
            expires_at: now + ttl,
        },
    )?;
    state.store.flush().await?;
    state.metrics.logins.inc("ok");
    let mut res = Json(UserResponse {
        user: (&user).into(),
        message: None,
    })
    .into_response();
    res.headers_mut().insert(
        header::SET_COOKIE,
        session_cookie(&state, &token, ttl.num_seconds()),
    );
    res.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    Ok(res)
}

/// End the current session.
#[utoipa::path(
    post, path = "/api/auth/logout",
    responses(
        (status = 204, description = "Signed out; clears the session cookie")
    ),
    security((), ("session_cookie" = []), ("bearer" = []))
)]
pub async fn logout(State(state): State<SharedState>, headers: HeaderMap) -> ApiResult<Response> {
    if let Some(token) = bearer_or_cookie(&headers) {
        state.store.delete_session(&token)?;
        state.store.flush().await?;
    }
    let mut res = StatusCode::NO_CONTENT.into_response();
    res.headers_mut()
        .insert(header::SET_COOKIE, session_cookie(&state, "", 0));
    Ok(res)
}

/// Who am I.
#[utoipa::path(
    get, path = "/api/me",
    responses(
        (status = 200, description = "The signed-in user", body = UserResponse),
        (status = 401, description = "Not signed in: `unauthenticated`", body = crate::api::ErrorBody)
    ),
    security(("session_cookie" = []), ("bearer" = []))
)]
pub async fn me(CurrentUser(user, _): CurrentUser) -> Json<UserResponse> {
    Json(UserResponse {
        user: (&user).into(),
        message: None,
    })
}
