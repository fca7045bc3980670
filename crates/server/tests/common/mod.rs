//! Test harness: runs the real `quicmeet` binary and a real SMTP sink on loopback; the
//! fixtures themselves live in `quicmeet-testkit`, these wrappers turn their errors into
//! test failures.
#![allow(dead_code)]

use std::{
    io::{BufRead, BufReader},
    net::SocketAddr,
    path::{Path, PathBuf},
    process::{Child, ChildStdin, Command, Stdio},
    time::{Duration, Instant},
};

use quicmeet_testkit::{mail, process, rest};
use serde_json::Value;

pub struct ServerProc {
    pub child: Child,
    pub http: SocketAddr,
    pub quic: SocketAddr,
    pub data_dir: PathBuf,
    pub base: String,
}

impl ServerProc {
    pub fn start(data_dir: &Path, extra: &[&str]) -> Self {
        let mut cmd =
            process::quicmeet_command(Path::new(env!("CARGO_BIN_EXE_quicmeet")), data_dir);
        cmd.args(extra);
        let ready = process::spawn_ready(&mut cmd, process::QUICMEET_READY, process::READY_TIMEOUT)
            .expect("start quicmeet");
        let http = ready.addr("http").expect("http address");
        ServerProc {
            quic: ready.addr("quic").expect("quic address"),
            child: ready.child,
            http,
            data_dir: data_dir.to_owned(),
            base: format!("http://{http}"),
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.base, path)
    }

    pub fn kill9(&mut self) {
        let _ = self.child.kill(); // SIGKILL on Unix
        let _ = self.child.wait();
    }

    pub fn sigterm(&mut self) -> std::process::ExitStatus {
        let pid = self.child.id() as i32;
        // SAFETY-free: use the kill command rather than libc to keep the tests safe code.
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(pid.to_string())
            .status();
        let start = Instant::now();
        loop {
            if let Some(s) = self.child.try_wait().unwrap() {
                return s;
            }
            if start.elapsed() > Duration::from_secs(15) {
                panic!("server did not exit within 15 s of SIGTERM");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for ServerProc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub struct SmtpSink {
    child: Child,
    _stdin: ChildStdin,
    pub port: u16,
    pub dir: PathBuf,
}

impl SmtpSink {
    pub fn start(dir: &Path) -> Self {
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/smtp_sink.py");
        let mut child = Command::new("python3")
            .arg(script)
            .arg(dir)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("python3 with aiosmtpd is needed (pip install aiosmtpd)");
        let stdin = child.stdin.take().unwrap();
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let port = line
            .trim()
            .strip_prefix("SMTP_READY ")
            .unwrap_or_else(|| panic!("SMTP sink did not start: {line:?} (is aiosmtpd installed?)"))
            .parse()
            .unwrap();
        SmtpSink {
            child,
            _stdin: stdin,
            port,
            dir: dir.to_owned(),
        }
    }

    pub fn url(&self) -> String {
        format!("smtp://127.0.0.1:{}", self.port)
    }
}

impl Drop for SmtpSink {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Waits for a mail to `to` whose text contains `needle` in `dir`; returns its decoded text.
pub async fn wait_mail(dir: &Path, to: &str, needle: &str) -> String {
    mail::wait_mail(dir, to, needle, Duration::from_secs(15))
        .await
        .unwrap_or_else(|e| panic!("{e}"))
}

/// The verification token from a verification mail.
pub fn token_from_mail(text: &str) -> String {
    mail::verify_token(text).expect("mail has a verification link")
}

pub fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .cookie_store(true)
        .build()
        .unwrap()
}

pub async fn post(
    c: &reqwest::Client,
    url: &str,
    body: Value,
) -> (u16, Value, reqwest::header::HeaderMap) {
    let r = c.post(url).json(&body).send().await.unwrap();
    let status = r.status().as_u16();
    let headers = r.headers().clone();
    let text = r.text().await.unwrap();
    (
        status,
        serde_json::from_str(&text).unwrap_or(Value::Null),
        headers,
    )
}

pub async fn get(c: &reqwest::Client, url: &str) -> (u16, Value) {
    let r = c.get(url).send().await.unwrap();
    let status = r.status().as_u16();
    let text = r.text().await.unwrap();
    (status, serde_json::from_str(&text).unwrap_or(Value::Null))
}

/// Signs up, verifies through the mail in `mail_dir`, logs in; returns the logged-in client.
pub async fn verified_user(
    s: &ServerProc,
    mail_dir: &Path,
    name: &str,
    email: &str,
) -> reqwest::Client {
    let c = client();
    let account = rest::Account {
        name,
        email,
        password: "correct horse battery",
    };
    rest::verified_login(&c, &s.base, mail_dir, account)
        .await
        .unwrap_or_else(|e| panic!("verified user {email}: {e}"));
    c
}

pub fn in_one_hour() -> String {
    (chrono::Utc::now() + chrono::Duration::hours(1)).to_rfc3339()
}
