//! Orchestration: prepare the target (spawn, account, meetings), start the participants on
//! the ramp, sample the server once a second, stop, and hand what was recorded to
//! [`crate::build`] for the report. `--find-capacity` ([`crate::capacity`]) repeats runs with a
//! growing load.

use std::collections::BTreeMap;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use tokio::sync::watch;

use crate::build::{build_report, evaluate, BuildInput, WindowMark};
use crate::cli::{Args, Target as TargetArg};
use crate::media::Library;
use crate::participant::{participant, Ctx, Gate, Spec, Target};
use crate::report::{Report, TimePoint};
use crate::server::{self, proc_sample, Spawned};
use crate::stats::Shared;

/// Time receivers keep reading after publishers stop.
const DRAIN: Duration = Duration::from_millis(1500);
/// How long after its last member's join a room starts media anyway.
const ROOM_START_TIMEOUT: Duration = Duration::from_secs(20);

/// What stays the same across the runs of one invocation.
pub struct Env {
    /// Spawned server or relay (kept alive for the whole invocation).
    pub spawned: Option<Spawned>,
    /// REST base URL (QuicMeet).
    pub base: Option<String>,
    /// Relay address and certificate hash.
    pub relay: Option<(std::net::SocketAddr, [u8; 32])>,
    /// Logged-in client (creates meetings), if any.
    pub host: Option<reqwest::Client>,
    /// pid to sample (the first node of a cluster).
    pub pid: Option<u32>,
    /// Every process the server's cost is summed over: the server, or a cluster's nodes and
    /// its NATS server.
    pub pids: Vec<u32>,
    /// `/metrics` URL.
    pub metrics_url: Option<String>,
    /// Every node's `/metrics` (summed), or just `metrics_url`.
    pub metrics_urls: Vec<String>,
    /// `--nodes N`: the spawned cluster.
    pub cluster: Option<crate::cluster::Nodes>,
    /// Plain HTTP client.
    pub http: reqwest::Client,
}

impl Env {
    /// `--node-cpus`: times the capped processes waited for their quota, and for how long,
    /// summed over every node (or the one server).
    pub fn throttled(&self) -> Option<(u64, std::time::Duration)> {
        let caps: Vec<_> = self
            .spawned
            .iter()
            .chain(self.cluster.iter().flat_map(|c| c.nodes.iter()))
            .filter_map(|s| s.cap.as_ref())
            .collect();
        if caps.is_empty() {
            return None;
        }
        caps.iter()
            .try_fold((0, std::time::Duration::ZERO), |(n, t), c| {
                let (n1, t1) = c.throttled()?;
                Some((n + n1, t + t1))
            })
    }
}

fn check_loopback(url: &str) -> Result<()> {
    let host = url
        .split("://")
        .nth(1)
        .unwrap_or(url)
        .split(['/', ':'])
        .next()
        .unwrap_or("");
    if !matches!(host, "127.0.0.1" | "localhost" | "[") && !host.starts_with("127.") {
        tracing::warn!(%url, "the target is not on loopback: make sure you own it");
    }
    Ok(())
}

