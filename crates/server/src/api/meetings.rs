//! Meetings: scheduling, invitations, look-up by code, and join tokens.

use axum::{
    extract::{Path, State},
    http::{header, StatusCode},
    response::{IntoResponse, Response},
    Json,
};
use chrono::{Duration, Utc};
use quicmeet_store::{
    is_meeting_code, new_token, JoinGrant, JoinRole, Meeting, MeetingKind, StoreError, User,
};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::{
    auth::{ClientIp, CurrentUser, MaybeUser},
    validate,
};
use crate::{
    error::{ApiError, ApiJson, ApiResult},
    ics::meeting_ics,
    mail::Mail,
    SharedState,
};

// The schemas carry the validators' rules (`validate.rs`).

/// Who may join: anyone with the link, invitees (others knock), or the host's team.
#[derive(ToSchema)]
#[schema(as = MeetingType)]
#[allow(dead_code)]
enum MeetingTypeSchema {
    #[schema(rename = "public")]
    Public,
    #[schema(rename = "private")]
    Private,
    #[schema(rename = "team")]
    Team,
}

#[derive(Deserialize, ToSchema)]
pub struct CreateMeeting {
    /// At most 200 characters, not blank, no control characters.
    #[schema(
        min_length = 1,
        max_length = 200,
        pattern = "^[^\\x00-\\x1f\\x7f-\\x9f]*[^\\s\\x00-\\x1f\\x7f-\\x9f][^\\x00-\\x1f\\x7f-\\x9f]*$",
        example = "Weekly review"
    )]
    pub title: String,
    /// RFC 3339 date-time with offset.
    #[schema(format = DateTime, example = "2026-12-01T09:30:00Z")]
    pub start: String,
    /// Minutes, 1 to 1440 (24 hours).
    #[schema(minimum = 1, maximum = 1440)]
    pub duration_minutes: i64,
    #[serde(rename = "type")]
    #[schema(value_type = MeetingTypeSchema)]
    pub kind: String,
    /// At most 200 e-mail addresses.
    #[serde(default)]
    #[schema(max_items = 200, value_type = Vec<InviteeEmail>)]
    pub invitees: Vec<String>,
}

/// An invitee's e-mail address (same rules as every e-mail field).
struct InviteeEmail;

impl utoipa::PartialSchema for InviteeEmail {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        use utoipa::openapi::schema::{ObjectBuilder, Type};
        // No `format: email`: fuzzers read it as ASCII-only RFC 5321, stricter than our rule.
        ObjectBuilder::new()
            .schema_type(Type::String)
            .max_length(Some(254))
            .pattern(Some(validate::EMAIL_PATTERN))
            .into()
    }
}

impl ToSchema for InviteeEmail {}

#[derive(Deserialize, ToSchema, Default)]
pub struct UpdateMeeting {
    /// At most 200 characters, not blank, no control characters.
    #[schema(
        min_length = 1,
        max_length = 200,
        pattern = "^[^\\x00-\\x1f\\x7f-\\x9f]*[^\\s\\x00-\\x1f\\x7f-\\x9f][^\\x00-\\x1f\\x7f-\\x9f]*$",
        example = "Weekly review"
    )]
    pub title: Option<String>,
    #[schema(format = DateTime, example = "2026-12-01T09:30:00Z")]
    pub start: Option<String>,
    #[schema(minimum = 1, maximum = 1440)]
    pub duration_minutes: Option<i64>,
    #[serde(rename = "type")]
    #[schema(value_type = Option<MeetingTypeSchema>)]
    pub kind: Option<String>,
    #[schema(max_items = 200, value_type = Option<Vec<InviteeEmail>>)]
    pub invitees: Option<Vec<String>>,
}

#[derive(Serialize, ToSchema)]
pub struct MeetingView {
    pub code: String,
    pub title: String,
    pub start: String,
    pub duration_minutes: u32,
    #[serde(rename = "type")]
    pub kind: String,
    pub host_name: String,
    pub link: String,
    pub cancelled: bool,
    /// `host` or `invitee` for the signed-in user; absent for others.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub role: Option<String>,
    /// Only shown to the host.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub invitees: Option<Vec<String>>,
    /// Two-person calls may go peer to peer (the host's switch).
    pub p2p: bool,
}

