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

  it('reads congestion from a round trip far above its floor when no bytes are seen waiting (WebTransport)', () => {
    const c = new UplinkController();
    // A calm minute at 3 ms sets the floor.
    for (let t = 0; t < 10_000; t += 1000) expect(c.sample({ now: t, backlogBytes: 0, drops: 0, bitrate: RATE, rttMs: 3 })).toBeNull();
    // Capped: the pings wait behind the browser's own send queue.
    expect(c.sample({ now: 10_000, backlogBytes: 0, drops: 0, bitrate: RATE, rttMs: 120 })).toBeNull(); // under the threshold: hold
    expect(c.sample({ now: 11_000, backlogBytes: 0, drops: 0, bitrate: RATE, rttMs: 530 })).toEqual(LADDER[1]);
    expect(c.sample({ now: 12_000, backlogBytes: 0, drops: 0, bitrate: RATE, rttMs: 900 })).toEqual(LADDER[2]);
    // Back at the floor: it climbs again once the link has stayed clear.
    let t = 13_000;
    for (; t < 30_000 && c.stepIndex > 0; t += 1000) c.sample({ now: t, backlogBytes: 0, drops: 0, bitrate: RATE, rttMs: 4 });
    expect(c.stepIndex).toBe(0);
  });

  it('judges the round trip against the path itself: a long but steady one is not congestion', () => {
    const c = new UplinkController();
    for (let t = 0; t < 20_000; t += 1000) expect(c.sample({ now: t, backlogBytes: 0, drops: 0, bitrate: RATE, rttMs: 300 + (t % 3000 === 0 ? 20 : 0) })).toBeNull();
    expect(c.stepIndex).toBe(0);
  });

  it("follows the server's uplink report, which sees a queue the browser hides, and cuts to what arrived", () => {
    const c = new UplinkController();
    // WebSocket into a 600 kbit/s uplink: nothing waits in bufferedAmount (the kernel took it),
    // the round trip is calm, but the server sees our audio arrive 140 ms late and 600 kbit/s
    // arriving. 0.8 × 600 − 32 = 448 kbit/s of video: the first step at or under that.
    const full = 1_500_000;
    const s = { backlogBytes: 0, drops: 0, bitrate: full + 32_000, rttMs: 3, fullVideoBitrate: full, otherBitrate: 32_000 };
    expect(c.sample({ now: 0, ...s, serverQueueMs: 0, deliveredKbps: 1530 })).toBeNull();
    const step = c.sample({ now: 1000, ...s, serverQueueMs: 140, deliveredKbps: 600 });
    const want = LADDER.findIndex((l) => l.bitrate * full <= 448_000);
    expect(want).toBeGreaterThan(1);
    expect(step).toEqual(LADDER[want]);
    // Under the server's threshold but above its clear level: hold.
    expect(c.sample({ now: 5000, ...s, serverQueueMs: 45, deliveredKbps: 500 })).toBeNull();
    expect(c.stepIndex).toBe(want);
    // A queue the server sees without a rate: one step; a small one (which a page starved of
    // CPU can also show) with a rate: one step too.
    const d = new UplinkController();
    expect(d.sample({ now: 0, ...s, serverQueueMs: 80 })).toEqual(LADDER[1]);
    const e = new UplinkController();
    expect(e.sample({ now: 0, ...s, serverQueueMs: 80, deliveredKbps: 300 })).toEqual(LADDER[1]);
  });

  it('undoes a climb at once when the server sees a queue start soon after it', () => {
    const c = new UplinkController();
    const s = { backlogBytes: 0, drops: 0, bitrate: RATE };
    c.sample({ now: 0, ...s, serverQueueMs: 200 });
    expect(c.stepIndex).toBe(1);
    let t = 0;
    while (c.stepIndex > 0) c.sample({ now: (t += 500), ...s, serverQueueMs: 0 });
    // 300 ms after the climb a 40 ms queue: under the mark for a step held a while, but this
    // step did not fit.
    expect(c.sample({ now: t + 300, ...s, serverQueueMs: 40 })).toEqual(LADDER[1]);
    // The same queue long after a climb holds.
    const d = new UplinkController();
    for (let u = 0; u < 10_000; u += 500) expect(d.sample({ now: u, ...s, serverQueueMs: 40 })).toBeNull();
    expect(d.stepIndex).toBe(0);
  });

  it('does not climb while the server still sees a queue', () => {
    const c = new UplinkController();
    c.sample({ now: 0, backlogBytes: 0, drops: 0, bitrate: RATE, serverQueueMs: 200 });
    expect(c.stepIndex).toBe(1);
    for (let t = 1000; t < 30_000; t += 500) c.sample({ now: t, backlogBytes: 0, drops: 0, bitrate: RATE, serverQueueMs: 40 });
    expect(c.stepIndex).toBe(1);
  });

  it('does not climb above what the link carried under a standing queue, until that is old', () => {
    const full = 1_500_000;
    const s = { backlogBytes: 0, drops: 0, bitrate: full + 32_000, rttMs: 3, fullVideoBitrate: full, otherBitrate: 32_000 };
    const c = new UplinkController();
    // 560 kbit/s arrived under a 200 ms queue: down to the step that fits.
    c.sample({ now: 0, ...s, serverQueueMs: 200, deliveredKbps: 560 });
    const settled = c.stepIndex;
    expect(settled).toBeGreaterThan(1);
    // Calm for 25 s: the step above needs more than 95 % of 560 kbit/s, so no climb.
    const above = LADDER[settled - 1].bitrate * full + 32_000;
    expect(above).toBeGreaterThan(0.95 * 560_000);
    for (let t = 500; t <= 25_000; t += 500) c.sample({ now: t, ...s, serverQueueMs: 0, deliveredKbps: 400 });
    expect(c.stepIndex).toBe(settled);
    // Once that is 30 s old, the calm counts again and it climbs.
    for (let t = 25_500; t <= 40_000; t += 500) c.sample({ now: t, ...s, serverQueueMs: 0, deliveredKbps: 400 });
    expect(c.stepIndex).toBeLessThan(settled);
  });
});
