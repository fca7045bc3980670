import { computed, Injectable, signal } from '@angular/core';
import { ApiError, JoinAnswer } from '../api/api.models';
import { ClientMessage, ServerMessage, TransportKind } from '../protocol/control';
import { FRAME_HEADER_LEN, MediaFrame, MediaKind } from '../protocol/frame';
import { Connection, ConnectionEvents, UplinkState, websocketUrl, withToken } from './connection';
import { DelayMeter, REPORT_EVERY_MS } from './delay-meter';
import { WebSocketConnection } from './websocket-connection';
import { WebTransportConnection } from './webtransport-connection';

export type TransportState = 'idle' | 'connecting' | 'connected' | 'reconnecting' | 'closed';
export type TransportPreference = 'auto' | 'wt' | 'ws';

export interface ConnectOptions {
  prefer: TransportPreference;
  /** Fetches a fresh join answer (a new token) for reconnecting after a drop. */
  rejoin: () => Promise<JoinAnswer>;
}

export interface TransportListener {
  control(msg: ServerMessage): void;
  frame(frame: MediaFrame): void;
  /** A fresh connection is up (first time or after a reconnect): send hello-dependent state. */
  connected(kind: TransportKind): void;
  /**
   * Gave up: the connection is gone for good. `code` is the server's reason when a rejoin was
   * refused for good (e.g. `meeting_ended`: the host ended the meeting while we were away).
   */
  failed(message: string, code?: string): void;
  /** The transport dropped our video to the next keyframe: ask the encoder for one now. */
  keyframeNeeded?(trackId: number, layer: number): void;
}

// Once a second: the uplink controller reads congestion from the round trip (connection.ts).
const PING_EVERY_MS = 1000;
const BACKOFF_MS = [500, 1000, 2000, 4000, 8000, 8000, 8000];
/** How long the server's `uplink_report` stands for the uplink (reports come about every 100 ms). */
const UPLINK_REPORT_FRESH_MS = 600;

/**
 * URLs to try for WebTransport, in order. Chromium resolves "localhost" to ::1 for QUIC without
 * falling back to IPv4, while a development server usually listens on 127.0.0.1 only: after a
 * quick failure on localhost we try 127.0.0.1 (certificate hashes do not depend on the name).
 */
export function webTransportCandidates(url: string): string[] {
  try {
    const u = new URL(url);
    if (u.hostname === 'localhost') {
      const v4 = new URL(url);
      v4.hostname = '127.0.0.1';
      return [url, v4.toString()];
    }
  } catch {
    /* let open() report the bad URL */
  }
  return [url];
}

/** Reads ?transport=ws|wt from the page URL. */
export function transportPreferenceFromUrl(search: string): TransportPreference {
  const v = new URLSearchParams(search).get('transport');
  return v === 'ws' || v === 'wt' ? v : 'auto';
}

/**
 * Owns the live connection: picks WebTransport or WebSocket, says hello, pings for RTT and
 * reconnects with backoff after an unexpected drop, using a fresh join token.
 */
@Injectable({ providedIn: 'root' })
export class TransportService {
  private conn: Connection | null = null;
  private listener: TransportListener | null = null;
  private options: ConnectOptions | null = null;
  private pingTimer: ReturnType<typeof setInterval> | undefined;
  private generation = 0;
  private bytesIn = 0;
  private bytesOut = 0;
  private rateAt = 0;
  private rateTimer: ReturnType<typeof setInterval> | undefined;
  /** Queueing on our downlink, from the remote audio, for `receiver_report`. */
  private readonly delay = new DelayMeter();
  private reportTimer: ReturnType<typeof setInterval> | undefined;
  /** The server's latest `uplink_report` and when it came (performance.now()). */
  private serverUplink: { queueMs: number; kbps: number; at: number } | null = null;

  private readonly _kind = signal<TransportKind | null>(null);
  private readonly _state = signal<TransportState>('idle');
  private readonly _rttMs = signal<number | null>(null);
  private readonly _lastError = signal<string | null>(null);

