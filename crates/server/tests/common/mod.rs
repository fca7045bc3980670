//! Test harness: runs the real `quicmeet` binary and a real SMTP sink on loopback.
#![allow(dead_code)]

use std::{
    io::{BufRead, BufReader},
    net::SocketAddr,
    path::{Path, PathBuf},
    process::{Child, ChildStdin, Command, Stdio},
    time::{Duration, Instant},
};

use serde_json::{json, Value};

pub struct ServerProc {
    pub child: Child,
    pub http: SocketAddr,
    pub quic: SocketAddr,
    pub data_dir: PathBuf,
    pub base: String,
}

impl ServerProc {
    pub fn start(data_dir: &Path, extra: &[&str]) -> Self {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_quicmeet"));
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
            .args(extra)
            .env_remove("QUICMEET_CONFIG")
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit());
        let mut child = cmd.spawn().expect("start quicmeet");
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if let Some(rest) = line.strip_prefix("QUICMEET_READY ") {
                    let _ = tx.send(rest.to_owned());
                }
            }
        });
        let line = rx
            .recv_timeout(Duration::from_secs(30))
            .expect("server did not get ready in 30 s");
        let mut http = None;
        let mut quic = None;
        for part in line.split_whitespace() {
            if let Some(v) = part.strip_prefix("http=") {
                http = v.parse().ok();
            }
            if let Some(v) = part.strip_prefix("quic=") {
                quic = v.parse().ok();
            }
        }
        let http: SocketAddr = http.unwrap();
        ServerProc {
            child,
            http,
            quic: quic.unwrap(),
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

/// Waits for a mail to `to` whose text contains `needle` in `dir`; returns its text.
pub fn wait_mail(dir: &Path, to: &str, needle: &str) -> String {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        if let Ok(rd) = std::fs::read_dir(dir) {
            let mut files: Vec<_> = rd.filter_map(Result::ok).map(|e| e.path()).collect();
            files.sort();
            for p in files.iter().rev() {
                if p.extension().is_some_and(|e| e == "eml") {
                    let text = decode_qp(&std::fs::read_to_string(p).unwrap_or_default());
                    if text.contains(to) && text.contains(needle) {
                        return text;
                    }
                }
            }
        }
        if Instant::now() > deadline {
            panic!("no mail to {to} containing {needle:?} in {}", dir.display());
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Undoes quoted-printable soft line breaks and `=3D`, enough to read links.
pub fn decode_qp(text: &str) -> String {
    text.replace("=\r\n", "")
        .replace("=\n", "")
        .replace("=3D", "=")
}

/// The verification token from a verification mail.
pub fn token_from_mail(text: &str) -> String {
    let text = &decode_qp(text);
    let i = text
        .find("/verify?token=")
        .expect("mail has a verification link")
        + "/verify?token=".len();
    text[i..]
        .chars()
        .take_while(|c| c.is_ascii_alphanumeric() || *c == '-' || *c == '_')
        .collect()
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
    let (st, body, _) = post(
        &c,
        &s.url("/api/auth/signup"),
        json!({"name": name, "email": email, "password": "correct horse battery"}),
    )
    .await;
    assert_eq!(st, 201, "{body}");
    let mail = wait_mail(mail_dir, email, "/verify?token=");
    let token = token_from_mail(&mail);
    let (st, body, _) = post(&c, &s.url("/api/auth/verify"), json!({"token": token})).await;
    assert_eq!(st, 200, "{body}");
    let (st, body, _) = post(
        &c,
        &s.url("/api/auth/login"),
        json!({"email": email, "password": "correct horse battery"}),
    )
    .await;
    assert_eq!(st, 200, "{body}");
    c
}

pub fn in_one_hour() -> String {
    (chrono::Utc::now() + chrono::Duration::hours(1)).to_rfc3339()
}