#[derive(Serialize, ToSchema)]
pub struct MeetingResponse {
    pub meeting: MeetingView,
}

#[derive(Serialize, ToSchema)]
pub struct MeetingList {
    pub meetings: Vec<MeetingView>,
}

#[derive(Deserialize, ToSchema, Default)]
pub struct JoinRequest {
    /// Guests only (required for them): the name others see.
    #[schema(
        min_length = 1,
        max_length = 100,
        pattern = "^[^\\x00-\\x1f\\x7f-\\x9f]*[^\\s\\x00-\\x1f\\x7f-\\x9f][^\\x00-\\x1f\\x7f-\\x9f]*$",
        example = "Ada Lovelace"
    )]
    pub name: Option<String>,
    /// Guests only (required for them).
    #[schema(
        max_length = 254,
        pattern = "^[^\\s,<>@\\x00-\\x1f\\x7f-\\x9f]{1,64}@[^\\s,<>@.\\x00-\\x1f\\x7f-\\x9f]+(\\.[^\\s,<>@.\\x00-\\x1f\\x7f-\\x9f]+)+$",
        example = "ada@example.org"
    )]
    pub email: Option<String>,
}

#[derive(Serialize, ToSchema)]
pub struct CertHash {
    pub algorithm: String,
    pub value_hex: String,
}

#[derive(Serialize, ToSchema)]
pub struct WebTransportEndpoint {
    pub url: String,
    /// Present with a self-signed development certificate; pass as `serverCertificateHashes`.
    pub cert_hashes: Vec<CertHash>,
}

#[derive(Serialize, ToSchema)]
pub struct WebSocketEndpoint {
    pub url: String,
}

#[derive(Serialize, ToSchema)]
pub struct MediaEndpoints {
    pub webtransport: WebTransportEndpoint,
    pub websocket: WebSocketEndpoint,
}

#[derive(Serialize, ToSchema)]
pub struct JoinParticipant {
    pub name: String,
    pub email: String,
    /// `host`, `member` or `guest`.
    pub role: String,
}

#[derive(Serialize, ToSchema)]
pub struct JoinResponse {
    /// `ready`: connect and you are in. `waiting`: connect and wait for the host to admit you.
    pub status: String,
    /// Single-use media token, sent in the first control message.
    pub token: String,
    pub expires_in_secs: u64,
    pub participant: JoinParticipant,
    pub meeting: MeetingView,
    pub media: MediaEndpoints,
    /// Direct calls for two (PROTOCOL.md §5.12).
    pub p2p: super::p2p::P2pSettings,
}

fn kind_str(k: MeetingKind) -> &'static str {
    match k {
        MeetingKind::Public => "public",
        MeetingKind::Private => "private",
        MeetingKind::Team => "team",
    }
}

fn parse_kind(s: &str) -> ApiResult<MeetingKind> {
    match s {
        "public" => Ok(MeetingKind::Public),
        "private" => Ok(MeetingKind::Private),
        "team" => Ok(MeetingKind::Team),
        _ => Err(ApiError::bad_request(
            "invalid_type",
            "Meeting type must be public, private or team.",
        )),
    }
}

fn link(state: &SharedState, code: &str) -> String {
    format!("{}/{}", state.public_url, code)
}

pub(super) fn view(state: &SharedState, m: &Meeting, viewer: Option<&User>) -> MeetingView {
    let is_host = viewer.is_some_and(|u| u.id == m.host_id);
    let role = viewer.and_then(|u| {
        if is_host {
            Some("host".to_owned())
        } else if m.invitees.iter().any(|e| e.eq_ignore_ascii_case(&u.email)) {
            Some("invitee".to_owned())
        } else {
            None
        }
    });
    MeetingView {
        code: m.code.clone(),
        title: m.title.clone(),
        start: m.start.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        duration_minutes: m.duration_minutes,
        kind: kind_str(m.kind).to_owned(),
        host_name: m.host_name.clone(),
        link: link(state, &m.code),
        cancelled: m.cancelled,
        role,
        invitees: is_host.then(|| m.invitees.clone()),
        p2p: m.p2p,
    }
}

