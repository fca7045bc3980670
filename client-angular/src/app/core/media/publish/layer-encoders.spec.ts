import { MediaFrame, MediaKind } from '../../protocol/frame';
import { defaultLayerEncoder, LayerEncoders } from './layer-encoders';
import type { SlotEncoder } from './publish.service';
import { fakeCapture, fakeTrack, publishTestBed } from './publish.testing';
import type { VideoPublisherOptions } from './video-publisher';

/** A layer encoder that records how it was made and emits frames on demand, as VideoPublisher would. */
class FakeLayerEncoder implements SlotEncoder {
  framesEncoded = 0;
  started = false;
  stopped = false;
  keyframes = 0;
  private seq = 0;
  constructor(
    readonly source: MediaStreamTrack,
    readonly opts: VideoPublisherOptions,
    private readonly sink: (f: MediaFrame) => void,
  ) {}
  start(): void {
    this.started = true;
  }
  stop(): void {
    this.stopped = true;
  }
  requestKeyframe(): void {
    this.keyframes++;
  }
  emit(keyframe: boolean): void {
    this.framesEncoded++;
    this.sink({ kind: this.opts.kind, layer: this.opts.layer ?? 0, keyframe, trackId: this.opts.trackId, seq: this.seq++, captureTsUs: 0, payload: new Uint8Array([1]) });
  }
}

function layerSetup() {
  const made: FakeLayerEncoder[] = [];
  const frames: MediaFrame[] = [];
  const layers = new LayerEncoders(
    (f) => frames.push(f),
    (source, opts, sink) => {
      const e = new FakeLayerEncoder(source, opts, sink);
      made.push(e);
      return e;
    },
    30,
  );
  const live = () => made.filter((e) => e.started && !e.stopped);
  return { layers, made, frames, live };
}

describe('LayerEncoders (publisher-made layers, PROTOCOL §5.6)', () => {
  it('starts a second encoder at the requested size and bitrate whose frames carry the layer', () => {
    const { layers, frames, live } = layerSetup();
    const cam = fakeTrack('cam', 'video');
    layers.produce({ trackId: 33, layer: 1, width: 320, height: 240, bitrate: 400_000 }, cam);
    expect(live().length).toBe(1);
    const e = live()[0];
    expect(e.source).toBe(cam);
    expect(e.opts).toMatchObject({ trackId: 33, kind: MediaKind.Video, layer: 1, maxWidth: 320, maxHeight: 240, bitrate: 400_000, keepSize: true });
    e.emit(true);
    e.emit(false);
    expect(frames.map((f) => [f.trackId, f.layer, f.seq, f.keyframe])).toEqual([
      [33, 1, 0, true],
      [33, 1, 1, false],
    ]);
    expect(layers.active().map((r) => r.layer)).toEqual([1]);
  });

  it('stops on stop_layer, ignores a repeated request and restarts on a retuned one', () => {
    const { layers, made, live } = layerSetup();
    const cam = fakeTrack('cam', 'video');
    const req = { trackId: 33, layer: 2, width: 160, height: 120, bitrate: 150_000 };
    layers.produce(req, cam);
    layers.produce(req, cam);
    expect(made.length).toBe(1);
    layers.produce({ ...req, bitrate: 100_000 }, cam);
    expect(made.length).toBe(2);
    expect(made[0].stopped).toBe(true);
    layers.stop(33, 2);
    expect(live().length).toBe(0);
    expect(layers.active()).toEqual([]);
  });

  it('halves the captured size when the server does not know the published one', () => {
    const { layers, live } = layerSetup();
    layers.produce({ trackId: 33, layer: 2, width: 0, height: 0, bitrate: 150_000 }, fakeTrack('cam', 'video'));
    expect(live()[0].opts).toMatchObject({ maxWidth: 160, maxHeight: 120 });
  });

  it('never makes the full layer or a layer that does not exist', () => {
    const { layers, made } = layerSetup();
    for (const layer of [0, 3]) layers.produce({ trackId: 33, layer, width: 10, height: 10, bitrate: 1 }, fakeTrack('cam', 'video'));
    expect(made.length).toBe(0);
  });

  it('routes keyframe requests to the layer asked for and follows a new camera', () => {
    const { layers, made, live } = layerSetup();
    layers.produce({ trackId: 33, layer: 1, width: 320, height: 240, bitrate: 400_000 }, fakeTrack('cam', 'video'));
    layers.produce({ trackId: 33, layer: 2, width: 160, height: 120, bitrate: 150_000 }, fakeTrack('cam', 'video'));
    layers.requestKeyframe(33, 2);
    expect(made.map((e) => e.keyframes)).toEqual([0, 1]);
    const next = fakeTrack('cam2', 'video');
    layers.restart(33, next);
    expect(live().map((e) => [e.opts.layer, e.source])).toEqual([
      [1, next],
      [2, next],
    ]);
    // Without a source the requests are kept and start again when one comes.
    layers.restart(33, null);
    expect(live().length).toBe(0);
    layers.restart(33, next);
    expect(live().length).toBe(2);
    layers.forget(33);
    expect(live().length).toBe(0);
  });
});