/// Prepare the target: spawn it if asked, find the pid and metrics, get an account.
pub async fn prepare(args: &Args) -> Result<Env> {
    let http = crate::api::http()?;
    let mut env = Env {
        spawned: None,
        base: None,
        relay: None,
        host: None,
        pid: args.server_pid,
        pids: vec![],
        metrics_url: args.metrics_url.clone(),
        metrics_urls: vec![],
        cluster: None,
        http: http.clone(),
    };
    match args.target {
        TargetArg::Relay => {
            let max = (args.ramp + args.duration) as u64 * 20 + 600;
            let s = server::spawn_relay(max)?;
            let addr = s
                .fields
                .get("quic")
                .context("the relay did not say its address")?
                .parse()?;
            let hash = crate::relay::parse_hash(
                s.fields
                    .get("hash")
                    .context("the relay did not give its certificate hash")?,
            )?;
            env.pid = Some(s.pid);
            let mut s = s;
            if let Some(c) = args.node_cpus {
                s.cap_cpu("relay", c)?;
            }
            env.spawned = Some(s);
            env.relay = Some((addr, hash));
        }
        TargetArg::Quicmeet => {
            let mut outbox = args.outbox.clone();
            let base = if let (Some(bin), true) = (&args.spawn_server, args.nodes > 1) {
                let mut c =
                    crate::cluster::spawn(bin, &args.server_arg, args.nodes.into(), args.total())?;
                if let Some(cores) = args.node_cpus {
                    for (i, n) in c.nodes.iter_mut().enumerate() {
                        n.cap_cpu(&format!("node-{i}"), cores)?;
                    }
                }
                let http_of = |s: &Spawned| {
                    s.fields
                        .get("http")
                        .cloned()
                        .context("a node did not say its http address")
                };
                env.metrics_urls = c
                    .nodes
                    .iter()
                    .map(|s| http_of(s).map(|h| format!("http://{h}/metrics")))
                    .collect::<Result<_>>()?;
                let first = &c.nodes[0];
                outbox = first.data_dir.as_ref().map(|d| d.join("outbox"));
                env.pid = Some(first.pid);
                env.pids = c.nodes.iter().map(|s| s.pid).collect();
                env.pids.push(c.nats.pid);
                let base = format!("http://{}", http_of(first)?);
                crate::cluster::wait_directory(&http, &base, args.nodes.into()).await?;
                env.cluster = Some(c);
                base
            } else if let Some(bin) = &args.spawn_server {
                let mut s = server::spawn_quicmeet(bin, &args.server_arg, args.per_room() + 10)?;
                if let Some(cores) = args.node_cpus {
                    s.cap_cpu("server", cores)?;
                }
                let http_addr = s
                    .fields
                    .get("http")
                    .cloned()
                    .context("the server did not say its http address")?;
                outbox = s.data_dir.as_ref().map(|d| d.join("outbox"));
                env.pid = Some(s.pid);
                env.spawned = Some(s);
                format!("http://{http_addr}")
            } else {
                args.server
                    .clone()
                    .context("give --server URL or --spawn-server PATH")?
            };
            let base = base.trim_end_matches('/').to_owned();
            check_loopback(&base)?;
            if env.metrics_url.is_none() {
                env.metrics_url = Some(format!("{base}/metrics"));
            }
            if env.metrics_urls.is_empty() {
                env.metrics_urls.extend(env.metrics_url.clone());
            }
            if !args.guest || args.meeting.is_empty() {
                let host = crate::api::http()?;
                if let (Some(e), Some(p)) = (&args.email, &args.password) {
                    crate::api::login(&host, &base, e, p).await?;
                } else if let Some(o) = &outbox {
                    crate::api::signup_and_login(&host, &base, o).await?;
                } else if args.meeting.is_empty() {
                    bail!("no meetings to join: give --meeting CODE, --email/--password, --outbox DIR or --spawn-server");
                }
                env.host = Some(host);
            }
            env.base = Some(base);
        }
    }
    if env.pids.is_empty() {
        env.pids.extend(env.pid);
    }
    Ok(env)
}