fn host_domain(state: &SharedState) -> String {
    crate::public_host(&state.public_url)
}

fn mail_invitees(state: &SharedState, m: &Meeting, to: &[String], method: &'static str) {
    if to.is_empty() {
        return;
    }
    let l = link(state, &m.code);
    let ics = meeting_ics(m, &l, &host_domain(state), method, Utc::now());
    for email in to {
        let (subject, text) = if method == "CANCEL" {
            (
                format!("Cancelled: {}", m.title),
                format!(
                    "{} cancelled \"{}\" ({} UTC).\n",
                    m.host_name,
                    m.title,
                    m.start.format("%Y-%m-%d %H:%M")
                ),
            )
        } else {
            (
                format!("Invitation: {} @ {} UTC", m.title, m.start.format("%Y-%m-%d %H:%M")),
                format!(
                    "{} invites you to \"{}\".\n\nWhen: {} UTC, {} minutes\nJoin: {}\nMeeting code: {}\n",
                    m.host_name, m.title, m.start.format("%A %Y-%m-%d %H:%M"), m.duration_minutes, l, m.code
                ),
            )
        };
        state.mailer.send_later(
            state.config.mail_from.clone(),
            Mail {
                to: email.clone(),
                to_name: email.clone(),
                subject,
                text,
                calendar: Some(("invite.ics".into(), ics.clone(), method)),
                kind: if method == "CANCEL" {
                    "cancel"
                } else {
                    "invite"
                },
            },
            state.metrics.clone(),
        );
    }
}

fn require_verified(user: &User) -> ApiResult<()> {
    if user.verified {
        Ok(())
    } else {
        Err(ApiError::forbidden(
            "email_not_verified",
            "Verify your e-mail address first.",
        ))
    }
}

/// Schedule a meeting; invitees get an e-mail with an .ics attachment.
#[utoipa::path(
    post, path = "/api/meetings", request_body = CreateMeeting,
    responses(
        (status = 201, description = "Scheduled", body = MeetingResponse),
        (status = 400, description = "Invalid input: `bad_json`, `invalid_field` or a field's own code", body = crate::api::ErrorBody),
        (status = 401, description = "Not signed in: `unauthenticated`", body = crate::api::ErrorBody),
        (status = 403, description = "Address not verified yet: `email_not_verified`", body = crate::api::ErrorBody),
        (status = 413, description = "The body is larger than 16 KiB: `body_too_large`", body = crate::api::ErrorBody),
        (status = 415, description = "The body is not sent as application/json: `bad_content_type`", body = crate::api::ErrorBody)
    ),
    security(("session_cookie" = []), ("bearer" = []))
)]
pub async fn create(
    State(state): State<SharedState>,
    CurrentUser(user, _): CurrentUser,
    ApiJson(req): ApiJson<CreateMeeting>,
) -> ApiResult<impl IntoResponse> {
    require_verified(&user)?;
    let title = validate::title(&req.title)?;
    let start = validate::start(&req.start)?;
    let duration_minutes = validate::duration(req.duration_minutes)?;
    let kind = parse_kind(&req.kind)?;
    let invitees = validate::invitees(&req.invitees)?;
    let mut meeting = Meeting {
        code: String::new(),
        title,
        start,
        duration_minutes,
        kind,
        host_id: user.id.clone(),
        host_name: user.name.clone(),
        host_email: user.email.clone(),
        team: user.team.clone(),
        invitees,
        cancelled: false,
        created_at: Utc::now(),
        revision: 0,
        ended_at: None,
        p2p: true,
    };
    let mut tries = 0;
    loop {
        meeting.code = quicmeet_store::new_meeting_code();
        match state.store.create_meeting(&meeting).await {
            Ok(()) => break,
            Err(StoreError::CodeTaken) if tries < 5 => tries += 1,
            Err(e) => return Err(e.into()),
        }
    }
    state.store.flush().await?;
    mail_invitees(&state, &meeting, &meeting.invitees, "REQUEST");
    Ok((
        StatusCode::CREATED,
        Json(MeetingResponse {
            meeting: view(&state, &meeting, Some(&user)),
        }),
    ))
}

