//! Mail the server wrote: the embedded default writes each mail as an `.eml` file into the
//! outbox folder (`DATA_DIR/outbox`), and the tests' SMTP sink does the same. Links in the
//! body are quoted-printable encoded, so they are decoded before they are read.

use std::path::Path;

/// The path of a verification link; the token follows it.
pub const VERIFY_LINK: &str = "/verify?token=";

/// Undo quoted-printable soft line breaks and `=3D`: enough to read links and codes, which
/// are plain ASCII.
pub fn decode_qp(text: &str) -> String {
    text.replace("=\r\n", "")
        .replace("=\n", "")
        .replace("=3D", "=")
}

/// The token of the first verification link in a mail (encoded or not).
pub fn verify_token(text: &str) -> Option<String> {
    let text = decode_qp(text);
    let i = text.find(VERIFY_LINK)? + VERIFY_LINK.len();
    let token: String = text[i..]
        .chars()
        .take_while(|c| c.is_ascii_alphanumeric() || *c == '-' || *c == '_')
        .collect();
    (!token.is_empty()).then_some(token)
}

/// The decoded text of the newest mail in `dir` that mentions `to` and contains `needle`.
pub fn find_mail(dir: &Path, to: &str, needle: &str) -> Option<String> {
    let mut files: Vec<_> = std::fs::read_dir(dir)
        .ok()?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "eml"))
        .collect();
    // Names start with a timestamp: the newest mail is the last.
    files.sort();
    files.iter().rev().find_map(|p| {
        let text = decode_qp(&std::fs::read_to_string(p).ok()?);
        (text.contains(to) && text.contains(needle)).then_some(text)
    })
}

/// Wait (at most `timeout`) for [`find_mail`] to find a mail.
#[cfg(feature = "rest")]
pub async fn wait_mail(
    dir: &Path,
    to: &str,
    needle: &str,
    timeout: std::time::Duration,
) -> crate::Result<String> {
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        if let Some(m) = find_mail(dir, to, needle) {
            return Ok(m);
        }
        if tokio::time::Instant::now() >= deadline {
            return Err(crate::Error::Timeout {
                what: format!("no mail to {to} containing {needle:?} in {}", dir.display()),
                after: timeout,
            });
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}

/// Wait (at most `timeout`) for the verification mail to `email` and return its token.
#[cfg(feature = "rest")]
pub async fn verification_token(
    outbox: &Path,
    email: &str,
    timeout: std::time::Duration,
) -> crate::Result<String> {
    let mail = wait_mail(outbox, email, VERIFY_LINK, timeout).await?;
    verify_token(&mail).ok_or_else(|| {
        crate::Error::Malformed(format!("the verification mail to {email} has no token"))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_token_through_quoted_printable_and_picks_the_newest_matching_mail() {
        let encoded = "To: vera@example.test\r\n\r\nOpen http://h/verify?token=3DAb-_c=\r\nd9 now";
        assert_eq!(verify_token(encoded).as_deref(), Some("Ab-_cd9"));
        assert_eq!(verify_token("no link here"), None);
        assert_eq!(verify_token("http://h/verify?token= empty"), None);

        let dir = tempfile::tempdir().unwrap();
        let write = |name: &str, body: &str| std::fs::write(dir.path().join(name), body).unwrap();
        write("1-a.eml", "To: vera@example.test\n/verify?token=3Dold");
        write("2-b.eml", "To: vera@example.test\n/verify?token=3Dnew");
        write("3-c.eml", "To: other@example.test\n/verify?token=3Dother");
        write(
            "4-d.txt",
            "To: vera@example.test\n/verify?token=3Dnot-a-mail",
        );
        let m = find_mail(dir.path(), "vera@example.test", VERIFY_LINK).unwrap();
        assert_eq!(verify_token(&m).as_deref(), Some("new"));
        assert!(find_mail(dir.path(), "nobody@example.test", VERIFY_LINK).is_none());
        assert!(find_mail(&dir.path().join("missing"), "vera", "").is_none());
    }
}
