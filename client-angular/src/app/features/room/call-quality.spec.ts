import { connectionQuality, layersBelow, LossMeter } from './call-quality';

describe('connectionQuality', () => {
  it('is good on a short round trip with no loss at the layer we asked for', () => {
    expect(connectionQuality({ rttMs: 20, loss: 0, layerDrop: 0 })).toBe('good');
  });
  it('is fair on a long round trip, a few percent loss, or one layer down', () => {
    expect(connectionQuality({ rttMs: 200, loss: 0, layerDrop: 0 })).toBe('fair');
    expect(connectionQuality({ rttMs: 20, loss: 0.05, layerDrop: 0 })).toBe('fair');
    expect(connectionQuality({ rttMs: 20, loss: null, layerDrop: 1 })).toBe('fair');
  });
  it('is poor on a very long round trip, heavy loss, or two layers down', () => {
    expect(connectionQuality({ rttMs: 500, loss: 0, layerDrop: 0 })).toBe('poor');
    expect(connectionQuality({ rttMs: 20, loss: 0.2, layerDrop: 0 })).toBe('poor');
    expect(connectionQuality({ rttMs: 20, loss: 0, layerDrop: 2 })).toBe('poor');
  });
  it('does not blame the connection for the server climbing to our layers at the start of a call', () => {
    expect(connectionQuality({ rttMs: 20, loss: 0, layerDrop: 2, rampingUp: true })).toBe('good');
    expect(connectionQuality({ rttMs: 20, loss: 0, layerDrop: 2, rampingUp: false })).toBe('poor');
    // Round trip and loss count from the first second.
    expect(connectionQuality({ rttMs: 500, loss: 0, layerDrop: 2, rampingUp: true })).toBe('poor');
    expect(connectionQuality({ rttMs: 20, loss: 0.05, layerDrop: 1, rampingUp: true })).toBe('fair');
  });
  it('is unknown before the first round trip', () => {
    expect(connectionQuality({ rttMs: null, loss: 0, layerDrop: 0 })).toBe('unknown');
  });
});

describe('layersBelow', () => {
  it('counts halvings between what we asked for and what arrives', () => {
    expect(layersBelow(480, 480)).toBe(0);
    expect(layersBelow(480, 240)).toBe(1);
    expect(layersBelow(480, 120)).toBe(2);
    expect(layersBelow(240, 480)).toBe(0);
    expect(layersBelow(480, 0)).toBe(0);
  });
});

describe('LossMeter', () => {
  it('counts sequence gaps as losses and forgives frames that arrive late', () => {
    const m = new LossMeter();
    for (let s = 0; s < 10; s++) m.record(16, s, 1000 + s * 20);
    expect(m.loss(16, 1200)).toBe(0);
    m.record(16, 12, 1220); // 10 and 11 missing
    expect(m.loss(16, 1220)).toBeCloseTo(2 / 13, 5);
    m.record(16, 10, 1225); // 10 arrives late
    expect(m.loss(16, 1225)).toBeCloseTo(1 / 13, 5);
  });
  it('forgets what is older than its window and knows nothing of unseen tracks', () => {
    const m = new LossMeter();
    m.record(16, 0, 0);
    m.record(16, 5, 10);
    expect(m.loss(16, 10)).toBeGreaterThan(0.5);
    for (let s = 6; s < 20; s++) m.record(16, s, 10_000 + s);
    expect(m.loss(16, 10_020)).toBe(0);
    expect(m.loss(17, 10_020)).toBeNull();
  });
  it('survives sequence wrap-around', () => {
    const m = new LossMeter();
    m.record(16, 0xffffffff, 0);
    m.record(16, 0, 20);
    m.record(16, 1, 40);
    expect(m.loss(16, 40)).toBe(0);
  });
});
