//! Congestion end to end: subscribers that stop reading do not slow the others down, the
//! server's memory stays bounded while they stall, and they recover on a keyframe.
//!
//! Each test bounds every wait (helpers wait at most `meet::T`) and runs in well under 30 s.

mod common;
#[path = "common/media.rs"]
mod media;
#[path = "common/meet.rs"]
mod meet;

use std::time::{Duration, Instant};

use media::*;
use meet::{Meet, Peer};
use quicmeet_client::proto::track::Slot;
use quicmeet_client::proto::MediaKind;
use quicmeet_client::{ConnectOptions, Event, MediaEvent, Via};
use quicmeet_testkit::Hist;

/// One received frame, as the stall test measures it.
#[derive(Clone, Copy, Debug)]
struct Rx {
    kind: MediaKind,
    keyframe: bool,
    seq: u32,
    capture_us: u64,
    received_us: u64,
}

fn rx_of(ev: &MediaEvent) -> Rx {
    let h = ev.frame.header();
    Rx {
        kind: h.kind,
        keyframe: h.keyframe,
        seq: h.seq,
        capture_us: h.capture_ts_us,
        received_us: ev.received_unix_us,
    }
}

/// Latency p50/p95/p99 (ms) and loss (frames sent in `[from, to)` and never received) for one
/// receiver.
fn phase_figures(sent: &[Rx], got: &[Rx], from: u64, to: u64) -> ([f64; 3], usize, usize) {
    let in_phase = |r: &&Rx| r.capture_us >= from && r.capture_us < to;
    let mut lat = Hist::precise();
    for r in got.iter().filter(in_phase) {
        lat.record_signed(r.received_us as i64 - r.capture_us as i64);
    }
    let have: std::collections::HashSet<(MediaKind, u32)> =
        got.iter().map(|r| (r.kind, r.seq)).collect();
    let expected: Vec<&Rx> = sent.iter().filter(in_phase).collect();
    let lost = expected
        .iter()
        .filter(|r| !have.contains(&(r.kind, r.seq)))
        .count();
    let ms = |q| lat.quantile(q) as f64 / 1000.0;
    ([ms(0.50), ms(0.95), ms(0.99)], lost, expected.len())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_subscriber_does_not_hurt_the_others_and_recovers() {
    let _serial = SERIAL.lock().await;
    let m = Meet::start("public", &[], &[]).await;
    let mut p = Peer::join("Pub", &m.join_host().await, WT).await;
    let mic = p.publish(Slot::Mic).await;
    let cam = p.publish(Slot::Camera).await;
    let (mic_id, cam_id) = (mic.track_id(), cam.track_id());

    // Stallers read through tiny windows so the server feels them stop at once.
    let stall_wt = ConnectOptions {
        event_buffer: 4,
        receive_window: Some(64 * 1024),
        ..ConnectOptions::default()
    };
    let stall_ws = ConnectOptions {
        event_buffer: 4,
        tcp_recv_buffer: Some(16 * 1024),
        ..ConnectOptions::default()
    };
    let mut subs = vec![
        Peer::join("GoodWt", &m.join_guest(&m.code, "GoodWt").await, WT).await,
        Peer::join("GoodWs", &m.join_guest(&m.code, "GoodWs").await, WS).await,
    ];
    for (name, t, o) in [("StallWt", WT, stall_wt), ("StallWs", WS, stall_ws)] {
        let mut s = Peer::connect_with(name, &m.join_guest(&m.code, name).await, t, o).await;
        s.welcome().await;
        subs.push(s);
    }
    for s in subs.iter_mut() {
        s.subscribe(mic_id).await;
        s.subscribe(cam_id).await;
    }

    let t0 = Instant::now();
    let t0_us = quicmeet_client::now_us();
    let at = move |ms: u64| t0 + Duration::from_millis(ms);
    let us = move |ms: u64| t0_us + ms * 1000;
    let (stall_ms, resume_ms, end_ms) = (4_000u64, 10_000u64, 13_000u64);

    // Publisher: audio 50/s (100 B), video 30/s, keyframe every second (12 kB + 29 × 3.8 kB
    // ≈ 1 Mbit/s).
    let Peer { tx: mut ptx, .. } = p;
    let publisher = tokio::spawn(async move {
        let (mut mic, mut cam) = (mic, cam);
        mic.set_audio_level(Some(25));
        let key = vec![0x9du8; 12_000];
        let delta = vec![0x42u8; 3_800];
        let mut sent = vec![];
        let (mut a, mut v) = (0u64, 0u64);
        let start = tokio::time::Instant::now();
        loop {
            let a_due = Duration::from_millis(20 * a);
            let v_due = Duration::from_micros(33_333 * v);
            let due = a_due.min(v_due);
            if due >= Duration::from_millis(end_ms) {
                break;
            }
            tokio::time::sleep_until(start + due).await;
            let f = if a_due <= v_due {
                a += 1;
                mic.frame(false, &[0x11; 100]).unwrap()
            } else {
                v += 1;
                let k = (v - 1) % 30 == 0;
                cam.frame(k, if k { &key } else { &delta }).unwrap()
            };
            ptx.send_frame(&f).await.unwrap();
            sent.push(rx_of(&MediaEvent {
                frame: f,
                via: Via::Stream,
                received_at: Instant::now(),
                received_unix_us: 0,
            }));
        }
        (sent, ptx)
    });

    // Receivers: the good ones read all along; the stallers stop between stall and resume.
    let mut receivers = vec![];
    for (i, s) in subs.into_iter().enumerate() {
        let stalls = i >= 2;
        receivers.push(tokio::spawn(async move {
            let Peer {
                mut rx, name, tx, ..
            } = s;
            let mut got = vec![];
            let mut stalled = false;
            let deadline = at(end_ms + 1_000);
            loop {
                if stalls && !stalled && Instant::now() >= at(stall_ms) {
                    stalled = true;
                    tokio::time::sleep_until(at(resume_ms).into()).await;
                }
                let wake = if stalls && !stalled {
                    at(stall_ms).min(deadline)
                } else {
                    deadline
                };
                match tokio::time::timeout_at(wake.into(), rx.recv()).await {
                    Ok(Some(Event::Media(ev))) => got.push(rx_of(&ev)),
                    Ok(Some(Event::Closed(c))) => panic!("{name} was disconnected: {c:?}"),
                    Ok(Some(_)) => {}
                    Ok(None) => panic!("{name}: connection ended"),
                    Err(_) if Instant::now() >= deadline => break,
                    Err(_) => {}
                }
            }
            (name, got, rx.stats(), tx)
        }));
    }

    // The server's memory while the subscribers stall.
    let pid = m.s.child.id();
    let rss = |pid: u32| quicmeet_testkit::process::rss_kib(pid).unwrap_or(0);
    tokio::time::sleep_until(at(stall_ms).into()).await;
    let rss_before = rss(pid);
    let mut rss_max = rss_before;
    while Instant::now() < at(resume_ms) {
        tokio::time::sleep(Duration::from_millis(200)).await;
        rss_max = rss_max.max(rss(pid));
    }

    let (sent, ptx) = publisher.await.unwrap();
    let mut results = vec![];
    for r in receivers {
        results.push(r.await.unwrap());
    }

    let (a_from, a_to) = (us(500), us(stall_ms));
    let (b_from, b_to) = (us(stall_ms + 500), us(resume_ms));
    for (name, got, stats, _) in &results[..2] {
        let ([a50, a95, a99], alost, an) = phase_figures(&sent, got, a_from, a_to);
        let ([b50, b95, b99], blost, bn) = phase_figures(&sent, got, b_from, b_to);
        eprintln!(
            "FIGURE {name}: before the stall p50/p95/p99 {a50:.2}/{a95:.2}/{a99:.2} ms lost {alost}/{an}; \
             during {b50:.2}/{b95:.2}/{b99:.2} ms lost {blost}/{bn}; {stats:?}"
        );
        // p99 of a few hundred frames is one or two frames: on a shared 2-core machine it
        // moves with the neighbours' load, so the bound is on p50 and p95.
        assert!(
            b95 <= a95 + 40.0 && b50 <= a50 + 10.0,
            "{name}: latency rose while others stalled: p50 {a50:.2} → {b50:.2} ms, p95 {a95:.2} → {b95:.2} ms"
        );
        assert!(
            blost <= alost + bn / 100,
            "{name}: loss rose while others stalled: {alost}/{an} → {blost}/{bn}"
        );
    }
    for (name, got, stats, _) in &results[2..] {
        let resume_us = us(resume_ms);
        let fresh_audio = got
            .iter()
            .find(|r| r.kind == MediaKind::Audio && r.capture_us >= resume_us)
            .unwrap_or_else(|| panic!("{name}: no fresh audio after resuming"));
        let after = (fresh_audio.received_us - resume_us) as f64 / 1000.0;
        let stall_lost = phase_figures(&sent, got, us(stall_ms), resume_us);
        eprintln!(
            "FIGURE {name}: fresh audio {after:.1} ms after resuming; during the stall it missed {}/{} frames; {stats:?}",
            stall_lost.1, stall_lost.2
        );
        assert!(
            after < 2_000.0,
            "{name}: fresh audio only {after:.1} ms after resuming"
        );
        // Video the server dropped for it was dropped back to a keyframe: after every gap
        // the next frame is a keyframe, so the decoder never sees a broken group.
        let mut last: Option<u32> = None;
        let mut gaps = 0;
        for r in got.iter().filter(|r| r.kind != MediaKind::Audio) {
            match last {
                Some(l) if r.seq <= l => continue, // a late frame of an older group stream
                Some(l) if r.seq != l + 1 => {
                    gaps += 1;
                    assert!(
                        r.keyframe,
                        "{name}: video resumed at delta {} after {l}",
                        r.seq
                    );
                }
                _ => {}
            }
            last = Some(r.seq);
        }
        eprintln!("FIGURE {name}: {gaps} video gaps, each resumed at a keyframe");
    }
    let grew = rss_max.saturating_sub(rss_before);
    eprintln!("FIGURE server RSS {rss_before} KiB at the stall, max {rss_max} KiB during it (+{grew} KiB)");
    assert!(
        grew < 48 * 1024,
        "server memory grew by {grew} KiB while subscribers stalled"
    );
    ptx.close().await.ok();
}

/// A subscriber whose application stalls, as a browser tab does when its main thread is busy:
/// with an age bound on datagrams (what browsers do, `ConnectOptions::datagram_max_age`) it
/// gets fresh audio the moment it reads again and is told which frames it dropped; without
/// one it plays the backlog, hundreds of milliseconds late. Both read through a 4-event
/// buffer, so what waits is in QUIC or in the client's own queue.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_age_bound_gives_a_stalled_reader_fresh_audio_not_a_backlog() {
    let _serial = SERIAL.lock().await;
    let m = Meet::start("public", &[], &[]).await;
    let mut p = Peer::join("Pub", &m.join_host().await, WT).await;
    let mut mic = p.publish(Slot::Mic).await;
    let mic_id = mic.track_id();

    const MAX_AGE_MS: u64 = 100;
    let bounded = ConnectOptions {
        event_buffer: 4,
        datagram_max_age: Some(Duration::from_millis(MAX_AGE_MS)),
        ..ConnectOptions::default()
    };
    let unbounded = ConnectOptions {
        event_buffer: 4,
        ..ConnectOptions::default()
    };
    let mut subs = vec![];
    for (name, o) in [("Bounded", bounded), ("Unbounded", unbounded)] {
        let mut s = Peer::connect_with(name, &m.join_guest(&m.code, name).await, WT, o).await;
        s.welcome().await;
        s.subscribe(mic_id).await;
        subs.push(s);
    }

    let t0 = Instant::now();
    let at = move |ms: u64| t0 + Duration::from_millis(ms);
    let (stall_ms, resume_ms, end_ms) = (600u64, 1_400u64, 2_400u64);

    let Peer { tx: mut ptx, .. } = p;
    let publisher = tokio::spawn(async move {
        mic.set_audio_level(Some(25));
        let mut sent = vec![];
        let start = tokio::time::Instant::now();
        for i in 0..end_ms / 20 {
            tokio::time::sleep_until(start + Duration::from_millis(20 * i)).await;
            let f = mic.frame(false, &[0x11; 100]).unwrap();
            sent.push(f.header().seq);
            ptx.send_frame(&f).await.unwrap();
        }
        (sent, ptx)
    });

    // Each reader: (seq, ms from capture to the application, read after the stall).
    let mut readers = vec![];
    for s in subs {
        readers.push(tokio::spawn(async move {
            let Peer {
                mut rx, name, tx, ..
            } = s;
            let mut got = vec![];
            let mut stalled = false;
            let deadline = at(end_ms + 500);
            loop {
                if !stalled && Instant::now() >= at(stall_ms) {
                    stalled = true;
                    tokio::time::sleep_until(at(resume_ms).into()).await;
                }
                let wake = if stalled { deadline } else { at(stall_ms) };
                match tokio::time::timeout_at(wake.into(), rx.recv()).await {
                    Ok(Some(Event::Media(ev))) if ev.frame.header().kind == MediaKind::Audio => {
                        let age_ms = quicmeet_client::now_us()
                            .saturating_sub(ev.frame.header().capture_ts_us)
                            as f64
                            / 1000.0;
                        got.push((ev.frame.header().seq, age_ms, stalled));
                    }
                    Ok(Some(Event::Closed(c))) => panic!("{name} was disconnected: {c:?}"),
                    Ok(Some(_)) => {}
                    Ok(None) => panic!("{name}: connection ended"),
                    Err(_) if Instant::now() >= deadline => break,
                    Err(_) => {}
                }
            }
            let expired: Vec<u32> = rx.take_expired().iter().map(|h| h.seq).collect();
            (name, got, expired, tx)
        }));
    }
    let (sent, ptx) = publisher.await.unwrap();
    let mut results = vec![];
    for r in readers {
        results.push(r.await.unwrap());
    }

    let stall_frames = (resume_ms - stall_ms) / 20;
    for (name, got, expired, _) in &results {
        let after: Vec<f64> = got.iter().filter(|g| g.2).map(|g| g.1).collect();
        let first_after = after.first().copied().unwrap_or(f64::NAN);
        let oldest_after = after.iter().copied().fold(0.0, f64::max);
        let delivered: std::collections::HashSet<u32> = got.iter().map(|g| g.0).collect();
        let missing = sent
            .iter()
            .filter(|s| !delivered.contains(s) && !expired.contains(s))
            .count();
        eprintln!(
            "FIGURE {name}: {} of {} audio frames delivered, {} expired, {missing} unaccounted; after the stall: first {first_after:.1} ms old, oldest {oldest_after:.1} ms",
            delivered.len(),
            sent.len(),
            expired.len()
        );
        assert!(!after.is_empty(), "{name}: no audio after the stall");
        if name == "Bounded" {
            // Every frame it plays is within the bound (plus the way from the publisher), the
            // ones it dropped are reported, and nothing else is missing.
            assert!(
                oldest_after <= (MAX_AGE_MS + 100) as f64,
                "{name}: played audio {oldest_after:.1} ms old after the stall"
            );
            assert!(
                expired.len() as u64 >= stall_frames / 2,
                "{name}: only {} frames expired over a {stall_frames}-frame stall",
                expired.len()
            );
            assert!(
                missing <= 2,
                "{name}: {missing} frames neither delivered nor reported expired"
            );
        } else {
            // The contrast: without a bound the stall's backlog plays late and nothing is
            // reported expired.
            assert!(
                oldest_after >= 400.0,
                "{name}: the backlog was only {oldest_after:.1} ms old"
            );
            assert!(expired.is_empty(), "{name}: expired {expired:?}");
        }
    }
    ptx.close().await.ok();
}