describe('the default layer encoder', () => {
  it('encodes from a clone of the camera and releases the clone when stopped', () => {
    const clone = { ...fakeTrack('cam-clone', 'video'), stop: vi.fn() } as unknown as MediaStreamTrack;
    const source = { ...fakeTrack('cam', 'video'), clone: () => clone } as unknown as MediaStreamTrack;
    const opts: VideoPublisherOptions = { trackId: 33, kind: MediaKind.Video, layer: 1, bitrate: 400_000, maxWidth: 320, maxHeight: 240, framerate: 30, keyframeIntervalMs: 2000 };
    const enc = defaultLayerEncoder(source, opts, () => undefined, () => undefined);
    expect(enc.framesEncoded).toBe(0);
    enc.stop();
    expect(clone.stop).toHaveBeenCalledTimes(1);
  });
});

describe('PublishService and produce_layer', () => {
  function setup() {
    const made: FakeLayerEncoder[] = [];
    const { publish, sent, frames, session } = publishTestBed({
      capture: fakeCapture(fakeTrack('cam', 'video')),
      encoders: () => ({ framesEncoded: 0, start: () => undefined, stop: () => undefined, requestKeyframe: () => undefined }),
      layerEncoders: (source, opts, sink) => {
        const e = new FakeLayerEncoder(source, opts, sink);
        made.push(e);
        return e;
      },
    });
    return { publish, sent, frames, made, session: session(2) };
  }

  afterEach(() => vi.unstubAllGlobals());

  it('declares the capability on the camera when WebCodecs can encode, and only there', () => {
    vi.stubGlobal('VideoEncoder', vi.fn());
    const { publish, sent, session } = setup();
    publish.bind(session);
    const cam = sent.find((m) => m.type === 'publish' && m.kind === 'video');
    expect(cam).toMatchObject({ track_id: 33, layers_capable: true });
  });

  it('leaves the capability out without WebCodecs', () => {
    vi.stubGlobal('VideoEncoder', undefined);
    const { publish, sent, session } = setup();
    publish.bind(session);
    const cam = sent.find((m) => m.type === 'publish' && m.kind === 'video');
    expect(cam).toBeDefined();
    expect(cam).not.toHaveProperty('layers_capable');
  });

  it('encodes the requested layer of its own camera into the session and stops on stop_layer', () => {
    const { publish, frames, made, session } = setup();
    publish.bind(session);
    publish.produceLayer({ trackId: 33, layer: 1, width: 320, height: 240, bitrate: 400_000 });
    // Not our track: ignored.
    publish.produceLayer({ trackId: 49, layer: 1, width: 320, height: 240, bitrate: 400_000 });
    expect(made.length).toBe(1);
    made[0].emit(true);
    expect(frames.at(-1)).toMatchObject({ trackId: 33, layer: 1, keyframe: true, seq: 0 });
    publish.requestLocalKeyframe(33, 1);
    expect(made[0].keyframes).toBe(1);
    expect(publish.producedLayers().map((r) => r.layer)).toEqual([1]);
    publish.stopLayer(33, 1);
    expect(made[0].stopped).toBe(true);
    expect(publish.producedLayers()).toEqual([]);
  });

  it('holds the layers it makes while the CPU is critical and resumes them once it is fair again', () => {
    // The browser's Compute Pressure observer, driven by hand.
    let report: (records: { state: string }[]) => void = () => undefined;
    vi.stubGlobal(
      'PressureObserver',
      class {
        constructor(cb: (records: { state: string }[]) => void) {
          report = cb;
        }
        observe(): Promise<void> {
          return Promise.resolve();
        }
        disconnect(): void {
          /* nothing to stop */
        }
      },
    );
    const pressure = (state: string) => report([{ state }]);
    const { publish, made, session } = setup();
    publish.bind(session);
    publish.produceLayer({ trackId: 33, layer: 1, width: 320, height: 240, bitrate: 400_000 });
    expect(made.length).toBe(1);
    pressure('critical');
    expect(made[0].stopped).toBe(true);
    expect(publish.producedLayers()).toEqual([]);
    // A layer asked for while critical is remembered, not started.
    publish.produceLayer({ trackId: 33, layer: 2, width: 160, height: 120, bitrate: 150_000 });
    expect(made.length).toBe(1);
    // Serious is not enough to resume (no flapping between the two).
    pressure('serious');
    expect(made.length).toBe(1);
    pressure('fair');
    expect(made.length).toBe(3);
    expect(made.slice(1).every((e) => !e.stopped)).toBe(true);
    expect(publish.producedLayers().map((r) => r.layer).sort()).toEqual([1, 2]);
    // Serious after fair holds nothing.
    pressure('serious');
    expect(made.slice(1).every((e) => !e.stopped)).toBe(true);
    // stop_layer while held forgets the request.
    pressure('critical');
    publish.stopLayer(33, 2);
    pressure('nominal');
    expect(publish.producedLayers().map((r) => r.layer)).toEqual([1]);
  });
});
