//! Input checks with messages fit to show a user.

use crate::error::{ApiError, ApiResult};

/// The e-mail rule below as a regular expression, for the OpenAPI document: 1 to 64
/// characters before the `@`, a domain of at least two dot-separated labels, no white space,
/// control characters, `,`, `<` or `>`.
pub const EMAIL_PATTERN: &str = r"^[^\s,<>@\x00-\x1f\x7f-\x9f]{1,64}@[^\s,<>@.\x00-\x1f\x7f-\x9f]+(\.[^\s,<>@.\x00-\x1f\x7f-\x9f]+)+$";

pub fn email(e: &str) -> ApiResult<String> {
    let e = e.trim();
    // Lengths in characters, as JSON Schema's maxLength counts them.
    let ok = e.chars().count() <= 254
        && !e
            .chars()
            .any(|c| c.is_whitespace() || c.is_control() || c == ',' || c == '<' || c == '>')
        && match e.split_once('@') {
            Some((local, domain)) => {
                !local.is_empty()
                    && local.chars().count() <= 64
                    && !domain.contains('@')
                    && domain.contains('.')
                    && !domain.starts_with('.')
                    && !domain.ends_with('.')
                    && !domain.contains("..")
            }
            None => false,
        };
    if ok {
        Ok(e.to_ascii_lowercase())
    } else {
        Err(ApiError::bad_request(
            "invalid_email",
            "Enter a valid e-mail address, like name@example.org.",
        ))
    }
}

pub fn name(n: &str) -> ApiResult<String> {
    // The length counts what was sent (as the schema's maxLength does), then blanks are cut.
    let too_long = n.chars().count() > 100;
    let n = n.trim();
    if n.is_empty() {
        return Err(ApiError::bad_request("invalid_name", "Enter your name."));
    }
    if too_long || n.chars().any(char::is_control) {
        return Err(ApiError::bad_request(
            "invalid_name",
            "Names are at most 100 characters, without control characters.",
        ));
    }
    Ok(n.to_owned())
}

pub fn password(p: &str) -> ApiResult<()> {
    let n = p.chars().count();
    if n < 8 {
        return Err(ApiError::bad_request(
            "weak_password",
            "Passwords need at least 8 characters.",
        ));
    }
    if n > 256 {
        return Err(ApiError::bad_request(
            "invalid_password",
            "Passwords are at most 256 characters.",
        ));
    }
    Ok(())
}

pub fn title(t: &str) -> ApiResult<String> {
    let too_long = t.chars().count() > 200;
    let t = t.trim();
    if t.is_empty() {
        return Err(ApiError::bad_request(
            "invalid_title",
            "Give the meeting a title.",
        ));
    }
    if too_long {
        return Err(ApiError::bad_request(
            "invalid_title",
            "Titles are at most 200 characters.",
        ));
    }
    if t.chars().any(char::is_control) {
        return Err(ApiError::bad_request(
            "invalid_title",
            "Titles cannot contain control characters.",
        ));
    }
    Ok(t.to_owned())
}

pub fn duration(minutes: i64) -> ApiResult<u32> {
    if !(1..=24 * 60).contains(&minutes) {
        return Err(ApiError::bad_request(
            "invalid_duration",
            "Duration must be between 1 minute and 24 hours (1440 minutes).",
        ));
    }
    Ok(minutes as u32)
}

pub fn start(s: &str) -> ApiResult<chrono::DateTime<chrono::Utc>> {
    chrono::DateTime::parse_from_rfc3339(s.trim())
        .map(|d| d.to_utc())
        .map_err(|_| {
            ApiError::bad_request(
                "invalid_start",
                "Start must be a date and time with a time zone, like 2026-12-01T09:30:00Z.",
            )
        })
}

pub fn invitees(list: &[String]) -> ApiResult<Vec<String>> {
    if list.len() > 200 {
        return Err(ApiError::bad_request(
            "too_many_invitees",
            "At most 200 invitees per meeting.",
        ));
    }
    let mut out: Vec<String> = Vec::with_capacity(list.len());
    for e in list {
        let e = email(e).map_err(|_| {
            ApiError::bad_request(
                "invalid_invitee",
                format!("\"{e}\" is not a valid e-mail address."),
            )
        })?;
        if !out.contains(&e) {
            out.push(e);
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_and_refuses_the_expected_inputs() {
        assert_eq!(email(" Ada@Example.org ").unwrap(), "ada@example.org");
        for bad in [
            "",
            "a",
            "a@b",
            "@b.org",
            "a@@b.org",
            "a b@c.org",
            "a@b..org",
            "a@.b.org",
        ] {
            assert!(email(bad).is_err(), "{bad}");
        }
        assert!(title(&"x".repeat(200)).is_ok());
        assert!(title(&"x".repeat(201)).is_err());
        assert!(title("  ").is_err());
        assert!(duration(0).is_err());
        assert!(duration(-5).is_err());
        assert!(duration(1441).is_err());
        assert_eq!(duration(1440).unwrap(), 1440);
        assert!(start("tomorrow").is_err());
        assert!(start("2026-12-01T09:30:00+01:00").is_ok());
        assert!(password("short").is_err());
    }
}
