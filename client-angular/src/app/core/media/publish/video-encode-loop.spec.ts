import { EncodedChunkOut, fit, VideoEncodeLoop } from './video-encode-loop';

class FakeFrame {
  closed = false;
  constructor(
    readonly displayWidth: number,
    readonly displayHeight: number,
    readonly timestamp = 0,
  ) {}
  close() {
    this.closed = true;
  }
}
class FakeVideoFrame extends FakeFrame {
  constructor(src: FakeFrame, init: { timestamp: number }) {
    super(src.displayWidth, src.displayHeight, init.timestamp);
  }
}
class FakeEncoder {
  static last: FakeEncoder;
  state = 'unconfigured';
  encodeQueueSize = 0;
  config: { width: number; height: number; bitrate?: number; framerate?: number; scalabilityMode?: string } | null = null;
  /** What isConfigSupported answers for `L1T2`, and the configs it was asked about. */
  static l1t2 = true;
  static probed: { scalabilityMode?: string }[] = [];
  static isConfigSupported(c: { scalabilityMode?: string }) {
    FakeEncoder.probed.push(c);
    return Promise.resolve({ supported: c.scalabilityMode !== 'L1T2' || FakeEncoder.l1t2, config: c });
  }
  keys: boolean[] = [];
  /** Held: outputs wait for flush(), as a busy codec thread's do. */
  static hold = false;
  private held: unknown[] = [];
  constructor(private readonly init: { output: (c: unknown) => void }) {
    FakeEncoder.last = this;
  }
  configure(c: { width: number; height: number; bitrate?: number; framerate?: number }) {
    this.config = c;
    this.state = 'configured';
  }
  encode(f: FakeFrame, o: { keyFrame: boolean }) {
    this.keys.push(o.keyFrame);
    (FakeEncoder.hold ? (c: unknown) => this.held.push(c) : this.init.output)({ type: o.keyFrame ? 'key' : 'delta', timestamp: f.timestamp, byteLength: 3, copyTo: (d: Uint8Array) => d.set([1, 2, 3]) });
  }
  flush() {
    for (const c of this.held.splice(0)) this.init.output(c);
  }
  close() {
    this.state = 'closed';
  }
}

