//! Room behaviour with a simulated clock: each test names the behaviour it pins.

mod common;

use common::*;
use quicmeet_proto::{ClientMessage, MediaKind, Role, ServerMessage};
use quicmeet_sfu::{
    ConnId, Input, Output, Popped, QueueConfig, QueueEvent, RoomConfig, SubscriberQueue,
};

#[test]
fn welcome_lists_everyone_and_others_hear_of_the_newcomer() {
    let mut s = Sim::new(RoomConfig::default());
    let (p1, outs) = s.join(1, "Ann", Role::Host, false);
    assert_eq!(p1, 1);
    assert!(matches!(
        &msgs_to(&outs, 1)[0],
        ServerMessage::Welcome {
            participant_id: 1,
            ..
        }
    ));
    s.publish(1, 17, MediaKind::Video);
    let (p2, outs) = s.join(2, "Bob", Role::Member, false);
    assert_eq!(p2, 2);
    let ServerMessage::Welcome {
        participants,
        tracks,
        role,
        ..
    } = &msgs_to(&outs, 2)[0]
    else {
        panic!()
    };
    assert_eq!(*role, Role::Member);
    assert_eq!(
        participants.iter().map(|p| p.id).collect::<Vec<_>>(),
        vec![1, 2]
    );
    assert_eq!(tracks.len(), 1);
    assert!(
        matches!(&msgs_to(&outs, 1)[0], ServerMessage::ParticipantJoined { participant } if participant.id == 2)
    );
    assert!(msgs_to(&outs, 2)
        .iter()
        .all(|m| !matches!(m, ServerMessage::ParticipantJoined { .. })));
}

#[test]
fn fan_out_is_byte_exact_zero_copy_and_keeps_seq() {
    let mut s = two_party();
    for c in 3..=5 {
        s.join(c, "Sub", Role::Member, false);
    }
    for c in 2..=5 {
        s.subscribe(c, 17);
    }
    let sent: Vec<_> = (0..10).map(|i| video(17, 100 + i, i == 0)).collect();
    let mut got = vec![vec![]; 6];
    for f in &sent {
        let outs = s.media(1, f.clone());
        for c in 2..=5 {
            got[c as usize].extend(media_to(&outs, c));
        }
        assert!(media_to(&outs, 1).is_empty(), "no echo to the publisher");
    }
    for frames in &got[2..=5] {
        assert_eq!(frames.len(), 10);
        for (a, b) in frames.iter().zip(&sent) {
            assert_eq!(a.as_bytes(), b.as_bytes());
            assert_eq!(
                a.as_bytes().as_ptr(),
                b.as_bytes().as_ptr(),
                "shared, not copied"
            );
        }
        let seqs: Vec<u32> = frames.iter().map(|f| f.header().seq).collect();
        assert_eq!(seqs, (100..110).collect::<Vec<_>>());
    }
    assert_eq!(s.room.stats().frames_out, 40);
}

#[test]
fn subscriber_gets_only_subscribed_tracks_and_unsubscribe_stops_them() {
    let mut s = two_party();
    s.subscribe(2, 16);
    let outs = s.media(1, video(17, 0, true));
    assert!(media_to(&outs, 2).is_empty());
    let outs = s.media(1, audio(16, 0, None));
    assert_eq!(media_to(&outs, 2).len(), 1);
    s.control(2, ClientMessage::Unsubscribe { track_id: 16 });
    let outs = s.media(1, audio(16, 1, None));
    assert!(media_to(&outs, 2).is_empty());
}

#[test]
fn late_joiner_first_video_frame_is_a_keyframe_within_one_frame_interval() {
    let mut s = two_party();
    // 30 fps, keyframe every 60 frames; the late joiner arrives at frame 45.
    let mut seq = 0;
    for _ in 0..45 {
        s.media(1, video(17, seq, seq % 60 == 0));
        seq += 1;
        s.advance(33);
    }
    let (_, _) = s.join(3, "Late", Role::Member, false);
    let outs = s.subscribe(3, 17);
    let frames = media_to(&outs, 3);
    // Immediately, with no wait at all: the cached group, keyframe first.
    assert!(!frames.is_empty());
    assert!(frames[0].header().keyframe);
    assert_eq!(frames[0].header().seq, 0);
    assert_eq!(frames.len(), 45);
    assert!(matches!(
        &msgs_to(&outs, 3)[0],
        ServerMessage::LayerChanged {
            track_id: 17,
            layer: 0,
            width: 1280,
            height: 720
        }
    ));
    // And the next live delta follows seamlessly.
    let outs = s.media(1, video(17, seq, false));
    assert_eq!(media_to(&outs, 3)[0].header().seq, 45);
}

