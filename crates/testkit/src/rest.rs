//! The REST steps every scenario starts with: an account (sign up, verify through the mail in
//! the outbox, log in) and a meeting. The `reqwest::Client` passed in keeps the session
//! cookie, so later calls with it act as that user.

use std::path::Path;
use std::time::Duration;

use serde_json::{json, Value};

use crate::{Error, Result};

/// How long the server may take to write a verification mail.
pub const MAIL_TIMEOUT: Duration = Duration::from_secs(15);

/// POST a JSON body; returns the status and the JSON answer (`Null` when it is not JSON).
pub async fn post(c: &reqwest::Client, url: &str, body: &Value) -> Result<(u16, Value)> {
    let r = c
        .post(url)
        .json(body)
        .send()
        .await
        .map_err(|source| Error::Http {
            what: format!("POST {url}"),
            source,
        })?;
    let status = r.status().as_u16();
    let text = r.text().await.unwrap_or_default();
    Ok((status, serde_json::from_str(&text).unwrap_or(Value::Null)))
}

/// POST and require `want`; the answer otherwise becomes [`Error::Refused`].
async fn post_expect(
    c: &reqwest::Client,
    url: &str,
    body: &Value,
    what: &'static str,
    want: u16,
) -> Result<Value> {
    let (status, v) = post(c, url, body).await?;
    if status != want {
        return Err(Error::Refused {
            what,
            status,
            code: v
                .pointer("/error/code")
                .and_then(Value::as_str)
                .unwrap_or("unknown")
                .to_owned(),
            body: v.to_string(),
        });
    }
    Ok(v)
}

/// A user's sign-up details.
#[derive(Debug, Clone, Copy)]
pub struct Account<'a> {
    /// Display name.
    pub name: &'a str,
    /// Email (unique per server).
    pub email: &'a str,
    /// Password.
    pub password: &'a str,
}

/// Log in; `c` keeps the session cookie.
pub async fn login(c: &reqwest::Client, base: &str, email: &str, password: &str) -> Result<()> {
    let body = json!({"email": email, "password": password});
    post_expect(c, &format!("{base}/api/auth/login"), &body, "login", 200).await?;
    Ok(())
}

/// Sign up `a`, verify it with the token from the mail in `outbox`, and log in with `c`.
pub async fn verified_login(
    c: &reqwest::Client,
    base: &str,
    outbox: &Path,
    a: Account<'_>,
) -> Result<()> {
    let body = json!({"name": a.name, "email": a.email, "password": a.password});
    post_expect(c, &format!("{base}/api/auth/signup"), &body, "sign-up", 201).await?;
    let token = crate::mail::verification_token(outbox, a.email, MAIL_TIMEOUT).await?;
    let body = json!({"token": token});
    post_expect(
        c,
        &format!("{base}/api/auth/verify"),
        &body,
        "verification",
        200,
    )
    .await?;
    login(c, base, a.email, a.password).await
}

/// What to create.
#[derive(Debug, Clone, Copy)]
pub struct Meeting<'a> {
    /// Title.
    pub title: &'a str,
    /// Start time (RFC 3339).
    pub start: &'a str,
    /// Length.
    pub duration_minutes: u32,
    /// `public`, `private` or `team`.
    pub kind: &'a str,
    /// Invitees' emails.
    pub invitees: &'a [&'a str],
}

/// Create a meeting as the user logged in on `c`; returns its code.
pub async fn create_meeting(c: &reqwest::Client, base: &str, m: Meeting<'_>) -> Result<String> {
    let body = json!({
        "title": m.title,
        "start": m.start,
        "duration_minutes": m.duration_minutes,
        "type": m.kind,
        "invitees": m.invitees,
    });
    let v = post_expect(
        c,
        &format!("{base}/api/meetings"),
        &body,
        "creating a meeting",
        201,
    )
    .await?;
    v.pointer("/meeting/code")
        .and_then(Value::as_str)
        .map(str::to_owned)
        .ok_or_else(|| Error::Malformed(format!("meeting answer without a code: {v}")))
}
