//! Server-made video layers, end to end: a publisher sends real 720p VP8 once, subscribers get
//! the layer that fits their tile (made by FFmpeg in the server), switch layers at keyframes,
//! and a subscriber that cannot keep up is moved down and later back up.

mod common;
#[path = "common/meet.rs"]
mod meet;

use std::time::{Duration, Instant};

use meet::{metric, Meet, Peer};
use quicmeet_client::proto::track::Slot;
use quicmeet_client::proto::{ClientMessage, MediaKind, ServerMessage};
use quicmeet_client::{ClientSender, ConnectOptions, Event, MediaEvent, TrackPublisher, Transport};
use quicmeet_testkit::clip::ClipConfig;
use quicmeet_transcode::testsrc;
use quicmeet_transcode::{psnr_y, Vp8Decoder};

const FPS: u32 = 30;

fn clip(width: u32, height: u32, frames: u32) -> (ClipConfig, Vec<testsrc::EncodedFrame>) {
    let cfg = ClipConfig {
        width,
        height,
        fps: FPS,
        frames,
        keyframe_interval: 30,
        bitrate_bps: 1_500_000,
    };
    let v = quicmeet_testkit::clip::vp8(&cfg).expect("VP8 clip");
    (cfg, v)
}

/// Publishes the camera track at `width`x`height` and returns its publisher.
async fn publish_camera(p: &mut Peer, width: u32, height: u32) -> TrackPublisher {
    let track_id = p.track(Slot::Camera);
    p.send(ClientMessage::Publish {
        track_id,
        kind: MediaKind::Video,
        codec: "vp8".into(),
        width: Some(width),
        height: Some(height),
        layers_capable: false,
    })
    .await;
    p.expect(
        "track_published",
        |m| matches!(m, ServerMessage::TrackPublished { track } if track.track_id == track_id),
    )
    .await;
    TrackPublisher::new(track_id, MediaKind::Video)
}

/// A publisher (WebTransport) with a `width`x`height` camera track and one subscriber that has
/// seen the track published.
async fn publisher_and_subscriber(
    m: &Meet,
    sub_transport: Transport,
    sub_opts: ConnectOptions,
    width: u32,
    height: u32,
) -> (Peer, TrackPublisher, Peer) {
    let mut publisher = Peer::join("Pia", &m.join_host().await, Transport::WebTransport).await;
    let mut sub = Peer::connect_with(
        "Sam",
        &m.join_guest(&m.code, "Sam").await,
        sub_transport,
        sub_opts,
    )
    .await;
    sub.welcome().await;
    let cam = publish_camera(&mut publisher, width, height).await;
    let track = cam.track_id();
    sub.expect(
        "track_published",
        |m| matches!(m, ServerMessage::TrackPublished { track: t } if t.track_id == track),
    )
    .await;
    (publisher, cam, sub)
}

/// Sends the clip in real time, looping, for `dur`; capture timestamps are the clip's own
/// presentation times plus a per-loop offset, so a receiver can tell which picture it got.
fn spawn_publisher(
    mut tx: ClientSender,
    mut cam: TrackPublisher,
    cfg: ClipConfig,
    frames: Vec<testsrc::EncodedFrame>,
    dur: Duration,
) -> tokio::task::JoinHandle<ClientSender> {
    tokio::spawn(async move {
        let start = tokio::time::Instant::now();
        let mut i: u64 = 0;
        while start.elapsed() < dur {
            let n = frames.len() as u64;
            let f = &frames[(i % n) as usize];
            let ts = cfg.pts_us((i % n) as u32) + (i / n) * 1_000_000_000;
            let enc = cam.frame_at(f.keyframe, ts, &f.data).unwrap();
            if tx.send_frame(&enc).await.is_err() {
                break;
            }
            i += 1;
            tokio::time::sleep_until(start + Duration::from_micros(i * 1_000_000 / FPS as u64))
                .await;
        }
        tx
    })
}