/// A UDP relay on loopback between one client and `server` that can black the path out (both
/// directions dropped), as a Wi-Fi hand-over or a tunnel does. Returns its address and the
/// switch; the relay task ends with the test's runtime.
async fn outage_relay(
    server: std::net::SocketAddr,
) -> (
    std::net::SocketAddr,
    std::sync::Arc<std::sync::atomic::AtomicBool>,
) {
    use std::sync::atomic::{AtomicBool, Ordering};
    let front = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let back = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
    back.connect(server).await.unwrap();
    let addr = front.local_addr().unwrap();
    let out = std::sync::Arc::new(AtomicBool::new(false));
    let dark = out.clone();
    tokio::spawn(async move {
        let (mut up, mut down) = (vec![0u8; 65536], vec![0u8; 65536]);
        let mut client = None;
        loop {
            tokio::select! {
                r = front.recv_from(&mut up) => {
                    let Ok((n, from)) = r else { break };
                    client = Some(from);
                    if !dark.load(Ordering::Relaxed) {
                        let _ = back.send(&up[..n]).await;
                    }
                }
                r = back.recv(&mut down) => {
                    let Ok(n) = r else { break };
                    if let (Some(to), false) = (client, dark.load(Ordering::Relaxed)) {
                        let _ = front.send_to(&down[..n], to).await;
                    }
                }
            }
        }
    });
    (addr, out)
}

