//! Publisher-made layers end to end (PROTOCOL.md §5.6): the real server with a transcoder pool
//! held to one lower layer (`--transcode-saturation-layers 1`, a documented operator setting)
//! is saturated by two small tiles, asks the capable publisher for both lower layers, and the
//! layer-1 subscriber receives the publisher's own 180p frames instead of FFmpeg's, with
//! `layer_changed` at each change of source and a keyframe first. When the other tile leaves
//! and the pool has had room for its hold, the server makes layer 1 again and tells the
//! publisher to stop.

mod common;
#[path = "common/meet.rs"]
mod meet;

use std::collections::HashSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use meet::{metric, Meet, Peer};
use quicmeet_client::layers::{LayerChange, LayerRequests};
use quicmeet_client::proto::track::Slot;
use quicmeet_client::proto::{ClientMessage, MediaKind, ServerMessage};
use quicmeet_client::{ClientReceiver, ClientSender, Event, TrackPublisher, Transport};
use quicmeet_testkit::clip::ClipConfig;
use quicmeet_transcode::Vp8Decoder;
use tokio::sync::watch;

const FPS: u64 = 30;

fn clip(width: u32, height: u32, bitrate_bps: u32) -> Vec<(bool, Bytes)> {
    let cfg = ClipConfig {
        width,
        height,
        fps: FPS as u32,
        frames: 60,
        keyframe_interval: 30,
        bitrate_bps,
    };
    quicmeet_testkit::clip::vp8(&cfg)
        .expect("VP8 clip")
        .into_iter()
        .map(|f| (f.keyframe, Bytes::from(f.data)))
        .collect()
}

/// One layer the publisher sends: its clip, where it is in it, and its numbering.
struct Sending {
    clip: Arc<Vec<(bool, Bytes)>>,
    at: usize,
    publisher: TrackPublisher,
}

impl Sending {
    fn new(clip: Arc<Vec<(bool, Bytes)>>, publisher: TrackPublisher) -> Self {
        Sending {
            clip,
            at: 0,
            publisher,
        }
    }

    /// Next frame; on a keyframe request the clip jumps back to its first frame (a keyframe).
    fn next(&mut self) -> quicmeet_client::proto::EncodedFrame {
        let (key, data) = &self.clip[self.at % self.clip.len()];
        self.at += 1;
        self.publisher.frame(*key, data).expect("frame")
    }
}

/// A capable publisher as a browser would be: sends its full layer at 30 fps and, while the
/// server asks, the lower layers at the requested size, each starting with a keyframe.
/// Returns every control message it received.
fn spawn_publisher(
    mut tx: ClientSender,
    mut rx: ClientReceiver,
    track_id: u32,
    clips: [Arc<Vec<(bool, Bytes)>>; 3],
    mut stop: watch::Receiver<bool>,
) -> tokio::task::JoinHandle<Vec<ServerMessage>> {
    tokio::spawn(async move {
        let mut log = vec![];
        let mut requests = LayerRequests::new();
        let mut layers: Vec<Option<Sending>> = vec![
            Some(Sending::new(
                clips[0].clone(),
                TrackPublisher::new(track_id, MediaKind::Video),
            )),
            None,
            None,
        ];
        let start = tokio::time::Instant::now();
        let mut tick: u64 = 0;
        loop {
            let due = start + Duration::from_micros(tick * 1_000_000 / FPS);
            tokio::select! {
                _ = stop.changed() => break,
                ev = rx.recv() => match ev {
                    Some(Event::Control(m)) => {
                        match requests.handle(&m) {
                            Some(LayerChange::Start(r)) => {
                                let l = r.layer as usize;
                                let size = clips[l].len();
                                assert!(size > 0);
                                layers[l] = Some(Sending::new(
                                    clips[l].clone(),
                                    TrackPublisher::for_layer(track_id, MediaKind::Video, r.layer),
                                ));
                            }
                            Some(LayerChange::Stop { layer, .. }) => layers[layer as usize] = None,
                            None => {}
                        }
                        if let ServerMessage::KeyframeRequest { layer, .. } = m {
                            if let Some(Some(s)) = layers.get_mut(layer as usize) {
                                s.at = 0;
                            }
                        }
                        log.push(m);
                    }
                    Some(Event::Closed(c)) => panic!("publisher closed: {c:?}"),
                    Some(_) => {}
                    None => break,
                },
                _ = tokio::time::sleep_until(due) => {
                    for s in layers.iter_mut().flatten() {
                        let f = s.next();
                        if tx.send_frame(&f).await.is_err() {
                            return log;
                        }
                    }
                    tick += 1;
                }
            }
        }
        log
    })
}