/// My meetings, hosted and invited; upcoming first, then past ones, most recent first.
#[utoipa::path(
    get, path = "/api/meetings",
    responses(
        (status = 200, description = "Meetings I host or am invited to", body = MeetingList),
        (status = 401, description = "Not signed in: `unauthenticated`", body = crate::api::ErrorBody)
    ),
    security(("session_cookie" = []), ("bearer" = []))
)]
pub async fn list(
    State(state): State<SharedState>,
    CurrentUser(user, _): CurrentUser,
) -> ApiResult<Json<MeetingList>> {
    let mut ms = state.store.meetings_for(&user.id, &user.email).await?;
    let now = Utc::now();
    ms.sort_by_key(|m| {
        let end = m.start + Duration::minutes(m.duration_minutes as i64);
        let past = end < now || m.cancelled;
        // Upcoming/ongoing by start ascending, then past by start descending.
        (
            past,
            if past {
                -m.start.timestamp()
            } else {
                m.start.timestamp()
            },
        )
    });
    Ok(Json(MeetingList {
        meetings: ms.iter().map(|m| view(&state, m, Some(&user))).collect(),
    }))
}

async fn load(state: &SharedState, code: &str) -> ApiResult<Meeting> {
    if !is_meeting_code(code) {
        return Err(ApiError::meeting_not_found());
    }
    state
        .store
        .meeting(code)
        .await?
        .ok_or_else(ApiError::meeting_not_found)
}

/// Public facts of a meeting (everything, for its host).
#[utoipa::path(
    get, path = "/api/meetings/{code}", params(("code" = String, Path, description = "Meeting code, e.g. abc-defg-hij")),
    responses(
        (status = 200, description = "The meeting", body = MeetingResponse),
        (status = 404, description = "No such meeting: `meeting_not_found`", body = crate::api::ErrorBody),
        (status = 429, description = "Rate limited: `rate_limited`, with Retry-After", body = crate::api::ErrorBody)
    ),
    security((), ("session_cookie" = []), ("bearer" = []))
)]
pub async fn get_one(
    State(state): State<SharedState>,
    ClientIp(ip): ClientIp,
    MaybeUser(user): MaybeUser,
    Path(code): Path<String>,
) -> ApiResult<Json<MeetingResponse>> {
    // Look-ups share the join limit so codes cannot be enumerated.
    state.limits.join_ip.check(&ip).map_err(|w| {
        state.metrics.rate_limited.inc("join");
        ApiError::rate_limited(w)
    })?;
    let m = load(&state, &code).await?;
    Ok(Json(MeetingResponse {
        meeting: view(&state, &m, user.as_ref().map(|u| &u.0)),
    }))
}

pub(super) async fn load_hosted(
    state: &SharedState,
    code: &str,
    user: &User,
) -> ApiResult<Meeting> {
    let m = load(state, code).await?;
    if m.host_id != user.id {
        return Err(ApiError::forbidden(
            "not_host",
            "Only the meeting's host can change it.",
        ));
    }
    Ok(m)
}

