//! The REST API under `/api`.

mod auth;
mod meetings;
mod validate;

use axum::{
    routing::{get, post},
    Router,
};
use utoipa::OpenApi;

use crate::{error::ApiError, SharedState};

pub use auth::{CurrentUser, SESSION_COOKIE};

pub fn router() -> Router<SharedState> {
    Router::new()
        .route("/auth/signup", post(auth::signup))
        .route("/auth/verify", post(auth::verify))
        .route("/auth/resend", post(auth::resend))
        .route("/auth/login", post(auth::login))
        .route("/auth/logout", post(auth::logout))
        .route("/me", get(auth::me))
        .route("/meetings", post(meetings::create).get(meetings::list))
        .route(
            "/meetings/{code}",
            get(meetings::get_one)
                .patch(meetings::update)
                .delete(meetings::cancel),
        )
        .route("/meetings/{code}/ics", get(meetings::ics))
        .route("/meetings/{code}/join", post(meetings::join))
        .fallback(|| async {
            ApiError::new(
                axum::http::StatusCode::NOT_FOUND,
                "not_found",
                "No such API route.",
            )
        })
}

#[derive(OpenApi)]
#[openapi(
    modifiers(&SecuritySchemes),
    info(
        title = "QuicMeet API",
        description = "Accounts, meetings and join tokens of a QuicMeet server."
    ),
    paths(
        auth::signup,
        auth::verify,
        auth::resend,
        auth::login,
        auth::logout,
        auth::me,
        meetings::create,
        meetings::list,
        meetings::get_one,
        meetings::update,
        meetings::cancel,
        meetings::ics,
        meetings::join
    ),
    components(schemas(
        auth::SignupRequest,
        auth::VerifyRequest,
        auth::ResendRequest,
        auth::LoginRequest,
        auth::UserView,
        auth::UserResponse,
        auth::MessageResponse,
        meetings::CreateMeeting,
        meetings::UpdateMeeting,
        meetings::MeetingView,
        meetings::MeetingResponse,
        meetings::MeetingList,
        meetings::JoinRequest,
        meetings::JoinResponse,
        meetings::MediaEndpoints,
        meetings::WebTransportEndpoint,
        meetings::CertHash,
        meetings::WebSocketEndpoint,
        meetings::JoinParticipant,
        ErrorBody,
        ErrorDetail
    ))
)]
pub struct ApiDoc;

/// The two ways to present a session: the login cookie, or its token as a bearer token.
struct SecuritySchemes;

impl utoipa::Modify for SecuritySchemes {
    fn modify(&self, api: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::security::{
            ApiKey, ApiKeyValue, Http, HttpAuthScheme, SecurityScheme,
        };
        let c = api.components.get_or_insert_with(Default::default);
        c.add_security_scheme(
            "session_cookie",
            SecurityScheme::ApiKey(ApiKey::Cookie(ApiKeyValue::new(SESSION_COOKIE))),
        );
        c.add_security_scheme(
            "bearer",
            SecurityScheme::Http(Http::new(HttpAuthScheme::Bearer)),
        );
    }
}

/// The error envelope of every failed request.
#[derive(utoipa::ToSchema, serde::Serialize)]
pub struct ErrorBody {
    pub error: ErrorDetail,
}

#[derive(utoipa::ToSchema, serde::Serialize)]
pub struct ErrorDetail {
    /// Stable machine-readable code, e.g. `invalid_credentials`.
    pub code: String,
    /// Text to show the user.
    pub message: String,
}