/// What the layer-1 subscriber saw, in order.
#[derive(Debug)]
enum Seen {
    Changed,
    Frame {
        by_publisher: bool,
        keyframe: bool,
        at: Instant,
        payload: Bytes,
    },
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_saturated_pool_hands_layer_one_to_the_publisher_and_takes_it_back() {
    let m = Meet::start("public", &[], &["--transcode-saturation-layers", "1"]).await;
    let clips = [
        Arc::new(clip(640, 360, 800_000)),
        Arc::new(clip(320, 180, 300_000)),
        Arc::new(clip(160, 90, 100_000)),
    ];
    let own: HashSet<Bytes> = clips[1].iter().map(|(_, d)| d.clone()).collect();

    let mut publisher = Peer::join("Pia", &m.join_host().await, Transport::WebTransport).await;
    let track = publisher.track(Slot::Camera);
    publisher
        .send(ClientMessage::Publish {
            track_id: track,
            kind: MediaKind::Video,
            codec: "vp8".into(),
            width: Some(640),
            height: Some(360),
            layers_capable: true,
        })
        .await;
    publisher
        .expect(
            "track_published",
            |m| matches!(m, ServerMessage::TrackPublished { track: t } if t.track_id == track),
        )
        .await;
    // A layer nobody asked for is refused with a clear error; the connection stays open.
    let mut early = TrackPublisher::for_layer(track, MediaKind::Video, 1);
    let f = early.frame(true, &clips[1][0].1).unwrap();
    publisher.tx.send_frame(&f).await.unwrap();
    publisher.expect_error("layer_not_requested").await;
    publisher.sync().await;

    // Two small tiles: layer 1 (WebSocket, whose control messages overtake queued video, so
    // `layer_changed` is in order with the frames) and layer 2.
    let mut a = Peer::join(
        "Al",
        &m.join_guest(&m.code, "Al").await,
        Transport::WebSocket,
    )
    .await;
    let mut b = Peer::join(
        "Bo",
        &m.join_guest(&m.code, "Bo").await,
        Transport::WebTransport,
    )
    .await;
    for (p, layer) in [(&mut a, 1u8), (&mut b, 2u8)] {
        p.send(ClientMessage::Subscribe {
            track_id: track,
            max_width: None,
            max_height: None,
            layer: Some(layer),
        })
        .await;
        p.sync().await;
    }
    let (stop_tx, stop_rx) = watch::channel(false);
    let Peer { tx, rx, .. } = publisher;
    let pubt = spawn_publisher(tx, rx, track, clips.clone(), stop_rx);

    // Watch layer 1 until it went to the publisher and came back to the server.
    let mut seen: Vec<Seen> = vec![];
    let mut b_left = false;
    let deadline = Instant::now() + Duration::from_secs(40);
    loop {
        let by_pub = seen
            .iter()
            .filter(|s| {
                matches!(
                    s,
                    Seen::Frame {
                        by_publisher: true,
                        ..
                    }
                )
            })
            .count();
        let back = seen
            .iter()
            .skip_while(|s| {
                !matches!(
                    s,
                    Seen::Frame {
                        by_publisher: true,
                        ..
                    }
                )
            })
            .filter(|s| {
                matches!(
                    s,
                    Seen::Frame {
                        by_publisher: false,
                        ..
                    }
                )
            })
            .count();
        if back >= 15 {
            break;
        }
        if by_pub >= 15 && !b_left {
            // The layer-2 tile leaves: that layer stops, and the pool has room again.
            b.send(ClientMessage::Unsubscribe { track_id: track }).await;
            b_left = true;
        }
        let left = deadline.saturating_duration_since(Instant::now());
        assert!(
            !left.is_zero(),
            "no full round trip of layer 1 in time: {} publisher frames, {back} server frames after; \
             layer-1 subscriber saw {:?}",
            by_pub,
            seen.iter().filter(|s| matches!(s, Seen::Changed)).count()
        );
        match tokio::time::timeout(left.min(Duration::from_millis(200)), a.rx.recv()).await {
            Ok(Some(Event::Media(e))) if e.frame.header().track_id == track => {
                let h = e.frame.header();
                assert_eq!(h.layer, 1, "the layer-1 tile only ever gets layer 1");
                let payload = e.frame.payload();
                seen.push(Seen::Frame {
                    by_publisher: own.contains(&payload),
                    keyframe: h.keyframe,
                    at: Instant::now(),
                    payload,
                });
            }
            Ok(Some(Event::Control(ServerMessage::LayerChanged {
                track_id,
                layer,
                width,
                height,
            }))) if track_id == track => {
                assert_eq!((layer, width, height), (1, 320, 180));
                seen.push(Seen::Changed);
            }
            Ok(Some(Event::Closed(c))) => panic!("layer-1 subscriber closed: {c:?}"),
            Ok(Some(_)) | Err(_) => {}
            Ok(None) => panic!("layer-1 subscriber's events ended"),
        }
        // Keep the other tile's events drained.
        while let Ok(Some(_)) = tokio::time::timeout(Duration::ZERO, b.rx.recv()).await {}
    }
    let _ = stop_tx.send(true);
    let publisher_log = pubt.await.expect("publisher task");

    // Sources: server, then publisher, then server again; each change announced by
    // `layer_changed` and starting with a keyframe.
    let mut runs: Vec<(bool, usize)> = vec![];
    let mut changed_before = false;
    let mut frames = 0;
    for s in &seen {
        match s {
            Seen::Changed => changed_before = true,
            Seen::Frame {
                by_publisher,
                keyframe,
                ..
            } => {
                frames += 1;
                if runs.last().map(|r| r.0) != Some(*by_publisher) {
                    assert!(*keyframe, "a change of source starts at a keyframe");
                    assert!(changed_before, "layer_changed comes before the new source");
                    runs.push((*by_publisher, 0));
                }
                if let Some(r) = runs.last_mut() {
                    r.1 += 1;
                }
                changed_before = false;
            }
        }
    }
    let order: Vec<bool> = runs.iter().map(|r| r.0).collect();
    assert_eq!(
        order,
        vec![false, true, false],
        "server-made, publisher-made, server-made: {runs:?}"
    );
    // No stall at either handover: the old source flows until the new one's keyframe.
    let times: Vec<Instant> = seen
        .iter()
        .filter_map(|s| match s {
            Seen::Frame { at, .. } => Some(*at),
            Seen::Changed => None,
        })
        .collect();
    let gap = times
        .windows(2)
        .map(|w| w[1].duration_since(w[0]))
        .max()
        .unwrap_or_default();
    assert!(
        gap < Duration::from_secs(3),
        "layer 1 stalled for {gap:?} over {frames} frames"
    );
    // Every frame decodes at the layer's size, whoever made it.
    let mut dec = Vp8Decoder::new().unwrap();
    for s in &seen {
        if let Seen::Frame { payload, .. } = s {
            let pic = dec.decode(payload).expect("decodable").expect("picture");
            assert_eq!((pic.width(), pic.height()), (320, 180));
        }
    }

    // What the publisher was told.
    let produced: Vec<(u8, u32, u32)> = publisher_log
        .iter()
        .filter_map(|m| match m {
            ServerMessage::ProduceLayer {
                track_id,
                layer,
                width,
                height,
                ..
            } if *track_id == track => Some((*layer, *width, *height)),
            _ => None,
        })
        .collect();
    assert!(produced.contains(&(1, 320, 180)), "{publisher_log:?}");
    assert!(produced.contains(&(2, 160, 90)), "{publisher_log:?}");
    let stopped: Vec<u8> = publisher_log
        .iter()
        .filter_map(|m| match m {
            ServerMessage::StopLayer { track_id, layer } if *track_id == track => Some(*layer),
            _ => None,
        })
        .collect();
    assert!(
        stopped.contains(&1),
        "layer 1 was not stopped: {publisher_log:?}"
    );
    assert!(
        stopped.contains(&2),
        "layer 2 was not stopped: {publisher_log:?}"
    );
    assert!(metric(&m, "quicmeet_publisher_layers_started_total").await >= 1.0);
    assert!(metric(&m, "quicmeet_produce_layer_total").await >= 2.0);
}
