import { StepLadder } from './step-ladder';
import { LADDER } from './uplink';

/**
 * The publisher follows the machine's CPU, not only its own encoder. encode-load.ts shrinks the
 * picture when one frame takes longer to encode than the time between frames; but a machine can
 * be out of CPU while every single encode still fits (four people on two cores: each page encodes
 * one stream and decodes three, and everything waits for a core). Then every frame is late in
 * every queue at once: the page's event loop, the decoders, the network reads. The browser says
 * so through the Compute Pressure API (`PressureObserver`, states nominal / fair / serious /
 * critical). Like WebRTC's CPU adaptation, the frame rate goes first: fewer frames cut the
 * encoder's and every receiver's decoder's work alike while the picture keeps its size; then the
 * size (measured on two cores, four people: a quarter of the pixels at half the frame rate took
 * the glass-to-glass median from seconds to under 200 ms, BENCHMARKS.md §3).
 *
 * Pure policy (`PressureFollow`, no clock of its own) plus a thin observer (`watchCpuPressure`).
 * Down one level after 2 s of `critical` (or `serious` for 4 s), at most one level per 2 s; up one
 * level after 10 s of `nominal` or `fair`, waiting twice as long after each fall that followed a
 * climb (up to 60 s; step-ladder.ts), so a machine at its limit does not flip back and forth.
 */

export type PressureState = 'nominal' | 'fair' | 'serious' | 'critical';

/** The LADDER steps the CPU may push the camera to: none, 20 fps, 15 fps, then 15 fps at half size. */
export const PRESSURE_STEPS: readonly number[] = [
  0,
  LADDER.findIndex((s) => s.framerate <= 20),
  LADDER.findIndex((s) => s.framerate <= 15),
  LADDER.findIndex((s) => s.framerate <= 15 && s.scale <= 0.5),
];

const CRITICAL_FOR_MS = 2000;
const SERIOUS_FOR_MS = 4000;

export class PressureFollow {
  private readonly ladder = new StepLadder({
    steps: PRESSURE_STEPS.length - 1,
    fallEveryMs: 2000,
    fallAfterClimbMs: 2000,
    climbAfterMs: 10_000,
    climbAfterMaxMs: 60_000,
    backOffFrom: 'climb',
  });
  private state: PressureState = 'nominal';
  private since = 0;

  /** The LADDER step the CPU allows at most (0: no limit). */
  get step(): number {
    return PRESSURE_STEPS[this.ladder.level];
  }

  /** Feeds the latest state (on every change and on a timer); returns the new step when it changed. */
  sample(now: number, state: PressureState): number | null {
    if (state !== this.state) {
      this.state = state;
      this.since = now;
      // Calm is counted within one state: nominal after fair starts it over.
      this.ladder.hold();
    }
    const held = now - this.since;
    const hot = (state === 'critical' && held >= CRITICAL_FOR_MS) || (state === 'serious' && held >= SERIOUS_FOR_MS);
    if (hot) return this.ladder.hot(now) ? this.step : null;
    if (state === 'nominal' || state === 'fair') return this.ladder.calm(now) ? this.step : null;
    this.ladder.hold();
    return null;
  }
}

interface PressureRecordLike {
  state: PressureState;
}
interface PressureObserverLike {
  observe(source: 'cpu', options?: { sampleInterval?: number }): Promise<void>;
  disconnect(): void;
}
type PressureObserverCtor = new (cb: (records: PressureRecordLike[]) => void) => PressureObserverLike;

/**
 * Calls `onState` with the CPU pressure state as the browser reports it; returns a stop function.
 * Does nothing where the browser has no Compute Pressure API, or with `?pressure=off` on the page
 * URL (the latency benchmark compares the two in one run).
 */
export function watchCpuPressure(onState: (state: PressureState) => void): () => void {
  const Ctor = (globalThis as unknown as { PressureObserver?: PressureObserverCtor }).PressureObserver;
  const off = typeof location !== 'undefined' && new URLSearchParams(location.search).get('pressure') === 'off';
  if (typeof Ctor !== 'function' || off) return () => undefined;
  let observer: PressureObserverLike | null = null;
  try {
    observer = new Ctor((records) => {
      const last = records.at(-1);
      if (last) onState(last.state);
    });
    observer.observe('cpu', { sampleInterval: 1000 }).catch(() => undefined);
  } catch {
    observer = null;
  }
  return () => observer?.disconnect();
}