  readonly kind = this._kind.asReadonly();
  readonly state = this._state.asReadonly();
  readonly rttMs = this._rttMs.asReadonly();
  readonly lastError = this._lastError.asReadonly();
  /** Media bitrate in and out over the last second, kbit/s (frame headers included). */
  readonly bitrateKbps = signal<{ in: number; out: number }>({ in: 0, out: 0 });
  readonly label = computed(() => (this._kind() === 'webtransport' ? 'WebTransport' : this._kind() === 'websocket' ? 'WebSocket' : '—'));
  readonly quality = computed<'good' | 'fair' | 'poor' | 'unknown'>(() => {
    const rtt = this._rttMs();
    if (rtt === null) return 'unknown';
    return rtt < 150 ? 'good' : rtt < 400 ? 'fair' : 'poor';
  });

  async connect(answer: JoinAnswer, listener: TransportListener, options: ConnectOptions): Promise<void> {
    this.disconnect();
    this.listener = listener;
    this.options = options;
    const gen = ++this.generation;
    this._state.set('connecting');
    await this.open(answer, gen);
  }

  send(msg: ClientMessage): void {
    this.conn?.sendControl(msg);
  }

  /** The live connection's uplink (nothing queued, nothing dropped while disconnected). */
  uplink(): UplinkState {
    if (!this.conn) return { backlogBytes: 0, drops: 0 };
    const report = this.serverUplink && performance.now() - this.serverUplink.at < UPLINK_REPORT_FRESH_MS ? this.serverUplink : null;
    return { ...this.conn.uplink(), rttMs: this._rttMs(), serverQueueMs: report?.queueMs ?? null, deliveredKbps: report?.kbps ?? null };
  }

  sendFrame(frame: MediaFrame): void {
    if (!this.conn) return;
    this.bytesOut += frame.payload.byteLength + FRAME_HEADER_LEN;
    this.conn.sendFrame(frame);
  }

  /** Leaves on purpose: no reconnect. */
  disconnect(reason = 'leaving'): void {
    this.generation++;
    clearInterval(this.pingTimer);
    clearInterval(this.rateTimer);
    clearInterval(this.reportTimer);
    const c = this.conn;
    this.conn = null;
    if (c) {
      c.sendControl({ type: 'leave' });
      // Let the leave message go out before the close.
      setTimeout(() => c.close(reason), 50);
    }
    this._state.set(this.listener ? 'closed' : 'idle');
  }

  /** Drops the current connection and reconnects with a fresh token (server restart, etc.). */
  reconnect(reason: string): void {
    const c = this.conn;
    if (!c) return;
    const gen = ++this.generation;
    this.conn = null;
    c.close(reason);
    void this.onDrop(reason, gen);
  }

