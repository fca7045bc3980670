use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// An account.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct User {
    pub id: String,
    pub name: String,
    pub email: String,
    /// argon2id PHC string.
    pub password_hash: String,
    pub verified: bool,
    /// Team the user belongs to; by default the domain of the e-mail address.
    pub team: String,
    pub created_at: DateTime<Utc>,
}

/// A login session, stored under the digest of its bearer token.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Session {
    pub user_id: String,
    pub created_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
}

/// Who may join a meeting without being admitted.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum MeetingKind {
    /// Anyone with the link; guests give a name and an e-mail address.
    Public,
    /// Invitees join directly; anyone else knocks and the host admits.
    Private,
    /// Signed-in, verified members of the host's team.
    Team,
}

/// A scheduled meeting.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Meeting {
    pub code: String,
    pub title: String,
    pub start: DateTime<Utc>,
    pub duration_minutes: u32,
    pub kind: MeetingKind,
    pub host_id: String,
    pub host_name: String,
    pub host_email: String,
    pub team: String,
    pub invitees: Vec<String>,
    pub cancelled: bool,
    pub created_at: DateTime<Utc>,
    /// Bumped on every edit; used as the iCalendar SEQUENCE.
    pub revision: u32,
    /// Set when the host ended the meeting for everyone; cleared when the host starts it again.
    #[serde(default)]
    pub ended_at: Option<DateTime<Utc>>,
    /// Two-person calls may go peer to peer (the host's toggle); meetings stored before the
    /// setting existed allow it.
    #[serde(default = "allow")]
    pub p2p: bool,
}

fn allow() -> bool {
    true
}

/// The role a join grant gives in the room.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum JoinRole {
    Host,
    Member,
    Guest,
}

/// What a join token entitles its holder to; single use, short-lived.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct JoinGrant {
    pub meeting_code: String,
    pub name: String,
    pub email: String,
    pub user_id: Option<String>,
    pub role: JoinRole,
    /// The holder waits in the lobby until the host admits them.
    pub lobby: bool,
    pub expires_at: DateTime<Utc>,
}

/// One stored chat message of a meeting.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ChatRecord {
    pub id: u64,
    pub participant_id: u32,
    pub name: String,
    pub text: String,
    pub ts_ms: i64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn meetings_stored_before_the_p2p_switch_allow_it() {
        let old = r#"{"code":"abc-defg-hij","title":"t","start":"2026-12-01T10:00:00Z",
            "duration_minutes":30,"kind":"public","host_id":"u","host_name":"Ann",
            "host_email":"a@x.test","team":"x.test","invitees":[],"cancelled":false,
            "created_at":"2026-12-01T09:00:00Z","revision":0}"#;
        let m: Meeting = serde_json::from_str(old).unwrap();
        assert!(m.p2p);
        let off = Meeting { p2p: false, ..m };
        let back: Meeting = serde_json::from_str(&serde_json::to_string(&off).unwrap()).unwrap();
        assert!(!back.p2p);
    }
}
