import { AudioJitter, MAX_TARGET_MS, MIN_TARGET_MS, SHRINK_MS_PER_S } from './audio-jitter';

/** Feeds `seconds` of 20 ms Opus packets from t0, each arriving `late(i)` ms after its slot. */
function feed(j: AudioJitter, t0: number, seconds: number, late: (i: number) => number): number {
  const n = Math.round((seconds * 1000) / 20);
  let t = t0;
  for (let i = 0; i < n; i++) {
    t = t0 + i * 20;
    j.arrival(t + late(i), t * 1000);
  }
  return t + 20;
}

describe('AudioJitter (the audio jitter buffer target)', () => {
  it('keeps the smallest buffer on a steady link', () => {
    const j = new AudioJitter();
    const t = feed(j, 0, 5, () => 0);
    expect(j.jitterMs).toBe(0);
    expect(j.targetMs(t)).toBe(MIN_TARGET_MS);
  });

  it('ramps up with the jitter the link shows, within its bounds', () => {
    const j = new AudioJitter();
    // ±15 ms of jitter (alternating): the target grows past the minimum but stays bounded.
    let t = feed(j, 0, 5, (i) => (i % 2 ? 15 : 0));
    const mild = j.targetMs(t);
    expect(mild).toBeGreaterThan(MIN_TARGET_MS);
    expect(mild).toBeLessThanOrEqual(60);
    // ±60 ms: larger still, and capped.
    t = feed(j, t, 5, (i) => (i % 2 ? 60 : 0));
    const rough = j.targetMs(t);
    expect(rough).toBeGreaterThan(mild);
    t = feed(j, t, 5, (i) => (i % 2 ? 400 : 0));
    expect(j.targetMs(t)).toBe(MAX_TARGET_MS);
  });

  it('covers one late burst at once, not after the smoothed jitter catches up', () => {
    const j = new AudioJitter();
    let t = feed(j, 0, 3, () => 0);
    expect(j.targetMs(t)).toBe(MIN_TARGET_MS);
    // One packet 80 ms late (a Wi-Fi scan, a GC pause on the server).
    t = feed(j, t, 0.02, () => 80);
    expect(j.targetMs(t)).toBeGreaterThanOrEqual(80);
  });

  it('recovers slowly after a spike: never faster than the shrink rate, back to the minimum in seconds', () => {
    const j = new AudioJitter();
    let t = feed(j, 0, 3, () => 0);
    t = feed(j, t, 0.02, () => 100);
    const peak = j.targetMs(t);
    expect(peak).toBeGreaterThanOrEqual(100);
    // Calm again: sample the target every 100 ms for 15 s.
    let prev = peak;
    for (let k = 0; k < 150; k++) {
      t = feed(j, t, 0.1, () => 0);
      const now = j.targetMs(t);
      expect(prev - now).toBeLessThanOrEqual((SHRINK_MS_PER_S * 0.1) + 0.5);
      prev = now;
    }
    expect(prev).toBeLessThanOrEqual(MIN_TARGET_MS + 1);
  });

  it('holds more after underruns and gives it back once the link is calm', () => {
    const j = new AudioJitter();
    let t = feed(j, 0, 2, () => 0);
    j.underrun(t);
    j.underrun(t);
    const after = j.targetMs(t);
    expect(after).toBeGreaterThanOrEqual(MIN_TARGET_MS + 40);
    t = feed(j, t, 2, () => 0);
    expect(j.targetMs(t)).toBeGreaterThan(MIN_TARGET_MS + 30);
    t = feed(j, t, 30, () => 0);
    expect(j.targetMs(t)).toBe(MIN_TARGET_MS);
  });

  it('ignores reordered packets and a sender clock that jumps (a new stream)', () => {
    const j = new AudioJitter();
    let t = feed(j, 0, 2, () => 0);
    j.arrival(t, (t - 100) * 1000); // from before the previous packet
    j.arrival(t + 20, (t + 5_000_000) * 1000); // the sender's timestamps jumped
    t = feed(j, t + 40, 1, () => 0);
    expect(j.jitterMs).toBeLessThan(1);
    expect(j.targetMs(t)).toBe(MIN_TARGET_MS);
  });
});
