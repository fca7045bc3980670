import { TestBed } from '@angular/core/testing';
import { ApiError, JoinAnswer } from '../api/api.models';
import { ServerMessage } from '../protocol/control';
import { encodeFrame, MediaKind } from '../protocol/frame';
import { finalRefusal, TransportListener, TransportService } from './transport.service';

/** A WebSocket stand-in: opens on the next tick, records what is sent, can be dropped. */
class FakeWebSocket {
  static OPEN = 1;
  static all: FakeWebSocket[] = [];
  readyState = 0;
  binaryType = 'blob';
  bufferedAmount = 0;
  sent: Uint8Array[] = [];
  onopen: (() => void) | null = null;
  onmessage: ((e: { data: ArrayBuffer }) => void) | null = null;
  onclose: ((e: { code: number; reason: string }) => void) | null = null;
  onerror: (() => void) | null = null;
  constructor(readonly url: string) {
    FakeWebSocket.all.push(this);
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
  drop() {
    this.readyState = 3;
    this.onclose?.({ code: 1006, reason: '' });
  }
  receiveMedia(bytes: Uint8Array) {
    const data = new Uint8Array(bytes.length + 1);
    data[0] = 2;
    data.set(bytes, 1);
    this.onmessage?.({ data: data.buffer });
  }
  receive(msg: object) {
    const body = new TextEncoder().encode(JSON.stringify({ v: 1, ...msg }));
    const data = new Uint8Array(body.length + 1);
    data[0] = 1;
    data.set(body, 1);
    this.onmessage?.({ data: data.buffer });
  }
  sentTypes(): string[] {
    return this.sent.filter((d) => d[0] === 1).map((d) => JSON.parse(new TextDecoder().decode(d.subarray(1))).type);
  }
}

const answer = (token: string): JoinAnswer => ({
  status: 'ready',
  token,
  expires_in_secs: 60,
  participant: { name: 'A', role: 'guest' },
  media: { webtransport: { url: 'https://127.0.0.1:4433/wt', cert_hashes: [] }, websocket: { url: 'ws://localhost:8080/ws' } },
});

describe('TransportService', () => {
  let svc: TransportService;
  const events: string[] = [];
  const listener: TransportListener = {
    control: (m: ServerMessage) => events.push(`control:${m.type}`),
    frame: () => events.push('frame'),
    connected: (k) => events.push(`connected:${k}`),
    failed: (m, code) => events.push(code ? `failed:${code}:${m}` : `failed:${m}`),
  };

  beforeEach(() => {
    FakeWebSocket.all = [];
    events.length = 0;
    vi.stubGlobal('WebSocket', FakeWebSocket);
    vi.stubGlobal('WebTransport', undefined);
    svc = TestBed.inject(TransportService);
  });
  afterEach(() => {
    svc.disconnect();
    vi.unstubAllGlobals();
    vi.useRealTimers();
  });

  it('falls back to WebSocket without WebTransport and says hello with the token first', async () => {
    await svc.connect(answer('t1'), listener, { prefer: 'auto', rejoin: async () => answer('t2') });
    expect(svc.kind()).toBe('websocket');
    expect(svc.label()).toBe('WebSocket');
    const ws = FakeWebSocket.all[0];
    expect(ws.url).toBe('ws://localhost:8080/ws?token=t1');
    expect(ws.sentTypes()[0]).toBe('hello');
    expect(events).toEqual(['connected:websocket']);
  });

  it('refuses ?transport=wt when WebTransport is missing', async () => {
    await expect(svc.connect(answer('t1'), listener, { prefer: 'wt', rejoin: async () => answer('t2') })).rejects.toThrow(/WebTransport/);
  });

  it('reports the queue its audio shows, and stops for a server that does not know the report', async () => {
    await svc.connect(answer('t1'), listener, { prefer: 'ws', rejoin: async () => answer('t2') });
    const ws = FakeWebSocket.all[0];
    let seq = 0;
    // 300 ms of one remote microphone's 20 ms frames, each 30 ms on the way.
    const audio = async () => {
      for (let k = 0; k < 15; k++) {
        const captureTsUs = Math.floor(performance.now() * 1000) - 30_000;
        ws.receiveMedia(encodeFrame({ kind: MediaKind.Audio, layer: 0, keyframe: false, trackId: 32, seq: seq++, captureTsUs, payload: new Uint8Array([1, 2, 3]) }));
        await new Promise((r) => setTimeout(r, 20));
      }
    };
    const reports = () => ws.sentTypes().filter((t) => t === 'receiver_report').length;
    await audio();
    expect(reports()).toBeGreaterThan(0);
    // An older server answers unknown_message: no more reports, and the room does not see
    // the error.
    ws.receive({ type: 'error', code: 'unknown_message', message: 'unknown message type' });
    const before = reports();
    await audio();
    expect(reports()).toBe(before);
    expect(events).not.toContain('control:error');
  });

  it("asks for uplink reports in hello and hands the server's report to the publisher through uplink()", async () => {
    await svc.connect(answer('t1'), listener, { prefer: 'ws', rejoin: async () => answer('t2') });
    const ws = FakeWebSocket.all[0];
    const hello = JSON.parse(new TextDecoder().decode(ws.sent[0].subarray(1)));
    expect(hello).toMatchObject({ type: 'hello', token: 't1', uplink_reports: true });
    expect(svc.uplink().serverQueueMs).toBeNull();
    ws.receive({ type: 'uplink_report', queue_ms: 140, kbps: 612 });
    expect(svc.uplink()).toMatchObject({ serverQueueMs: 140, deliveredKbps: 612 });
    expect(events).not.toContain('control:uplink_report');
    // A report stands for the uplink only while it is fresh.
    await new Promise((r) => setTimeout(r, 650));
    expect(svc.uplink().serverQueueMs).toBeNull();
  });

  it('measures RTT from pong and hides pongs from the room', async () => {
    await svc.connect(answer('t1'), listener, { prefer: 'ws', rejoin: async () => answer('t2') });
    FakeWebSocket.all[0].receive({ type: 'pong', t: performance.now() - 42 });
    expect(svc.rttMs()).toBeGreaterThanOrEqual(42);
    expect(events).not.toContain('control:pong');
    FakeWebSocket.all[0].receive({ type: 'lobby', message: 'wait' });
    expect(events).toContain('control:lobby');
  });

  /** Connected over WebSocket on fake timers, then the connection drops. */
  async function connectThenDrop(rejoin: () => Promise<JoinAnswer>): Promise<void> {
    vi.useFakeTimers();
    const p = svc.connect(answer('t1'), listener, { prefer: 'ws', rejoin });
    await vi.advanceTimersByTimeAsync(1);
    await p;
    FakeWebSocket.all[0].drop();
  }

  it('reconnects after a drop with a fresh token from rejoin', async () => {
    const rejoin = vi.fn(async () => answer('fresh'));
    await connectThenDrop(rejoin);
    expect(svc.state()).toBe('reconnecting');
    await vi.advanceTimersByTimeAsync(600);
    expect(rejoin).toHaveBeenCalledTimes(1);
    expect(FakeWebSocket.all[1].url).toContain('token=fresh');
    expect(svc.state()).toBe('connected');
    expect(events).toEqual(['connected:websocket', 'connected:websocket']);
  });

  it('stops reconnecting when the rejoin is refused for good, and says why', async () => {
    // The host ended the meeting and our goodbye was lost with the connection.
    const rejoin = vi.fn(async (): Promise<JoinAnswer> => {
      throw new ApiError(410, 'meeting_ended', 'The host ended this meeting.');
    });
    await connectThenDrop(rejoin);
    await vi.advanceTimersByTimeAsync(20_000);
    expect(rejoin).toHaveBeenCalledTimes(1);
    expect(svc.state()).toBe('closed');
    expect(events).toEqual(['connected:websocket', 'failed:meeting_ended:The host ended this meeting.']);
  });

  it('keeps trying through a server error or a lost network, and rejoins when it answers', async () => {
    let calls = 0;
    const rejoin = vi.fn(async (): Promise<JoinAnswer> => {
      calls++;
      if (calls === 1) throw new ApiError(503, 'unavailable', 'restarting');
      if (calls === 2) throw new ApiError(0, 'network', 'Cannot reach the server.');
      return answer('fresh');
    });
    await connectThenDrop(rejoin);
    await vi.advanceTimersByTimeAsync(4_000);
    expect(rejoin).toHaveBeenCalledTimes(3);
    expect(svc.state()).toBe('connected');
  });

  it('tells a refusal for good from one worth retrying', () => {
    expect(finalRefusal(new ApiError(410, 'meeting_ended', 'ended'))).toBe('meeting_ended');
    expect(finalRefusal(new ApiError(403, 'removed', 'removed'))).toBe('removed');
    expect(finalRefusal(new ApiError(404, '', 'gone'))).toBe('http_404');
    expect(finalRefusal(new ApiError(429, 'rate_limited', 'slow down'))).toBeNull();
    expect(finalRefusal(new ApiError(408, 'timeout', 'timeout'))).toBeNull();
    expect(finalRefusal(new ApiError(502, 'bad_gateway', 'x'))).toBeNull();
    expect(finalRefusal(new TypeError('Failed to fetch'))).toBeNull();
    expect(finalRefusal(undefined)).toBeNull();
  });

  it('does not reconnect after leaving on purpose', async () => {
    vi.useFakeTimers();
    const rejoin = vi.fn(async () => answer('fresh'));
    const p = svc.connect(answer('t1'), listener, { prefer: 'ws', rejoin });
    await vi.advanceTimersByTimeAsync(1);
    await p;
    svc.disconnect();
    await vi.advanceTimersByTimeAsync(100);
    FakeWebSocket.all[0].drop();
    await vi.advanceTimersByTimeAsync(10_000);
    expect(rejoin).not.toHaveBeenCalled();
    expect(FakeWebSocket.all[0].sentTypes()).toContain('leave');
  });
});
