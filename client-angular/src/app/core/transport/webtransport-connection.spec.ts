import { decodeWholeFrame, MediaFrame, MediaKind } from '../protocol/frame';
import { WebTransportConnection } from './webtransport-connection';

/** A readable that never yields (the server sends nothing in these specs). */
const silent = () => ({ getReader: () => ({ read: () => new Promise(() => undefined), releaseLock: () => undefined }) });

/** The parts of a WebTransport session the connection uses; records every outgoing stream. */
class FakeWebTransport {
  static last: FakeWebTransport;
  /** Each unidirectional stream we opened: the frames written on it, and whether it was closed. */
  streams: { frames: MediaFrame[]; closed: boolean }[] = [];
  ready = Promise.resolve();
  closed = new Promise(() => undefined);
  datagrams = { readable: silent(), writable: { getWriter: () => ({ write: async () => undefined }) } };
  incomingUnidirectionalStreams = silent();
  constructor(readonly url: string) {
    FakeWebTransport.last = this;
  }
  async createBidirectionalStream() {
    return { readable: silent(), writable: { getWriter: () => ({ write: async () => undefined }) } };
  }
  async createUnidirectionalStream() {
    const s = { frames: [] as MediaFrame[], closed: false };
    this.streams.push(s);
    return {
      getWriter: () => ({
        write: async (b: Uint8Array) => void s.frames.push(decodeWholeFrame(b)),
        close: async () => void (s.closed = true),
      }),
    };
  }
  close() {
    /* nothing to close */
  }
}

const video = (seq: number, keyframe: boolean, layer: number): MediaFrame => ({ kind: MediaKind.Video, layer, keyframe, trackId: 17, seq, captureTsUs: 1, payload: new Uint8Array(10) });

describe('WebTransportConnection', () => {
  beforeEach(() => vi.stubGlobal('WebTransport', FakeWebTransport));
  afterEach(() => vi.unstubAllGlobals());

  it('sends each layer of a track on its own group streams (publisher-made layers, PROTOCOL §5.6)', async () => {
    const conn = await WebTransportConnection.open('https://x/wt', [], { control: () => undefined, frame: () => undefined, closed: () => undefined });
    const wt = FakeWebTransport.last;
    conn.sendFrame(video(0, true, 0));
    conn.sendFrame(video(1, false, 0));
    // The second encoder's first keyframe: a new group of layer 1, layer 0's group goes on.
    conn.sendFrame(video(0, true, 1));
    conn.sendFrame(video(2, false, 0));
    conn.sendFrame(video(1, false, 1));
    conn.sendFrame(video(3, true, 0));
    await vi.waitFor(() => expect(wt.streams.flatMap((s) => s.frames).length).toBe(6));
    const seen = wt.streams.map((s) => ({ closed: s.closed, frames: s.frames.map((f) => `${f.layer}:${f.seq}${f.keyframe ? 'k' : ''}`) }));
    expect(seen).toEqual([
      { closed: true, frames: ['0:0k', '0:1', '0:2'] },
      { closed: false, frames: ['1:0k', '1:1'] },
      { closed: false, frames: ['0:3k'] },
    ]);
  });
});
