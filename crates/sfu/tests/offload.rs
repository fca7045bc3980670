//! Publisher-made layers (PROTOCOL.md §5.6), driven by synthetic transcoder-pool samples: a
//! saturated pool makes the room ask capable publishers for the wanted lower layers, the
//! subscribers switch source at the publisher's keyframe without a gap, and the layers go back
//! to the transcoder one at a time once the pool has had room for a while.

mod common;

use common::*;
use quicmeet_proto::{ClientMessage, EncodedFrame, MediaKind, Role, ServerMessage};
use quicmeet_sfu::{ConnId, Input, LayerSource, Output, RoomConfig, TranscoderLoad};

const CAM: u32 = 17;

fn saturated() -> TranscoderLoad {
    TranscoderLoad {
        dropped: 12,
        busy: 1.0,
        layers: 4,
        max_layers: None,
    }
}

fn calm() -> TranscoderLoad {
    TranscoderLoad {
        dropped: 0,
        busy: 0.2,
        layers: 0,
        max_layers: None,
    }
}

fn layer_frame(layer: u8, seq: u32, keyframe: bool) -> EncodedFrame {
    frame(MediaKind::Video, CAM, seq, keyframe, layer, 120)
}

/// Host (conn 1) publishes a capable 1280x720 camera; conns 2 and 3 join.
fn room(capable: bool) -> Sim {
    let mut s = Sim::new(RoomConfig::default());
    s.join(1, "Ann", Role::Host, false);
    s.join(2, "Bob", Role::Member, false);
    s.join(3, "Cy", Role::Member, false);
    s.control(
        1,
        ClientMessage::Publish {
            track_id: CAM,
            kind: MediaKind::Video,
            codec: "vp8".into(),
            width: Some(1280),
            height: Some(720),
            layers_capable: capable,
        },
    );
    s
}

/// `conn` subscribes to `layer` and gets going on the transcoder's keyframe.
fn watch(s: &mut Sim, conn: u64, layer: u8, seq: u32) {
    s.control(
        conn,
        ClientMessage::Subscribe {
            track_id: CAM,
            max_width: None,
            max_height: None,
            layer: Some(layer),
        },
    );
    let outs = s.input(Input::LayerMedia(layer_frame(layer, seq, true)));
    assert_eq!(
        media_to(&outs, conn).len(),
        1,
        "conn {conn} starts on layer {layer}"
    );
}

fn produce_requests(outs: &[Output], conn: u64) -> Vec<(u8, u32, u32, u32)> {
    msgs_to(outs, conn)
        .into_iter()
        .filter_map(|m| match m {
            ServerMessage::ProduceLayer {
                track_id: CAM,
                layer,
                width,
                height,
                bitrate,
            } => Some((layer, width, height, bitrate)),
            _ => None,
        })
        .collect()
}

fn stops(outs: &[Output], conn: u64) -> Vec<u8> {
    msgs_to(outs, conn)
        .into_iter()
        .filter_map(|m| match m {
            ServerMessage::StopLayer {
                track_id: CAM,
                layer,
            } => Some(layer),
            _ => None,
        })
        .collect()
}

fn layer_changes(outs: &[Output], conn: u64) -> Vec<u8> {
    msgs_to(outs, conn)
        .into_iter()
        .filter_map(|m| match m {
            ServerMessage::LayerChanged {
                track_id: CAM,
                layer,
                ..
            } => Some(layer),
            _ => None,
        })
        .collect()
}

/// Index of the first output for `conn` that is `layer_changed`, and of its first media.
fn order(outs: &[Output], conn: u64) -> (Option<usize>, Option<usize>) {
    let changed = outs.iter().position(|o| {
        matches!(o, Output::Control { to, msg: ServerMessage::LayerChanged { .. } } if to.contains(ConnId(conn)))
    });
    let media = outs
        .iter()
        .position(|o| matches!(o, Output::Media { to, .. } if *to == ConnId(conn)));
    (changed, media)
}

