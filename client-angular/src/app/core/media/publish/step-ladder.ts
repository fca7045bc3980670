/**
 * The one step-down / step-up mechanism the camera's three controllers share (encode-load.ts for
 * the encoder's own time, cpu-pressure.ts for the machine's CPU, uplink.ts for the network). Each
 * controller decides what counts as hot, calm or neither from its own signal; this decides when
 * that moves the camera a step. Pure code, no clock of its own: the caller passes the time.
 *
 * Falls are quick and rate-limited; climbs wait for a stretch of calm, one step at a time. A fall
 * soon after the last climb (a climb that did not hold) doubles the calm needed before the next
 * climb, up to a cap, so a camera at the limit of its CPU or link does not flip back and forth; a
 * long stretch without a fall brings the patience back to normal.
 */

export interface StepTiming {
  /** Steps below the top: the level runs from 0 (no limit) to `steps`. */
  steps: number;
  /** At most one fall per this long. */
  fallEveryMs: number;
  /** No fall sooner than this after a climb (0: a climb that overshoots may fall back at once). */
  fallAfterClimbMs: number;
  /** Calm needed before a climb, at first and after a long stretch without a fall. */
  climbAfterMs: number;
  /** The most the calm needed may grow to. */
  climbAfterMaxMs: number;
  /**
   * What makes a fall "soon", doubling the calm needed: within twice that calm of the last climb,
   * or (`'fall'`) of the last fall, so that a run of falls also counts (the uplink: a link that
   * needed several steps down is near its limit, and probing it again every few seconds hurts).
   */
  backOffFrom: 'climb' | 'fall';
}

export class StepLadder {
  private current = 0;
  private lastFall = -Infinity;
  private lastClimb = -Infinity;
  private calmSince: number | null = null;
  private patience: number;

  constructor(private readonly t: StepTiming) {
    this.patience = t.climbAfterMs;
  }

  /** 0 at the top, `steps` at the bottom. */
  get level(): number {
    return this.current;
  }

  /** How long ago the last climb was, ms (Infinity before the first). */
  sinceClimb(now: number): number {
    return now - this.lastClimb;
  }

  /** The calm needed before the next climb, ms. */
  get climbAfterMs(): number {
    return this.patience;
  }

  /**
   * The signal says too much: one step down if the timing allows, or straight to `atLeast` when
   * that is lower (the uplink, when the server says what its link carried). Returns whether it fell.
   */
  hot(now: number, atLeast = 0): boolean {
    this.calmSince = null;
    if (this.current >= this.t.steps) return false;
    if (now - this.lastFall < this.t.fallEveryMs || now - this.lastClimb < this.t.fallAfterClimbMs) return false;
    const from = this.t.backOffFrom === 'climb' ? this.lastClimb : this.lastFall;
    if (now - from < this.patience * 2) this.patience = Math.min(this.t.climbAfterMaxMs, this.patience * 2);
    this.current = Math.min(this.t.steps, Math.max(this.current + 1, atLeast));
    this.lastFall = now;
    return true;
  }

  /** The signal is between its thresholds (or not yet judged): no step, and the calm starts over. */
  hold(): void {
    this.calmSince = null;
  }

  /** The signal says there is room: one step up after enough calm. Returns whether it climbed. */
  calm(now: number): boolean {
    this.calmSince ??= now;
    if (this.current > 0 && now - this.calmSince >= this.patience) {
      this.current--;
      this.lastClimb = now;
      // The next climb needs a whole new stretch of calm, counted from this one.
      this.calmSince = now;
      return true;
    }
    if (now - this.lastFall > this.t.climbAfterMaxMs) this.patience = this.t.climbAfterMs;
    return false;
  }
}
