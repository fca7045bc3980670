//! The sending half of a session: forwards control messages under the server's rate limit
//! and, once the room's gate opens and until the run's stop, sends each track's frames of the
//! pre-encoded clips on schedule (and chat, when asked).

use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::sync::Arc;
use std::time::{Duration, Instant};

use quicmeet_client::{now_us, TrackPublisher};
use quicmeet_proto::{ClientMessage, MediaKind};
use tokio::sync::mpsc;
use tokio::time::sleep_until;

use super::connection::ConnTx;
use super::{Ctx, Spec};
use crate::media::Player;
use crate::stats::kind_index;

/// Control messages per second the sender allows itself (the server allows 50).
const CONTROL_RATE: f64 = 40.0;
/// Burst of control messages (the server allows 100).
const CONTROL_BURST: f64 = 80.0;

struct Track {
    kind: MediaKind,
    slot: u32,
    player: Player,
    publisher: TrackPublisher,
    due: Instant,
}

/// Owns the sending half: forwards control messages and, once the room's gate opens and
/// until the run's stop, sends each track's frames on schedule.
pub(super) async fn run(
    ctx: Arc<Ctx>,
    spec: Spec,
    mut conn: ConnTx,
    pid: u32,
    slots: Vec<(u32, MediaKind)>,
    mut ctl: mpsc::Receiver<ClientMessage>,
    keyframes: Arc<[AtomicBool; 3]>,
) {
    let sh = &ctx.shared;
    let mut tracks: Vec<Track> = slots
        .iter()
        .filter_map(|(slot, kind)| {
            let clip = match kind {
                MediaKind::Audio => ctx.lib.audio.clone(),
                MediaKind::Video => ctx.lib.video.clone(),
                MediaKind::Screen => ctx.lib.screen.clone(),
            }?;
            let mut publisher = TrackPublisher::new(pid * 16 + slot, *kind);
            if *kind == MediaKind::Audio {
                publisher.set_audio_level(Some(30 + (spec.k as u8 % 40)));
            }
            Some(Track {
                kind: *kind,
                slot: *slot,
                player: Player::new(clip),
                publisher,
                due: Instant::now(),
            })
        })
        .collect();
    let per_room = ctx.args.per_room().max(1) as f64;
    let chat_every = (ctx.args.chat_rate > 0.0)
        .then(|| Duration::from_secs_f64((per_room / ctx.args.chat_rate).max(0.25)));
    let mut chat_due = Instant::now();
    let mut go = ctx.gates[spec.room].subscribe();
    let mut stop = ctx.stop.clone();
    let mut sending = false;
    let mut stopped = *stop.borrow();
    let mut ctl_tokens = CONTROL_BURST;
    let mut ctl_last = Instant::now();
    let never = Instant::now() + Duration::from_secs(365 * 86_400);
    // Publishers' video starts staggered over one keyframe interval, as real cameras are
    // not in step; with every keyframe at the same instant the fan-out would be a burst
    // no real meeting produces.
    let stagger = Duration::from_secs_f64(
        ctx.args.keyframe_secs.max(0.0) * spec.k as f64
            / ctx.args.publishers_per_room.max(1) as f64,
    );
    let start_sending = |tracks: &mut Vec<Track>, chat_due: &mut Instant| {
        let now = Instant::now();
        for t in tracks.iter_mut() {
            t.due = if t.kind == MediaKind::Audio {
                now
            } else {
                now + stagger
            };
        }
        if let Some(e) = chat_every {
            *chat_due = now + e.mul_f64((spec.k as f64 + 0.5) / per_room);
        }
    };
    if go.borrow().is_some() && !stopped {
        sending = true;
        start_sending(&mut tracks, &mut chat_due);
    }
    loop {
        let next = if sending {
            let media = tracks.iter().map(|t| t.due).min().unwrap_or(never);
            if chat_every.is_some() {
                media.min(chat_due)
            } else {
                media
            }
        } else {
            never
        };
        tokio::select! {
            biased;
            m = ctl.recv() => match m {
                Some(m) => {
                    // Stay under the server's control-message limit (PROTOCOL §5.9: 50/s,
                    // burst 100): a big meeting's joiner has one subscribe per track.
                    let now = Instant::now();
                    ctl_tokens = (ctl_tokens
                        + now.duration_since(ctl_last).as_secs_f64() * CONTROL_RATE)
                        .min(CONTROL_BURST);
                    ctl_last = now;
                    if ctl_tokens < 1.0 {
                        let wait = Duration::from_secs_f64((1.0 - ctl_tokens) / CONTROL_RATE);
                        tokio::time::sleep(wait).await;
                        ctl_tokens = 1.0;
                        ctl_last = Instant::now();
                    }
                    ctl_tokens -= 1.0;
                    if let Err(e) = conn.send_control(&m).await {
                        tracing::debug!(error = %e, "control send failed");
                        sh.error("send_control");
                    }
                }
                None => break,
            },
            _ = stop.changed(), if !stopped => {
                stopped = true;
                sending = false;
                record_last(&ctx, &spec, &tracks);
            }
            r = go.changed(), if !sending && !stopped => {
                if r.is_ok() && go.borrow().is_some() {
                    sending = true;
                    start_sending(&mut tracks, &mut chat_due);
                }
            }
            _ = sleep_until(next.into()), if sending => {
                let now = Instant::now();
                for t in tracks.iter_mut() {
                    if t.due > now {
                        continue;
                    }
                    sh.sender_lag.record(now.duration_since(t.due).as_micros() as u64);
                    if keyframes[t.slot as usize].swap(false, Relaxed) {
                        t.player.want_keyframe = true;
                    }
                    let f = t.player.next_frame();
                    let Ok(frame) = t.publisher.frame(f.keyframe, &f.data) else {
                        sh.error("frame_encode");
                        continue;
                    };
                    match conn.send_frame(&frame).await {
                        Ok(()) => sh.sent(t.kind, frame.len()),
                        Err(e) => {
                            tracing::debug!(error = %e, "media send failed");
                            // The frame is numbered: receivers will count it lost.
                            sh.sent(t.kind, frame.len());
                            sh.error(format!("send_{}", crate::stats::KIND_NAMES[kind_index(t.kind)]));
                        }
                    }
                    let iv = t.player.interval();
                    t.due += iv;
                    let now = Instant::now();
                    if now > t.due + iv * 10 {
                        // Far behind schedule (CPU starved): skip ahead rather than burst.
                        sh.error("sender_behind_schedule");
                        t.due = now;
                    }
                }
                if let Some(e) = chat_every {
                    if chat_due <= Instant::now() {
                        let m = ClientMessage::Chat { text: format!("lt {}", now_us()) };
                        if conn.send_control(&m).await.is_ok() {
                            sh.chat_sent.fetch_add(1, Relaxed);
                        }
                        chat_due += e;
                    }
                }
            }
        }
    }
    if !stopped {
        record_last(&ctx, &spec, &tracks);
    }
    conn.close().await;
}

fn record_last(ctx: &Ctx, spec: &Spec, tracks: &[Track]) {
    let mut last = ctx.shared.last_seq.lock();
    for t in tracks {
        let n = t.publisher.next_seq();
        if n > 0 {
            last.insert((spec.room, t.publisher.track_id()), n - 1);
        }
    }
}
