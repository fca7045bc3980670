//! iCalendar (RFC 5545) for meeting invitations.

use chrono::{DateTime, Duration, Utc};
use icalendar::{Calendar, Component, Event, EventLike, EventStatus, Property};
use quicmeet_store::Meeting;

/// The meeting as a calendar with one event. `method` is REQUEST, PUBLISH or CANCEL.
///
/// `icalendar` does the escaping of text values and the folding of long lines; this function
/// only decides what the invitation says.
pub fn meeting_ics(
    m: &Meeting,
    link: &str,
    host_domain: &str,
    method: &str,
    now: DateTime<Utc>,
) -> String {
    let end = m.start + Duration::minutes(m.duration_minutes as i64);
    let cancelled = m.cancelled || method == "CANCEL";
    let mut event = Event::new();
    event
        .uid(&format!("{}@{}", m.code, host_domain))
        .sequence(m.revision)
        .timestamp(now)
        .starts(m.start)
        .ends(end)
        .summary(&m.title)
        .description(&format!(
            "Join with QuicMeet: {link}\nMeeting code: {}",
            m.code
        ))
        .location(link)
        .url(link)
        .status(if cancelled {
            EventStatus::Cancelled
        } else {
            EventStatus::Confirmed
        })
        .append_property(
            Property::new("ORGANIZER", format!("mailto:{}", m.host_email))
                .add_parameter("CN", &m.host_name)
                .done(),
        );
    for inv in &m.invitees {
        event.append_multi_property(
            Property::new("ATTENDEE", format!("mailto:{inv}"))
                .add_parameter("ROLE", "REQ-PARTICIPANT")
                .add_parameter("RSVP", "TRUE")
                .done(),
        );
    }
    let mut cal = Calendar::empty();
    cal.append_property(("VERSION", "2.0"))
        .append_property(("PRODID", "-//QuicMeet//QuicMeet//EN"))
        .append_property(("METHOD", method))
        .push(event.done());
    cal.to_string()
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