/// One load run with `args` against the prepared target.
pub async fn run_once(args: &Args, env: &Env, lib: Library) -> Result<Report> {
    let started_at = chrono::Utc::now().to_rfc3339();
    let load_start = crate::report::Machine::load_now();
    let udp0 = crate::report::Machine::udp_rcvbuf_errors();
    let throttled0 = env.throttled();
    let total = args.total();
    if total == 0 {
        bail!("nothing to do: no participants");
    }
    let target = match args.target {
        TargetArg::Relay => {
            let (addr, hash) = env.relay.context("relay not prepared")?;
            Target::Relay { addr, hash }
        }
        TargetArg::Quicmeet => {
            let base = env.base.clone().context("server not prepared")?;
            let codes = if !args.meeting.is_empty() {
                args.meeting.clone()
            } else {
                let host = env.host.as_ref().context("no account to create meetings")?;
                let mut v = vec![];
                for r in 0..args.rooms {
                    v.push(
                        crate::api::create_meeting(host, &base, &format!("load test room {r}"))
                            .await?,
                    );
                }
                v
            };
            Target::Quicmeet { base, codes }
        }
    };
    let target_name = match &target {
        Target::Quicmeet { base, .. } => base.clone(),
        Target::Relay { addr, .. } => format!("relay quic://{addr}"),
    };
    let video_clip_kbps = lib.video.as_ref().map(|c| c.kbps());

    let run_start = Instant::now();
    let per = args.per_room().max(1);
    let start_of = |i: usize| {
        run_start + Duration::from_secs_f64(args.ramp.max(0.0) * i as f64 / total as f64)
    };
    let gates = (0..args.rooms)
        .map(|r| {
            let last = (r * per + per - 1).min(total - 1);
            Gate::new(per, start_of(last) + ROOM_START_TIMEOUT)
        })
        .collect();
    let (stop_tx, stop_rx) = watch::channel(false);
    let (end_tx, end_rx) = watch::channel(false);
    let ctx = Arc::new(Ctx {
        args: args.clone(),
        lib,
        shared: Shared::default(),
        target,
        gates,
        stop: stop_rx,
        end: end_rx,
        http: crate::api::http()?,
        lab: args.lab()?,
    });
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..total {
        tasks.spawn(participant(ctx.clone(), Spec::of(args, i), start_of(i)));
    }

    let bar = if args.quiet {
        ProgressBar::hidden()
    } else {
        let b = ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr());
        b.set_style(
            ProgressStyle::with_template("{spinner} [{elapsed_precise}] {msg}")
                .unwrap_or_else(|_| ProgressStyle::default_spinner()),
        );
        b
    };

    // Sampling once a second until the stop; the measured window opens when every room has
    // started (or the ramp plus the room start timeout has passed) and closes at the stop.
    let ramp_end = start_of(total - 1);
    let stop_at = ramp_end + Duration::from_secs_f64(0.5 + args.duration.max(0.5));
    let mut timeline = vec![];
    let sh = &ctx.shared;
    let self_pid = "self".to_owned();
    let pid_s: Vec<String> = env.pids.iter().map(|p| p.to_string()).collect();
    let nats_pid = env.cluster.as_ref().map(|c| c.nats.pid.to_string());
    let mut last_t = Instant::now();
    let mut last_srv = server::procs_sample(&pid_s);
    let mut last_self = proc_sample(&self_pid);
    let (mut last_rx, mut last_tx, mut last_bytes) = (0u64, 0u64, 0u64);
    let metrics0 = server::scrape_sum(&env.http, &env.metrics_urls).await;
    let mut metrics_last = metrics0.clone();
    let mut window: Option<WindowMark> = None;
    let mut rss_max: Option<f64> = None;
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    tick.tick().await;
    loop {
        let now = Instant::now();
        if now >= stop_at {
            break;
        }
        tokio::select! {
            _ = tick.tick() => {}
            _ = tokio::time::sleep_until(stop_at.into()) => {}
        }
        let now = Instant::now();
        let dt = now.duration_since(last_t).as_secs_f64().max(1e-6);
        last_t = now;
        let w = sh.window.take().summary();
        let rx = sh.frames_rx.load(Relaxed);
        let tx: u64 = sh.frames_sent.iter().map(|a| a.load(Relaxed)).sum();
        let bytes = sh.bytes_rx.load(Relaxed);
        let srv = server::procs_sample(&pid_s);
        let me = proc_sample(&self_pid);
        let cpu = |a: Option<server::ProcSample>, b: Option<server::ProcSample>| match (a, b) {
            (Some(a), Some(b)) => {
                Some((b.cpu_us.saturating_sub(a.cpu_us)) as f64 / (dt * 1e6) * 100.0)
            }
            _ => None,
        };
        let metrics = server::scrape_sum(&env.http, &env.metrics_urls).await;
        if metrics.is_some() {
            metrics_last = metrics.clone();
        }
        let rss = srv.map(|s| s.rss_bytes as f64 / 1048576.0);
        if let Some(r) = rss {
            rss_max = Some(rss_max.map_or(r, |m: f64| m.max(r)));
        }
        let p = TimePoint {
            t: now.duration_since(run_start).as_secs_f64(),
            connected: sh.connected.load(Relaxed),
            p50_ms: w.p50 as f64 / 1000.0,
            p90_ms: w.p90 as f64 / 1000.0,
            p99_ms: w.p99 as f64 / 1000.0,
            max_ms: w.max as f64 / 1000.0,
            tx_fps: (tx - last_tx) as f64 / dt,
            rx_fps: (rx - last_rx) as f64 / dt,
            rx_mbps: (bytes - last_bytes) as f64 * 8.0 / dt / 1e6,
            server_cpu_pct: cpu(last_srv, srv),
            server_rss_mib: rss,
            tester_cpu_pct: cpu(last_self, me),
            server_drops: metrics.as_ref().map(drops_total),
            server_queue_bytes: metrics
                .as_ref()
                .and_then(|m| m.get("quicmeet_queue_bytes").copied()),
        };
        bar.set_message(format!(
            "connected {}/{} · tx {:.0} fr/s · rx {:.0} fr/s {:.1} Mbit/s · p50 {:.1} p99 {:.1} ms · server cpu {} · errors {}",
            p.connected,
            total,
            p.tx_fps,
            p.rx_fps,
            p.rx_mbps,
            p.p50_ms,
            p.p99_ms,
            p.server_cpu_pct.map_or("-".into(), |c| format!("{c:.0}%")),
            sh.errors.lock().values().sum::<u64>()
        ));
        bar.tick();
        timeline.push(p);
        (last_rx, last_tx, last_bytes) = (rx, tx, bytes);
        last_srv = srv;
        last_self = me;
        let all_open = ctx.gates.iter().all(|g| g.opened().is_some());
        if window.is_none() && (all_open || now > ramp_end + ROOM_START_TIMEOUT) {
            window = Some(WindowMark::take(sh, &pid_s, nats_pid.as_deref()));
        }
    }
    let mark_end = WindowMark::take(sh, &pid_s, nats_pid.as_deref());
    let _ = stop_tx.send(true);
    tokio::time::sleep(DRAIN).await;
    let _ = end_tx.send(true);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while let Ok(Some(r)) = tokio::time::timeout_at(deadline, tasks.join_next()).await {
        if let Err(e) = r {
            if e.is_panic() {
                sh.error("participant_panic");
            }
        }
    }
    if !tasks.is_empty() {
        sh.error("participant_shutdown_timeout");
        tasks.abort_all();
    }
    bar.finish_and_clear();
    let metrics_end = server::scrape_sum(&env.http, &env.metrics_urls)
        .await
        .or(metrics_last);

    let mut report = build_report(
        args,
        &ctx,
        BuildInput {
            started_at,
            target: target_name,
            video_clip_kbps,
            timeline,
            window_start: window,
            window_end: mark_end,
            metrics0,
            metrics_end,
            pid: env.pid,
            rss_max,
            nodes: env.cluster.as_ref().map(|c| c.nodes.len()),
        },
    );
    report.machine = crate::report::Machine {
        cpus: std::thread::available_parallelism().map_or(1, |n| n.get()),
        load_start,
        load_end: crate::report::Machine::load_now(),
        udp_rcvbuf_errors: crate::report::Machine::udp_rcvbuf_errors()
            .zip(udp0)
            .map(|(b, a)| b.saturating_sub(a)),
        node_cpus: args.node_cpus,
        throttled: env.throttled().zip(throttled0).map(|((n1, t1), (n0, t0))| {
            crate::report::Throttled {
                times: n1.saturating_sub(n0),
                seconds: t1.saturating_sub(t0).as_secs_f64(),
            }
        }),
    };
    evaluate(args, &mut report);
    Ok(report)
}

