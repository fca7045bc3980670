/**
 * The publisher follows its uplink. Pure code, no clock of its own: every tick it gets what the
 * transport knows (bytes waiting to be sent, video frames the transport had to drop) and the
 * bitrate it asked the encoder for, and answers with the encoder settings to use. Down: bitrate
 * first, then frame rate, then resolution, one step per second at most. Up: one step at a time,
 * only after the uplink has been clear for a while, waiting longer after each fall so a link at
 * its limit does not oscillate.
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
}

/** Backlog that counts as congestion, in seconds of the current bitrate. */
const HIGH_S = 0.25;
/** Backlog that counts as clear. */
const LOW_S = 0.05;
const DOWN_EVERY_MS = 1000;
const UP_AFTER_MS = 4000;
const UP_AFTER_MAX_MS = 30_000;

export class UplinkController {
  private level = 0;
  private lastDown = -Infinity;
  private clearSince: number | null = null;
  private upAfter = UP_AFTER_MS;

  get step(): UplinkStep {
    return LADDER[this.level];
  }

  get stepIndex(): number {
    return this.level;
  }

  /** Feeds one sample; returns the new step when it changed, else null. */
  sample(s: UplinkSample): UplinkStep | null {
    const backlogS = s.bitrate > 0 ? (s.backlogBytes * 8) / s.bitrate : 0;
    if (s.drops > 0 || backlogS > HIGH_S) {
      this.clearSince = null;
      if (this.level < LADDER.length - 1 && s.now - this.lastDown >= DOWN_EVERY_MS) {
        this.level++;
        // Falling again soon after climbing means the link is at its limit: climb more slowly.
        if (s.now - this.lastDown < this.upAfter * 2) this.upAfter = Math.min(UP_AFTER_MAX_MS, this.upAfter * 2);
        this.lastDown = s.now;
        return this.step;
      }
      return null;
    }
    if (backlogS > LOW_S) {
      this.clearSince = null;
      return null;
    }
    this.clearSince ??= s.now;
    if (this.level > 0 && s.now - this.clearSince >= this.upAfter) {
      this.level--;
      this.clearSince = s.now;
      return this.step;
    }
    // A long calm brings the patience back to normal.
    if (s.now - this.lastDown > UP_AFTER_MAX_MS) this.upAfter = UP_AFTER_MS;
    return null;
  }
}