/// Saturates the pool with one subscriber on layer 1, then lets the publisher's keyframe in.
fn handed_over() -> Sim {
    let mut s = room(true);
    watch(&mut s, 2, 1, 0);
    let outs = s.input(Input::TranscoderLoad(saturated()));
    assert_eq!(produce_requests(&outs, 1), vec![(1, 640, 360, 500_000)]);
    let outs = s.media(1, layer_frame(1, 900, true));
    assert_eq!(media_to(&outs, 2).len(), 1);
    s
}

#[test]
fn a_saturated_pool_asks_the_capable_publisher_and_subscribers_switch_at_its_keyframe() {
    let mut s = room(true);
    watch(&mut s, 2, 1, 0);
    let before = s.room.layers_version();
    s.advance(1000);
    let outs = s.input(Input::TranscoderLoad(saturated()));
    assert_eq!(produce_requests(&outs, 1), vec![(1, 640, 360, 500_000)]);
    assert!(msgs_to(&outs, 2).is_empty(), "subscribers see nothing yet");
    assert_eq!(s.room.layer_source(CAM, 1), Some(LayerSource::Asked));

    // Until the publisher's keyframe, the transcoder's layer keeps flowing and the
    // publisher's early deltas are not forwarded.
    let outs = s.input(Input::LayerMedia(layer_frame(1, 1, false)));
    assert_eq!(media_to(&outs, 2).len(), 1);
    let outs = s.media(1, layer_frame(1, 899, false));
    assert!(media_to(&outs, 2).is_empty());
    assert_eq!(s.room.layers_version(), before, "the transcoder still runs");

    let outs = s.media(1, layer_frame(1, 900, true));
    assert_eq!(layer_changes(&outs, 2), vec![1]);
    let (changed, media) = order(&outs, 2);
    assert!(
        changed < media,
        "layer_changed comes before the new source's keyframe"
    );
    let got = media_to(&outs, 2);
    assert_eq!(got.len(), 1);
    assert!(got[0].header().keyframe);
    assert_eq!(got[0].header().seq, 900);
    assert_eq!(s.room.publisher_layers(CAM), 0b10);
    assert_ne!(
        s.room.layers_version(),
        before,
        "the server re-reads which layers to make"
    );
    assert_eq!(s.room.stats().publisher_layers_started, 1);

    // From now on the publisher's frames, never the transcoder's.
    let outs = s.input(Input::LayerMedia(layer_frame(1, 2, false)));
    assert!(media_to(&outs, 2).is_empty());
    let outs = s.media(1, layer_frame(1, 901, false));
    assert_eq!(media_to(&outs, 2)[0].header().seq, 901);
    // The full layer is untouched.
    assert!(s.room.publisher_layers(CAM) & 1 == 0);
}

#[test]
fn keyframe_requests_for_a_publisher_made_layer_name_the_publisher() {
    let mut s = handed_over();
    s.advance(1000);
    let outs = s.input(Input::KeyframeNeeded {
        from: ConnId(2),
        track_id: CAM,
    });
    assert_eq!(keyframe_requests(&outs), vec![(1, CAM, 1)]);
    // The server sends it to the publisher because the layer is the publisher's now.
    assert_eq!(s.room.layer_source(CAM, 1), Some(LayerSource::Publisher));
    // The subscriber resumes at the publisher's next keyframe.
    let outs = s.media(1, layer_frame(1, 901, false));
    assert!(media_to(&outs, 2).is_empty());
    let outs = s.media(1, layer_frame(1, 902, true));
    assert_eq!(media_to(&outs, 2).len(), 1);
}