/// A listener whose path goes dark for a second, then comes back: the server's QUIC drops the
/// audio that waited longer than its age limit (150 ms) instead of sending the outage's
/// backlog, so the listener hears live audio again as soon as the path carries it, and
/// `quicmeet_media_quic_datagrams_expired_total` counts what was dropped. With only a byte
/// bound on QUIC's datagram buffer (as before), the whole second of audio (under 7 KB) waited
/// and arrived about a second late.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_an_outage_a_listener_hears_live_audio_not_the_backlog() {
    use std::sync::atomic::Ordering;
    let _serial = SERIAL.lock().await;
    let m = Meet::start("public", &[], &[]).await;
    let mut p = Peer::join("Pub", &m.join_host().await, WT).await;
    let mut mic = p.publish(Slot::Mic).await;
    let mic_id = mic.track_id();

    let mut join = m.join_guest(&m.code, "Listener").await;
    let server_port: u16 = join
        .webtransport_url
        .rsplit_once(':')
        .and_then(|(_, rest)| rest.split('/').next())
        .and_then(|p| p.parse().ok())
        .expect("a port in the WebTransport URL");
    let (relay, dark) = outage_relay(([127, 0, 0, 1], server_port).into()).await;
    join.webtransport_url = join
        .webtransport_url
        .replace(&format!(":{server_port}/"), &format!(":{}/", relay.port()));
    // No age bound on the listener's side: what it receives is what the server sent.
    let mut l = Peer::connect_with("Listener", &join, WT, ConnectOptions::default()).await;
    l.welcome().await;
    l.subscribe(mic_id).await;

    // 400-byte frames (Opus at its highest rates, ~20 KB/s with QUIC's overhead) fill QUIC's
    // initial congestion window in about 0.7 s of outage; only then does audio wait in QUIC
    // (before that it is sent into the dark and lost).
    let (dark_ms, light_ms, end_ms) = (800u64, 2_000u64, 4_000u64);
    let Peer { tx: mut ptx, .. } = p;
    let publisher = tokio::spawn(async move {
        mic.set_audio_level(Some(25));
        let start = tokio::time::Instant::now();
        for i in 0..end_ms / 20 {
            tokio::time::sleep_until(start + Duration::from_millis(20 * i)).await;
            let f = mic.frame(false, &[0x22; 400]).unwrap();
            ptx.send_frame(&f).await.unwrap();
        }
        ptx
    });
    let t0 = Instant::now();
    let switch = tokio::spawn(async move {
        tokio::time::sleep_until((t0 + Duration::from_millis(dark_ms)).into()).await;
        dark.store(true, Ordering::Relaxed);
        tokio::time::sleep_until((t0 + Duration::from_millis(light_ms)).into()).await;
        dark.store(false, Ordering::Relaxed);
    });

    // (ms since t0 when read, age in ms)
    let mut got = vec![];
    let deadline = t0 + Duration::from_millis(end_ms + 500);
    while let Ok(ev) = tokio::time::timeout_at(deadline.into(), l.rx.recv()).await {
        match ev {
            Some(Event::Media(ev)) if ev.frame.header().kind == MediaKind::Audio => {
                let age = quicmeet_client::now_us().saturating_sub(ev.frame.header().capture_ts_us)
                    as f64
                    / 1000.0;
                got.push((t0.elapsed().as_secs_f64() * 1000.0, age));
            }
            Some(Event::Closed(c)) => panic!("the listener was disconnected: {c:?}"),
            Some(_) => {}
            None => panic!("the listener's connection ended"),
        }
    }
    switch.await.unwrap();
    let ptx = publisher.await.unwrap();

    let before: Vec<f64> = got
        .iter()
        .filter(|g| g.0 < dark_ms as f64)
        .map(|g| g.1)
        .collect();
    let after: Vec<&(f64, f64)> = got.iter().filter(|g| g.0 >= light_ms as f64).collect();
    let oldest_after = after.iter().map(|g| g.1).fold(0.0, f64::max);
    let first_after = after.first().map(|g| (g.0, g.1));
    let live_again = after.iter().filter(|g| g.1 < 60.0).count();
    eprintln!(
        "FIGURE outage: {} audio frames before it, {} after ({} under 60 ms old); after: first read at {:?} (ms, age ms), oldest {oldest_after:.1} ms",
        before.len(),
        after.len(),
        live_again,
        first_after,
    );
    assert!(before.len() >= 20, "too little audio before the outage");
    assert!(
        live_again >= 40,
        "the listener did not get live audio back after the outage"
    );
    assert!(
        oldest_after <= 250.0,
        "after the outage the listener got audio {oldest_after:.1} ms old: the backlog was sent"
    );

    // The listener leaves; its session's drops are counted as it ends.
    let Peer { tx, rx, .. } = l;
    tx.close().await.ok();
    drop(rx);
    let mut expired = 0.0;
    for _ in 0..50 {
        expired = meet::metric(&m, "quicmeet_media_quic_datagrams_expired_total").await;
        if expired > 0.0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    eprintln!("FIGURE outage: {expired} datagrams expired in the server's QUIC");
    assert!(
        expired >= 20.0,
        "only {expired} datagrams counted expired over a {}-frame outage",
        (light_ms - dark_ms) / 20
    );
    ptx.close().await.ok();
}
