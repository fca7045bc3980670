import { StepLadder } from './step-ladder';

/**
 * The publisher follows its uplink. Pure code, no clock of its own: every tick it gets what the
 * transport knows (bytes waiting to be sent, video frames the transport had to drop, the control
 * round trip) and the bitrate it asked the encoder for, and answers with the encoder settings to
 * use. Queueing shows either as bytes waiting (WebSocket's bufferedAmount, our own WebTransport
 * queue) or, where the browser hides its send queue (WebTransport accepts writes at once), as a
 * round trip far above the lowest one seen in the last minute (delay-based, as GCC does; measured
 * in a real browser behind a 200 kbit/s link: 3 ms → 0.5–2 s, with no bytes waiting at all).
 * The round trip also grows when the downlink is congested or the page is starved of CPU; then
 * sending less is still the right answer (it frees the shared link, and the CPU encodes less). Down: bitrate
 * first, then frame rate, then resolution, one step per second at most. Up: one step at a time,
 * only after the uplink has been clear for a while, waiting longer after each quick fall
 * (step-ladder.ts) so a link at its limit does not oscillate.
 */

export interface UplinkStep {
  /** Share of the full bitrate. */
  bitrate: number;
  /** Frames per second. */
  framerate: number;
  /** Share of the full width and height. */
  scale: number;
}

/** From full quality down: bitrate, then frame rate, then resolution. */
export const LADDER: readonly UplinkStep[] = [
  { bitrate: 1, framerate: 30, scale: 1 },
  { bitrate: 0.7, framerate: 30, scale: 1 },
  { bitrate: 0.5, framerate: 30, scale: 1 },
  { bitrate: 0.35, framerate: 30, scale: 1 },
  { bitrate: 0.35, framerate: 20, scale: 1 },
  { bitrate: 0.35, framerate: 15, scale: 1 },
  { bitrate: 0.25, framerate: 15, scale: 0.5 },
  { bitrate: 0.15, framerate: 10, scale: 0.5 },
];

export interface UplinkSample {
  now: number;
  /** Media bytes handed to the transport and not yet sent (WebSocket bufferedAmount, our WebTransport queue). */
  backlogBytes: number;
  /** Video frames the transport dropped since the last sample because it could not keep up. */
  drops: number;
  /** Bitrate the encoder runs at now, bit/s. */
  bitrate: number;
  /** The latest control round trip, ms, if known. */
  rttMs?: number | null;
  /** The server's `uplink_report`, if recent: the queue it sees in front of our audio, ms. */
  serverQueueMs?: number | null;
  /** ... and the media rate that arrived from us, kbit/s. */
  deliveredKbps?: number | null;
  /** Full-quality video bitrate of what we send, bit/s (to fit a cut to `deliveredKbps`). */
  fullVideoBitrate?: number;
  /** What we send besides video (audio), bit/s. */
  otherBitrate?: number;
}

/** Backlog that counts as congestion, in seconds of the current bitrate. */
const HIGH_S = 0.25;
/** Backlog that counts as clear. */
const LOW_S = 0.05;
/**
 * The server's one-way measure (uplink_report.queue_ms), in seconds, that counts as congestion and
 * as clear. It sees the queue directly, so it can be held to what the audio can bear, unlike the
 * backlog above, which also holds a keyframe's burst for a moment on any link.
 */
const SERVER_HIGH_S = 0.06;
const SERVER_LOW_S = 0.03;
/**
 * For this long after a climb, a server queue past the clear mark already says the new step does
 * not fit: it is undone before that queue reaches what the audio can bear.
 */
const PROBE_MS = 2000;
/** Share of what the server says arrived that a congested publisher cuts to, audio included: the rest drains the queue. */
const FIT = 0.8;
/**
 * After a standing queue, the least rate the server said arrived meanwhile is what the link
 * carries: for this long after the last such queue, no climb to a step that needs more than
 * CLIMB_ROOM of it (each would only fill the queue in front of the audio again).
 */