  private async open(answer: JoinAnswer, gen: number): Promise<void> {
    const prefer = this.options?.prefer ?? 'auto';
    const events: ConnectionEvents = {
      control: (m) => {
        if (gen !== this.generation) return;
        if (m.type === 'pong') {
          this._rttMs.set(Math.max(0, Math.round(performance.now() - m.t)));
          return;
        }
        if (m.type === 'uplink_report') {
          this.serverUplink = { queueMs: m.queue_ms, kbps: m.kbps, at: performance.now() };
          return;
        }
        if (m.type === 'error' && m.code === 'unknown_message' && this.reportTimer !== undefined) {
          // A server older than receiver reports: stop sending them (its strike limit would
          // drop the connection). The client sends no other message a server could not know.
          clearInterval(this.reportTimer);
          this.reportTimer = undefined;
          return;
        }
        this.listener?.control(m);
      },
      frame: (f) => {
        if (gen !== this.generation) return;
        this.bytesIn += f.payload.byteLength + FRAME_HEADER_LEN;
        if (f.kind === MediaKind.Audio) this.delay.onAudio(f.trackId, f.captureTsUs, performance.now() * 1000);
        this.listener?.frame(f);
      },
      closed: (reason, expected) => {
        if (gen !== this.generation || expected) return;
        this.onDrop(reason, gen);
      },
      keyframeNeeded: (trackId, layer) => {
        if (gen === this.generation) this.listener?.keyframeNeeded?.(trackId, layer);
      },
    };
    let conn: Connection | null = null;
    const wt = answer.media?.webtransport;
    const errors: string[] = [];
    if (prefer !== 'ws' && wt?.url && WebTransportConnection.supported()) {
      const started = performance.now();
      for (const url of webTransportCandidates(wt.url)) {
        const left = 3000 - (performance.now() - started);
        if (left < 200) break;
        try {
          conn = await WebTransportConnection.open(withToken(url, answer.token), wt.cert_hashes, events, left);
          break;
        } catch (e) {
          errors.push((e as Error).message);
        }
      }
      if (!conn && prefer === 'wt') throw new Error(`WebTransport failed: ${errors.join('; ')}`);
    } else if (prefer === 'wt') {
      throw new Error('WebTransport is not available here');
    }
    if (!conn) {
      const url = websocketUrl(answer.media?.websocket?.url, location);
      try {
        conn = await WebSocketConnection.open(withToken(url, answer.token), events);
      } catch (e) {
        errors.push((e as Error).message);
        throw new Error(`Could not connect to the meeting: ${errors.join('; ')}`, { cause: e });
      }
    }
    if (gen !== this.generation) {
      conn.close('superseded');
      return;
    }
    this.conn = conn;
    this._kind.set(conn.kind);
    this._state.set('connected');
    this._lastError.set(null);
    // uplink_reports: the server tells the publisher what it sees of our uplink (an older
    // server ignores the field and sends none).
    this.serverUplink = null;
    conn.sendControl({ type: 'hello', token: answer.token, client: `quicmeet-web/${conn.kind}`, uplink_reports: true });
    clearInterval(this.pingTimer);
    this.pingTimer = setInterval(() => this.conn?.sendControl({ type: 'ping', t: performance.now() }), PING_EVERY_MS);
    clearInterval(this.rateTimer);
    this.rateAt = performance.now();
    this.bytesIn = this.bytesOut = 0;
    this.rateTimer = setInterval(() => this.measureRates(), 1000);
    clearInterval(this.reportTimer);
    this.delay.clear();
    this.reportTimer = setInterval(() => {
      const queue = this.delay.report(performance.now() * 1000);
      if (queue !== null) this.conn?.sendControl({ type: 'receiver_report', queue_ms: queue });
    }, REPORT_EVERY_MS);
    conn.sendControl({ type: 'ping', t: performance.now() });
    this.listener?.connected(conn.kind);
  }

  private measureRates(): void {
    const now = performance.now();
    const secs = Math.max(0.001, (now - this.rateAt) / 1000);
    this.bitrateKbps.set({ in: Math.round((this.bytesIn * 8) / 1000 / secs), out: Math.round((this.bytesOut * 8) / 1000 / secs) });
    this.bytesIn = this.bytesOut = 0;
    this.rateAt = now;
  }

  private async onDrop(reason: string, gen: number): Promise<void> {
    clearInterval(this.pingTimer);
    clearInterval(this.reportTimer);
    this.conn = null;
    this._lastError.set(reason);
    this._state.set('reconnecting');
    for (const delay of BACKOFF_MS) {
      await new Promise((r) => setTimeout(r, delay));
      if (gen !== this.generation || !this.options) return;
      try {
        const answer = await this.options.rejoin();
        await this.open(answer, gen);
        return;
      } catch (e) {
        this._lastError.set((e as Error).message);
        const refusal = finalRefusal(e);
        if (refusal && gen === this.generation) {
          // The server answered and said no (the meeting ended, we were removed, the meeting
          // is gone): asking again cannot help. This is also how a client whose `goodbye`
          // was lost with its connection learns that the host ended the meeting.
          this._state.set('closed');
          this.listener?.failed((e as Error).message, refusal);
          return;
        }
      }
    }
    if (gen !== this.generation) return;
    this._state.set('closed');
    this.listener?.failed(`Lost the connection to the meeting (${reason}).`);
  }
}

/**
 * The server's code when a rejoin was refused for good: an API answer in 4xx other than a
 * timeout or a rate limit. Network errors and 5xx are worth retrying; they give null.
 */
export function finalRefusal(e: unknown): string | null {
  if (!(e instanceof ApiError)) return null;
  const { status, code } = e;
  if (status < 400 || status >= 500 || status === 408 || status === 429) return null;
  return code || `http_${status}`;
}