fn drops_total(m: &BTreeMap<String, f64>) -> f64 {
    server::sum_prefix(m, "quicmeet_media_dropped_")
}

/// [`run_inner`], cut short by SIGINT or SIGTERM (the spawned server is still stopped).
pub async fn run(args: &Args) -> Result<Report> {
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        r = run_inner(args) => r,
        _ = tokio::signal::ctrl_c() => bail!("interrupted"),
        _ = term => bail!("terminated"),
    }
}

/// Run once, or `--find-capacity`: grow the dimension (doubling, then bisecting between the
/// last value that held and the first that broke), at most 10 runs.
pub async fn run_inner(args: &Args) -> Result<Report> {
    let lib = Library::build(args)?;
    let lib = Arc::new(lib);
    let env = prepare(args).await?;
    if !args.find_capacity {
        return run_once(args, &env, clone_lib(&lib)).await;
    }
    crate::capacity::find_capacity(args, env, &lib).await
}

/// A library sharing `lib`'s clips.
pub(crate) fn clone_lib(lib: &Arc<Library>) -> Library {
    Library {
        video: lib.video.clone(),
        screen: lib.screen.clone(),
        audio: lib.audio.clone(),
        video_ladder: lib.video_ladder.clone(),
        video_layers: lib.video_layers.clone(),
    }
}

/// Write the reports asked for.
pub fn write_reports(args: &Args, r: &Report) -> Result<()> {
    if let Some(p) = &args.report_json {
        std::fs::write(p, serde_json::to_vec_pretty(r)?)
            .with_context(|| format!("writing {}", p.display()))?;
    }
    if let Some(p) = &args.report_html {
        std::fs::write(p, r.html()).with_context(|| format!("writing {}", p.display()))?;
    }
    Ok(())
}
