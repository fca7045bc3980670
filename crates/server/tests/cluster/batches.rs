//! Media batches on NATS that no node would send (docs/CLUSTER.md section 7): malformed,
//! too many frames, or a node speaking for a participant of another node. The receiving
//! node refuses them, counts them, and keeps forwarding the real media byte-exact.

use std::time::{Duration, Instant};

use bytes::{BufMut, BytesMut};
use quicmeet_client::proto::{Frame, FrameHeader, MediaKind};
use quicmeet_client::Event;

use super::span::{cross_metric, publish_both, spanning_meeting_code, warm_up};
use super::Cluster;

/// A payload no real frame of the test carries: whoever receives it got a forged frame.
const FORGED: &[u8] = &[0xF8, 0x0B, 0xAD, 0x0B, 0xAD];

fn forged_frame(track_id: u32, seq: u32) -> bytes::Bytes {
    let h = FrameHeader {
        kind: MediaKind::Audio,
        layer: 0,
        keyframe: false,
        audio_level: None,
        track_id,
        seq,
        capture_ts_us: 0,
        payload_len: 0,
    };
    Frame::new(h, bytes::Bytes::from_static(FORGED))
        .encode()
        .unwrap()
        .into_bytes()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forged_media_batches_are_refused_and_real_media_still_crosses() {
    let cl = Cluster::start(2, &[]);
    let (code, mut ann, mut bob) = spanning_meeting_code(&cl).await;
    let (mut ann_mic, _cam) = publish_both(&mut ann, &mut bob).await;
    bob.subscribe(ann_mic.track_id()).await;
    let probes = warm_up(&mut ann, &mut ann_mic, &mut bob).await;
    let dropped_before = cross_metric(&cl, 1, "quicmeet_cluster_dropped_total").await;

    // Someone on NATS sends node-1 what node-0 never would.
    let nats = async_nats::connect(cl.nats.url()).await.expect("NATS");
    let shared = format!("qm.{code}.ma.node-0");
    let direct = format!("qm.{code}.mb.node-0.node-1");
    let real = forged_frame(ann_mic.track_id(), 1_000_000);
    let mut cut = BytesMut::from(real.as_ref());
    cut.truncate(real.len() - 1);
    let mut too_many = BytesMut::new();
    for i in 0..65 {
        too_many.put_slice(&forged_frame(ann_mic.track_id(), 2_000_000 + i));
    }
    let mut trailing = BytesMut::from(real.as_ref());
    trailing.put_slice(&[0xFF; 3]);
    let refused = [
        (&shared, bytes::Bytes::from_static(&[0xFF; 40])),
        (&direct, bytes::Bytes::new()),
        (&direct, cut.freeze()),
        (&shared, too_many.freeze()),
        (&direct, trailing.freeze()),
    ];
    for (subject, body) in &refused {
        nats.publish((*subject).clone(), body.clone())
            .await
            .unwrap();
    }
    // Well-formed, but from a node that does not hold Ann (a node only speaks for its own
    // participants), and for a track nobody wants.
    nats.publish(format!("qm.{code}.mb.node-7.node-1"), real.clone())
        .await
        .unwrap();
    nats.publish(direct.clone(), forged_frame(999 * 16, 1))
        .await
        .unwrap();
    nats.flush().await.unwrap();

    // Ann's real audio still reaches Bob complete and in order, and nothing forged does.
    let n = 40u32;
    for _ in 0..n {
        let f = ann_mic.frame(false, &[0xF8, 0xFF, 0xFE]).unwrap();
        ann.tx.send_frame(&f).await.unwrap();
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let deadline = Instant::now() + Duration::from_secs(8);
    let mut seqs = Vec::new();
    while seqs.len() < n as usize && Instant::now() < deadline {
        let Ok(Some(ev)) = tokio::time::timeout(Duration::from_millis(200), bob.rx.recv()).await
        else {
            continue;
        };
        if let Event::Media(m) = ev {
            assert_ne!(m.frame.payload().as_ref(), FORGED, "Bob got a forged frame");
            if m.frame.header().track_id == ann_mic.track_id() && m.frame.header().seq >= probes {
                seqs.push(m.frame.header().seq);
            }
        }
    }
    assert_eq!(seqs, (probes..probes + n).collect::<Vec<_>>());
    let dropped = cross_metric(&cl, 1, "quicmeet_cluster_dropped_total").await - dropped_before;
    assert!(
        dropped >= refused.len() as f64,
        "node-1 counted {dropped} refused batches and frames, want ≥ {}",
        refused.len()
    );
    for node in [0, 1] {
        let health = super::common::client()
            .get(cl.nodes[node].url("/healthz"))
            .send()
            .await
            .unwrap();
        assert!(health.status().is_success(), "node {node} is unhealthy");
    }
}
