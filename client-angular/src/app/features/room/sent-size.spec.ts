import { SENT_SIZE_HOLD_MS, SentSizes } from './sent-size';

describe('SentSizes', () => {
  it('takes the first size at once, from any layer', () => {
    const s = new SentSizes();
    expect(s.sample(0, 17, 1, 320, 240)).toEqual({ w: 640, h: 480 });
    expect(s.get(17)).toEqual({ w: 640, h: 480 });
    expect(s.sample(1000, 17, 0, 640, 480)).toBeNull();
  });

  it('follows a smaller picture from the publisher once it has held', () => {
    const s = new SentSizes();
    s.sample(0, 17, 0, 640, 480);
    // The camera's CPU rule made it 480x360: seen on layer 0, then on the transcoder's layer 1.
    expect(s.sample(1000, 17, 0, 480, 360)).toBeNull();
    expect(s.sample(2000, 17, 1, 240, 180)).toBeNull();
    expect(s.sample(1000 + SENT_SIZE_HOLD_MS, 17, 1, 240, 180)).toEqual({ w: 480, h: 360 });
    expect(s.get(17)).toEqual({ w: 480, h: 360 });
  });

  it('ignores the transcoder\'s picture while the publisher takes the layer over', () => {
    // Measured in the browser test: the transcoder's layer 1 of a CPU-reduced 480x360 camera
    // (240x180) showed for about half a second, then the publisher's own 320x240.
    const s = new SentSizes();
    s.sample(0, 17, 0, 640, 480);
    expect(s.sample(1000, 17, 1, 240, 180)).toBeNull();
    expect(s.sample(2000, 17, 1, 320, 240)).toBeNull();
    expect(s.sample(3000, 17, 1, 320, 240)).toBeNull();
    expect(s.get(17)).toEqual({ w: 640, h: 480 });
    // A different transient later starts its own clock.
    expect(s.sample(4000, 17, 1, 240, 180)).toBeNull();
    expect(s.sample(5000, 17, 2, 160, 120)).toBeNull();
    expect(s.get(17)).toEqual({ w: 640, h: 480 });
  });

  it('keeps tracks apart and forgets a removed one', () => {
    const s = new SentSizes();
    s.sample(0, 17, 0, 640, 480);
    s.sample(0, 33, 0, 1280, 720);
    s.delete(17);
    expect(s.get(17)).toBeUndefined();
    expect(s.get(33)).toEqual({ w: 1280, h: 720 });
    expect(s.sample(10, 17, 0, 320, 240)).toEqual({ w: 320, h: 240 });
    s.clear();
    expect(s.get(33)).toBeUndefined();
  });
});