#[test]
fn late_joiner_waits_for_requested_keyframe_when_the_group_is_too_long_to_cache() {
    let mut s = Sim::new(RoomConfig {
        gop_cache_frames: 10,
        ..RoomConfig::default()
    });
    s.join(1, "Ann", Role::Host, false);
    s.join(2, "Bob", Role::Member, false);
    s.publish(1, 17, MediaKind::Video);
    for seq in 0..20 {
        s.media(1, video(17, seq, seq == 0));
        s.advance(33);
    }
    let outs = s.subscribe(2, 17);
    assert!(media_to(&outs, 2).is_empty());
    assert_eq!(keyframe_requests(&outs), vec![(1, 17, 0)]);
    // The publisher's deltas are not forwarded; its answering keyframe is, within a frame.
    let outs = s.media(1, video(17, 20, false));
    assert!(media_to(&outs, 2).is_empty());
    s.advance(33);
    let outs = s.media(1, video(17, 21, true));
    let f = media_to(&outs, 2);
    assert_eq!(f.len(), 1);
    assert!(f[0].header().keyframe);
}

#[test]
fn a_publisher_gone_direct_leaves_no_stale_group_for_a_late_joiner() {
    let mut s = two_party();
    for seq in 0..10 {
        s.media(1, video(17, seq, seq == 0));
        s.advance(33);
    }
    // Both go peer to peer: the publisher sends the server nothing more for a while.
    s.control(
        1,
        ClientMessage::MediaPath {
            path: quicmeet_proto::MediaPathKind::P2p,
            peer: Some(2),
        },
    );
    s.advance(60_000);
    // A third joins: no minute-old picture is replayed; a keyframe is asked for instead, and
    // the publisher's first frame back on the server path (a keyframe) is what it gets.
    s.join(3, "Late", Role::Member, false);
    let outs = s.subscribe(3, 17);
    assert!(media_to(&outs, 3).is_empty());
    assert_eq!(keyframe_requests(&outs), vec![(1, 17, 0)]);
    s.control(
        1,
        ClientMessage::MediaPath {
            path: quicmeet_proto::MediaPathKind::Server,
            peer: None,
        },
    );
    let outs = s.media(1, video(17, 10, true));
    let f = media_to(&outs, 3);
    assert_eq!(f.len(), 1);
    assert!(f[0].header().keyframe);
    assert_eq!(f[0].header().seq, 10);
}

#[test]
fn lobby_participant_gets_no_media_until_admitted() {
    let mut s = two_party();
    s.media(1, video(17, 0, true));
    let (p3, outs) = s.join(3, "Guest", Role::Guest, true);
    assert!(matches!(&msgs_to(&outs, 3)[0], ServerMessage::Lobby { .. }));
    assert!(
        matches!(&msgs_to(&outs, 1)[0], ServerMessage::Knock { participant_id, email, .. } if *participant_id == p3 && email == "guest@example.org")
    );
    assert!(msgs_to(&outs, 2).is_empty(), "only hosts hear knocks");
    let outs = s.subscribe(3, 17);
    assert_eq!(error_codes(&outs, 3), vec!["not_admitted"]);
    let outs = s.media(1, video(17, 1, false));
    assert!(media_to(&outs, 3).is_empty());
    // The lobby cannot publish either.
    s.control(
        3,
        ClientMessage::Publish {
            track_id: p3 * 16 + 1,
            kind: MediaKind::Video,
            codec: "vp8".into(),
            width: None,
            height: None,
            layers_capable: false,
        },
    );
    s.media(3, video(p3 * 16 + 1, 0, true));
    assert_eq!(s.room.stats().dropped.not_admitted, 1);

    // A member cannot admit.
    let outs = s.control(2, ClientMessage::Admit { participant_id: p3 });
    assert_eq!(error_codes(&outs, 2), vec!["forbidden"]);
    let outs = s.control(1, ClientMessage::Admit { participant_id: p3 });
    assert!(
        matches!(&msgs_to(&outs, 3)[0], ServerMessage::Welcome { participant_id, .. } if *participant_id == p3)
    );
    assert!(matches!(
        &msgs_to(&outs, 2)[0],
        ServerMessage::ParticipantJoined { .. }
    ));
    let outs = s.subscribe(3, 17);
    let f = media_to(&outs, 3);
    assert!(f[0].header().keyframe);
}