#[test]
fn layers_go_back_one_at_a_time_after_the_pool_had_room_for_a_hold() {
    let mut s = room(true);
    watch(&mut s, 2, 1, 0);
    watch(&mut s, 3, 2, 0);
    let outs = s.input(Input::TranscoderLoad(saturated()));
    let asked: Vec<u8> = produce_requests(&outs, 1).iter().map(|p| p.0).collect();
    assert_eq!(asked, vec![1, 2]);
    s.media(1, layer_frame(1, 500, true));
    s.media(1, layer_frame(2, 700, true));
    assert_eq!(s.room.publisher_layers(CAM), 0b110);

    // Calm for less than the hold (5 s from the first calm sample): nothing moves.
    for _ in 0..5 {
        s.advance(1000);
        let outs = s.input(Input::TranscoderLoad(calm()));
        assert!(stops(&outs, 1).is_empty());
        assert!(keyframe_requests(&outs).is_empty());
    }
    s.advance(1000);
    let before = s.room.layers_version();
    let outs = s.input(Input::TranscoderLoad(calm()));
    // The smaller layer goes back first: the transcoder restarts it and is asked for a
    // keyframe; the publisher keeps sending until that keyframe arrives.
    assert_eq!(keyframe_requests(&outs), vec![(1, CAM, 2)]);
    assert_eq!(s.room.layer_source(CAM, 2), Some(LayerSource::Returning));
    assert_eq!(s.room.publisher_layers(CAM), 0b010);
    assert_ne!(s.room.layers_version(), before);
    assert!(stops(&outs, 1).is_empty());
    let outs = s.media(1, layer_frame(2, 701, false));
    assert_eq!(
        media_to(&outs, 3).len(),
        1,
        "no gap while the transcoder starts"
    );
    let outs = s.input(Input::LayerMedia(layer_frame(2, 1, false)));
    assert!(media_to(&outs, 3).is_empty());
    let outs = s.input(Input::LayerMedia(layer_frame(2, 2, true)));
    assert_eq!(layer_changes(&outs, 3), vec![2]);
    let (changed, media) = order(&outs, 3);
    assert!(changed < media);
    assert_eq!(stops(&outs, 1), vec![2]);
    assert_eq!(s.room.layer_source(CAM, 2), Some(LayerSource::Server));
    // Late publisher frames of the stopped layer are dropped quietly.
    let outs = s.media(1, layer_frame(2, 702, false));
    assert!(media_to(&outs, 3).is_empty());
    assert!(error_codes(&outs, 1).is_empty());

    // The next layer only after another hold.
    for _ in 0..4 {
        s.advance(1000);
        let outs = s.input(Input::TranscoderLoad(calm()));
        assert!(keyframe_requests(&outs).is_empty());
    }
    s.advance(1000);
    let outs = s.input(Input::TranscoderLoad(calm()));
    assert_eq!(keyframe_requests(&outs), vec![(1, CAM, 1)]);
    assert_eq!(s.room.stats().publisher_layers_returned, 2);
}

#[test]
fn a_busy_pool_that_drops_nothing_keeps_the_publishers_layers() {
    let mut s = handed_over();
    for _ in 0..30 {
        s.advance(1000);
        let outs = s.input(Input::TranscoderLoad(TranscoderLoad {
            dropped: 0,
            busy: 0.8,
            layers: 3,
            max_layers: None,
        }));
        assert!(keyframe_requests(&outs).is_empty());
        assert!(stops(&outs, 1).is_empty());
    }
    assert_eq!(s.room.layer_source(CAM, 1), Some(LayerSource::Publisher));
}

#[test]
fn saturation_while_giving_back_keeps_the_publishers_layer() {
    let mut s = handed_over();
    for _ in 0..6 {
        s.advance(1000);
        s.input(Input::TranscoderLoad(calm()));
    }
    assert_eq!(s.room.layer_source(CAM, 1), Some(LayerSource::Returning));
    s.advance(1000);
    let outs = s.input(Input::TranscoderLoad(saturated()));
    assert!(
        produce_requests(&outs, 1).is_empty(),
        "it never stopped sending"
    );
    assert_eq!(s.room.layer_source(CAM, 1), Some(LayerSource::Publisher));
    let outs = s.input(Input::LayerMedia(layer_frame(1, 3, true)));
    assert!(media_to(&outs, 2).is_empty());
    assert!(stops(&outs, 1).is_empty());
}

