import { LADDER } from './uplink';
import { PRESSURE_STEPS, PressureFollow, PressureState } from './cpu-pressure';

/** Feeds `state` once a second from `t` for `seconds`; returns the time after. */
function hold(p: PressureFollow, t: number, seconds: number, state: PressureState): number {
  for (let i = 0; i <= seconds; i++) p.sample(t + i * 1000, state);
  return t + seconds * 1000 + 1000;
}

describe('PressureFollow (the camera follows the machine\'s CPU pressure)', () => {
  it('lowers the frame rate first, then the size, one level per 2 s of critical pressure', () => {
    const p = new PressureFollow();
    expect(p.sample(0, 'critical')).toBeNull(); // not yet held long enough
    expect(p.sample(1000, 'critical')).toBeNull();
    expect(p.sample(2000, 'critical')).toBe(PRESSURE_STEPS[1]);
    expect(LADDER[p.step].framerate).toBe(20);
    expect(p.sample(3000, 'critical')).toBeNull();
    expect(p.sample(4000, 'critical')).toBe(PRESSURE_STEPS[2]);
    expect(LADDER[p.step].framerate).toBe(15);
    expect(LADDER[p.step].scale).toBe(1);
    expect(p.sample(6000, 'critical')).toBe(PRESSURE_STEPS[3]);
    expect(LADDER[p.step].scale).toBe(0.5);
    hold(p, 7000, 20, 'critical');
    expect(p.step).toBe(PRESSURE_STEPS[3]); // no further than 15 fps at half size
  });

  it('reacts to serious pressure only when it lasts, and ignores fair', () => {
    const p = new PressureFollow();
    let t = hold(p, 0, 30, 'fair');
    expect(p.step).toBe(0);
    p.sample(t, 'serious');
    p.sample(t + 3000, 'serious');
    expect(p.step).toBe(0);
    p.sample(t + 4000, 'serious');
    expect(p.step).toBe(PRESSURE_STEPS[1]);
    t += 5000;
    expect(t).toBeGreaterThan(0);
  });

  it('climbs back after calm, one level at a time, and more slowly after a fall that followed a climb', () => {
    const p = new PressureFollow();
    let t = hold(p, 0, 5, 'critical');
    expect(p.step).toBe(PRESSURE_STEPS[2]);
    expect(p.step).toBeLessThan(PRESSURE_STEPS[3]);
    // 9 s of calm: not yet.
    t = hold(p, t, 8, 'nominal');
    expect(p.step).toBe(PRESSURE_STEPS[2]);
    t = hold(p, t, 2, 'nominal');
    expect(p.step).toBe(PRESSURE_STEPS[1]);
    // Critical again right after the climb: down again, and the next climb waits 20 s.
    t = hold(p, t, 3, 'critical');
    expect(p.step).toBe(PRESSURE_STEPS[2]);
    t = hold(p, t, 15, 'nominal');
    expect(p.step).toBe(PRESSURE_STEPS[2]);
    t = hold(p, t, 6, 'nominal');
    expect(p.step).toBe(PRESSURE_STEPS[1]);
    hold(p, t, 25, 'nominal');
    expect(p.step).toBe(0);
  });
});