#[test]
fn host_joining_later_hears_the_waiting_knocks_and_deny_disconnects() {
    let mut s = Sim::new(RoomConfig::default());
    s.join(2, "Bob", Role::Member, false);
    let (p3, _) = s.join(3, "Guest", Role::Guest, true);
    let (_, outs) = s.join(1, "Ann", Role::Host, true); // hosts never wait
    let m = msgs_to(&outs, 1);
    assert!(matches!(&m[0], ServerMessage::Welcome { .. }));
    assert!(matches!(&m[1], ServerMessage::Knock { participant_id, .. } if *participant_id == p3));
    let outs = s.control(1, ClientMessage::Deny { participant_id: p3 });
    assert!(
        matches!(&msgs_to(&outs, 3)[0], ServerMessage::Denied { reason } if reason == "denied")
    );
    assert_eq!(disconnects(&outs), vec![(3, "denied")]);
    assert_eq!(s.room.lobby_count(), 0);
    // A Leave from the server afterwards is harmless.
    assert!(s
        .input(Input::Leave(ConnId(3), "disconnected".into()))
        .is_empty());
}

#[test]
fn guest_cannot_end_meeting_but_host_can() {
    let mut s = two_party();
    s.join(3, "Guest", Role::Guest, false);
    let outs = s.control(3, ClientMessage::EndMeeting {});
    assert_eq!(error_codes(&outs, 3), vec!["forbidden"]);
    assert!(disconnects(&outs).is_empty());
    assert!(msgs_to(&outs, 1).is_empty() && msgs_to(&outs, 2).is_empty());
    assert!(!s.room.is_ended());

    let outs = s.control(1, ClientMessage::EndMeeting {});
    for c in 1..=3 {
        assert!(
            matches!(&msgs_to(&outs, c)[0], ServerMessage::Goodbye { reason, .. } if reason == "ended")
        );
    }
    assert_eq!(
        disconnects(&outs),
        vec![(1, "ended"), (2, "ended"), (3, "ended")]
    );
    assert!(matches!(outs.last(), Some(Output::MeetingEnded { by: 1 })));
    assert!(s.room.is_ended() && s.room.is_empty());
    let (outs_join, _) = (
        s.input(Input::Join(quicmeet_sfu::Join {
            conn: ConnId(9),
            name: "x".into(),
            email: "x@y".into(),
            role: Role::Member,
            lobby: false,
            transport: "websocket".into(),
        })),
        (),
    );
    assert_eq!(disconnects(&outs_join), vec![(9, "ended")]);
}

#[test]
fn mute_participant_reaches_only_the_target_and_remove_cleans_up() {
    let mut s = two_party();
    s.join(3, "Cy", Role::Member, false);
    s.publish(2, 33, MediaKind::Video);
    s.subscribe(3, 33);
    let outs = s.control(1, ClientMessage::MuteParticipant { participant_id: 2 });
    assert_eq!(msgs_to(&outs, 2), vec![ServerMessage::PleaseMute { by: 1 }]);
    assert!(msgs_to(&outs, 3).is_empty() && msgs_to(&outs, 1).is_empty());
    let outs = s.control(3, ClientMessage::MuteParticipant { participant_id: 2 });
    assert_eq!(error_codes(&outs, 3), vec!["forbidden"]);
    let outs = s.control(3, ClientMessage::Remove { participant_id: 2 });
    assert_eq!(error_codes(&outs, 3), vec!["forbidden"]);

    let outs = s.control(1, ClientMessage::Remove { participant_id: 2 });
    assert!(
        matches!(&msgs_to(&outs, 2)[0], ServerMessage::Goodbye { reason, .. } if reason == "removed")
    );
    assert_eq!(disconnects(&outs), vec![(2, "removed")]);
    let m3 = msgs_to(&outs, 3);
    assert!(m3.contains(&ServerMessage::TrackUnpublished { track_id: 33 }));
    assert!(m3.contains(&ServerMessage::ParticipantLeft {
        participant_id: 2,
        reason: "removed".into()
    }));
    assert_eq!(s.room.tracks().count(), 2);
    // The removed participant's frames are no longer accepted.
    s.media(2, video(33, 0, true));
    assert_eq!(s.room.stats().dropped.unknown_sender, 1);
}

