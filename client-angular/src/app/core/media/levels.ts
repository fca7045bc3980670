/** Audio level helpers shared by the publisher (header byte) and the UI (meters, speaking). */

/** RMS of samples in -1..1 → the header's 0..127 "-dBov" (0 = loudest, 127 = silence). */
export function rmsToDbov(rms: number): number {
  if (!(rms > 0)) return 127;
  const db = -20 * Math.log10(Math.min(1, rms));
  return Math.max(0, Math.min(127, Math.round(db)));
}

export function rms(samples: Float32Array): number {
  if (samples.length === 0) return 0;
  let sum = 0;
  for (const x of samples) sum += x * x;
  return Math.sqrt(sum / samples.length);
}

/** -dBov → 0..1 for a meter: -60 dBov or quieter is 0. */
export function dbovToMeter(level: number): number {
  return Math.max(0, Math.min(1, (60 - level) / 60));
}

/** Someone is "speaking" when louder than -45 dBov. */
export const SPEAKING_DBOV = 45;
