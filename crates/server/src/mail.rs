//! Outgoing mail: SMTP through lettre when configured, otherwise `.eml` files in an outbox
//! folder so that a single machine runs everything.

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context;
use lettre::{
    message::{
        header::{ContentTransferEncoding, ContentType},
        Attachment, Body, Mailbox, MultiPart, SinglePart,
    },
    AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor,
};

use crate::metrics::Metrics;

/// Where mail goes.
#[derive(Clone)]
pub enum Mailer {
    Outbox(PathBuf),
    Smtp(AsyncSmtpTransport<Tokio1Executor>),
}

/// A mail ready to send.
pub struct Mail {
    pub to: String,
    pub to_name: String,
    pub subject: String,
    pub text: String,
    /// `(file name, iCalendar text, METHOD)` for invitations.
    pub calendar: Option<(String, String, &'static str)>,
    /// What kind of mail this is, used in outbox file names and logs.
    pub kind: &'static str,
}

impl Mailer {
    pub fn from_config(smtp_url: Option<&str>, data_dir: &std::path::Path) -> anyhow::Result<Self> {
        match smtp_url {
            Some(url) => {
                let t = AsyncSmtpTransport::<Tokio1Executor>::from_url(url)
                    .with_context(|| format!("bad SMTP URL {url}"))?
                    .timeout(Some(std::time::Duration::from_secs(15)))
                    .build();
                Ok(Mailer::Smtp(t))
            }
            None => {
                let dir = data_dir.join("outbox");
                std::fs::create_dir_all(&dir)
                    .with_context(|| format!("creating {}", dir.display()))?;
                Ok(Mailer::Outbox(dir))
            }
        }
    }

    pub fn describe(&self) -> String {
        match self {
            Mailer::Outbox(d) => format!("outbox folder {}", d.display()),
            Mailer::Smtp(_) => "SMTP".to_owned(),
        }
    }

    /// Sends in the background; failures are logged and counted, never shown to the requester
    /// (who can ask for the mail again).
    pub fn send_later(&self, from: String, mail: Mail, metrics: Arc<Metrics>) {
        let me = self.clone();
        tokio::spawn(async move {
            let kind = mail.kind;
            let to = mail.to.clone();
            match me.send(&from, mail).await {
                Ok(()) => metrics.mails.inc("sent"),
                Err(e) => {
                    metrics.mails.inc("failed");
                    tracing::error!(error = format!("{e:#}"), kind, to, "sending mail failed");
                }
            }
        });
    }

    pub async fn send(&self, from: &str, mail: Mail) -> anyhow::Result<()> {
        let msg = build(from, &mail)?;
        match self {
            Mailer::Smtp(t) => {
                t.send(msg).await.context("SMTP delivery")?;
            }
            Mailer::Outbox(dir) => {
                let stamp = chrono::Utc::now().format("%Y%m%dT%H%M%S%.6fZ");
                let safe: String = mail
                    .to
                    .chars()
                    .map(|c| {
                        if c.is_ascii_alphanumeric() || c == '@' || c == '.' {
                            c
                        } else {
                            '_'
                        }
                    })
                    .collect();
                let path = dir.join(format!("{stamp}-{}-{safe}.eml", mail.kind));
                let bytes = msg.formatted();
                tokio::fs::write(&path, bytes)
                    .await
                    .with_context(|| format!("writing {}", path.display()))?;
                tracing::info!(file = %path.display(), "mail written to the outbox");
            }
        }
        Ok(())
    }
}

fn build(from: &str, mail: &Mail) -> anyhow::Result<Message> {
    let from: Mailbox = from.parse().context("bad --mail-from address")?;
    let to = Mailbox::new(
        Some(mail.to_name.clone()),
        mail.to.parse().context("bad recipient address")?,
    );
    let b = Message::builder()
        .from(from)
        .to(to)
        .subject(mail.subject.clone());
    // Plain 7/8-bit text keeps links readable in the raw mail (no quoted-printable breaks).
    let enc = if mail.text.is_ascii() {
        ContentTransferEncoding::SevenBit
    } else {
        ContentTransferEncoding::EightBit
    };
    // Lines over 78 characters (long links) need quoted-printable; readers decode it.
    let body = || -> anyhow::Result<Body> {
        Ok(Body::new_with_encoding(mail.text.clone(), enc)
            .unwrap_or_else(|_| Body::new(mail.text.clone())))
    };
    let msg = match &mail.calendar {
        None => b.header(ContentType::TEXT_PLAIN).body(body()?)?,
        Some((file, ics, method)) => {
            let ct = ContentType::parse(&format!("text/calendar; charset=utf-8; method={method}"))
                .context("calendar content type")?;
            b.multipart(
                MultiPart::mixed()
                    .singlepart(
                        SinglePart::builder()
                            .header(ContentType::TEXT_PLAIN)
                            .body(body()?),
                    )
                    .singlepart(Attachment::new(file.clone()).body(ics.clone(), ct)),
            )?
        }
    };
    Ok(msg)
}