#[test]
fn frames_for_foreign_unpublished_or_mismatched_tracks_are_dropped_and_counted() {
    let mut s = two_party();
    s.subscribe(2, 17);
    s.media(2, video(17, 0, true)); // Bob sends on Ann's track
    s.media(1, video(18, 0, true)); // Ann's screen slot is not published
    s.media(1, audio(17, 0, None)); // audio on a video track
    s.media(1, frame(MediaKind::Video, 17, 0, true, 3, 10)); // layer 3 does not exist
    let d = s.room.stats().dropped;
    assert_eq!(
        (d.not_owner, d.unpublished, d.kind_mismatch, d.bad_layer),
        (1, 1, 1, 1)
    );
    assert_eq!(s.room.stats().frames_out, 0);
    // Publishing someone else's track id is refused.
    let outs = s.publish(2, 17, MediaKind::Video);
    assert_eq!(error_codes(&outs, 2), vec!["bad_track"]);
    let outs = s.publish(2, 33, MediaKind::Audio); // camera slot with audio kind
    assert_eq!(error_codes(&outs, 2), vec!["bad_track"]);
}

#[test]
fn oversized_frames_are_dropped() {
    let mut s = Sim::new(RoomConfig {
        max_frame_len: 1000,
        ..RoomConfig::default()
    });
    s.join(1, "Ann", Role::Host, false);
    s.join(2, "Bob", Role::Member, false);
    s.publish(1, 17, MediaKind::Video);
    s.subscribe(2, 17);
    let outs = s.media(1, frame(MediaKind::Video, 17, 0, true, 0, 2000));
    assert!(media_to(&outs, 2).is_empty());
    assert_eq!(s.room.stats().dropped.oversized, 1);
}

#[test]
fn publish_rate_limit_drops_then_persistent_flood_disconnects() {
    let cfg = RoomConfig {
        publish_frames_per_sec: 100.0,
        publish_frames_burst: 100.0,
        ..RoomConfig::default()
    };
    let mut s = Sim::new(cfg);
    s.join(1, "Ann", Role::Host, false);
    s.join(2, "Bob", Role::Member, false);
    s.publish(1, 16, MediaKind::Audio);
    s.publish(2, 32, MediaKind::Audio);
    s.subscribe(1, 32);
    // Bob floods at 1000 frames/s; Ann publishes at a legal 50 frames/s throughout.
    let mut flood_at = None;
    for ms in 0..5000u32 {
        if ms % 20 == 0 {
            let outs = s.media(1, audio(16, ms / 20, None));
            assert!(disconnects(&outs).iter().all(|(c, _)| *c != 1));
        }
        if flood_at.is_none() {
            let outs = s.media(2, audio(32, ms, None));
            if let Some(&(who, reason)) = disconnects(&outs).first() {
                assert_eq!((who, reason), (2, "flood"));
                assert!(msgs_to(&outs, 1).contains(&ServerMessage::ParticipantLeft {
                    participant_id: 2,
                    reason: "flood".into()
                }));
                flood_at = Some(ms);
            }
        }
        s.advance(1);
    }
    let at = flood_at.expect("flooder disconnected");
    assert!(
        (2000..3100).contains(&at),
        "disconnected after ~3 flooding windows, at {at} ms"
    );
    assert!(s.room.stats().dropped.rate_limited > 1000);
    // Bob's frames that fit the rate were forwarded to Ann before that.
    assert!(s.room.stats().frames_out >= 100);
    assert_eq!(s.room.stats().flood_disconnects, 1);
}

