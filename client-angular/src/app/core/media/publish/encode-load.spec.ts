import { CPU_SCALES, EncodeLoad } from './encode-load';

const FPS = 30;
const BUDGET = 1000 / FPS;

/** Feeds one frame every 1000/FPS ms taking `ms` to encode, from `from` for `forMs`; returns the changes. */
function run(l: EncodeLoad, from: number, forMs: number, ms: number): { t: number; scale: number }[] {
  const changes = [];
  for (let t = from; t < from + forMs; t += BUDGET) {
    const s = l.sample(t, ms, FPS);
    if (s !== null) changes.push({ t, scale: s });
  }
  return changes;
}

describe('EncodeLoad', () => {
  it('keeps the full size while frames encode well within the frame interval', () => {
    const l = new EncodeLoad();
    expect(run(l, 0, 20_000, BUDGET * 0.6)).toEqual([]);
    expect(l.scale).toBe(1);
  });

  it('steps the size down, one step a second at most, when encoding takes longer than the frame interval', () => {
    const l = new EncodeLoad();
    const changes = run(l, 0, 10_000, BUDGET * 3);
    expect(changes.map((c) => c.scale)).toEqual(CPU_SCALES.slice(1));
    expect(changes[1].t - changes[0].t).toBeGreaterThanOrEqual(1000);
    // Never below the last step.
    expect(l.scale).toBe(CPU_SCALES.at(-1));
  });

  it('climbs back one step at a time once encoding is quick again', () => {
    const l = new EncodeLoad();
    run(l, 0, 3000, BUDGET * 3);
    expect(l.scale).toBe(0.5);
    const up = run(l, 3000, 20_000, BUDGET * 0.2);
    expect(up.map((c) => c.scale)).toEqual([0.75, 1]);
    expect(up[0].t - 3000).toBeGreaterThanOrEqual(5000);
  });

  it('waits longer to climb after a climb that did not hold', () => {
    const l = new EncodeLoad();
    run(l, 0, 700, BUDGET * 3); // down to 0.75
    expect(l.scale).toBe(0.75);
    const firstUp = run(l, 700, 10_300, BUDGET * 0.2);
    expect(firstUp.map((c) => c.scale)).toEqual([1]);
    const climbedAt = firstUp[0].t;
    run(l, 11_000, 400, BUDGET * 3); // too much: down again
    expect(l.scale).toBe(0.75);
    const secondUp = run(l, 11_400, 30_000, BUDGET * 0.2);
    expect(secondUp[0].scale).toBe(1);
    expect(secondUp[0].t - 11_400).toBeGreaterThanOrEqual(10_000);
    expect(climbedAt - 700).toBeLessThan(10_000);
  });
});
