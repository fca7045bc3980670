//! The process under load: spawning it (QuicMeet or the baseline relay), sampling its CPU and
//! memory from `/proc`, and scraping its Prometheus `/metrics`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use quicmeet_testkit::process;

/// A child process started by the tool; killed when dropped.
#[derive(Debug)]
pub struct Spawned {
    child: Child,
    /// Its pid, for /proc sampling.
    pub pid: u32,
    /// `key=value` parts of the ready line (`http`, `quic`, `hash`).
    pub fields: std::collections::BTreeMap<String, String>,
    /// Data directory the tool created (removed on drop).
    pub data_dir: Option<PathBuf>,
    /// `--node-cpus`: its CPU quota (the cgroup is removed after the process, on drop).
    pub cap: Option<crate::cpucap::CpuCap>,
}

impl Spawned {
    /// Limits the process to `cores` (`--node-cpus`) in its own cgroup named after `role`.
    pub fn cap_cpu(&mut self, role: &str, cores: f64) -> Result<()> {
        let name = format!("quicmeet-loadtest-{}-{role}", std::process::id());
        self.cap = Some(crate::cpucap::CpuCap::new(&name, self.pid, cores)?);
        Ok(())
    }
}

impl Drop for Spawned {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(self.pid.to_string())
            .status();
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
        if let Some(d) = &self.data_dir {
            let _ = std::fs::remove_dir_all(d);
        }
    }
}

fn spawn_ready(mut cmd: Command, prefix: &str, data_dir: Option<PathBuf>) -> Result<Spawned> {
    let ready = match process::spawn_ready(&mut cmd, prefix, process::READY_TIMEOUT) {
        Ok(r) => r,
        Err(e) => {
            if let Some(d) = &data_dir {
                let _ = std::fs::remove_dir_all(d);
            }
            return Err(e.into());
        }
    };
    Ok(Spawned {
        pid: ready.child.id(),
        child: ready.child,
        fields: ready.fields,
        data_dir,
        cap: None,
    })
}

/// Start `quicmeet` on loopback with a fresh data dir and load-friendly limits.
pub fn spawn_quicmeet(bin: &Path, extra: &[String], max_participants: usize) -> Result<Spawned> {
    // A counter as well as the time: two servers started by one process in the same
    // microsecond (parallel tests) must not share a database.
    static STARTED: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let dir = std::env::temp_dir().join(format!(
        "quicmeet-loadtest-{}-{}-{}",
        std::process::id(),
        chrono::Utc::now().timestamp_micros(),
        STARTED.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
    ));
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    let mut cmd = process::quicmeet_command(bin, &dir);
    cmd.args([
        "--auth-rate-per-min",
        "100000",
        "--join-rate-per-min",
        "1000000",
    ])
    .args(extra);
    // A limit given with --server-arg wins (the server refuses the option twice).
    let given = extra
        .iter()
        .any(|a| a == "--max-participants" || a.starts_with("--max-participants="));
    if !given {
        cmd.arg("--max-participants")
            .arg(max_participants.max(100).to_string());
    }
    spawn_ready(cmd, process::QUICMEET_READY, Some(dir))
}

/// Start this binary's `relay` subcommand on loopback.
pub fn spawn_relay(max_secs: u64) -> Result<Spawned> {
    let exe = std::env::current_exe().context("locating this binary")?;
    let exe = relay_exe(&exe);
    let mut cmd = Command::new(exe);
    cmd.args([
        "relay",
        "--addr",
        "127.0.0.1:0",
        "--max-secs",
        &max_secs.to_string(),
    ]);
    spawn_ready(cmd, "RELAY_READY ", None)
}

/// The `quicmeet-loadtest` binary next to `exe` (a test binary lives in `deps/` below it).
fn relay_exe(exe: &Path) -> PathBuf {
    if exe
        .file_name()
        .is_some_and(|n| n.to_string_lossy().starts_with("quicmeet-loadtest"))
        && !exe.parent().is_some_and(|p| p.ends_with("deps"))
    {
        return exe.to_owned();
    }
    let mut dir = exe.parent().map(Path::to_path_buf).unwrap_or_default();
    if dir.ends_with("deps") {
        dir.pop();
    }
    dir.join("quicmeet-loadtest")
}

/// CPU time and resident memory of a process.
#[derive(Debug, Clone, Copy, Default)]
pub struct ProcSample {
    /// User + system CPU time in µs.
    pub cpu_us: u64,
    /// Resident set size in bytes.
    pub rss_bytes: u64,
}

