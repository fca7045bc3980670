/**
 * How much audio to hold before playing one remote speaker: the jitter buffer's target, from the
 * jitter we measure. Pure code, no clock of its own (the caller passes `now`), so the policy is
 * specified exactly (audio-jitter.spec.ts); the AudioWorklet only carries it out.
 *
 * - Jitter is measured like RFC 3550 §6.4.1: for each packet, D = how much later (or earlier) it
 *   arrived than its capture timestamp says it should, against the previous packet; J moves 1/16
 *   of the way to |D|. J alone reacts slowly to one late burst, so the largest |D| of the last
 *   2 s is kept as well (a spike is covered at once, not after a glitch).
 * - The target is a bounded multiple of that: 3·J, the recent peak or 20 ms (one Opus frame),
 *   whichever is largest, plus what underruns added; never above 120 ms (past that, audio is
 *   late enough to hurt a conversation more than a gap does).
 * - It grows at once (a late packet would otherwise be a gap) and shrinks slowly, at most 10 ms
 *   per second: the worklet plays the excess slightly faster, so shrinking is inaudible.
 * - An underrun (the worklet ran dry) adds 20 ms, which wears off at 2 ms per second: a link
 *   that keeps running dry holds a larger buffer, one that calmed down gets its latency back.
 */

export const MIN_TARGET_MS = 20;
export const MAX_TARGET_MS = 120;
/** Fastest the target comes down, ms per second. */
export const SHRINK_MS_PER_S = 10;
/** What one underrun adds, and how fast that wears off (ms per second). */
export const UNDERRUN_STEP_MS = 20;
export const UNDERRUN_DECAY_MS_PER_S = 2;
/** How long a jitter peak is remembered. */
export const PEAK_WINDOW_MS = 2000;
/** The target is this many times the smoothed jitter. */
const JITTER_MULTIPLE = 3;

export class AudioJitter {
  /** RFC 3550 interarrival jitter, ms. */
  jitterMs = 0;
  private prev: { arrival: number; capture: number } | null = null;
  /** Recent |D| values (time, ms) for the peak window. */
  private peaks: { at: number; d: number }[] = [];
  private boost = 0;
  private target = MIN_TARGET_MS;
  private lastAt: number | null = null;
  underruns = 0;

  /** A packet arrived at `nowMs` (page clock) carrying the sender's capture time (µs). */
  arrival(nowMs: number, captureTsUs: number): void {
    const capture = captureTsUs / 1000;
    if (this.prev) {
      const d = nowMs - this.prev.arrival - (capture - this.prev.capture);
      // A packet from before the previous one (reordered), or a jump of the sender's clock
      // (a new stream after a reconnect): not jitter, start over from this packet.
      if (capture > this.prev.capture && Math.abs(d) < 1000) {
        this.jitterMs += (Math.abs(d) - this.jitterMs) / 16;
        this.peaks.push({ at: nowMs, d: Math.abs(d) });
      }
    }
    this.prev = { arrival: nowMs, capture };
    this.advance(nowMs);
  }

  /** The worklet ran out of this speaker's audio. */
  underrun(nowMs: number): void {
    this.advance(nowMs);
    this.underruns++;
    this.boost = Math.min(MAX_TARGET_MS, this.boost + UNDERRUN_STEP_MS);
    this.target = Math.max(this.target, this.need());
  }

  /** The target buffer, ms, as of `nowMs`. */
  targetMs(nowMs: number): number {
    this.advance(nowMs);
    return this.target;
  }

  private need(): number {
    const peak = this.peaks.reduce((m, p) => Math.max(m, p.d), 0);
    return Math.min(MAX_TARGET_MS, Math.max(MIN_TARGET_MS, JITTER_MULTIPLE * this.jitterMs, peak) + this.boost);
  }

  private advance(nowMs: number): void {
    const dt = this.lastAt === null ? 0 : Math.max(0, nowMs - this.lastAt) / 1000;
    this.lastAt = nowMs;
    while (this.peaks.length && nowMs - this.peaks[0].at > PEAK_WINDOW_MS) this.peaks.shift();
    if (this.peaks.length > 200) this.peaks.splice(0, this.peaks.length - 200);
    this.boost = Math.max(0, this.boost - UNDERRUN_DECAY_MS_PER_S * dt);
    const need = this.need();
    this.target = need >= this.target ? need : Math.max(need, this.target - SHRINK_MS_PER_S * dt);
  }
}
