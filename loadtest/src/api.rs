//! The REST steps: an account (log in, or sign up and verify from the outbox), meetings, joins.

use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};
use quicmeet_client::{JoinAs, JoinInfo};
use serde_json::{json, Value};

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

async fn post(c: &reqwest::Client, url: &str, body: Value) -> Result<(u16, Value)> {
    let r = c
        .post(url)
        .json(&body)
        .send()
        .await
        .with_context(|| format!("POST {url}"))?;
    let st = r.status().as_u16();
    let text = r.text().await.unwrap_or_default();
    Ok((st, serde_json::from_str(&text).unwrap_or(Value::Null)))
}

fn err_code(v: &Value) -> String {
    v.pointer("/error/code")
        .and_then(Value::as_str)
        .unwrap_or("unknown")
        .to_owned()
}

/// Log in; the client keeps the session cookie.
pub async fn login(c: &reqwest::Client, base: &str, email: &str, password: &str) -> Result<()> {
    let (st, v) = post(
        c,
        &format!("{base}/api/auth/login"),
        json!({"email": email, "password": password}),
    )
    .await?;
    if st != 200 {
        bail!("login as {email} failed: HTTP {st} {}", err_code(&v));
    }
    Ok(())
}

/// Undo quoted-printable soft breaks and `=3D`, enough to read the verification link.
pub fn decode_qp(text: &str) -> String {
    text.replace("=\r\n", "")
        .replace("=\n", "")
        .replace("=3D", "=")
}

/// The verification token in a mail to `email`, waiting up to 15 s for it.
async fn token_from_outbox(outbox: &Path, email: &str) -> Result<String> {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        if let Ok(rd) = std::fs::read_dir(outbox) {
            for e in rd.flatten() {
                let p = e.path();
                if p.extension().is_none_or(|x| x != "eml") {
                    continue;
                }
                let text = decode_qp(&std::fs::read_to_string(&p).unwrap_or_default());
                if !text.contains(email) {
                    continue;
                }
                if let Some(i) = text.find("/verify?token=") {
                    let tok: String = text[i + "/verify?token=".len()..]
                        .chars()
                        .take_while(|c| c.is_ascii_alphanumeric() || *c == '-' || *c == '_')
                        .collect();
                    if !tok.is_empty() {
                        return Ok(tok);
                    }
                }
            }
        }
        if Instant::now() > deadline {
            bail!(
                "no verification mail to {email} in {} after 15 s",
                outbox.display()
            );
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Sign up a fresh account, verify it through the outbox mail and log in.
pub async fn signup_and_login(c: &reqwest::Client, base: &str, outbox: &Path) -> Result<String> {
    let email = format!(
        "loadtest-{}-{}@example.test",
        std::process::id(),
        chrono::Utc::now().timestamp_micros()
    );
    let password = "loadtest correct horse battery";
    let (st, v) = post(
        c,
        &format!("{base}/api/auth/signup"),
        json!({"name": "Load Tester", "email": email, "password": password}),
    )
    .await?;
    if st != 201 {
        bail!("sign-up failed: HTTP {st} {}", err_code(&v));
    }
    let token = token_from_outbox(outbox, &email).await?;
    let (st, v) = post(
        c,
        &format!("{base}/api/auth/verify"),
        json!({"token": token}),
    )
    .await?;
    if st != 200 {
        bail!("verification failed: HTTP {st} {}", err_code(&v));
    }
    login(c, base, &email, password).await?;
    Ok(email)
}

/// Create a public meeting starting now; returns its code.
pub async fn create_meeting(c: &reqwest::Client, base: &str, title: &str) -> Result<String> {
    let (st, v) = post(
        c,
        &format!("{base}/api/meetings"),
        json!({
            "title": title,
            "start": chrono::Utc::now().to_rfc3339(),
            "duration_minutes": 60,
            "type": "public",
            "invitees": [],
        }),
    )
    .await?;
    if st != 201 {
        bail!("creating a meeting failed: HTTP {st} {}", err_code(&v));
    }
    v.pointer("/meeting/code")
        .and_then(Value::as_str)
        .map(str::to_owned)
        .ok_or_else(|| anyhow!("meeting answer without a code: {v}"))
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