#[test]
fn chat_assigns_ids_and_times_persists_and_limits() {
    let history = vec![quicmeet_proto::ChatMessage {
        id: 41,
        participant_id: 9,
        name: "Old".into(),
        text: "earlier".into(),
        ts_ms: WALL0 - 5000,
    }];
    let t0 = std::time::Instant::now();
    let mut s = Sim {
        room: quicmeet_sfu::Room::new(RoomConfig::default(), t0, WALL0, history),
        now: t0,
        t0,
    };
    s.join(1, "Ann", Role::Host, false);
    s.advance(1500);
    let outs = s.control(
        1,
        ClientMessage::Chat {
            text: "hello".into(),
        },
    );
    let persisted: Vec<_> = outs
        .iter()
        .filter_map(|o| match o {
            Output::ChatPersist(c) => Some(c.clone()),
            _ => None,
        })
        .collect();
    assert_eq!(persisted.len(), 1);
    assert_eq!(
        (
            persisted[0].id,
            persisted[0].ts_ms,
            persisted[0].participant_id
        ),
        (42, WALL0 + 1500, 1)
    );
    assert_eq!(
        msgs_to(&outs, 1),
        vec![ServerMessage::Chat(persisted[0].clone())]
    );

    let outs = s.control(
        1,
        ClientMessage::Chat {
            text: "x".repeat(2001),
        },
    );
    assert_eq!(error_codes(&outs, 1), vec!["too_long"]);
    let outs = s.control(
        1,
        ClientMessage::Chat {
            text: "é".repeat(2000),
        },
    );
    assert!(
        error_codes(&outs, 1).is_empty(),
        "2000 characters, not bytes"
    );
    let outs = s.control(1, ClientMessage::Chat { text: "  ".into() });
    assert_eq!(error_codes(&outs, 1), vec!["bad_request"]);

    // Burst of 10 (two used above), then 5/s.
    let mut ok = 0;
    let mut limited = 0;
    for i in 0..12 {
        let outs = s.control(
            1,
            ClientMessage::Chat {
                text: format!("m{i}"),
            },
        );
        if error_codes(&outs, 1).is_empty() {
            ok += 1
        } else {
            limited += 1
        }
    }
    assert_eq!((ok, limited), (8, 4));
    s.advance(1000);
    let ok_after: usize = (0..6)
        .map(|_| {
            error_codes(
                &s.control(
                    1,
                    ClientMessage::Chat {
                        text: "again".into(),
                    },
                ),
                1,
            )
            .is_empty() as usize
        })
        .sum();
    assert_eq!(ok_after, 5);

    // A later joiner's welcome carries the history, oldest first, ids increasing.
    let (_, outs) = s.join(2, "Bob", Role::Member, false);
    let ServerMessage::Welcome { chat, .. } = &msgs_to(&outs, 2)[0] else {
        panic!()
    };
    assert_eq!(chat[0].text, "earlier");
    assert!(chat
        .windows(2)
        .all(|w| w[0].id < w[1].id && w[0].ts_ms <= w[1].ts_ms));
    assert_eq!(chat.len(), 1 + 2 + 8 + 5);
}

#[test]
fn keyframe_requests_are_rate_limited_per_track_and_deferred_ones_follow() {
    let mut s = two_party();
    s.join(3, "Cy", Role::Member, false);
    s.media(1, video(17, 0, true));
    s.subscribe(2, 17);
    s.subscribe(3, 17);
    let outs = s.input(Input::KeyframeNeeded {
        from: ConnId(2),
        track_id: 17,
    });
    assert_eq!(keyframe_requests(&outs), vec![(1, 17, 0)]);
    s.advance(100);
    let outs = s.input(Input::KeyframeNeeded {
        from: ConnId(3),
        track_id: 17,
    });
    assert!(keyframe_requests(&outs).is_empty());
    let outs = s.control(2, ClientMessage::KeyframeRequest { track_id: 17 });
    assert!(keyframe_requests(&outs).is_empty());
    assert_eq!(
        s.room.poll_timeout(),
        Some(s.t0 + std::time::Duration::from_millis(500))
    );
    // Both waiting subscribers skip deltas.
    let outs = s.media(1, video(17, 1, false));
    assert!(media_to(&outs, 2).is_empty() && media_to(&outs, 3).is_empty());
    s.advance(400);
    let outs = s.input(Input::Tick);
    assert_eq!(
        keyframe_requests(&outs),
        vec![(1, 17, 0)],
        "deferred request sent when the interval ends"
    );
    // A keyframe cancels any deferred request and resumes everyone.
    s.advance(50);
    s.input(Input::KeyframeNeeded {
        from: ConnId(2),
        track_id: 17,
    });
    let outs = s.media(1, video(17, 2, true));
    assert_eq!(media_to(&outs, 2).len(), 1);
    assert_eq!(media_to(&outs, 3).len(), 1);
    s.advance(1000);
    assert!(keyframe_requests(&s.input(Input::Tick)).is_empty());
    assert!(s.room.stats().keyframe_requests_coalesced >= 2);
}

#[test]
fn subscribing_to_audio_makes_it_wanted_and_bumps_the_layers_version() {
    // A cluster node forwards what `wanted_layers` says once `layers_version` moves; an
    // audio-only subscription must move it too, or a remote publisher's audio never comes.
    let mut s = two_party();
    let before = s.room.layers_version();
    s.subscribe(2, 16);
    assert_eq!(s.room.wanted_layers(16), 0b001);
    assert_ne!(s.room.layers_version(), before);
    let after = s.room.layers_version();
    s.input(Input::Control(
        ConnId(2),
        ClientMessage::Unsubscribe { track_id: 16 },
    ));
    assert_eq!(s.room.wanted_layers(16), 0);
    assert_ne!(s.room.layers_version(), after);
}

