/**
 * One live media connection to the server, over WebTransport or WebSocket. Everything above this
 * file is unaware of which one it is: it sends control messages and media frames and receives the
 * same. This folder is the only code that touches WebTransport and WebSocket.
 */
import { ClientMessage, ServerMessage, TransportKind } from '../protocol/control';
import { MediaFrame } from '../protocol/frame';

export interface ConnectionEvents {
  control(msg: ServerMessage): void;
  frame(frame: MediaFrame): void;
  /** The connection ended; `expected` is true when we closed it ourselves. */
  closed(reason: string, expected: boolean): void;
  /**
   * We started dropping one of our own video tracks' deltas (backlog): encode a keyframe of that
   * layer soon (layer > 0: one we make for the server, PROTOCOL.md §5.6).
   */
  keyframeNeeded?(trackId: number, layer: number): void;
}

/** What the connection knows about its own uplink, for the publisher's adaptation. */
export interface UplinkState {
  /** Media bytes handed to the connection and not yet sent. */
  backlogBytes: number;
  /** Video frames dropped because the connection could not keep up, since it opened. */
  drops: number;
  /**
   * The control stream's latest round trip, ms (ping/pong), when known. On WebTransport the
   * browser accepts stream writes at once and queues them itself, so `backlogBytes` stays near
   * zero on a congested uplink; the round trip, whose pings wait behind that queue, shows it.
   */
  rttMs?: number | null;
  /**
   * The server's `uplink_report` (PROTOCOL §5.6), when one came in the last 600 ms: the queue it
   * sees in front of our audio, ms, and the media rate that arrived, kbit/s. It sees what the
   * browser hides: a WebSocket's kernel send buffer and any proxy's queue.
   */
  serverQueueMs?: number | null;
  deliveredKbps?: number | null;
}

export interface Connection {
  readonly kind: TransportKind;
  sendControl(msg: ClientMessage): void;
  sendFrame(frame: MediaFrame): void;
  uplink(): UplinkState;
  close(reason?: string): void;
}

export class TransportError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'TransportError';
  }
}

/** One video group sequence of ours: a track's layer (the layer is a u8, section 1). */
export function groupKey(frame: Pick<MediaFrame, 'trackId' | 'layer'>): number {
  return frame.trackId * 256 + frame.layer;
}

export function hexToBytes(hex: string): Uint8Array<ArrayBuffer> {
  const clean = hex.replace(/[\s:]/g, '');
  const out = new Uint8Array(clean.length / 2);
  for (let i = 0; i < out.length; i++) out[i] = parseInt(clean.slice(i * 2, i * 2 + 2), 16);
  return out;
}

/** Adds the join token as a query parameter, keeping whatever the URL already has. */
export function withToken(url: string, token: string): string {
  const u = new URL(url, globalThis.location?.href ?? 'http://localhost/');
  u.searchParams.set('token', token);
  return u.toString();
}

/** The WebSocket URL to use: the server's, or /ws on the page's own origin. */
export function websocketUrl(serverUrl: string | undefined, loc: { protocol: string; host: string }): string {
  if (serverUrl) {
    if (/^wss?:\/\//.test(serverUrl)) return serverUrl;
    if (/^https?:\/\//.test(serverUrl)) return serverUrl.replace(/^http/, 'ws');
  }
  const scheme = loc.protocol === 'https:' ? 'wss:' : 'ws:';
  return `${scheme}//${loc.host}${serverUrl && serverUrl.startsWith('/') ? serverUrl : '/ws'}`;
}
