import { LADDER, UplinkController } from './uplink';

const RATE = 800_000;
/** Backlog of `s` seconds at RATE. */
const backlog = (s: number) => (RATE / 8) * s;

describe('UplinkController', () => {
  it('goes down bitrate first, then frame rate, then resolution, at most one step a second', () => {
    const c = new UplinkController();
    const seen = [];
    for (let t = 0; t <= 10_000; t += 500) {
      const step = c.sample({ now: t, backlogBytes: backlog(1), drops: 0, bitrate: RATE });
      if (step) seen.push({ t, step });
    }
    expect(seen.map((s) => s.step)).toEqual(LADDER.slice(1));
    for (let i = 1; i < seen.length; i++) expect(seen[i].t - seen[i - 1].t).toBeGreaterThanOrEqual(1000);
    const firstFpsDrop = LADDER.findIndex((s) => s.framerate < 30);
    const firstScale = LADDER.findIndex((s) => s.scale < 1);
    expect(LADDER.slice(0, firstFpsDrop).every((s) => s.scale === 1 && s.framerate === 30)).toBe(true);
    expect(firstScale).toBeGreaterThan(firstFpsDrop);
    expect(LADDER[firstFpsDrop - 1].bitrate).toBeLessThan(1);
  });

  it('treats frames the transport dropped as congestion even with no backlog left', () => {
    const c = new UplinkController();
    expect(c.sample({ now: 0, backlogBytes: 0, drops: 3, bitrate: RATE })).toEqual(LADDER[1]);
  });

  it('holds on a small backlog and climbs back one step at a time once clear', () => {
    const c = new UplinkController();
    c.sample({ now: 0, backlogBytes: backlog(1), drops: 0, bitrate: RATE });
    c.sample({ now: 1000, backlogBytes: backlog(1), drops: 0, bitrate: RATE });
    expect(c.stepIndex).toBe(2);
    // Between the thresholds: no change either way.
    expect(c.sample({ now: 10_000, backlogBytes: backlog(0.1), drops: 0, bitrate: RATE })).toBeNull();
    const ups: number[] = [];
    for (let t = 11_000; t <= 60_000; t += 500) if (c.sample({ now: t, backlogBytes: 0, drops: 0, bitrate: RATE })) ups.push(t);
    expect(c.stepIndex).toBe(0);
    expect(ups.length).toBe(2);
    expect(ups[1] - ups[0]).toBeGreaterThanOrEqual(4000);
  });

  it('climbs more slowly after falling back soon after a climb (a link at its limit)', () => {
    const c = new UplinkController();
    c.sample({ now: 0, backlogBytes: backlog(1), drops: 0, bitrate: RATE });
    let t = 500;
    while (c.stepIndex > 0) c.sample({ now: (t += 500), backlogBytes: 0, drops: 0, bitrate: RATE });
    const firstClimb = t;
    c.sample({ now: (t += 500), backlogBytes: backlog(1), drops: 0, bitrate: RATE });
    expect(c.stepIndex).toBe(1);
    const fell = t;
    while (c.stepIndex > 0) c.sample({ now: (t += 500), backlogBytes: 0, drops: 0, bitrate: RATE });
    expect(t - fell).toBeGreaterThan(firstClimb);
  });
});