#[test]
fn layer_switch_happens_at_the_next_keyframe_of_that_layer() {
    let mut s = two_party();
    s.media(1, video(17, 0, true));
    s.subscribe(2, 17);
    assert_eq!(s.room.wanted_layers(17), 0b001);
    s.advance(10);
    s.room.set_layer(s.now, ConnId(2), 17, 1).unwrap();
    let outs = s.drain();
    assert_eq!(keyframe_requests(&outs), vec![(1, 17, 1)]);
    assert_eq!(s.room.wanted_layers(17), 0b011);
    // Layer 0 keeps flowing until layer 1's keyframe.
    let outs = s.media(1, video(17, 1, false));
    assert_eq!(media_to(&outs, 2).len(), 1);
    let outs = s.input(Input::LayerMedia(frame(
        MediaKind::Video,
        17,
        0,
        false,
        1,
        50,
    )));
    assert!(
        media_to(&outs, 2).is_empty(),
        "a layer-1 delta before its keyframe is useless"
    );
    let outs = s.input(Input::LayerMedia(frame(
        MediaKind::Video,
        17,
        1,
        true,
        1,
        50,
    )));
    assert_eq!(
        msgs_to(&outs, 2),
        vec![ServerMessage::LayerChanged {
            track_id: 17,
            layer: 1,
            width: 640,
            height: 360
        }]
    );
    assert_eq!(media_to(&outs, 2)[0].header().layer, 1);
    let outs = s.media(1, video(17, 2, false));
    assert!(media_to(&outs, 2).is_empty(), "layer 0 no longer forwarded");
    assert_eq!(s.room.wanted_layers(17), 0b010);
    assert_eq!(s.room.subscription_layer(ConnId(2), 17), Some((1, Some(1))));
    assert_eq!(
        s.room.subscriptions(ConnId(2)).collect::<Vec<_>>(),
        vec![(17, 1, Some(1))]
    );
    // Transcoder frames must claim a lower layer; errors for bad API use.
    s.input(Input::LayerMedia(frame(
        MediaKind::Video,
        17,
        9,
        true,
        0,
        50,
    )));
    assert_eq!(s.room.stats().dropped.bad_layer, 1);
    assert!(s.room.set_layer(s.now, ConnId(2), 17, 3).is_err());
    assert!(s.room.set_layer(s.now, ConnId(2), 16, 1).is_err());
}

#[test]
fn subscribe_with_tile_size_picks_a_lower_layer() {
    let mut s = two_party();
    let outs = s.control(
        2,
        ClientMessage::Subscribe {
            track_id: 17,
            max_width: Some(320),
            max_height: Some(180),
            layer: None,
        },
    );
    assert_eq!(keyframe_requests(&outs), vec![(1, 17, 2)]);
    assert_eq!(s.room.subscription_layer(ConnId(2), 17), Some((2, None)));
    let outs = s.media(1, video(17, 0, true));
    assert!(
        media_to(&outs, 2).is_empty(),
        "layer 0 is not what it asked for"
    );
}

#[test]
fn active_speaker_follows_smoothed_audio_level_at_most_every_500ms() {
    let mut s = two_party();
    s.publish(2, 32, MediaKind::Audio);
    let mut announced = vec![];
    let mut last_at = None;
    for ms in (0..4000u64).step_by(20) {
        let seq = (ms / 20) as u32;
        // Ann talks (-20 dBov) for 2 s, then Bob talks louder (-10 dBov) while Ann goes quiet.
        let ann = if ms < 2000 { 20 } else { 90 };
        let bob = if ms < 2000 { 100 } else { 10 };
        for outs in [
            s.media(1, audio(16, seq, Some(ann))),
            s.media(2, audio(32, seq, Some(bob))),
        ] {
            for m in msgs_to(&outs, 1) {
                if let ServerMessage::ActiveSpeaker { participant_id } = m {
                    if let Some(prev) = last_at {
                        assert!(ms - prev >= 500, "announced at most every 500 ms");
                    }
                    last_at = Some(ms);
                    announced.push(participant_id);
                }
            }
        }
        s.advance(20);
    }
    assert_eq!(announced, vec![1, 2]);
}

#[test]
fn signal_goes_only_to_the_named_participant() {
    let mut s = two_party();
    s.join(3, "Cy", Role::Member, false);
    let data = serde_json::json!({"sdp": "offer"});
    let outs = s.control(
        2,
        ClientMessage::Signal {
            to: 3,
            data: data.clone(),
        },
    );
    assert_eq!(
        msgs_to(&outs, 3),
        vec![ServerMessage::Signal { from: 2, data }]
    );
    assert!(msgs_to(&outs, 1).is_empty() && msgs_to(&outs, 2).is_empty());
    let outs = s.control(
        2,
        ClientMessage::Signal {
            to: 99,
            data: serde_json::Value::Null,
        },
    );
    assert_eq!(error_codes(&outs, 2), vec!["unknown_participant"]);
}