describe('VideoEncodeLoop', () => {
  let now = 1000;
  beforeEach(() => {
    vi.stubGlobal('VideoEncoder', FakeEncoder);
    vi.stubGlobal('VideoFrame', FakeVideoFrame);
    vi.spyOn(performance, 'now').mockImplementation(() => now);
  });
  afterEach(() => {
    FakeEncoder.hold = false;
    FakeEncoder.l1t2 = true;
    FakeEncoder.probed = [];
    vi.unstubAllGlobals();
    vi.restoreAllMocks();
  });

  const opts = { bitrate: 800_000, maxWidth: 640, maxHeight: 480, framerate: 30, keyframeIntervalMs: 2000 };

  it('scales to fit, keeps even sizes', () => {
    expect(fit(1280, 720, 640, 480)).toEqual({ w: 640, h: 360 });
    expect(fit(320, 240, 640, 480)).toEqual({ w: 320, h: 240 });
    expect(fit(1001, 501, 640, 480)).toEqual({ w: 640, h: 320 });
  });

  it('starts with a keyframe, then one every interval and on request; closes every frame', () => {
    const out: EncodedChunkOut[] = [];
    const loop = new VideoEncodeLoop(opts, (c) => out.push(c), () => undefined);
    const frames = [new FakeFrame(1280, 720), new FakeFrame(1280, 720), new FakeFrame(1280, 720)];
    loop.push(frames[0] as unknown as VideoFrame);
    now += 33;
    loop.push(frames[1] as unknown as VideoFrame);
    now += 2000;
    loop.push(frames[2] as unknown as VideoFrame);
    loop.requestKeyframe();
    now += 33;
    loop.push(new FakeFrame(1280, 720) as unknown as VideoFrame);
    now += 33;
    loop.push(new FakeFrame(1280, 720) as unknown as VideoFrame);
    expect(out.map((c) => c.keyframe)).toEqual([true, false, true, true, false]);
    expect(FakeEncoder.last.config).toMatchObject({ width: 640, height: 360 });
    expect(frames.every((f) => f.closed)).toBe(true);
    expect(out[0].timestamp).toBe(Math.round((performance.timeOrigin + 1000) * 1000));
    expect(Array.from(out[0].data)).toEqual([1, 2, 3]);
  });

  it('encodes two temporal layers when asked and the browser can, one otherwise', async () => {
    const run = async (temporalLayers: 1 | 2 | undefined, supported: boolean) => {
      FakeEncoder.l1t2 = supported;
      FakeEncoder.probed = [];
      const out: EncodedChunkOut[] = [];
      const loop = new VideoEncodeLoop({ ...opts, temporalLayers }, (c) => out.push(c), () => undefined);
      await Promise.resolve();
      await Promise.resolve();
      loop.push(new FakeFrame(640, 480) as unknown as VideoFrame);
      now += 33;
      loop.push(new FakeFrame(640, 480) as unknown as VideoFrame);
      return { mode: FakeEncoder.last.config?.scalabilityMode, layers: loop.temporalLayers, probes: FakeEncoder.probed.length, keys: out.map((c) => c.keyframe) };
    };
    expect(await run(2, true)).toEqual({ mode: 'L1T2', layers: 2, probes: 1, keys: [true, false] });
    expect(await run(2, false)).toEqual({ mode: undefined, layers: 1, probes: 1, keys: [true, false] });
    expect(await run(undefined, true)).toEqual({ mode: undefined, layers: 1, probes: 0, keys: [true, false] });
  });

  it('switches to two temporal layers with a keyframe when the answer comes after the first frame', async () => {
    const out: EncodedChunkOut[] = [];
    const loop = new VideoEncodeLoop({ ...opts, temporalLayers: 2 }, (c) => out.push(c), () => undefined);
    loop.push(new FakeFrame(640, 480) as unknown as VideoFrame);
    expect(FakeEncoder.last.config?.scalabilityMode).toBeUndefined();
    await Promise.resolve();
    await Promise.resolve();
    now += 33;
    loop.push(new FakeFrame(640, 480) as unknown as VideoFrame);
    now += 33;
    loop.push(new FakeFrame(640, 480) as unknown as VideoFrame);
    expect(FakeEncoder.last.config?.scalabilityMode).toBe('L1T2');
    expect(out.map((c) => c.keyframe)).toEqual([true, true, false]);
  });

  it('drops frames while the encoder is behind', () => {
    const out: EncodedChunkOut[] = [];
    const loop = new VideoEncodeLoop(opts, (c) => out.push(c), () => undefined);
    loop.push(new FakeFrame(640, 480) as unknown as VideoFrame);
    FakeEncoder.last.encodeQueueSize = 3;
    const dropped = new FakeFrame(640, 480);
    loop.push(dropped as unknown as VideoFrame);
    expect(out.length).toBe(1);
    expect(dropped.closed).toBe(true);
  });

  it('reconfigures with a keyframe when the source size changes', () => {
    const out: EncodedChunkOut[] = [];
    const loop = new VideoEncodeLoop(opts, (c) => out.push(c), () => undefined);
    loop.push(new FakeFrame(640, 480) as unknown as VideoFrame);
    now += 33;
    loop.push(new FakeFrame(320, 240) as unknown as VideoFrame);
    expect(FakeEncoder.last.config).toMatchObject({ width: 320, height: 240 });
    expect(out.map((c) => c.keyframe)).toEqual([true, true]);
  });

  it('paused drops frames unencoded and resumes with a keyframe', () => {
    const out: EncodedChunkOut[] = [];
    const loop = new VideoEncodeLoop(opts, (c) => out.push(c), () => undefined);
    loop.push(new FakeFrame(640, 480) as unknown as VideoFrame);
    now += 33;
    loop.push(new FakeFrame(640, 480) as unknown as VideoFrame);
    loop.paused = true;
    const skipped = new FakeFrame(640, 480);
    now += 33;
    loop.push(skipped as unknown as VideoFrame);
    expect(skipped.closed).toBe(true);
    loop.paused = false;
    now += 33;
    loop.push(new FakeFrame(640, 480) as unknown as VideoFrame);
    expect(out.map((c) => c.keyframe)).toEqual([true, false, true]);
  });

  it('encodes a smaller camera picture while each frame takes longer than the frame interval; a screen keeps its size', () => {
    FakeEncoder.hold = true;
    const sizes = (o: typeof opts & { keepSize?: boolean }) => {
      const loop = new VideoEncodeLoop(o, () => undefined, () => undefined);
      const seen = new Set<number>();
      for (let i = 0; i < 60; i++) {
        loop.push(new FakeFrame(640, 480) as unknown as VideoFrame);
        const enc = FakeEncoder.last;
        seen.add(enc.config!.width);
        now += 100; // three frame intervals at 30 fps
        enc.flush();
      }
      return [...seen];
    };
    expect(sizes(opts)).toEqual([640, 480, 320]);
    expect(sizes({ ...opts, keepSize: true })).toEqual([640]);
  });

  it('halves the camera on the uplink\'s half-size step; a kept size takes only its bitrate and frame rate', () => {
    const run = (keepSize: boolean) => {
      const loop = new VideoEncodeLoop({ ...opts, keepSize }, () => undefined, () => undefined);
      loop.adapt({ bitrate: 0.25, framerate: 15, scale: 0.5 });
      loop.push(new FakeFrame(640, 480) as unknown as VideoFrame);
      const c = FakeEncoder.last.config!;
      return [c.width, c.height, c.bitrate, c.framerate];
    };
    expect(run(false)).toEqual([320, 240, opts.bitrate * 0.25, 15]);
    expect(run(true)).toEqual([640, 480, opts.bitrate * 0.25, 15]);
  });
});
