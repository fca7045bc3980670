//! Child processes on loopback: start one, wait for the line that says it is ready and what
//! it listens on, and read its resident memory.
//!
//! The `quicmeet` binary prints `QUICMEET_READY http=ADDR quic=ADDR …` on stdout once it
//! listens; the load tester's relay prints `RELAY_READY quic=ADDR hash=HEX`. Both are read
//! the same way: `key=value` words after a prefix.

use std::collections::BTreeMap;
use std::fmt::Display;
use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use crate::{Error, Result};

/// The ready line's prefix of the `quicmeet` binary.
pub const QUICMEET_READY: &str = "QUICMEET_READY ";

/// How long a server may take to print its ready line (a debug build on a busy 2-core
/// machine opens its store and binds in well under this).
pub const READY_TIMEOUT: Duration = Duration::from_secs(30);

/// A started child that said it is ready.
#[derive(Debug)]
pub struct Ready {
    /// The process; the caller decides how to stop it.
    pub child: Child,
    /// The `key=value` words of its ready line.
    pub fields: BTreeMap<String, String>,
}

impl Ready {
    /// A field of the ready line.
    pub fn field(&self, key: &str) -> Option<&str> {
        self.fields.get(key).map(String::as_str)
    }

    /// A field of the ready line read as a socket address.
    pub fn addr(&self, key: &str) -> Result<SocketAddr> {
        let v = self
            .field(key)
            .ok_or_else(|| Error::Malformed(format!("the ready line has no {key}=")))?;
        v.parse()
            .map_err(|_| Error::Malformed(format!("the ready line's {key}={v} is no address")))
    }
}

/// The `quicmeet` binary at `bin`, set up to listen on loopback with ephemeral ports, keep its
/// data in `data_dir`, log warnings only and ignore any `QUICMEET_CONFIG` of the caller's
/// environment. Add further arguments before [`spawn_ready`].
pub fn quicmeet_command(bin: &Path, data_dir: &Path) -> Command {
    let mut cmd = Command::new(bin);
    cmd.arg("--data-dir")
        .arg(data_dir)
        .args([
            "--http-addr",
            "127.0.0.1:0",
            "--quic-addr",
            "127.0.0.1:0",
            "--log",
            "warn",
        ])
        .env_remove("QUICMEET_CONFIG");
    cmd
}

/// Start `cmd` and wait (at most `timeout`) for a stdout line starting with `prefix`. Stdout
/// keeps being read afterwards so the child never blocks on a full pipe; stderr is inherited.
/// A child that does not get ready in time is killed.
pub fn spawn_ready(cmd: &mut Command, prefix: &str, timeout: Duration) -> Result<Ready> {
    cmd.stdout(Stdio::piped()).stderr(Stdio::inherit());
    let mut child = cmd
        .spawn()
        .map_err(Error::io(format!("starting {cmd:?}")))?;
    let Some(stdout) = child.stdout.take() else {
        let _ = child.kill();
        let _ = child.wait();
        return Err(Error::Malformed("the child has no stdout".into()));
    };
    let (tx, rx) = std::sync::mpsc::channel();
    let prefix = prefix.to_owned();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if let Some(rest) = line.strip_prefix(&prefix) {
                let _ = tx.send(rest.to_owned());
            }
        }
    });
    match rx.recv_timeout(timeout) {
        Ok(line) => Ok(Ready {
            child,
            fields: parse_fields(&line),
        }),
        Err(_) => {
            let _ = child.kill();
            let _ = child.wait();
            Err(Error::Timeout {
                what: format!("{cmd:?} printed no ready line"),
                after: timeout,
            })
        }
    }
}

/// The `key=value` words of a ready line.
pub fn parse_fields(line: &str) -> BTreeMap<String, String> {
    line.split_whitespace()
        .filter_map(|part| part.split_once('='))
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect()
}

/// Resident memory of process `pid` (a number, or `self`) in KiB, from `/proc/PID/status`.
pub fn rss_kib(pid: impl Display) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ready_line_fields_and_own_rss() {
        let f = parse_fields("http=127.0.0.1:8080 quic=127.0.0.1:4433 hash=ab junk");
        assert_eq!(f["http"], "127.0.0.1:8080");
        assert_eq!(f["hash"], "ab");
        assert_eq!(f.len(), 3);
        assert!(rss_kib("self").is_some_and(|k| k > 0));
        assert_eq!(rss_kib(u32::MAX), None);
    }

    #[test]
    fn a_child_is_ready_when_it_prints_the_line_and_killed_when_it_does_not() {
        let mut ok = Command::new("sh");
        ok.args(["-c", "echo noise; echo 'READY a=1 b=127.0.0.1:9'; sleep 5"]);
        let mut r = spawn_ready(&mut ok, "READY ", Duration::from_secs(5)).unwrap();
        assert_eq!(r.field("a"), Some("1"));
        assert_eq!(r.addr("b").unwrap().port(), 9);
        assert!(r.addr("a").is_err());
        let _ = r.child.kill();
        let _ = r.child.wait();

        let mut silent = Command::new("sh");
        silent.args(["-c", "sleep 5"]);
        let e = spawn_ready(&mut silent, "READY ", Duration::from_millis(200)).unwrap_err();
        assert!(matches!(e, Error::Timeout { .. }), "{e}");
    }
}