const CARRIED_FOR_MS = 30_000;
const CLIMB_ROOM = 0.95;
/** How long the lowest round trip is remembered (the path's own delay, without queueing). */
const RTT_FLOOR_WINDOW_MS = 60_000;

export class UplinkController {
  private readonly ladder = new StepLadder({
    steps: LADDER.length - 1,
    fallEveryMs: 1000,
    // Congestion right after a climb means the climb overshot: fall back at once.
    fallAfterClimbMs: 0,
    climbAfterMs: 4000,
    climbAfterMaxMs: 30_000,
    backOffFrom: 'fall',
  });
  /** The least rate (bit/s) the server said arrived under a standing queue, and when the last one was. */
  private carried: { bps: number; at: number } | null = null;
  /** Round trips of the last minute, for the floor (time, ms). */
  private rtts: { at: number; ms: number }[] = [];

  get step(): UplinkStep {
    return LADDER[this.ladder.level];
  }

  get stepIndex(): number {
    return this.ladder.level;
  }

  /** Feeds one sample; returns the new step when it changed, else null. */
  sample(s: UplinkSample): UplinkStep | null {
    const backlogS = Math.max(s.bitrate > 0 ? (s.backlogBytes * 8) / s.bitrate : 0, this.queueDelayS(s));
    const serverS = (s.serverQueueMs ?? 0) / 1000;
    // A standing queue (twice the threshold) goes straight to what fits; a smaller one, which a
    // page starved of CPU can also show, one step at a time.
    const standing = serverS > 2 * SERVER_HIGH_S;
    if (standing && s.deliveredKbps) {
      const bps = s.deliveredKbps * 1000;
      const fresh = this.carried !== null && s.now - this.carried.at < CARRIED_FOR_MS;
      this.carried = { bps: fresh ? Math.min(this.carried!.bps, bps) : bps, at: s.now };
    }
    const fit = standing ? this.fittingStep(s) : 0;
    const probeFailed = serverS > SERVER_LOW_S && this.ladder.sinceClimb(s.now) < PROBE_MS;
    if (s.drops > 0 || backlogS > HIGH_S || serverS > SERVER_HIGH_S || probeFailed) return this.ladder.hot(s.now, fit) ? this.step : null;
    if (backlogS <= LOW_S && serverS <= SERVER_LOW_S && this.climbFits(s)) return this.ladder.calm(s.now) ? this.step : null;
    this.ladder.hold();
    return null;
  }

  /** Whether the next step up needs no more than CLIMB_ROOM of what the link carried (true when unknown or old). */
  private climbFits(s: UplinkSample): boolean {
    const level = this.ladder.level;
    if (level === 0 || !this.carried || !s.fullVideoBitrate || s.now - this.carried.at >= CARRIED_FOR_MS) return true;
    return LADDER[level - 1].bitrate * s.fullVideoBitrate + (s.otherBitrate ?? 0) <= CLIMB_ROOM * this.carried.bps;
  }

  /** The first step whose video fits in FIT of what the server says arrived (0 when it does not say). */
  private fittingStep(s: UplinkSample): number {
    if (!s.deliveredKbps || !s.fullVideoBitrate) return 0;
    const fit = s.deliveredKbps * 1000 * FIT - (s.otherBitrate ?? 0);
    const i = LADDER.findIndex((step) => step.bitrate * s.fullVideoBitrate! <= fit);
    return i < 0 ? LADDER.length - 1 : i;
  }

  /** How far the round trip is above its floor of the last minute, in seconds. */
  private queueDelayS(s: UplinkSample): number {
    if (s.rttMs === null || s.rttMs === undefined || !Number.isFinite(s.rttMs)) return 0;
    while (this.rtts.length && s.now - this.rtts[0].at > RTT_FLOOR_WINDOW_MS) this.rtts.shift();
    // Kept sorted by time with a falling tail (a monotonic queue): the first entry is the floor.
    while (this.rtts.length && this.rtts[this.rtts.length - 1].ms >= s.rttMs) this.rtts.pop();
    this.rtts.push({ at: s.now, ms: s.rttMs });
    return Math.max(0, s.rttMs - this.rtts[0].ms) / 1000;
  }
}