fn clk_tck() -> u64 {
    static TCK: std::sync::OnceLock<u64> = std::sync::OnceLock::new();
    *TCK.get_or_init(|| {
        Command::new("getconf")
            .arg("CLK_TCK")
            .output()
            .ok()
            .and_then(|o| String::from_utf8_lossy(&o.stdout).trim().parse().ok())
            .filter(|v: &u64| *v > 0)
            .unwrap_or(100)
    })
}

/// Read `/proc/<pid>/stat` and `/proc/<pid>/status` (`"self"` for this process).
pub fn proc_sample(pid: &str) -> Option<ProcSample> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the parenthesised command name; utime and stime are fields 14 and 15.
    let rest = &stat[stat.rfind(')')? + 2..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    let utime: u64 = f.get(11)?.parse().ok()?;
    let stime: u64 = f.get(12)?.parse().ok()?;
    let rss_kb = process::rss_kib(pid).unwrap_or(0);
    Some(ProcSample {
        cpu_us: (utime + stime) * 1_000_000 / clk_tck(),
        rss_bytes: rss_kb * 1024,
    })
}

/// CPU time and resident memory summed over several processes; `None` when any of them
/// cannot be read (a sum missing a part would look like a saving).
pub fn procs_sample(pids: &[String]) -> Option<ProcSample> {
    if pids.is_empty() {
        return None;
    }
    let mut sum = ProcSample::default();
    for p in pids {
        let s = proc_sample(p)?;
        sum.cpu_us += s.cpu_us;
        sum.rss_bytes += s.rss_bytes;
    }
    Some(sum)
}

/// Busy CPU time of the whole machine in µs (all CPUs, `/proc/stat`: everything but idle
/// and iowait), which also catches kernel network work done in softirq context.
pub fn machine_busy_us() -> Option<u64> {
    let stat = std::fs::read_to_string("/proc/stat").ok()?;
    let line = stat.lines().next()?.strip_prefix("cpu ")?;
    let v: Vec<u64> = line
        .split_whitespace()
        .filter_map(|x| x.parse().ok())
        .collect();
    let total: u64 = v.iter().take(8).sum();
    let idle = v.get(3)? + v.get(4)?;
    Some((total - idle) * 1_000_000 / clk_tck())
}

/// Parse Prometheus text: `name{labels} value` → value, labels kept in the key.
pub fn parse_metrics(text: &str) -> BTreeMap<String, f64> {
    let mut out = BTreeMap::new();
    for line in text.lines() {
        if line.starts_with('#') || line.trim().is_empty() {
            continue;
        }
        if let Some((k, v)) = line.rsplit_once(' ') {
            if let Ok(v) = v.trim().parse::<f64>() {
                out.insert(k.trim().to_owned(), v);
            }
        }
    }
    out
}

/// Fetch and parse a `/metrics` page.
pub async fn scrape(http: &reqwest::Client, url: &str) -> Option<BTreeMap<String, f64>> {
    let r = http
        .get(url)
        .timeout(Duration::from_secs(2))
        .send()
        .await
        .ok()?;
    if !r.status().is_success() {
        return None;
    }
    Some(parse_metrics(&r.text().await.ok()?))
}

/// Fetch every `/metrics` page of `urls` and add them up series by series (a cluster's
/// nodes); `None` unless every page could be read.
pub async fn scrape_sum(http: &reqwest::Client, urls: &[String]) -> Option<BTreeMap<String, f64>> {
    if urls.is_empty() {
        return None;
    }
    let mut sum = BTreeMap::new();
    for u in urls {
        for (k, v) in scrape(http, u).await? {
            *sum.entry(k).or_insert(0.0) += v;
        }
    }
    Some(sum)
}

/// Sum of every series whose name starts with `prefix`.
pub fn sum_prefix(m: &BTreeMap<String, f64>, prefix: &str) -> f64 {
    m.iter()
        .filter(|(k, _)| k.starts_with(prefix))
        .map(|(_, v)| *v)
        .sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_prometheus_text_and_own_proc_entry() {
        let m = parse_metrics(
            "# HELP a x\n# TYPE a counter\nquicmeet_media_dropped_by_queue_total 3\n\
             quicmeet_participants{transport=\"websocket\"} 2\nbad line\n",
        );
        assert_eq!(m["quicmeet_media_dropped_by_queue_total"], 3.0);
        assert_eq!(sum_prefix(&m, "quicmeet_participants"), 2.0);
        let p = proc_sample("self").unwrap();
        assert!(p.rss_bytes > 0);
    }

    #[test]
    fn relay_binary_is_found_next_to_a_test_binary() {
        assert_eq!(
            relay_exe(Path::new("/t/debug/deps/load-123")),
            Path::new("/t/debug/quicmeet-loadtest")
        );
        assert_eq!(
            relay_exe(Path::new("/t/release/quicmeet-loadtest")),
            Path::new("/t/release/quicmeet-loadtest")
        );
    }
}
