import { BASE_WINDOW_SECS, DelayMeter } from './delay-meter';

/** 200 ms of 20 ms audio frames of `track` from `fromUs`, each waiting `extraUs(k)` on top of a 30 ms path. */
function interval(m: DelayMeter, track: number, fromUs: number, extraUs: (k: number) => number): void {
  for (let k = 0; k < 10; k++) {
    const capture = fromUs + k * 20_000;
    m.onAudio(track, capture, capture + 30_000 + extraUs(k));
  }
}

describe('DelayMeter', () => {
  it('reports no queue on an empty path and the depth of a standing queue', () => {
    const m = new DelayMeter();
    let t = 1_000_000_000;
    for (let i = 0; i < 5; i++) {
      interval(m, 16, t, () => 0);
      t += 200_000;
      expect(m.report(t)).toBe(0);
    }
    interval(m, 16, t, (k) => 150_000 + (k % 3) * 10_000);
    t += 200_000;
    expect(m.report(t)).toBe(150);
  });

  it('does not take a stall of the page itself for a queue', () => {
    const m = new DelayMeter();
    let t = 5_000_000_000;
    interval(m, 16, t, () => 0);
    t += 200_000;
    m.report(t);
    interval(m, 16, t, (k) => Math.max(0, 120_000 - k * 20_000));
    t += 200_000;
    expect(m.report(t)).toBe(0);
  });

  it("does not take one publisher's congested uplink for this downlink", () => {
    const m = new DelayMeter();
    let t = 7_000_000_000;
    for (let i = 0; i < 3; i++) {
      interval(m, 16, t, () => 0);
      interval(m, 32, t, () => 0);
      t += 200_000;
      m.report(t);
    }
    interval(m, 16, t, () => 0);
    interval(m, 32, t, () => 300_000);
    t += 200_000;
    expect(m.report(t)).toBe(0);
    interval(m, 16, t, () => 90_000);
    interval(m, 32, t, () => 300_000);
    t += 200_000;
    expect(m.report(t)).toBe(90);
  });

  it('says nothing from too few frames and forgets a silent track', () => {
    const m = new DelayMeter();
    const t = 9_000_000_000;
    m.onAudio(16, t, t + 30_000);
    m.onAudio(16, t + 20_000, t + 50_000);
    expect(m.report(t + 200_000)).toBeNull();
    m.onAudio(16, t + 40_000, t + 70_000);
    expect(m.report(t + 200_000 + BASE_WINDOW_SECS * 1e6)).toBeNull();
  });

  it('follows a path that got longer for good', () => {
    const m = new DelayMeter();
    let t = 11_000_000_000;
    interval(m, 16, t, () => 0);
    t += 200_000;
    m.report(t);
    let last: number | null = null;
    for (let i = 0; i < BASE_WINDOW_SECS * 5 + 10; i++) {
      interval(m, 16, t, () => 60_000);
      t += 200_000;
      last = m.report(t);
    }
    expect(last).toBe(0);
  });
});