/// Edit a meeting I host; invitees get an updated invitation.
#[utoipa::path(
    patch, path = "/api/meetings/{code}", params(("code" = String, Path, description = "Meeting code")), request_body = UpdateMeeting,
    responses(
        (status = 200, description = "Changed", body = MeetingResponse),
        (status = 400, description = "Invalid input: `bad_json`, `invalid_field` or a field's own code", body = crate::api::ErrorBody),
        (status = 401, description = "Not signed in: `unauthenticated`", body = crate::api::ErrorBody),
        (status = 403, description = "Not the host: `not_host`", body = crate::api::ErrorBody),
        (status = 404, description = "No such meeting: `meeting_not_found`", body = crate::api::ErrorBody),
        (status = 409, description = "The meeting was cancelled: `meeting_cancelled`", body = crate::api::ErrorBody),
        (status = 413, description = "The body is larger than 16 KiB: `body_too_large`", body = crate::api::ErrorBody),
        (status = 415, description = "The body is not sent as application/json: `bad_content_type`", body = crate::api::ErrorBody)
    ),
    security(("session_cookie" = []), ("bearer" = []))
)]
pub async fn update(
    State(state): State<SharedState>,
    CurrentUser(user, _): CurrentUser,
    Path(code): Path<String>,
    ApiJson(req): ApiJson<UpdateMeeting>,
) -> ApiResult<Json<MeetingResponse>> {
    let old = load_hosted(&state, &code, &user).await?;
    if old.cancelled {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "meeting_cancelled",
            "This meeting was cancelled.",
        ));
    }
    let mut m = old.clone();
    if let Some(t) = &req.title {
        m.title = validate::title(t)?;
    }
    if let Some(s) = &req.start {
        m.start = validate::start(s)?;
    }
    if let Some(d) = req.duration_minutes {
        m.duration_minutes = validate::duration(d)?;
    }
    if let Some(k) = &req.kind {
        m.kind = parse_kind(k)?;
    }
    if let Some(inv) = &req.invitees {
        m.invitees = validate::invitees(inv)?;
    }
    m.revision += 1;
    state.store.update_meeting(&old, &m).await?;
    state.store.flush().await?;
    let removed: Vec<String> = old
        .invitees
        .iter()
        .filter(|e| !m.invitees.contains(e))
        .cloned()
        .collect();
    mail_invitees(&state, &m, &m.invitees, "REQUEST");
    mail_invitees(&state, &m, &removed, "CANCEL");
    Ok(Json(MeetingResponse {
        meeting: view(&state, &m, Some(&user)),
    }))
}

/// Cancel a meeting I host; invitees are told.
#[utoipa::path(
    delete, path = "/api/meetings/{code}", params(("code" = String, Path, description = "Meeting code")),
    responses(
        (status = 204, description = "Cancelled (also when it already was)"),
        (status = 401, description = "Not signed in: `unauthenticated`", body = crate::api::ErrorBody),
        (status = 403, description = "Not the host: `not_host`", body = crate::api::ErrorBody),
        (status = 404, description = "No such meeting: `meeting_not_found`", body = crate::api::ErrorBody)
    ),
    security(("session_cookie" = []), ("bearer" = []))
)]
pub async fn cancel(
    State(state): State<SharedState>,
    CurrentUser(user, _): CurrentUser,
    Path(code): Path<String>,
) -> ApiResult<StatusCode> {
    let old = load_hosted(&state, &code, &user).await?;
    if !old.cancelled {
        let mut m = old.clone();
        m.cancelled = true;
        m.revision += 1;
        state.store.update_meeting(&old, &m).await?;
        state.store.flush().await?;
        mail_invitees(&state, &m, &m.invitees, "CANCEL");
    }
    Ok(StatusCode::NO_CONTENT)
}

/// The meeting as an iCalendar file.
#[utoipa::path(
    get, path = "/api/meetings/{code}/ics", params(("code" = String, Path, description = "Meeting code")),
    responses(
        (status = 200, description = "The meeting as an iCalendar file", content_type = "text/calendar", body = String),
        (status = 404, description = "No such meeting: `meeting_not_found`", body = crate::api::ErrorBody),
        (status = 429, description = "Rate limited: `rate_limited`, with Retry-After", body = crate::api::ErrorBody)
    )
)]
pub async fn ics(
    State(state): State<SharedState>,
    ClientIp(ip): ClientIp,
    Path(code): Path<String>,
) -> ApiResult<Response> {
    state.limits.join_ip.check(&ip).map_err(|w| {
        state.metrics.rate_limited.inc("join");
        ApiError::rate_limited(w)
    })?;
    let m = load(&state, &code).await?;
    let body = meeting_ics(
        &m,
        &link(&state, &m.code),
        &host_domain(&state),
        "PUBLISH",
        Utc::now(),
    );
    Ok((
        [
            (
                header::CONTENT_TYPE,
                "text/calendar; charset=utf-8".to_owned(),
            ),
            (
                header::CONTENT_DISPOSITION,
                format!("attachment; filename=\"{}.ics\"", m.code),
            ),
        ],
        body,
    )
        .into_response())
}

