//! iCalendar (RFC 5545) for meeting invitations.

use chrono::{DateTime, Duration, Utc};
use quicmeet_store::Meeting;

fn stamp(t: DateTime<Utc>) -> String {
    t.format("%Y%m%dT%H%M%SZ").to_string()
}

fn escape(s: &str) -> String {
    let mut o = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '\\' => o.push_str("\\\\"),
            ';' => o.push_str("\\;"),
            ',' => o.push_str("\\,"),
            '\n' => o.push_str("\\n"),
            '\r' => {}
            c => o.push(c),
        }
    }
    o
}

/// Folds a content line at 75 octets without splitting a UTF-8 character.
fn fold(line: &str, out: &mut String) {
    let mut used = 0;
    for c in line.chars() {
        let n = c.len_utf8();
        if used + n > 75 {
            out.push_str("\r\n ");
            used = 1;
        }
        out.push(c);
        used += n;
    }
    out.push_str("\r\n");
}

/// The meeting as a calendar with one event. `method` is REQUEST, PUBLISH or CANCEL.
pub fn meeting_ics(
    m: &Meeting,
    link: &str,
    host_domain: &str,
    method: &str,
    now: DateTime<Utc>,
) -> String {
    let end = m.start + Duration::minutes(m.duration_minutes as i64);
    let mut lines = vec![
        "BEGIN:VCALENDAR".to_owned(),
        "VERSION:2.0".to_owned(),
        "PRODID:-//QuicMeet//QuicMeet//EN".to_owned(),
        format!("METHOD:{method}"),
        "BEGIN:VEVENT".to_owned(),
        format!("UID:{}@{}", m.code, host_domain),
        format!("SEQUENCE:{}", m.revision),
        format!("DTSTAMP:{}", stamp(now)),
        format!("DTSTART:{}", stamp(m.start)),
        format!("DTEND:{}", stamp(end)),
        format!("SUMMARY:{}", escape(&m.title)),
        format!(
            "DESCRIPTION:{}",
            escape(&format!(
                "Join with QuicMeet: {link}\nMeeting code: {}",
                m.code
            ))
        ),
        format!("LOCATION:{}", escape(link)),
        format!("URL:{link}"),
        format!(
            "ORGANIZER;CN={}:mailto:{}",
            escape(&m.host_name),
            m.host_email
        ),
    ];
    for inv in &m.invitees {
        lines.push(format!(
            "ATTENDEE;ROLE=REQ-PARTICIPANT;RSVP=TRUE:mailto:{inv}"
        ));
    }
    lines.push(format!(
        "STATUS:{}",
        if m.cancelled || method == "CANCEL" {
            "CANCELLED"
        } else {
            "CONFIRMED"
        }
    ));
    lines.push("END:VEVENT".to_owned());
    lines.push("END:VCALENDAR".to_owned());
    let mut out = String::new();
    for l in lines {
        fold(&l, &mut out);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use quicmeet_store::MeetingKind;

    #[test]
    fn calendar_has_the_event_times_and_escapes_text() {
        let start = DateTime::parse_from_rfc3339("2026-12-01T09:30:00Z")
            .unwrap()
            .to_utc();
        let m = Meeting {
            code: "abc-defg-hij".into(),
            title: "Plan; review, and \"ship\"".into(),
            start,
            duration_minutes: 45,
            kind: MeetingKind::Public,
            host_id: "h".into(),
            host_name: "Ada".into(),
            host_email: "ada@example.org".into(),
            team: "example.org".into(),
            invitees: vec!["bob@example.org".into()],
            cancelled: false,
            created_at: start,
            revision: 2,
            ended_at: None,
            p2p: true,
        };
        let ics = meeting_ics(
            &m,
            "http://localhost:8080/abc-defg-hij",
            "localhost",
            "REQUEST",
            start,
        );
        assert!(ics.contains("DTSTART:20261201T093000Z\r\n"));
        assert!(ics.contains("DTEND:20261201T101500Z\r\n"));
        assert!(ics.contains("SUMMARY:Plan\\; review\\, and \"ship\"\r\n"));
        assert!(ics.contains("ATTENDEE;ROLE=REQ-PARTICIPANT;RSVP=TRUE:mailto:bob@example.org"));
        assert!(ics.contains("SEQUENCE:2"));
        assert!(ics.lines().all(|l| l.len() <= 75));
    }
}
