import { dbovToMeter, rms, rmsToDbov } from './levels';

describe('audio levels', () => {
  it('maps silence to 127 and full scale to 0', () => {
    expect(rmsToDbov(0)).toBe(127);
    expect(rmsToDbov(1)).toBe(0);
    expect(rmsToDbov(0.1)).toBe(20);
  });
  it('computes RMS', () => {
    expect(rms(new Float32Array([1, -1, 1, -1]))).toBe(1);
    expect(rms(new Float32Array(0))).toBe(0);
  });
  it('scales to a meter', () => {
    expect(dbovToMeter(0)).toBe(1);
    expect(dbovToMeter(127)).toBe(0);
  });
});
