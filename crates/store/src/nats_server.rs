//! Test support: a private `nats-server -js` on a loopback port, with its own store directory,
//! killed when dropped. Tests start the services they need; this is how they get NATS.
//!
//! Needs Debian's `nats-server` (scripts/install-deps.sh installs it); `NATS_SERVER` overrides
//! the binary.

use std::{
    io::{BufRead, BufReader},
    process::{Child, Command, Stdio},
    sync::mpsc,
    time::Duration,
};

/// A running nats-server owned by a test.
pub struct NatsServer {
    child: Option<Child>,
    port: u16,
    dir: tempfile::TempDir,
}

/// How long a nats-server may take to say it listens.
const START_TIMEOUT: Duration = Duration::from_secs(10);

impl NatsServer {
    /// Starts a server with JetStream on 127.0.0.1 and a free port chosen by the server.
    ///
    /// # Panics
    /// When nats-server is missing or does not come up within 10 s: a test cannot go on.
    pub fn start() -> Self {
        let dir = tempfile::tempdir().expect("temp dir for nats-server");
        let mut s = Self {
            child: None,
            port: 0,
            dir,
        };
        s.spawn(None);
        s
    }

    /// `nats://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// Kills the server (SIGKILL, no goodbye to clients), keeping its store directory.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Starts the server again on the same port and store directory (after [`Self::kill`]).
    pub fn restart(&mut self) {
        self.kill();
        let port = self.port;
        // The old socket may linger for a moment; retry briefly.
        for _ in 0..20 {
            if self.try_spawn(Some(port)).is_ok() {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        panic!("nats-server did not restart on port {port}");
    }

    fn spawn(&mut self, port: Option<u16>) {
        if let Err(e) = self.try_spawn(port) {
            panic!("{e}");
        }
    }

    fn try_spawn(&mut self, port: Option<u16>) -> Result<(), String> {
        let bin = std::env::var("NATS_SERVER").unwrap_or_else(|_| "nats-server".into());
        let port_arg = port.map(|p| p.to_string()).unwrap_or_else(|| "-1".into());
        let mut child = Command::new(&bin)
            .args(["-js", "-a", "127.0.0.1", "-p", &port_arg, "-sd"])
            .arg(self.dir.path())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| {
                format!("cannot start {bin} ({e}); install it with scripts/install-deps.sh")
            })?;
        let stderr = child.stderr.take().expect("piped stderr");
        let (tx, rx) = mpsc::channel();
        // Read the log in a thread (and keep draining it, so the server never blocks on a
        // full pipe).
        std::thread::spawn(move || {
            let mut tx = Some(tx);
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if let Some(rest) = line.split("Listening for client connections on ").nth(1) {
                    if let Some(t) = tx.take() {
                        let _ = t.send(Ok(rest.trim().to_owned()));
                    }
                } else if line.contains("[FTL]") || line.contains("[ERR]") {
                    if let Some(t) = tx.take() {
                        let _ = t.send(Err(line));
                    }
                }
            }
        });
        match rx.recv_timeout(START_TIMEOUT) {
            Ok(Ok(addr)) => {
                let p = addr
                    .rsplit(':')
                    .next()
                    .and_then(|p| p.parse::<u16>().ok())
                    .ok_or_else(|| format!("unexpected nats-server address {addr}"))?;
                self.port = p;
                self.child = Some(child);
                Ok(())
            }
            Ok(Err(line)) => {
                let _ = child.kill();
                let _ = child.wait();
                Err(format!("nats-server failed: {line}"))
            }
            Err(_) => {
                let _ = child.kill();
                let _ = child.wait();
                Err("nats-server did not start within 10 s".into())
            }
        }
    }
}

impl Drop for NatsServer {
    fn drop(&mut self) {
        self.kill();
    }
}
