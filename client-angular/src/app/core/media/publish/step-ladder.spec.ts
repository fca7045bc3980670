import { StepLadder, StepTiming } from './step-ladder';

const TIMING: StepTiming = { steps: 3, fallEveryMs: 1000, fallAfterClimbMs: 1000, climbAfterMs: 4000, climbAfterMaxMs: 16_000, backOffFrom: 'climb' };

/** Calls `feed` every `everyMs` from `from` until `until` (exclusive); returns the times it moved. */
function run(from: number, until: number, everyMs: number, feed: (t: number) => boolean): number[] {
  const moved = [];
  for (let t = from; t < until; t += everyMs) if (feed(t)) moved.push(t);
  return moved;
}

describe('StepLadder (the step-down / step-up mechanism of the camera controllers)', () => {
  it('falls one step per fallEveryMs at most, and never below the bottom', () => {
    const l = new StepLadder(TIMING);
    const falls = run(0, 10_000, 100, (t) => l.hot(t));
    expect(falls).toEqual([0, 1000, 2000]);
    expect(l.level).toBe(3);
  });

  it('climbs one step per stretch of calm, each stretch counted from the last climb', () => {
    const l = new StepLadder(TIMING);
    l.hot(0);
    l.hot(1000);
    expect(l.level).toBe(2);
    const climbs = run(5000, 30_000, 100, (t) => l.calm(t));
    expect(climbs).toEqual([9000, 13_000]);
    expect(l.level).toBe(0);
    // At the top, calm changes nothing.
    expect(l.calm(40_000)).toBe(false);
  });

  it('starts the calm over after a sample between the thresholds or a hot one', () => {
    const l = new StepLadder(TIMING);
    l.hot(0);
    run(1000, 4500, 100, (t) => l.calm(t));
    l.hold();
    expect(run(4500, 8500, 100, (t) => l.calm(t))).toEqual([]);
    expect(l.calm(8500)).toBe(true);
    // The same for a hot sample that could not fall (at the top now, so it falls: use the gate).
    const g = new StepLadder(TIMING);
    g.hot(0);
    run(100, 3900, 100, (t) => g.calm(t));
    g.hot(3900); // falls: level 2
    expect(g.level).toBe(2);
    expect(run(4000, 7900, 100, (t) => g.calm(t))).toEqual([]);
  });

  it('doubles the calm needed after a fall soon after a climb, up to the cap, and forgets it after a long quiet', () => {
    const l = new StepLadder(TIMING);
    l.hot(0);
    expect(run(1000, 5001, 500, (t) => l.calm(t))).toEqual([5000]);
    // A fall 1.5 s after that climb: the climb did not hold.
    expect(l.hot(6500)).toBe(true);
    expect(l.climbAfterMs).toBe(8000);
    expect(run(7000, 15_001, 500, (t) => l.calm(t))).toEqual([15_000]);
    l.hot(16_000);
    expect(l.climbAfterMs).toBe(16_000);
    expect(run(16_500, 32_501, 500, (t) => l.calm(t))).toEqual([32_500]);
    l.hot(33_500);
    expect(l.climbAfterMs).toBe(16_000); // capped
    expect(run(34_000, 50_001, 500, (t) => l.calm(t))).toEqual([50_000]);
    expect(l.climbAfterMs).toBe(16_000);
    // More than climbAfterMaxMs after the last fall, calm brings the patience back.
    l.calm(50_500);
    expect(l.climbAfterMs).toBe(4000);
  });

  it('does not back off on a fall long after the last climb', () => {
    const l = new StepLadder(TIMING);
    l.hot(0);
    expect(run(1000, 6000, 1000, (t) => l.calm(t))).toEqual([5000]);
    l.hot(5000 + 8000); // twice the patience after the climb: not soon
    expect(l.climbAfterMs).toBe(4000);
  });

  it('waits fallAfterClimbMs after a climb before falling, or falls at once when that is 0', () => {
    const gated = new StepLadder(TIMING);
    gated.hot(0);
    run(1000, 6000, 1000, (t) => gated.calm(t));
    expect(gated.level).toBe(0);
    expect(gated.hot(5500)).toBe(false);
    expect(gated.hot(6000)).toBe(true);

    const quick = new StepLadder({ ...TIMING, fallAfterClimbMs: 0 });
    quick.hot(0);
    run(1000, 6000, 1000, (t) => quick.calm(t));
    expect(quick.level).toBe(0);
    expect(quick.hot(5500)).toBe(true);
  });

  it("with backOffFrom 'fall', a run of falls also doubles the calm needed", () => {
    const byFall = new StepLadder({ ...TIMING, backOffFrom: 'fall' });
    const byClimb = new StepLadder(TIMING);
    for (const t of [0, 1000, 2000]) {
      byFall.hot(t);
      byClimb.hot(t);
    }
    expect(byFall.climbAfterMs).toBe(16_000);
    expect(byClimb.climbAfterMs).toBe(4000);
  });
});