/// Receives media of `track_id` until `pred` says enough or the deadline passes.
async fn collect(
    p: &mut Peer,
    track_id: u32,
    deadline: Instant,
    mut enough: impl FnMut(&[MediaEvent]) -> bool,
) -> Vec<MediaEvent> {
    let mut got: Vec<MediaEvent> = vec![];
    while !enough(&got) {
        let left = deadline.saturating_duration_since(Instant::now());
        match tokio::time::timeout(left, p.rx.recv()).await {
            Ok(Some(Event::Media(m))) if m.frame.header().track_id == track_id => got.push(m),
            Ok(Some(Event::Control(c))) => p.log.push(c),
            Ok(Some(Event::Closed(c))) => panic!("{}: closed: {c:?}", p.name),
            Ok(Some(_)) => {}
            Ok(None) | Err(_) => break,
        }
    }
    got
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_small_tile_gets_a_decodable_180p_layer_that_matches_the_source() {
    let m = Meet::start("public", &[], &[]).await;
    let (cfg, frames) = clip(1280, 720, 60);
    let (publisher, cam, mut sub) = publisher_and_subscriber(
        &m,
        Transport::WebSocket,
        ConnectOptions::default(),
        1280,
        720,
    )
    .await;
    let track = cam.track_id();
    // No lower layer is wanted yet: no encoder runs.
    assert_eq!(metric(&m, "quicmeet_transcode_active_encoders").await, 0.0);
    sub.send(ClientMessage::Subscribe {
        track_id: track,
        max_width: Some(320),
        max_height: Some(180),
        layer: None,
    })
    .await;
    sub.sync().await;
    let Peer { tx, .. } = publisher;
    let pubt = spawn_publisher(tx, cam, cfg, frames, Duration::from_secs(5));

    let got = collect(
        &mut sub,
        track,
        Instant::now() + Duration::from_secs(12),
        |g| g.len() >= 40,
    )
    .await;
    assert!(
        got.len() >= 40,
        "only {} frames of the 180p layer",
        got.len()
    );
    assert!(
        got.iter().all(|e| e.frame.header().layer == 2),
        "a 320x180 tile must get layer 2 only"
    );
    assert!(
        got[0].frame.header().keyframe,
        "the layer must start with a keyframe"
    );
    let seqs: Vec<u32> = got.iter().map(|e| e.frame.header().seq).collect();
    assert!(
        seqs.windows(2).all(|w| w[1] == w[0] + 1),
        "layer sequence numbers must be consecutive: {seqs:?}"
    );
    assert!(metric(&m, "quicmeet_transcode_active_encoders").await >= 1.0);

    let mut dec = Vp8Decoder::new().unwrap();
    let mut psnrs = vec![];
    for e in &got {
        let pic = dec
            .decode(&e.frame.payload())
            .expect("decodable VP8")
            .expect("a picture");
        assert_eq!((pic.width(), pic.height()), (320, 180));
        let idx =
            ((e.frame.header().capture_ts_us % 1_000_000_000) * FPS as u64 / 1_000_000) as u32;
        let src = testsrc::pattern(1280, 720, idx).scaled(320, 180).unwrap();
        psnrs.push(psnr_y(&pic, &src).unwrap());
    }
    let mean = psnrs.iter().sum::<f64>() / psnrs.len() as f64;
    assert!(
        mean > 25.0,
        "mean Y-PSNR {mean:.1} dB against the source scaled to 180p: {psnrs:?}"
    );
    let _ = pubt.await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn switching_layers_starts_each_layer_at_a_keyframe_and_stops_encoders_after() {
    let m = Meet::start("public", &[], &[]).await;
    let (cfg, frames) = clip(640, 360, 60);
    let (publisher, cam, mut sub) = publisher_and_subscriber(
        &m,
        Transport::WebTransport,
        ConnectOptions::default(),
        640,
        360,
    )
    .await;
    let track = cam.track_id();
    let Peer { tx, .. } = publisher;
    let pubt = spawn_publisher(tx, cam, cfg, frames, Duration::from_secs(14));

    let mut dec = Vp8Decoder::new().unwrap();
    for (layer, size) in [(0u8, (640, 360)), (2, (160, 90)), (0, (640, 360))] {
        sub.send(ClientMessage::Subscribe {
            track_id: track,
            max_width: None,
            max_height: None,
            layer: Some(layer),
        })
        .await;
        let got = collect(
            &mut sub,
            track,
            Instant::now() + Duration::from_secs(6),
            |g| g.iter().filter(|e| e.frame.header().layer == layer).count() >= 10,
        )
        .await;
        let of_layer: Vec<&MediaEvent> = got
            .iter()
            .filter(|e| e.frame.header().layer == layer)
            .collect();
        assert!(
            of_layer.len() >= 10,
            "layer {layer}: only {} frames",
            of_layer.len()
        );
        assert!(
            of_layer[0].frame.header().keyframe,
            "layer {layer} must start at a keyframe"
        );
        // Once the new layer started, the old one no longer arrives.
        let first = got
            .iter()
            .position(|e| e.frame.header().layer == layer)
            .unwrap();
        assert!(
            got[first..].iter().all(|e| e.frame.header().layer == layer),
            "layers mixed after the switch"
        );
        for e in of_layer {
            let pic = dec
                .decode(&e.frame.payload())
                .expect("decodable")
                .expect("picture");
            assert_eq!((pic.width(), pic.height()), size, "layer {layer}");
        }
    }
    assert!(
        sub.log
            .iter()
            .any(|c| matches!(c, ServerMessage::LayerChanged { layer: 2, .. })),
        "the switch to layer 2 was not announced: {:?}",
        sub.log
    );
    // Back on the publisher's layer, the encoders stop after their linger (5 s).
    let deadline = Instant::now() + Duration::from_secs(9);
    loop {
        if metric(&m, "quicmeet_transcode_active_encoders").await == 0.0 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "an encoder still runs with no lower-layer subscriber"
        );
        // Keep draining so the subscriber does not stall.
        let _ = collect(
            &mut sub,
            track,
            Instant::now() + Duration::from_millis(300),
            |_| false,
        )
        .await;
    }
    let _ = pubt.await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_subscriber_that_cannot_keep_up_moves_down_a_layer_and_back_up() {
    let m = Meet::start("public", &[], &[]).await;
    let (cfg, frames) = clip(640, 360, 60);
    // A WebSocket subscriber with a tiny TCP buffer: when it stops reading, the server feels it.
    let opts = ConnectOptions {
        tcp_recv_buffer: Some(4096),
        event_buffer: 8,
        ..ConnectOptions::default()
    };
    let (publisher, cam, mut sub) =
        publisher_and_subscriber(&m, Transport::WebSocket, opts, 640, 360).await;
    let track = cam.track_id();
    sub.send(ClientMessage::Subscribe {
        track_id: track,
        max_width: None,
        max_height: None,
        layer: Some(0),
    })
    .await;
    sub.sync().await;
    let Peer { tx, .. } = publisher;
    let pubt = spawn_publisher(tx, cam, cfg, frames, Duration::from_secs(16));
    let got = collect(
        &mut sub,
        track,
        Instant::now() + Duration::from_secs(5),
        |g| g.len() >= 10,
    )
    .await;
    assert!(got.iter().all(|e| e.frame.header().layer == 0));

    // Stall: stop reading for 2.5 s while the publisher keeps sending.
    tokio::time::sleep(Duration::from_millis(2500)).await;
    // Resume: the controller must have moved us down a layer...
    let mut down_at = None;
    let mut up_at = None;
    let deadline = Instant::now() + Duration::from_secs(12);
    while Instant::now() < deadline && up_at.is_none() {
        let left = deadline.saturating_duration_since(Instant::now());
        match tokio::time::timeout(left, sub.rx.recv()).await {
            Ok(Some(Event::Control(ServerMessage::LayerChanged {
                track_id, layer, ..
            }))) if track_id == track => {
                if layer > 0 && down_at.is_none() {
                    down_at = Some(Instant::now());
                } else if layer == 0 && down_at.is_some() {
                    up_at = Some(Instant::now());
                }
            }
            Ok(Some(Event::Closed(c))) => panic!("closed: {c:?}"),
            Ok(Some(_)) => {}
            Ok(None) | Err(_) => break,
        }
    }
    let down_at = down_at.expect("the lagging subscriber was not moved down a layer");
    // ...and, reading steadily again, back up after a calm period.
    let up_at = up_at.expect("the recovered subscriber was not moved back up");
    assert!(
        up_at.duration_since(down_at) >= Duration::from_secs(4),
        "moved back up too eagerly"
    );
    assert!(metric(&m, "quicmeet_layer_switches_total").await >= 2.0);
    let _ = pubt.await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_server_layers_off_a_small_tile_still_gets_the_publishers_video() {
    let m = Meet::start("public", &[], &["--transcode-workers", "0"]).await;
    let (cfg, frames) = clip(640, 360, 30);
    let (publisher, cam, mut sub) = publisher_and_subscriber(
        &m,
        Transport::WebTransport,
        ConnectOptions::default(),
        640,
        360,
    )
    .await;
    let track = cam.track_id();
    sub.send(ClientMessage::Subscribe {
        track_id: track,
        max_width: Some(160),
        max_height: Some(90),
        layer: None,
    })
    .await;
    sub.sync().await;
    let Peer { tx, .. } = publisher;
    let pubt = spawn_publisher(tx, cam, cfg, frames, Duration::from_secs(3));
    let got = collect(
        &mut sub,
        track,
        Instant::now() + Duration::from_secs(8),
        |g| g.len() >= 20,
    )
    .await;
    assert!(
        got.len() >= 20,
        "only {} frames without server-side layers",
        got.len()
    );
    assert!(got.iter().all(|e| e.frame.header().layer == 0));
    assert!(got[0].frame.header().keyframe);
    let _ = pubt.await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_subscriber_that_reports_a_queue_on_its_downlink_moves_down_a_layer() {
    // A WebSocket subscriber that reads everything at once, as past a proxy that ends TCP:
    // the server's own view of the path shows no queue, only the receiver's report can.
    let moved = reported_queue(Transport::WebSocket, Duration::from_secs(8)).await;
    assert!(
        moved.is_some(),
        "a queue the receiver reported never moved it down"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_webtransport_subscriber_is_estimated_from_quic_not_from_its_reports() {
    // QUIC's round trip is end to end: a report of a queue that QUIC does not see is the
    // receiver's own lateness (a busy browser), and it does not move the subscriber down.
    assert_eq!(
        reported_queue(Transport::WebTransport, Duration::from_secs(8)).await,
        None,
        "a WebTransport subscriber was moved down by its own reports on a clean path"
    );
}

/// A subscriber over `transport` on loopback that reports an empty queue past its start, then
/// 150 ms of queue for `then`: the layer it was moved down to, if any.
async fn reported_queue(transport: Transport, then: Duration) -> Option<u8> {
    let m = Meet::start("public", &[], &[]).await;
    let (cfg, frames) = clip(640, 360, 60);
    let (publisher, cam, mut sub) =
        publisher_and_subscriber(&m, transport, ConnectOptions::default(), 640, 360).await;
    let track = cam.track_id();
    sub.send(ClientMessage::Subscribe {
        track_id: track,
        max_width: None,
        max_height: None,
        layer: Some(0),
    })
    .await;
    sub.sync().await;
    let Peer { tx, .. } = publisher;
    let pubt = spawn_publisher(tx, cam, cfg, frames, Duration::from_secs(16));

    // Watches for `until`, sending `report` every 200 ms; answers the layer it was moved to.
    async fn watch(sub: &mut Peer, track: u32, report: Option<u32>, until: Duration) -> Option<u8> {
        let deadline = Instant::now() + until;
        while Instant::now() < deadline {
            if let Some(queue_ms) = report {
                sub.send(ClientMessage::ReceiverReport { queue_ms }).await;
            }
            let tick = Instant::now() + Duration::from_millis(200);
            while let Ok(ev) = tokio::time::timeout(
                tick.saturating_duration_since(Instant::now()),
                sub.rx.recv(),
            )
            .await
            {
                match ev {
                    Some(Event::Control(ServerMessage::LayerChanged {
                        track_id, layer, ..
                    })) if track_id == track && layer > 0 => return Some(layer),
                    Some(Event::Control(ServerMessage::Error { code, .. })) => {
                        panic!("the server refused a message: {code}")
                    }
                    Some(Event::Closed(c)) => panic!("closed: {c:?}"),
                    Some(_) => {}
                    None => panic!("connection ended"),
                }
            }
        }
        None
    }

    // Reports of an empty queue (a few ms of jitter): the full layer stays, past the
    // subscriber's start (a start that stays calm for 5 s is over).
    assert_eq!(
        watch(&mut sub, track, Some(3), Duration::from_secs(6)).await,
        None
    );
    // 150 ms of queue in front of its audio: over WebSocket the estimate is cut until the
    // full layer no longer fits, and the subscriber moves down.
    let moved = watch(&mut sub, track, Some(150), then).await;
    pubt.abort();
    let _ = pubt.await;
    moved
}