#[test]
fn more_layers_than_the_operators_cap_counts_as_saturated() {
    let mut s = room(true);
    watch(&mut s, 2, 1, 0);
    let load = |layers| TranscoderLoad {
        dropped: 0,
        busy: 0.1,
        layers,
        max_layers: Some(1),
    };
    let outs = s.input(Input::TranscoderLoad(load(1)));
    assert!(
        produce_requests(&outs, 1).is_empty(),
        "at the cap is not over it"
    );
    let outs = s.input(Input::TranscoderLoad(load(2)));
    assert_eq!(produce_requests(&outs, 1).len(), 1);
    s.media(1, layer_frame(1, 40, true));
    // Giving it back would not fit under the cap while another layer runs.
    for _ in 0..10 {
        s.advance(1000);
        let outs = s.input(Input::TranscoderLoad(load(1)));
        assert!(keyframe_requests(&outs).is_empty());
    }
    for _ in 0..6 {
        s.advance(1000);
        s.input(Input::TranscoderLoad(load(0)));
    }
    assert_eq!(s.room.layer_source(CAM, 1), Some(LayerSource::Returning));
}

#[test]
fn newly_wanted_layers_are_asked_for_while_saturated_and_unwanted_ones_stopped() {
    let mut s = room(true);
    watch(&mut s, 2, 1, 0);
    s.input(Input::TranscoderLoad(saturated()));
    s.media(1, layer_frame(1, 10, true));
    // A new small tile while saturated: asked at once.
    let outs = s.control(
        3,
        ClientMessage::Subscribe {
            track_id: CAM,
            max_width: None,
            max_height: None,
            layer: Some(2),
        },
    );
    assert_eq!(produce_requests(&outs, 1), vec![(2, 320, 180, 150_000)]);
    // The layer-1 viewer leaves: that layer stops at once.
    let outs = s.control(2, ClientMessage::Unsubscribe { track_id: CAM });
    assert_eq!(stops(&outs, 1), vec![1]);
    assert_eq!(s.room.publisher_layers(CAM), 0);
    assert_eq!(s.room.layer_source(CAM, 1), Some(LayerSource::Server));
}

#[test]
fn a_subscriber_leaving_for_the_full_layer_mid_handover_keeps_its_frames_until_it_switches() {
    // The order seen in a browser run: the viewer is on the transcoder's layer 1, the
    // publisher is asked for it, the viewer asks for the full layer (its size rule), and only
    // then does the publisher's keyframe come. The layer is still wanted until the viewer has
    // switched, so it is handed over; it stops in the step that moves the viewer to layer 0,
    // and the viewer gets frames at every step.
    let mut s = room(true);
    watch(&mut s, 2, 1, 0);
    let outs = s.input(Input::TranscoderLoad(saturated()));
    assert_eq!(produce_requests(&outs, 1).len(), 1);
    let outs = s.control(
        2,
        ClientMessage::Subscribe {
            track_id: CAM,
            max_width: None,
            max_height: None,
            layer: Some(0),
        },
    );
    assert!(stops(&outs, 1).is_empty(), "layer 1 is still forwarded");
    assert_eq!(
        s.room.subscription_layer(ConnId(2), CAM),
        Some((0, Some(1)))
    );
    let outs = s.input(Input::LayerMedia(layer_frame(1, 1, false)));
    assert_eq!(
        media_to(&outs, 2).len(),
        1,
        "the transcoder's frames flow on"
    );

    let outs = s.media(1, layer_frame(1, 900, true));
    assert_eq!(layer_changes(&outs, 2), vec![1]);
    assert_eq!(media_to(&outs, 2).len(), 1);
    assert_eq!(s.room.layer_source(CAM, 1), Some(LayerSource::Publisher));
    let outs = s.media(1, layer_frame(1, 901, false));
    assert_eq!(
        media_to(&outs, 2).len(),
        1,
        "the publisher's frames flow on"
    );

    let outs = s.media(1, layer_frame(0, 50, true));
    assert_eq!(layer_changes(&outs, 2), vec![0]);
    assert!(media_to(&outs, 2)[0].header().keyframe);
    assert_eq!(stops(&outs, 1), vec![1], "nobody wants layer 1 any more");
    assert_eq!(s.room.layer_source(CAM, 1), Some(LayerSource::Server));
    assert_eq!(
        s.room.subscription_layer(ConnId(2), CAM),
        Some((0, Some(0)))
    );
    let outs = s.media(1, layer_frame(0, 51, false));
    assert_eq!(media_to(&outs, 2).len(), 1);
}