/// Ask to join: answers with a single-use media token, or "waiting" for the host, or a refusal.
#[utoipa::path(
    post, path = "/api/meetings/{code}/join", params(("code" = String, Path, description = "Meeting code")), request_body(content = JoinRequest, description = "Guests give a name and an e-mail address; may be empty for signed-in users"),
    responses(
        (status = 200, description = "Admitted: connect with the token", body = JoinResponse),
        (status = 202, description = "Connect and wait for the host to admit you", body = JoinResponse),
        (status = 400, description = "Invalid input: `bad_json`, `invalid_field` or a field's own code", body = crate::api::ErrorBody),
        (status = 401, description = "A team meeting needs a signed-in member: `sign_in_required`", body = crate::api::ErrorBody),
        (status = 403, description = "Refused: `email_not_verified`, `not_in_team`", body = crate::api::ErrorBody),
        (status = 404, description = "No such meeting: `meeting_not_found`", body = crate::api::ErrorBody),
        (status = 410, description = "Cancelled or ended: `meeting_cancelled`, `meeting_ended`", body = crate::api::ErrorBody),
        (status = 413, description = "The body is larger than 16 KiB: `body_too_large`", body = crate::api::ErrorBody),
        (status = 429, description = "Rate limited: `rate_limited`, with Retry-After", body = crate::api::ErrorBody)
    ),
    security((), ("session_cookie" = []), ("bearer" = []))
)]
pub async fn join(
    State(state): State<SharedState>,
    ClientIp(ip): ClientIp,
    MaybeUser(user): MaybeUser,
    Path(code): Path<String>,
    body: Result<axum::body::Bytes, axum::extract::rejection::BytesRejection>,
) -> ApiResult<Response> {
    let body = body.map_err(|_| {
        ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "body_too_large",
            "The request body is too large.",
        )
    })?;
    let rl = |r: Result<(), u64>| {
        r.map_err(|w| {
            state.metrics.rate_limited.inc("join");
            ApiError::rate_limited(w)
        })
    };
    rl(state.limits.join_ip.check(&ip))?;
    if let Some((u, _)) = &user {
        rl(state.limits.join_account.check(&u.id))?;
    }
    // In a cluster the same limits also hold across nodes.
    let per_min = state.config.join_rate_per_min;
    crate::cluster::shared_limit(&state, "join", "join-ip", &ip, per_min).await?;
    if let Some((u, _)) = &user {
        crate::cluster::shared_limit(&state, "join", "join-account", &u.id, per_min).await?;
    }
    let req: JoinRequest = if body.iter().all(u8::is_ascii_whitespace) {
        JoinRequest::default()
    } else {
        serde_json::from_slice(&body).map_err(|e| {
            ApiError::bad_request(
                "bad_json",
                format!("The body is not valid JSON for a join request: {e}"),
            )
        })?
    };
    let m = load(&state, &code)
        .await
        .inspect_err(|_| state.metrics.joins.inc("not_found"))?;
    if m.cancelled {
        state.metrics.joins.inc("refused");
        return Err(ApiError::new(
            StatusCode::GONE,
            "meeting_cancelled",
            "This meeting was cancelled by its host.",
        ));
    }
    let user = user.map(|u| u.0);
    let is_host = user.as_ref().is_some_and(|u| u.id == m.host_id);
    if m.ended_at.is_some() {
        if is_host {
            // The host starts the meeting again.
            let mut again = m.clone();
            again.ended_at = None;
            state.store.update_meeting(&m, &again).await?;
            state.store.flush().await?;
        } else {
            state.metrics.joins.inc("refused");
            return Err(ApiError::new(
                StatusCode::GONE,
                "meeting_ended",
                "The host ended this meeting. It can start again when the host rejoins.",
            ));
        }
    }
    let refuse = |e: ApiError| {
        state.metrics.joins.inc("refused");
        e
    };
    // Decide who this is and whether they wait in the lobby.
    let (name, email, user_id, role, lobby) = match &user {
        Some(u) if u.id == m.host_id => (
            u.name.clone(),
            u.email.clone(),
            Some(u.id.clone()),
            JoinRole::Host,
            false,
        ),
        Some(u) => {
            let invited = m.invitees.iter().any(|e| e.eq_ignore_ascii_case(&u.email));
            match m.kind {
                MeetingKind::Public => (
                    u.name.clone(),
                    u.email.clone(),
                    Some(u.id.clone()),
                    JoinRole::Member,
                    false,
                ),
                MeetingKind::Private => (
                    u.name.clone(),
                    u.email.clone(),
                    Some(u.id.clone()),
                    JoinRole::Member,
                    !(invited && u.verified),
                ),
                MeetingKind::Team => {
                    if !u.verified {
                        return Err(refuse(ApiError::forbidden(
                            "email_not_verified",
                            "Verify your e-mail address first.",
                        )));
                    }
                    if u.team != m.team && !invited {
                        return Err(refuse(ApiError::forbidden(
                            "not_in_team",
                            "This meeting is only for members of the host's team.",
                        )));
                    }
                    (
                        u.name.clone(),
                        u.email.clone(),
                        Some(u.id.clone()),
                        JoinRole::Member,
                        false,
                    )
                }
            }
        }
        None => {
            if m.kind == MeetingKind::Team {
                return Err(refuse(ApiError::new(
                    StatusCode::UNAUTHORIZED,
                    "sign_in_required",
                    "This is a team meeting: sign in with your team account to join.",
                )));
            }
            let name = validate::name(req.name.as_deref().unwrap_or_default())?;
            let email = validate::email(req.email.as_deref().unwrap_or_default())?;
            // A guest cannot prove they own an invited address, so private meetings make
            // every guest knock.
            (
                name,
                email,
                None,
                JoinRole::Guest,
                m.kind == MeetingKind::Private,
            )
        }
    };
    let token = new_token();
    let ttl = state.config.join_token_ttl_secs;
    let grant = JoinGrant {
        meeting_code: m.code.clone(),
        name: name.clone(),
        email: email.clone(),
        user_id,
        role,
        lobby,
        expires_at: Utc::now() + Duration::seconds(ttl as i64),
    };
    state.store.put_join_grant(&token, &grant).await?;
    state
        .metrics
        .joins
        .inc(if lobby { "waiting" } else { "ready" });
    // In a cluster the media endpoints are those of the node this meeting lands on
    // (docs/CLUSTER.md section 8); alone, this node's own.
    let node = crate::cluster::media_node(&state, &m.code, &token);
    let cert_hashes = node
        .cert_sha256_hex
        .map(|h| {
            vec![CertHash {
                algorithm: "sha-256".into(),
                value_hex: h,
            }]
        })
        .unwrap_or_default();
    let res = JoinResponse {
        status: if lobby { "waiting" } else { "ready" }.into(),
        token,
        expires_in_secs: ttl,
        participant: JoinParticipant {
            name,
            email,
            role: match role {
                JoinRole::Host => "host",
                JoinRole::Member => "member",
                JoinRole::Guest => "guest",
            }
            .into(),
        },
        meeting: view(&state, &m, user.as_ref()),
        p2p: super::p2p::settings(&state.config, &m),
        media: MediaEndpoints {
            webtransport: WebTransportEndpoint {
                url: node.wt_url,
                cert_hashes,
            },
            websocket: WebSocketEndpoint { url: node.ws_url },
        },
    };
    let status = if lobby {
        StatusCode::ACCEPTED
    } else {
        StatusCode::OK
    };
    Ok((status, Json(res)).into_response())
}
