//! `--find-capacity`: repeat runs against one prepared target with a growing load, doubling
//! the chosen dimension and then bisecting between the last value that held and the first
//! that broke.

use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context, Result};

use crate::cli::{Args, CapacityDim};
use crate::media::Library;
use crate::report::{CapacityReport, CapacityStep, Report};
use crate::run::{clone_lib, prepare, run_once, Env};

fn with_value(args: &Args, dim: CapacityDim, v: usize) -> Args {
    let mut a = args.clone();
    match dim {
        CapacityDim::Publishers => a.publishers_per_room = v,
        CapacityDim::Subscribers => a.subscribers_per_room = v,
        CapacityDim::Rooms => a.rooms = v,
    }
    a.find_capacity = false;
    a
}

/// Search for the largest load that passes the thresholds, at most 10 runs; the report is
/// that run's, with every step in `capacity`.
///
/// With `--nodes N` and no `--max-node-participants` of the caller's, each step gets a fresh
/// cluster sized for it (every node takes a third of the step's participants before the
/// placement rule looks elsewhere), so one meeting spreads over the nodes at every size.
pub async fn find_capacity(args: &Args, env: Env, lib: &Arc<Library>) -> Result<Report> {
    let fresh_cluster_per_step = args.nodes > 1
        && !args
            .server_arg
            .iter()
            .any(|a| a.starts_with("--max-node-participants"));
    let mut env = Some(env);
    if args.max_p99_ms.is_none() && args.max_loss.is_none() {
        bail!("--find-capacity needs --max-p99-ms and/or --max-loss");
    }
    let dim = args.capacity_dim;
    let start = match dim {
        CapacityDim::Publishers => args.publishers_per_room,
        CapacityDim::Subscribers => args.subscribers_per_room,
        CapacityDim::Rooms => args.rooms,
    }
    .max(1);
    let mut steps: Vec<CapacityStep> = vec![];
    let mut good: Option<(usize, Report)> = None;
    let mut bad: Option<usize> = None;
    let mut v = start;
    for _ in 0..10 {
        let a = with_value(args, dim, v);
        eprintln!("find-capacity: {dim:?} = {v} ({} participants)", a.total());
        if fresh_cluster_per_step && !steps.is_empty() {
            // The old cluster goes first: its processes and cgroups are gone before the new
            // one starts.
            drop(env.take());
            env = Some(prepare(&a).await.context("restarting the cluster")?);
        }
        let env = env.as_ref().context("no target")?;
        let r = run_once(&a, env, clone_lib(lib))
            .await
            .with_context(|| format!("capacity step {v}"))?;
        let all = r.all();
        steps.push(CapacityStep {
            value: v,
            participants: a.total(),
            p99_ms: all.latency_ms.p99,
            loss_pct: all.loss_pct,
            server_cpu_cores: r.server.cpu_cores,
            tester_cpu_cores: r.tester.cpu_cores,
            server_drops: r
                .server
                .drops
                .iter()
                .filter(|(k, _)| k.starts_with("quicmeet_media_dropped_"))
                .fold(0.0, |a, (_, v)| a + v),
            udp_rcvbuf_errors: r.machine.udp_rcvbuf_errors,
            cpu_us_per_frame: r.server.cpu_us_per_frame,
            server_quic_dropped: r
                .server
                .drops
                .get("quicmeet_media_dropped_quic_datagrams_total")
                .copied()
                .unwrap_or(0.0),
            tester_quic_dropped_in: r.tester.quic_datagrams_dropped_in,
            tester_quic_dropped_out: r.tester.quic_datagrams_dropped_out,
            throttled_s: r.machine.throttled.as_ref().map(|t| t.seconds),
            joins_failed: r.join.failed,
            passed: r.passed,
        });
        eprintln!(
            "  p99 {:.1} ms, loss {:.3}%, server {:.2} cores ({:.2} µs/frame), tester {:.2} cores, UDP drops {}, QUIC drops server {} tester in/out {}/{}: {}",
            all.latency_ms.p99,
            all.loss_pct,
            r.server.cpu_cores.unwrap_or(0.0),
            r.server.cpu_us_per_frame.unwrap_or(0.0),
            r.tester.cpu_cores.unwrap_or(0.0),
            r.machine.udp_rcvbuf_errors.unwrap_or(0),
            r.server
                .drops
                .get("quicmeet_media_dropped_quic_datagrams_total")
                .copied()
                .unwrap_or(0.0),
            r.tester.quic_datagrams_dropped_in,
            r.tester.quic_datagrams_dropped_out,
            if r.passed { "held" } else { "broke" }
        );
        if r.join.failed > 0 || !r.errors.is_empty() {
            eprintln!(
                "  joins failed {} of {} · errors {:?}",
                r.join.failed, r.join.planned, r.errors
            );
        }
        if let Some(t) = &r.machine.throttled {
            eprintln!(
                "  the capped servers waited for their quota {} times, {:.2} s in all",
                t.times, t.seconds
            );
        }
        if r.passed {
            good = Some((v, r));
        } else {
            bad = Some(v);
        }
        let lo = good.as_ref().map(|g| g.0);
        v = match (lo, bad) {
            (Some(l), None) => {
                if l >= args.capacity_max {
                    break;
                }
                (l * 2).min(args.capacity_max)
            }
            (Some(l), Some(b)) => {
                if b <= l + 1 {
                    break;
                }
                (l + b) / 2
            }
            (None, Some(b)) => {
                if b <= 1 {
                    break;
                }
                b / 2
            }
            (None, None) => break,
        };
        // Let the server settle between steps (closed sessions, freed rooms).
        tokio::time::sleep(Duration::from_secs(2)).await;
    }
    let largest = good.as_ref().map(|g| g.0);
    let mut report = match good {
        Some((_, r)) => r,
        None => {
            let a = with_value(args, dim, 1);
            if fresh_cluster_per_step {
                drop(env.take());
                env = Some(prepare(&a).await.context("restarting the cluster")?);
            }
            let env = env.as_ref().context("no target")?;
            let mut r = run_once(&a, env, clone_lib(lib)).await?;
            r.passed = false;
            r
        }
    };
    report.capacity = Some(CapacityReport {
        dimension: format!("{dim:?}").to_lowercase(),
        steps,
        largest_passing: largest,
    });
    report.passed = largest.is_some();
    Ok(report)
}
