import { MediaFrame, MediaKind } from '../../protocol/frame';
import { RemoteVideo } from './remote-video';

const frame = (seq: number, keyframe: boolean, layer = 0): MediaFrame => ({ kind: MediaKind.Video, layer, keyframe, trackId: 17, seq, captureTsUs: seq, payload: new Uint8Array(4) });

class FakeDecoder {
  static decoded: string[] = [];
  state = 'unconfigured';
  decodeQueueSize = 0;
  configure() {
    this.state = 'configured';
  }
  decode(c: { type: string; timestamp: number }) {
    FakeDecoder.decoded.push(`${c.type}:${c.timestamp}`);
  }
  close() {
    this.state = 'closed';
  }
}
class FakeChunk {
  type: string;
  timestamp: number;
  constructor(init: { type: string; timestamp: number }) {
    this.type = init.type;
    this.timestamp = init.timestamp;
  }
}

describe('RemoteVideo', () => {
  beforeEach(() => {
    FakeDecoder.decoded = [];
    vi.stubGlobal('VideoDecoder', FakeDecoder);
    vi.stubGlobal('EncodedVideoChunk', FakeChunk);
  });
  afterEach(() => vi.unstubAllGlobals());

  it('waits for a keyframe and asks for one', () => {
    const asked: number[] = [];
    const v = new RemoteVideo(17, (id) => asked.push(id));
    v.push(frame(5, false));
    expect(FakeDecoder.decoded).toEqual([]);
    expect(asked).toEqual([17]);
    v.push(frame(6, true));
    v.push(frame(7, false));
    expect(FakeDecoder.decoded).toEqual(['key:6', 'delta:7']);
  });

  it('stops at a gap in the group until the next keyframe', () => {
    const asked: number[] = [];
    const v = new RemoteVideo(17, (id) => asked.push(id));
    v.push(frame(1, true));
    v.push(frame(3, false));
    v.push(frame(4, false));
    expect(FakeDecoder.decoded).toEqual(['key:1']);
    expect(asked).toEqual([17]);
    v.push(frame(10, true));
    expect(FakeDecoder.decoded).toEqual(['key:1', 'key:10']);
  });

  it("ignores the old layer's late deltas after a layer switch", () => {
    const v = new RemoteVideo(17, () => undefined);
    v.push(frame(1, true, 0));
    v.push(frame(2, false, 0));
    v.push(frame(1, true, 1));
    v.push(frame(3, false, 0));
    v.push(frame(2, false, 1));
    expect(FakeDecoder.decoded).toEqual(['key:1', 'delta:2', 'key:1', 'delta:2']);
  });

  it('reports the layer of the picture on the tile together with its size', () => {
    // The room reads what the publisher sends as `width << layer`: a layer switch must not show
    // the new layer with the old picture's size while its keyframe is still being decoded.
    let output: (f: unknown) => void = () => undefined;
    vi.stubGlobal(
      'VideoDecoder',
      class extends FakeDecoder {
        constructor(init: { output: (f: unknown) => void }) {
          super();
          output = init.output;
        }
      },
    );
    const picture = (timestamp: number, w: number) => ({ timestamp, displayWidth: w, displayHeight: (w * 3) / 4, close: () => undefined });
    const v = new RemoteVideo(17, () => undefined);
    v.attach({ width: 0, height: 0, getContext: () => ({ drawImage: () => undefined }) } as unknown as HTMLCanvasElement);
    v.push(frame(1, true, 0));
    output(picture(1, 640));
    expect([v.layer, v.width]).toEqual([0, 640]);
    // The same capture on both layers: the full layer's delta, then the half layer's keyframe.
    v.push(frame(2, false, 0));
    v.push(frame(2, true, 1));
    expect([v.layer, v.width]).toEqual([0, 640]);
    output(picture(2, 640));
    expect([v.layer, v.width]).toEqual([0, 640]);
    output(picture(2, 320));
    expect([v.layer, v.width]).toEqual([1, 320]);
    // A frame that gave no picture does not shift the layers of the ones after it.
    v.push(frame(3, false, 1));
    v.push(frame(4, false, 1));
    output(picture(4, 320));
    expect([v.layer, v.width]).toEqual([1, 320]);
  });
});