#[test]
fn mute_hand_and_reaction_are_broadcast() {
    let mut s = two_party();
    let outs = s.control(
        2,
        ClientMessage::Mute {
            audio: true,
            video: false,
        },
    );
    assert_eq!(
        msgs_to(&outs, 1),
        vec![ServerMessage::MuteState {
            participant_id: 2,
            audio: true,
            video: false
        }]
    );
    let outs = s.control(2, ClientMessage::Hand { raised: true });
    assert_eq!(
        msgs_to(&outs, 1),
        vec![ServerMessage::Hand {
            participant_id: 2,
            raised: true
        }]
    );
    let outs = s.control(
        2,
        ClientMessage::Reaction {
            emoji: "🎉".into()
        },
    );
    assert_eq!(
        msgs_to(&outs, 1),
        vec![ServerMessage::Reaction {
            participant_id: 2,
            emoji: "🎉".into()
        }]
    );
    let (_, outs) = s.join(3, "Cy", Role::Member, false);
    let ServerMessage::Welcome { participants, .. } = &msgs_to(&outs, 3)[0] else {
        panic!()
    };
    let bob = participants.iter().find(|p| p.id == 2).unwrap();
    assert!(bob.audio_muted && bob.hand_raised && !bob.video_muted);
    let outs = s.control(2, ClientMessage::Ping { t: 7u64.into() });
    assert_eq!(
        msgs_to(&outs, 2),
        vec![ServerMessage::Pong { t: 7u64.into() }]
    );
}

#[test]
fn room_full_turns_joiners_away() {
    let mut s = Sim::new(RoomConfig {
        max_participants: 2,
        ..RoomConfig::default()
    });
    s.join(1, "Ann", Role::Host, false);
    s.join(2, "Bob", Role::Member, false);
    let outs = s.input(Input::Join(quicmeet_sfu::Join {
        conn: ConnId(3),
        name: "Cy".into(),
        email: "c@x".into(),
        role: Role::Member,
        lobby: false,
        transport: "websocket".into(),
    }));
    assert!(
        matches!(&msgs_to(&outs, 3)[0], ServerMessage::Goodbye { reason, .. } if reason == "room_full")
    );
    assert_eq!(disconnects(&outs), vec![(3, "room_full")]);
    assert_eq!(s.room.participant_count(), 2);
}

#[test]
fn leaving_unpublishes_tracks_and_drops_subscriptions() {
    let mut s = two_party();
    s.subscribe(2, 17);
    s.publish(2, 33, MediaKind::Video);
    s.subscribe(1, 33);
    let outs = s.input(Input::Leave(ConnId(1), "disconnected".into()));
    let m = msgs_to(&outs, 2);
    assert!(m.contains(&ServerMessage::TrackUnpublished { track_id: 16 }));
    assert!(m.contains(&ServerMessage::TrackUnpublished { track_id: 17 }));
    assert!(m.contains(&ServerMessage::ParticipantLeft {
        participant_id: 1,
        reason: "disconnected".into()
    }));
    assert_eq!(
        s.room.wanted_layers(33),
        0,
        "the leaver's subscription is gone"
    );
    let outs = s.control(2, ClientMessage::Leave {});
    assert_eq!(disconnects(&outs), vec![(2, "left")]);
    assert!(s.room.is_empty());
}

