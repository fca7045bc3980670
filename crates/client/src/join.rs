//! `POST /api/meetings/{code}/join`: the REST step before connecting.

use serde_json::{json, Value};

use crate::error::{ClientError, Result};

/// Whether the server lets the participant straight in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JoinStatus {
    /// `200 {status:"ready"}`: connecting yields `welcome`.
    Ready,
    /// `202 {status:"waiting"}`: connecting yields `lobby` until the host admits.
    Waiting,
}

/// Who the server says the participant is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JoinParticipant {
    /// Display name.
    pub name: String,
    /// Email address (may be empty).
    pub email: String,
    /// `host`, `member` or `guest`.
    pub role: String,
}

/// The join answer: everything needed to open a media connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JoinInfo {
    /// Ready or waiting.
    pub status: JoinStatus,
    /// The join token sent in `hello` (and in the WebTransport URL).
    pub token: String,
    /// How long the token stays valid.
    pub expires_in_secs: u64,
    /// Who joins.
    pub participant: JoinParticipant,
    /// `https://host:port/wt`, without the token.
    pub webtransport_url: String,
    /// SHA-256 digests of the server's self-signed certificate; empty means "validate the
    /// certificate normally".
    pub cert_hashes: Vec<[u8; 32]>,
    /// `ws://host:port/ws` or `wss://…`.
    pub websocket_url: String,
}

impl JoinInfo {
    /// Parse the JSON body of a successful join answer.
    pub fn from_json(v: &Value) -> Result<JoinInfo> {
        let s = |ptr: &str| -> Result<String> {
            v.pointer(ptr)
                .and_then(Value::as_str)
                .map(str::to_owned)
                .ok_or_else(|| ClientError::BadJoinAnswer(format!("missing string {ptr}")))
        };
        let status = match s("/status")?.as_str() {
            "ready" => JoinStatus::Ready,
            "waiting" => JoinStatus::Waiting,
            other => {
                return Err(ClientError::BadJoinAnswer(format!(
                    "unknown status {other:?}"
                )))
            }
        };
        let mut cert_hashes = vec![];
        if let Some(list) = v
            .pointer("/media/webtransport/cert_hashes")
            .and_then(Value::as_array)
        {
            for h in list {
                if h.get("algorithm").and_then(Value::as_str) != Some("sha-256") {
                    continue;
                }
                let hex_str = h.get("value_hex").and_then(Value::as_str).unwrap_or("");
                cert_hashes.push(parse_sha256_hex(hex_str)?);
            }
        }
        Ok(JoinInfo {
            status,
            token: s("/token")?,
            expires_in_secs: v
                .pointer("/expires_in_secs")
                .and_then(Value::as_u64)
                .unwrap_or(0),
            participant: JoinParticipant {
                name: s("/participant/name").unwrap_or_default(),
                email: s("/participant/email").unwrap_or_default(),
                role: s("/participant/role").unwrap_or_default(),
            },
            webtransport_url: s("/media/webtransport/url")?,
            cert_hashes,
            websocket_url: s("/media/websocket/url")?,
        })
    }

    /// The WebTransport URL with this answer's token: `…/wt?token=<token>`.
    pub fn webtransport_url_with_token(&self) -> String {
        with_query(&self.webtransport_url, "token", &self.token)
    }
}

/// Parse a SHA-256 digest written as 64 hex digits (colons allowed).
pub fn parse_sha256_hex(s: &str) -> Result<[u8; 32]> {
    let clean: String = s.chars().filter(|c| *c != ':').collect();
    let mut out = [0u8; 32];
    hex::decode_to_slice(&clean, &mut out)
        .map_err(|e| ClientError::BadJoinAnswer(format!("bad sha-256 hex {s:?}: {e}")))?;
    Ok(out)
}

/// Append `key=value` to a URL's query. Join tokens are URL-safe base64, so no escaping is
/// needed for them; other values are percent-encoded byte by byte.
pub(crate) fn with_query(url: &str, key: &str, value: &str) -> String {
    let sep = if url.contains('?') { '&' } else { '?' };
    let mut out = String::with_capacity(url.len() + key.len() + value.len() + 2);
    out.push_str(url);
    out.push(sep);
    out.push_str(key);
    out.push('=');
    for b in value.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// How to identify oneself when joining.
#[derive(Debug, Clone)]
pub enum JoinAs {
    /// The `reqwest::Client` already carries a `qm_session` cookie (logged in).
    Session,
    /// Send the session token as `Authorization: Bearer …`.
    Bearer(String),
    /// A guest: name and email in the body.
    Guest {
        /// Display name.
        name: String,
        /// Email address.
        email: String,
    },
}

/// `POST {base_url}/api/meetings/{code}/join`. Returns the answer for 200 (ready) and 202
/// (waiting); any other status becomes [`ClientError::JoinRefused`] with the API's code.
pub async fn join(
    http: &reqwest::Client,
    base_url: &str,
    code: &str,
    who: &JoinAs,
) -> Result<JoinInfo> {
    let url = format!(
        "{}/api/meetings/{code}/join",
        base_url.trim_end_matches('/')
    );
    let mut req = http.post(url);
    let body = match who {
        JoinAs::Session => json!({}),
        JoinAs::Bearer(t) => {
            req = req.bearer_auth(t);
            json!({})
        }
        JoinAs::Guest { name, email } => json!({"name": name, "email": email}),
    };
    let resp = req.json(&body).send().await?;
    let status = resp.status().as_u16();
    let text = resp.text().await?;
    let v: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
    if status != 200 && status != 202 {
        return Err(ClientError::JoinRefused {
            status,
            code: v
                .pointer("/error/code")
                .and_then(Value::as_str)
                .unwrap_or("unknown")
                .to_owned(),
            message: v
                .pointer("/error/message")
                .and_then(Value::as_str)
                .unwrap_or(&text)
                .to_owned(),
        });
    }
    JoinInfo::from_json(&v)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_a_contract_join_answer() {
        let v = json!({
            "status": "waiting", "token": "abc_DEF-1", "expires_in_secs": 120,
            "participant": {"name": "Ann", "email": "a@x.test", "role": "guest"},
            "media": {
                "webtransport": {"url": "https://127.0.0.1:4433/wt",
                    "cert_hashes": [{"algorithm": "sha-256", "value_hex": "ab".repeat(32)}]},
                "websocket": {"url": "ws://localhost:8080/ws"}
            }
        });
        let j = JoinInfo::from_json(&v).unwrap();
        assert_eq!(j.status, JoinStatus::Waiting);
        assert_eq!(j.cert_hashes, vec![[0xab; 32]]);
        assert_eq!(
            j.webtransport_url_with_token(),
            "https://127.0.0.1:4433/wt?token=abc_DEF-1"
        );
        assert_eq!(j.participant.role, "guest");
        assert!(JoinInfo::from_json(&json!({"status": "ready"})).is_err());
    }

    #[test]
    fn query_values_are_escaped() {
        assert_eq!(
            with_query("https://h/wt?a=1", "t", "x y"),
            "https://h/wt?a=1&t=x%20y"
        );
    }
}