#[test]
fn a_publisher_that_did_not_declare_the_capability_is_never_asked() {
    let mut s = room(false);
    watch(&mut s, 2, 1, 0);
    let outs = s.input(Input::TranscoderLoad(saturated()));
    assert!(produce_requests(&outs, 1).is_empty());
    assert_eq!(s.room.layer_source(CAM, 1), Some(LayerSource::Server));
}

#[test]
fn lower_layers_nobody_asked_for_are_refused_with_one_error() {
    let mut s = room(true);
    watch(&mut s, 2, 1, 0);
    let outs = s.media(1, layer_frame(1, 5, true));
    assert!(media_to(&outs, 2).is_empty());
    assert_eq!(error_codes(&outs, 1), vec!["layer_not_requested"]);
    let outs = s.media(1, layer_frame(1, 6, false));
    assert!(media_to(&outs, 2).is_empty());
    assert!(
        error_codes(&outs, 1).is_empty(),
        "one error, not one per frame"
    );
    assert_eq!(s.room.stats().dropped.layer_not_requested, 2);
    // Somebody else's track: not theirs at all.
    let outs = s.media(2, layer_frame(1, 7, true));
    assert!(media_to(&outs, 2).is_empty());
    assert_eq!(s.room.stats().dropped.not_owner, 1);
    // A layer above the last is refused as before.
    let outs = s.media(1, layer_frame(3, 8, true));
    assert!(media_to(&outs, 2).is_empty());
    assert_eq!(s.room.stats().dropped.bad_layer, 1);
    // The transcoder's layer flows on undisturbed.
    let outs = s.input(Input::LayerMedia(layer_frame(1, 1, false)));
    assert_eq!(media_to(&outs, 2).len(), 1);
}

#[test]
fn a_remote_participants_lower_layers_come_from_its_home_node_and_pass() {
    use quicmeet_proto::{Participant, Role as R};
    use quicmeet_sfu::Remote;
    let mut s = Sim::new(RoomConfig::default());
    s.join(2, "Bob", Role::Member, false);
    // A mirror of a participant whose node made (or was sent) the lower layers.
    s.input(Input::Remote(Remote::Member {
        conn: ConnId(90),
        participant: Participant {
            id: 40,
            name: "Far".into(),
            role: R::Member,
            audio_muted: false,
            video_muted: false,
            hand_raised: false,
            transport: "webtransport".into(),
        },
        email: "far@example.org".into(),
        lobby: false,
    }));
    let track = 40 * 16 + 1;
    s.control(
        90,
        ClientMessage::Publish {
            track_id: track,
            kind: MediaKind::Video,
            codec: "vp8".into(),
            width: Some(1280),
            height: Some(720),
            layers_capable: true,
        },
    );
    s.control(
        2,
        ClientMessage::Subscribe {
            track_id: track,
            max_width: None,
            max_height: None,
            layer: Some(1),
        },
    );
    let outs = s.media(90, frame(MediaKind::Video, track, 0, true, 1, 50));
    assert_eq!(media_to(&outs, 2).len(), 1);
    assert!(error_codes(&outs, 90).is_empty());
    // Saturation here never asks a remote publisher: its home node decides.
    let outs = s.input(Input::TranscoderLoad(saturated()));
    assert!(msgs_to(&outs, 90).is_empty());
}