#[test]
fn slow_subscriber_queue_drops_video_to_next_keyframe_while_audio_survives() {
    let mut s = two_party();
    s.subscribe(2, 16);
    s.subscribe(2, 17);
    let mut q = SubscriberQueue::new(QueueConfig {
        max_video: 20,
        ..QueueConfig::default()
    });
    let feed = |s: &mut Sim, q: &mut SubscriberQueue, outs: Vec<Output>| {
        for o in outs {
            if let Output::Media {
                to: ConnId(2),
                frame,
            } = o
            {
                q.push_media(frame);
            }
        }
        while let Some(ev) = q.poll_event() {
            if let QueueEvent::NeedKeyframe { track_id, .. } = ev {
                let outs = s.input(Input::KeyframeNeeded {
                    from: ConnId(2),
                    track_id,
                });
                assert!(keyframe_requests(&outs).len() <= 1);
            }
        }
    };
    // The subscriber's link is stalled: nothing is popped for 1 s (50 audio, 30 video frames).
    for i in 0..50u32 {
        let outs = s.media(1, audio(16, i, None));
        feed(&mut s, &mut q, outs);
        if i % 5 == 0 {
            let outs = s.media(1, video(17, i / 5, i == 0));
            feed(&mut s, &mut q, outs);
        }
        s.advance(20);
    }
    for i in 10..30u32 {
        let outs = s.media(1, video(17, i, false));
        feed(&mut s, &mut q, outs);
    }
    let st = q.stats();
    assert!(st.dropped_video > 0, "video was cut");
    assert_eq!(st.dropped_audio, 0, "audio survives video pressure");
    assert!(q.is_waiting_for_keyframe(17));
    assert!(s.room.stats().keyframe_requests >= 1);
    // The publisher's keyframe resumes video; the drained order is audio first, then video.
    let outs = s.media(1, video(17, 30, true));
    feed(&mut s, &mut q, outs);
    let outs = s.media(1, video(17, 31, false));
    feed(&mut s, &mut q, outs);
    let mut kinds = vec![];
    let mut video_seqs = vec![];
    while let Some(Popped::Media {
        frame,
        starts_group,
    }) = q.pop()
    {
        kinds.push(frame.header().kind);
        if frame.header().kind == MediaKind::Video {
            video_seqs.push((frame.header().seq, starts_group));
        }
    }
    let first_video = kinds.iter().position(|k| *k == MediaKind::Video).unwrap();
    assert_eq!(first_video, 50, "all 50 audio frames first");
    assert_eq!(video_seqs, vec![(30, true), (31, false)]);
}

#[test]
fn a_refused_publisher_frame_breaks_its_group_until_the_next_keyframe() {
    let mut s = Sim::new(RoomConfig {
        publish_frames_per_sec: 10.0,
        publish_frames_burst: 3.0,
        ..RoomConfig::default()
    });
    s.join(1, "Ann", Role::Host, false);
    s.join(2, "Bob", Role::Member, false);
    s.publish(1, 17, MediaKind::Video);
    s.subscribe(2, 17);
    let mut got = vec![];
    let mut requests = vec![];
    for seq in 0..4 {
        let outs = s.media(1, video(17, seq, seq == 0)); // the 4th exceeds the burst
        got.extend(media_to(&outs, 2).iter().map(|f| f.header().seq));
        requests.extend(keyframe_requests(&outs));
    }
    assert_eq!(s.room.stats().dropped.rate_limited, 1);
    // The subscribe itself asked for a keyframe a moment ago, so this one is deferred...
    assert!(requests.is_empty());
    assert_eq!(s.room.stats().keyframe_requests_coalesced, 1);
    s.advance(500);
    // ...and sent when the interval is over.
    assert_eq!(keyframe_requests(&s.input(Input::Tick)), vec![(1, 17, 0)]);
    let outs = s.media(1, video(17, 4, false));
    assert!(
        media_to(&outs, 2).is_empty(),
        "the rest of a group with a hole is useless"
    );
    assert_eq!(s.room.stats().skipped_broken_group, 1);
    let outs = s.media(1, video(17, 5, true));
    got.extend(media_to(&outs, 2).iter().map(|f| f.header().seq));
    assert_eq!(got, vec![0, 1, 2, 5]);
}

#[test]
fn the_publisher_hears_when_nobody_needs_its_full_layer() {
    let demand = |outs: &[Output]| -> Vec<ServerMessage> {
        msgs_to(outs, 1)
            .into_iter()
            .filter(|m| matches!(m, ServerMessage::TrackDemand { .. }))
            .collect()
    };
    let mut s = two_party();
    s.media(1, video(17, 0, true));
    // A full-layer subscriber is what a publisher assumes: nothing to say.
    assert!(demand(&s.subscribe(2, 17)).is_empty());
    s.room.set_layer(s.now, ConnId(2), 17, 1).unwrap();
    assert!(
        demand(&s.drain()).is_empty(),
        "layer 0 still flows until layer 1's keyframe"
    );
    let outs = s.input(Input::LayerMedia(frame(
        MediaKind::Video,
        17,
        1,
        true,
        1,
        50,
    )));
    assert_eq!(
        demand(&outs),
        vec![ServerMessage::TrackDemand {
            track_id: 17,
            layer: 1,
            viewers: 1
        }]
    );
    let outs = s.control(2, ClientMessage::Unsubscribe { track_id: 17 });
    assert_eq!(
        demand(&outs),
        vec![ServerMessage::TrackDemand {
            track_id: 17,
            layer: 0,
            viewers: 0
        }]
    );
    assert!(msgs_to(&outs, 2).is_empty(), "only the publisher hears it");
}
