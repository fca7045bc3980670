//! Peer-to-peer settings: what the join answer tells a browser about direct two-person calls
//! (whether they are allowed and which ICE servers to use), and the host's per-meeting switch.
//! The server never carries P2P media; it only relays the handshake (`signal`).

use axum::{
    extract::{Path, State},
    Json,
};
use quicmeet_store::Meeting;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::{
    api::{
        meetings::{load_hosted, view, MeetingResponse},
        CurrentUser,
    },
    config::Config,
    error::{ApiJson, ApiResult},
    SharedState,
};

/// One entry of `RTCConfiguration.iceServers`.
#[derive(Serialize, ToSchema, Debug, Clone, PartialEq)]
pub struct IceServer {
    pub urls: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub username: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub credential: Option<String>,
}

/// Peer-to-peer for two-person calls, as the join answer carries it.
#[derive(Serialize, ToSchema, Debug, Clone, PartialEq)]
pub struct P2pSettings {
    /// The server allows it (`--p2p`) and the host has not turned it off for this meeting.
    pub enabled: bool,
    /// The server allows it (`--p2p`); the host's switch can still turn it on in the room.
    pub server_enabled: bool,
    /// Pass as `RTCConfiguration.iceServers`; empty means host candidates only.
    pub ice_servers: Vec<IceServer>,
}

/// The settings a participant of `m` gets: STUN URLs bare, TURN URLs with the configured
/// long-term credential.
pub fn settings(config: &Config, m: &Meeting) -> P2pSettings {
    let (turn, stun): (Vec<String>, Vec<String>) = config
        .ice_urls
        .iter()
        .map(|u| u.trim().to_owned())
        .filter(|u| !u.is_empty())
        .partition(|u| u.starts_with("turn:") || u.starts_with("turns:"));
    let mut ice_servers = Vec::new();
    if !stun.is_empty() {
        ice_servers.push(IceServer {
            urls: stun,
            username: None,
            credential: None,
        });
    }
    if !turn.is_empty() {
        ice_servers.push(IceServer {
            urls: turn,
            username: config.turn_username.clone(),
            credential: config.turn_credential.clone(),
        });
    }
    P2pSettings {
        enabled: config.p2p && m.p2p,
        server_enabled: config.p2p,
        ice_servers,
    }
}

#[derive(Deserialize, ToSchema)]
pub struct SetP2p {
    /// Allow two-person calls of this meeting to go peer to peer.
    pub enabled: bool,
}

/// Host: allow or forbid peer-to-peer calls in a meeting. Takes effect for joins from now on;
/// the host's own client ends a running direct call (PROTOCOL.md §5.12).
#[utoipa::path(
    put, path = "/api/meetings/{code}/p2p", params(("code" = String, Path, description = "Meeting code")), request_body = SetP2p,
    responses(
        (status = 200, description = "The meeting with the new setting", body = MeetingResponse),
        (status = 400, description = "Invalid input: `bad_json` or `invalid_field`", body = crate::api::ErrorBody),
        (status = 401, description = "Not signed in: `unauthenticated`", body = crate::api::ErrorBody),
        (status = 403, description = "Not the host: `not_host`", body = crate::api::ErrorBody),
        (status = 404, description = "No such meeting: `meeting_not_found`", body = crate::api::ErrorBody),
        (status = 413, description = "The body is larger than 16 KiB: `body_too_large`", body = crate::api::ErrorBody),
        (status = 415, description = "The body is not sent as application/json: `bad_content_type`", body = crate::api::ErrorBody)
    ),
    security(("session_cookie" = []), ("bearer" = []))
)]
pub async fn set(
    State(state): State<SharedState>,
    CurrentUser(user, _): CurrentUser,
    Path(code): Path<String>,
    ApiJson(req): ApiJson<SetP2p>,
) -> ApiResult<Json<MeetingResponse>> {
    let old = load_hosted(&state, &code, &user).await?;
    if old.p2p != req.enabled {
        // Not an invitation change: no revision bump, no mail.
        let mut m = old.clone();
        m.p2p = req.enabled;
        state.store.update_meeting(&old, &m).await?;
        state.store.flush().await?;
        return Ok(Json(MeetingResponse {
            meeting: view(&state, &m, Some(&user)),
        }));
    }
    Ok(Json(MeetingResponse {
        meeting: view(&state, &old, Some(&user)),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    fn meeting(p2p: bool) -> Meeting {
        let now = chrono::Utc::now();
        Meeting {
            code: "abc-defg-hij".into(),
            title: "t".into(),
            start: now,
            duration_minutes: 30,
            kind: quicmeet_store::MeetingKind::Public,
            host_id: "u".into(),
            host_name: "Ann".into(),
            host_email: "ann@example.org".into(),
            team: "example.org".into(),
            invitees: vec![],
            cancelled: false,
            created_at: now,
            revision: 0,
            ended_at: None,
            p2p,
        }
    }

    #[test]
    fn default_is_host_candidates_only_and_enabled() {
        let c = Config::parse_from(["quicmeet"]);
        let s = settings(&c, &meeting(true));
        assert!(s.enabled);
        assert!(s.ice_servers.is_empty());
    }

    #[test]
    fn server_flag_and_host_toggle_both_have_to_allow_it() {
        let off = Config::parse_from(["quicmeet", "--p2p", "off"]);
        assert!(!settings(&off, &meeting(true)).enabled);
        let on = Config::parse_from(["quicmeet"]);
        let host_off = settings(&on, &meeting(false));
        assert!(!host_off.enabled && host_off.server_enabled);
    }

    #[test]
    fn turn_urls_carry_the_credential_and_stun_urls_do_not() {
        let c = Config::parse_from([
            "quicmeet",
            "--ice-urls",
            "stun:turn.example.org:3478, turn:turn.example.org:3478?transport=udp,turns:turn.example.org:5349",
            "--turn-username",
            "meet",
            "--turn-credential",
            "s3cret",
        ]);
        let s = settings(&c, &meeting(true));
        assert_eq!(
            s.ice_servers,
            vec![
                IceServer {
                    urls: vec!["stun:turn.example.org:3478".into()],
                    username: None,
                    credential: None
                },
                IceServer {
                    urls: vec![
                        "turn:turn.example.org:3478?transport=udp".into(),
                        "turns:turn.example.org:5349".into()
                    ],
                    username: Some("meet".into()),
                    credential: Some("s3cret".into())
                },
            ]
        );
    }
}
