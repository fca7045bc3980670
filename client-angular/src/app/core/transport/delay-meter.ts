/**
 * The receiver's measure of queueing on its downlink, sent as `receiver_report`
 * (PROTOCOL.md §5.6, receiver reports).
 *
 * A queue at the bottleneck delays every packet behind it. The server sees that in its round
 * trip only when it talks to this browser end to end; past a proxy that ends the TCP
 * connection it cannot. Each remote audio frame's transit (arrival − capture, two clocks, so
 * known up to a constant) grows by the time it waited. Per track the meter keeps the least
 * transit of the last 10 s (the path empty) and the least of the current interval: a standing
 * queue raises every frame of the interval, a busy main thread (frames read late, then at once)
 * does not raise the least of them. The report is the least excess over the tracks: a queue on
 * this downlink delays all of them, one publisher's congested uplink only its own.
 */

/** How long the least transit is remembered, seconds. */
export const BASE_WINDOW_SECS = 10;
/** How often to report, ms. */
export const REPORT_EVERY_MS = 200;
/** Frames a track needs in an interval to count. */
const MIN_FRAMES = 3;

interface TrackDelay {
  /** Least transit per second of arrival: [second, µs]. */
  base: [number, number][];
  intervalMin: number;
  frames: number;
  lastUs: number;
}

export class DelayMeter {
  private readonly tracks = new Map<number, TrackDelay>();

  /** An audio frame of `trackId`, captured at `captureUs` (publisher's clock), arrived at `receivedUs` (ours). */
  onAudio(trackId: number, captureUs: number, receivedUs: number): void {
    const transit = receivedUs - captureUs;
    const sec = Math.floor(receivedUs / 1e6);
    let t = this.tracks.get(trackId);
    if (!t) {
      t = { base: Array.from({ length: BASE_WINDOW_SECS }, () => [-1, Infinity] as [number, number]), intervalMin: Infinity, frames: 0, lastUs: receivedUs };
      this.tracks.set(trackId, t);
    }
    t.lastUs = receivedUs;
    t.intervalMin = Math.min(t.intervalMin, transit);
    t.frames++;
    const slot = t.base[sec % BASE_WINDOW_SECS];
    if (slot[0] !== sec) {
      slot[0] = sec;
      slot[1] = transit;
    } else {
      slot[1] = Math.min(slot[1], transit);
    }
  }

  /** Ends the interval at `nowUs`: its queueing delay in whole ms, or null when no track had enough frames. */
  report(nowUs: number): number | null {
    const sec = Math.floor(nowUs / 1e6);
    let least: number | null = null;
    for (const [id, t] of this.tracks) {
      if (nowUs - t.lastUs >= BASE_WINDOW_SECS * 1e6) {
        this.tracks.delete(id);
        continue;
      }
      if (t.frames >= MIN_FRAMES) {
        let base = t.intervalMin;
        for (const [s, m] of t.base) {
          if (s >= 0 && sec - s < BASE_WINDOW_SECS) base = Math.min(base, m);
        }
        const excess = Math.max(0, t.intervalMin - base);
        least = least === null ? excess : Math.min(least, excess);
      }
      t.intervalMin = Infinity;
      t.frames = 0;
    }
    return least === null ? null : Math.floor(least / 1000);
  }

  /** Forgets everything (a new connection). */
  clear(): void {
    this.tracks.clear();
  }
}
