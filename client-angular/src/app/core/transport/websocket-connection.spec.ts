import { MediaFrame, MediaKind } from '../protocol/frame';
import { WebSocketConnection } from './websocket-connection';

class FakeWs {
  static OPEN = 1;
  static last: FakeWs;
  readyState = 0;
  binaryType = '';
  bufferedAmount = 0;
  sent: Uint8Array[] = [];
  onopen: (() => void) | null = null;
  onmessage: unknown = null;
  onclose: unknown = null;
  onerror: unknown = null;
  constructor(readonly url: string) {
    FakeWs.last = this;
    setTimeout(() => {
      this.readyState = 1;
      this.onopen?.();
    });
  }
  send(d: Uint8Array) {
    this.sent.push(d);
  }
  close() {
    this.readyState = 3;
  }
}

const frame = (kind: MediaKind, seq: number, keyframe = false, layer = 0): MediaFrame => ({ kind, layer, keyframe, trackId: 17, seq, captureTsUs: 1, payload: new Uint8Array(10) });

describe('WebSocketConnection', () => {
  beforeEach(() => vi.stubGlobal('WebSocket', FakeWs));
  afterEach(() => vi.unstubAllGlobals());

  it('sends media as 0x02 messages and, when TCP backs up, drops video to the next keyframe but never audio', async () => {
    const needed: number[] = [];
    const conn = await WebSocketConnection.open('ws://x/ws', { control: () => undefined, frame: () => undefined, closed: () => undefined, keyframeNeeded: (id) => needed.push(id) });
    const ws = FakeWs.last;
    conn.sendFrame(frame(MediaKind.Video, 1, true));
    expect(ws.sent.length).toBe(1);
    expect(ws.sent[0][0]).toBe(2);
    ws.bufferedAmount = 10 * 1024 * 1024;
    conn.sendFrame(frame(MediaKind.Video, 2));
    conn.sendFrame(frame(MediaKind.Audio, 3));
    expect(ws.sent.length).toBe(2);
    expect(needed).toEqual([17]);
    ws.bufferedAmount = 0;
    conn.sendFrame(frame(MediaKind.Video, 3));
    expect(ws.sent.length).toBe(2);
    conn.sendFrame(frame(MediaKind.Video, 4, true));
    conn.sendFrame(frame(MediaKind.Video, 5));
    expect(ws.sent.length).toBe(4);
  });

  it('skips to the next keyframe per layer: a layer we make for the server does not hold back layer 0', async () => {
    const needed: [number, number][] = [];
    const conn = await WebSocketConnection.open('ws://x/ws', { control: () => undefined, frame: () => undefined, closed: () => undefined, keyframeNeeded: (id, layer) => needed.push([id, layer]) });
    const ws = FakeWs.last;
    conn.sendFrame(frame(MediaKind.Video, 1, true, 0));
    conn.sendFrame(frame(MediaKind.Video, 1, true, 1));
    ws.bufferedAmount = 10 * 1024 * 1024;
    conn.sendFrame(frame(MediaKind.Video, 2, false, 1));
    expect(needed).toEqual([[17, 1]]);
    ws.bufferedAmount = 0;
    // Layer 1 waits for its keyframe; layer 0's deltas go on.
    conn.sendFrame(frame(MediaKind.Video, 3, false, 1));
    conn.sendFrame(frame(MediaKind.Video, 2, false, 0));
    expect(ws.sent.length).toBe(3);
    conn.sendFrame(frame(MediaKind.Video, 4, true, 1));
    expect(ws.sent.length).toBe(4);
  });
});
