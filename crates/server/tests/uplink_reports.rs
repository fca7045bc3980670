//! `uplink_report` (PROTOCOL.md §5.6) against the real server, over both transports: a
//! publisher that asked for reports in `hello` learns the queue its audio met on the way and
//! the rate that arrived; one that did not ask gets none.
//!
//! The queue is made by stamping frames with capture times further and further in the past,
//! which is what a queue on the publisher's uplink does to their arrival at the server.

mod common;
#[path = "common/media.rs"]
mod media;
#[path = "common/meet.rs"]
mod meet;

use std::time::Duration;

use media::*;
use meet::{Meet, Peer};
use quicmeet_client::proto::track::Slot;
use quicmeet_client::proto::ServerMessage;
use quicmeet_client::{now_us, ConnectOptions, Transport};

/// The uplink reports `p` received so far: (queue ms, kbit/s).
fn reports(p: &Peer) -> Vec<(u32, u32)> {
    p.log
        .iter()
        .filter_map(|m| match m {
            ServerMessage::UplinkReport { queue_ms, kbps } => Some((*queue_ms, *kbps)),
            _ => None,
        })
        .collect()
}

/// Sends `ms` of 20 ms audio frames of `payload` bytes, each stamped `extra(t)` µs before
/// it was sent (`t`: µs since the start), and records what comes back meanwhile.
async fn talk(p: &mut Peer, ms: u64, payload: usize, extra: impl Fn(u64) -> u64) {
    let mut mic = quicmeet_client::TrackPublisher::new(p.track(Slot::Mic), Slot::Mic.kind());
    let data = vec![7u8; payload];
    let start = tokio::time::Instant::now();
    for k in 0..ms / 20 {
        tokio::time::sleep_until(start + Duration::from_millis(20 * k)).await;
        let t = k * 20_000;
        let f = mic.frame_at(false, now_us() - extra(t), &data).unwrap();
        p.tx.send_frame(&f).await.expect("send audio");
        // Read what arrived (reports) without waiting.
        while let Ok(Some(ev)) = tokio::time::timeout(Duration::ZERO, p.rx.recv()).await {
            if let quicmeet_client::Event::Control(m) = ev {
                p.log.push(m);
            }
        }
    }
}

async fn reports_follow_the_queue(t: Transport) {
    let _serial = SERIAL.lock().await;
    let m = Meet::start("public", &[], &[]).await;
    let opts = ConnectOptions {
        uplink_reports: true,
        ..ConnectOptions::default()
    };
    let mut asks = Peer::connect_with("asks", &m.join_host().await, t, opts).await;
    asks.welcome().await;
    let mut quiet = Peer::join("quiet", &m.join_guest(&m.code, "Quinn").await, t).await;
    asks.publish(Slot::Mic).await;
    quiet.publish(Slot::Mic).await;

    // A clear uplink: 2 s of 200-byte frames, 228 bytes with the header every 20 ms
    // (91 kbit/s).
    tokio::join!(
        talk(&mut asks, 2_000, 200, |_| 0),
        talk(&mut quiet, 2_000, 200, |_| 0)
    );
    let clear = reports(&asks);
    assert!(
        clear.len() >= 5,
        "{t:?}: reports on a clear uplink: {clear:?}"
    );
    for (queue, kbps) in &clear[1..] {
        assert!(
            *queue < 30,
            "{t:?}: a clear uplink reports a queue: {clear:?}"
        );
        assert!(
            (70..=120).contains(kbps),
            "{t:?}: rate {kbps} kbit/s: {clear:?}"
        );
    }
    assert!(
        reports(&quiet).is_empty(),
        "{t:?}: a client that did not ask gets no reports"
    );

    // A queue that grows by 250 ms per second on the uplink for 1.2 s. The last report
    // ends about 1.1 s in; the least of its 100 ms interval, about 1 s in, waited about
    // 250 ms.
    let before = asks.log.len();
    talk(&mut asks, 1_200, 200, |t| t / 4).await;
    let grown: Vec<(u32, u32)> = reports(&asks).into_iter().skip(clear.len()).collect();
    assert!(asks.log.len() > before);
    let last = grown.last().copied().unwrap_or_default().0;
    assert!(
        (150..=280).contains(&last),
        "{t:?}: a queue of ~200 ms at the end shows: {grown:?}"
    );
    // The other participant's media is unaffected and it still gets no reports.
    quiet.sync().await;
    assert!(reports(&quiet).is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn uplink_reports_follow_the_queue_over_webtransport() {
    reports_follow_the_queue(WT).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn uplink_reports_follow_the_queue_over_websocket() {
    reports_follow_the_queue(WS).await;
}
