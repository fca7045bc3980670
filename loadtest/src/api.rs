//! The REST steps: an account (log in, or sign up and verify from the outbox), meetings, joins.

use std::path::Path;
use std::time::Duration;

use anyhow::{Context, Result};
use quicmeet_client::{JoinAs, JoinInfo};
use quicmeet_testkit::rest;

/// A plain HTTP client with a cookie store, bounded timeouts and no proxy.
pub fn http() -> Result<reqwest::Client> {
    reqwest::Client::builder()
        .cookie_store(true)
        .no_proxy()
        .timeout(Duration::from_secs(15))
        .connect_timeout(Duration::from_secs(5))
        .build()
        .context("building the HTTP client")
}

/// Log in; the client keeps the session cookie.
pub async fn login(c: &reqwest::Client, base: &str, email: &str, password: &str) -> Result<()> {
    rest::login(c, base, email, password)
        .await
        .with_context(|| format!("logging in as {email}"))
}

/// Sign up a fresh account, verify it through the outbox mail and log in.
pub async fn signup_and_login(c: &reqwest::Client, base: &str, outbox: &Path) -> Result<String> {
    let email = format!(
        "loadtest-{}-{}@example.test",
        std::process::id(),
        chrono::Utc::now().timestamp_micros()
    );
    let account = rest::Account {
        name: "Load Tester",
        email: &email,
        password: "loadtest correct horse battery",
    };
    rest::verified_login(c, base, outbox, account).await?;
    Ok(email)
}

/// Create a public meeting starting now; returns its code.
pub async fn create_meeting(c: &reqwest::Client, base: &str, title: &str) -> Result<String> {
    let start = chrono::Utc::now().to_rfc3339();
    let meeting = rest::Meeting {
        title,
        start: &start,
        duration_minutes: 60,
        kind: "public",
        invitees: &[],
    };
    Ok(rest::create_meeting(c, base, meeting).await?)
}

/// Join a meeting as a guest, retrying (bounded) when rate-limited.
pub async fn join_guest(
    c: &reqwest::Client,
    base: &str,
    code: &str,
    name: &str,
) -> std::result::Result<JoinInfo, (String, String)> {
    let who = JoinAs::Guest {
        name: name.to_owned(),
        email: format!("{}@guests.example.test", name.to_lowercase()),
    };
    let mut last = (String::new(), String::new());
    for attempt in 0..5u32 {
        match quicmeet_client::join(c, base, code, &who).await {
            Ok(j) => return Ok(j),
            Err(quicmeet_client::ClientError::JoinRefused { status: 429, .. }) => {
                last = ("join_rate_limited".into(), "HTTP 429".into());
                tokio::time::sleep(Duration::from_millis(500 << attempt.min(3))).await;
            }
            Err(quicmeet_client::ClientError::JoinRefused { status, code, .. }) => {
                return Err((format!("join_{code}"), format!("HTTP {status}")));
            }
            Err(e) => return Err(("join_http".into(), e.to_string())),
        }
    }
    Err(last)
}
