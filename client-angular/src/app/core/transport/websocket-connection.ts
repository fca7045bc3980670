import { ClientMessage, parseControl, parseControlBytes, parseWsMessage, wsControl, wsMessage, WS_MEDIA } from '../protocol/control';
import { decodeWholeFrame, encodeFrame, MediaFrame, MediaKind } from '../protocol/frame';
import { Connection, ConnectionEvents, groupKey, TransportError, UplinkState } from './connection';

/** Past this many queued bytes we drop video until its next keyframe (TCP has no way to skip). */
const VIDEO_BACKLOG_LIMIT = 512 * 1024;

/** The fallback transport: binary WebSocket messages, 0x01 = control JSON, 0x02 = media frame. */
export class WebSocketConnection implements Connection {
  readonly kind = 'websocket' as const;
  private closedByUs = false;
  private finished = false;
  /** Video (track and layer, `groupKey`) we are skipping until a keyframe. */
  private readonly skipping = new Set<number>();
  private drops = 0;

  private constructor(
    private readonly ws: WebSocket,
    private readonly events: ConnectionEvents,
  ) {
    ws.onmessage = (ev) => this.onMessage(ev);
    ws.onclose = (ev) => this.finish(ev.reason || `WebSocket closed (${ev.code})`);
    ws.onerror = () => this.finish('WebSocket error');
  }

  static open(url: string, events: ConnectionEvents, timeoutMs = 5000): Promise<WebSocketConnection> {
    return new Promise((resolve, reject) => {
      let ws: WebSocket;
      try {
        ws = new WebSocket(url);
      } catch (e) {
        reject(new TransportError(`Cannot open WebSocket: ${(e as Error).message}`));
        return;
      }
      ws.binaryType = 'arraybuffer';
      const timer = setTimeout(() => {
        ws.close();
        reject(new TransportError('WebSocket did not open in time'));
      }, timeoutMs);
      ws.onopen = () => {
        clearTimeout(timer);
        resolve(new WebSocketConnection(ws, events));
      };
      ws.onerror = () => {
        clearTimeout(timer);
        reject(new TransportError('WebSocket connection failed'));
      };
    });
  }

  sendControl(msg: ClientMessage): void {
    if (this.ws.readyState === WebSocket.OPEN) this.ws.send(wsControl(msg));
  }

  uplink(): UplinkState {
    return { backlogBytes: this.ws.bufferedAmount, drops: this.drops };
  }

  sendFrame(frame: MediaFrame): void {
    if (this.ws.readyState !== WebSocket.OPEN) return;
    if (frame.kind !== MediaKind.Audio) {
      const key = groupKey(frame);
      if (frame.keyframe) this.skipping.delete(key);
      else if (this.skipping.has(key)) return;
      if (this.ws.bufferedAmount > VIDEO_BACKLOG_LIMIT) {
        this.drops++;
        this.skipping.add(key);
        this.events.keyframeNeeded?.(frame.trackId, frame.layer);
        return;
      }
    }
    this.ws.send(wsMessage(WS_MEDIA, encodeFrame(frame)));
  }

  close(reason = 'leaving'): void {
    this.closedByUs = true;
    try {
      this.ws.close(1000, reason);
    } catch {
      /* already closed */
    }
    this.finish(reason);
  }

  private onMessage(ev: MessageEvent): void {
    if (!(ev.data instanceof ArrayBuffer)) {
      // Tolerate a server that sends control as text frames.
      if (typeof ev.data === 'string') this.events.control(parseControl(ev.data));
      return;
    }
    try {
      const m = parseWsMessage(new Uint8Array(ev.data));
      if (m.kind === 'control') this.events.control(parseControlBytes(m.body));
      else this.events.frame(decodeWholeFrame(m.bytes));
    } catch (e) {
      console.warn('quicmeet: bad websocket message', e);
    }
  }

  private finish(reason: string): void {
    if (this.finished) return;
    this.finished = true;
    this.events.closed(reason, this.closedByUs);
  }
}
