//! `--node-cpus`: emulate small machines on one host. Each spawned server process (each node
//! of a `--nodes` cluster) gets its own cgroup with a CPU quota, so three nodes capped at a
//! quarter of a core each behave like three quarter-core machines, while the load tester and
//! NATS keep the rest of the host. Without it, every node on one machine competes for the
//! same cores and a cluster can only measure what being a cluster costs, not what it carries.
//!
//! The quota runs on a 10 ms period (the kernel's default is 100 ms): a process that spends
//! its share early in a period waits at most the rest of those 10 ms, which is a slower
//! machine, not one that stalls for most of a tenth of a second.
//!
//! cgroup v2 (`cpu.max`) and v1 (`cpu.cfs_quota_us`) are both handled. Creating a cgroup needs
//! root or a delegated subtree; the error says so.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

/// The quota's period in microseconds.
pub const PERIOD_US: u64 = 10_000;

/// The quota in microseconds per [`PERIOD_US`] for `cores` (at least 1 ms per period, the
/// kernel's minimum).
pub fn quota_us(cores: f64) -> u64 {
    ((cores * PERIOD_US as f64).round() as u64).max(1_000)
}

/// One cgroup holding one process, removed on drop.
#[derive(Debug)]
pub struct CpuCap {
    dir: PathBuf,
    /// Cores the process may use.
    pub cores: f64,
}

/// Where the cgroup file system's CPU controller is, and which version it is.
fn cpu_root() -> Result<(PathBuf, bool)> {
    let v2 = Path::new("/sys/fs/cgroup/cgroup.controllers");
    if let Ok(c) = std::fs::read_to_string(v2) {
        if c.split_whitespace().any(|w| w == "cpu") {
            return Ok(("/sys/fs/cgroup".into(), true));
        }
    }
    let v1 = Path::new("/sys/fs/cgroup/cpu");
    if v1.join("cpu.cfs_quota_us").exists() {
        return Ok((v1.into(), false));
    }
    bail!("no cgroup CPU controller under /sys/fs/cgroup: --node-cpus needs one (cgroup v1 `cpu` or v2 with `cpu` enabled)")
}

impl CpuCap {
    /// Puts process `pid` (all its threads) in a new cgroup `name` limited to `cores`.
    pub fn new(name: &str, pid: u32, cores: f64) -> Result<CpuCap> {
        if !(cores.is_finite() && cores > 0.0) {
            bail!("--node-cpus must be a positive number of cores, got {cores}");
        }
        let (root, v2) = cpu_root()?;
        if v2 {
            // A v2 child only gets the cpu controller if its parent hands it down.
            let _ = std::fs::write(root.join("cgroup.subtree_control"), "+cpu");
        }
        let dir = root.join(name);
        std::fs::create_dir_all(&dir).with_context(|| {
            format!(
                "creating cgroup {} (--node-cpus needs root or a delegated cgroup)",
                dir.display()
            )
        })?;
        let cap = CpuCap { dir, cores };
        let quota = quota_us(cores);
        if v2 {
            cap.write("cpu.max", &format!("{quota} {PERIOD_US}"))?;
        } else {
            // The period first: a quota above the old period's would be refused otherwise.
            cap.write("cpu.cfs_period_us", &PERIOD_US.to_string())?;
            cap.write("cpu.cfs_quota_us", &quota.to_string())?;
        }
        cap.write("cgroup.procs", &pid.to_string())?;
        Ok(cap)
    }

    fn write(&self, file: &str, value: &str) -> Result<()> {
        std::fs::write(self.dir.join(file), value)
            .with_context(|| format!("writing {value} to {}", self.dir.join(file).display()))
    }

    /// Times the process waited because its quota was spent, and for how long in total
    /// (`nr_throttled`, `throttled_time` in v1, `throttled_usec` in v2).
    pub fn throttled(&self) -> Option<(u64, Duration)> {
        let stat = std::fs::read_to_string(self.dir.join("cpu.stat")).ok()?;
        let field = |k: &str| {
            stat.lines()
                .find_map(|l| l.strip_prefix(k)?.trim().parse::<u64>().ok())
        };
        let n = field("nr_throttled ")?;
        let t = field("throttled_usec ")
            .map(Duration::from_micros)
            .or_else(|| field("throttled_time ").map(Duration::from_nanos))?;
        Some((n, t))
    }
}

impl Drop for CpuCap {
    fn drop(&mut self) {
        // The process was killed just before; the kernel refuses to remove a cgroup until
        // its last task is gone.
        let deadline = Instant::now() + Duration::from_secs(3);
        while std::fs::remove_dir(&self.dir).is_err() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_quota_is_the_cores_share_of_a_ten_ms_period() {
        assert_eq!(quota_us(0.25), 2_500);
        assert_eq!(quota_us(1.5), 15_000);
        // The kernel refuses less than 1 ms.
        assert_eq!(quota_us(0.01), 1_000);
    }

    /// A process that would use a whole core gets a tenth of one, the kernel says it waited,
    /// and the cgroup is gone afterwards. (Needs a writable cgroup: CI runs as root.)
    #[test]
    fn a_capped_busy_loop_gets_its_share_and_no_more() {
        let mut child = std::process::Command::new("sh")
            .args(["-c", "while :; do :; done"])
            .spawn()
            .unwrap();
        let name = format!("quicmeet-loadtest-test-{}", std::process::id());
        let cap = CpuCap::new(&name, child.id(), 0.1).expect("a writable cgroup CPU controller");
        let ticks = |pid: u32| -> u64 {
            let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
            let f: Vec<&str> = stat
                .rsplit_once(')')
                .unwrap()
                .1
                .split_whitespace()
                .collect();
            f[11].parse::<u64>().unwrap() + f[12].parse::<u64>().unwrap()
        };
        let t0 = ticks(child.id());
        std::thread::sleep(Duration::from_millis(1500));
        let used = ticks(child.id()) - t0;
        let (times, waited) = cap.throttled().expect("cpu.stat");
        let _ = child.kill();
        let _ = child.wait();
        let dir = cap.dir.clone();
        drop(cap);
        // 1.5 s at 0.1 cores is 15 ticks of 10 ms; uncapped it would be 150.
        assert!(
            used <= 40,
            "the loop used {used} ticks in 1.5 s at 0.1 cores"
        );
        // The kernel enforced it: uncapped, nothing waits for a quota. (At least 10 of the
        // 150 periods, even if other work kept the loop off the CPU for most of them.)
        assert!(
            times >= 10 && waited > Duration::ZERO,
            "{times} waits, {waited:?}"
        );
        assert!(!dir.exists(), "{} was not removed", dir.display());
    }
}
