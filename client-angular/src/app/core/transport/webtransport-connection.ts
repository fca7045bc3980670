import { ClientMessage, ControlStreamReader, encodeControlFrame, parseControlBytes } from '../protocol/control';
import { decodeWholeFrame, encodeFrame, FrameStreamReader, MediaFrame, MediaKind } from '../protocol/frame';
import { CertHash } from '../api/api.models';
import { Connection, ConnectionEvents, groupKey, hexToBytes, TransportError, UplinkState } from './connection';

/** Chromium's datagram limit here is 1211 bytes; stay under it with a margin. */
const DATAGRAM_LIMIT = 1200;
/** Frames waiting behind a stream open/write before we drop deltas until the next keyframe. */
const VIDEO_QUEUE_LIMIT = 30;

interface VideoGroup {
  writer: WritableStreamDefaultWriter<Uint8Array> | null;
  chain: Promise<void>;
  queued: number;
  skipping: boolean;
  groups: number;
}

/**
 * The preferred transport. Control = the first bidirectional stream (u32 BE length + JSON),
 * audio = datagrams, video = one unidirectional stream per group of pictures per track and layer.
 */
export class WebTransportConnection implements Connection {
  readonly kind = 'webtransport' as const;
  private control!: WritableStreamDefaultWriter<Uint8Array>;
  private datagrams!: WritableStreamDefaultWriter<Uint8Array>;
  /** By `groupKey` (track and layer). */
  private readonly video = new Map<number, VideoGroup>();
  private closedByUs = false;
  private finished = false;
  private controlChain: Promise<void> = Promise.resolve();
  private groupOrder = 0;
  private queuedBytes = 0;
  private drops = 0;

  private constructor(
    private readonly wt: WebTransport,
    private readonly events: ConnectionEvents,
  ) {}

  static supported(): boolean {
    return typeof (globalThis as { WebTransport?: unknown }).WebTransport === 'function';
  }

  /** Opens the session, starting the datagram reader at once (incomingHighWaterMark is 1). */
  static async open(url: string, certHashes: CertHash[] | undefined, events: ConnectionEvents, timeoutMs = 3000): Promise<WebTransportConnection> {
    if (!WebTransportConnection.supported()) throw new TransportError('WebTransport is not available in this browser');
    const options: WebTransportOptions = {};
    const hashes = (certHashes ?? []).filter((h) => h.value_hex);
    if (hashes.length > 0) {
      options.serverCertificateHashes = hashes.map((h) => ({ algorithm: h.algorithm || 'sha-256', value: hexToBytes(h.value_hex) }));
    }
    let wt: WebTransport;
    try {
      wt = new WebTransport(url, options);
    } catch (e) {
      throw new TransportError(`Cannot open WebTransport: ${(e as Error).message}`);
    }
    // Whoever loses the race below, a late rejection must not surface as unhandled.
    wt.ready.catch(() => undefined);
    wt.closed.catch(() => undefined);
    const conn = new WebTransportConnection(wt, events);
    try {
      (wt.datagrams as { incomingHighWaterMark?: number }).incomingHighWaterMark = 256;
    } catch {
      /* read-only in some builds */
    }
    conn.readDatagrams();
    let timer: ReturnType<typeof setTimeout> | undefined;
    try {
      await Promise.race([
        wt.ready,
        new Promise((_, reject) => {
          timer = setTimeout(() => reject(new TransportError('WebTransport was not ready within 3 s')), timeoutMs);
        }),
      ]);
    } catch (e) {
      try {
        wt.close();
      } catch {
        /* ignore */
      }
      wt.closed.catch(() => undefined);
      throw e instanceof TransportError ? e : new TransportError(`WebTransport handshake failed: ${(e as Error).message}`);
    } finally {
      clearTimeout(timer);
    }
    const bidi = await wt.createBidirectionalStream();
    conn.control = bidi.writable.getWriter() as WritableStreamDefaultWriter<Uint8Array>;
    conn.datagrams = wt.datagrams.writable.getWriter() as WritableStreamDefaultWriter<Uint8Array>;
    conn.readControl(bidi.readable as ReadableStream<Uint8Array>);
    conn.readUniStreams();
    wt.closed.then(
      (info) => conn.finish(info?.reason || 'WebTransport session closed'),
      (e: Error) => conn.finish(`WebTransport session lost: ${e?.message ?? e}`),
    );
    return conn;
  }

  sendControl(msg: ClientMessage): void {
    const bytes = encodeControlFrame(msg);
    this.controlChain = this.controlChain.then(() => this.control.write(bytes)).catch(() => undefined);
  }

  sendFrame(frame: MediaFrame): void {
    if (this.finished) return;
    const bytes = encodeFrame(frame);
    if (frame.kind === MediaKind.Audio) {
      if (bytes.byteLength <= DATAGRAM_LIMIT) {
        // Datagrams are fire and forget; a full queue just drops, which is what audio wants.
        this.datagrams.write(bytes).catch(() => undefined);
      } else {
        this.sendOnOwnStream(bytes);
      }
      return;
    }
    this.sendVideo(frame, bytes);
  }

  close(reason = 'leaving'): void {
    this.closedByUs = true;
    try {
      this.wt.close({ closeCode: 0, reason });
    } catch {
      /* already closed */
    }
    this.finish(reason);
  }

  uplink(): UplinkState {
    return { backlogBytes: this.queuedBytes, drops: this.drops };
  }

  private sendVideo(frame: MediaFrame, bytes: Uint8Array): void {
    // Each layer of a track has its own groups (PROTOCOL.md §3.1, §5.6): a layer-1 keyframe the
    // publisher makes for the server must not cut layer 0's group short, nor carry its deltas.
    const key = groupKey(frame);
    let g = this.video.get(key);
    if (!g) {
      g = { writer: null, chain: Promise.resolve(), queued: 0, skipping: true, groups: 0 };
      this.video.set(key, g);
    }
    const group = g;
    if (frame.keyframe) {
      group.skipping = false;
    } else if (group.skipping) {
      return;
    }
    if (group.queued > VIDEO_QUEUE_LIMIT && !frame.keyframe) {
      this.drops++;
      group.skipping = true;
      this.events.keyframeNeeded?.(frame.trackId, frame.layer);
      return;
    }
    group.queued++;
    this.queuedBytes += bytes.byteLength;
    group.chain = group.chain
      .then(async () => {
        if (frame.keyframe || !group.writer) {
          const old = group.writer;
          group.writer = null;
          if (old) old.close().catch(() => undefined);
          // Newer groups (of any track) get a higher send order, so a stale group never starves
          // a fresh one.
          const stream = await this.wt.createUnidirectionalStream({ sendOrder: ++this.groupOrder } as WebTransportSendStreamOptions);
          group.groups++;
          group.writer = stream.getWriter() as WritableStreamDefaultWriter<Uint8Array>;
        }
        await group.writer.write(bytes);
      })
      .catch(() => {
        // The stream was reset (the server gave up on this group): restart at a keyframe.
        group.writer = null;
        if (!group.skipping) this.events.keyframeNeeded?.(frame.trackId, frame.layer);
        group.skipping = true;
      })
      .finally(() => {
        group.queued--;
        this.queuedBytes -= bytes.byteLength;
      });
  }

  private sendOnOwnStream(bytes: Uint8Array): void {
    this.wt
      .createUnidirectionalStream()
      .then(async (s) => {
        const w = s.getWriter();
        await w.write(bytes);
        await w.close();
      })
      .catch(() => undefined);
  }

  private async readDatagrams(): Promise<void> {
    const reader = this.wt.datagrams.readable.getReader();
    try {
      for (;;) {
        const { value, done } = await reader.read();
        if (done) return;
        try {
          this.events.frame(decodeWholeFrame(value as Uint8Array));
        } catch (e) {
          console.warn('quicmeet: bad datagram', e);
        }
      }
    } catch {
      /* session closed */
    }
  }

  private async readControl(readable: ReadableStream<Uint8Array>): Promise<void> {
    const reader = readable.getReader();
    const parser = new ControlStreamReader();
    try {
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        for (const body of parser.pushBodies(value)) {
          try {
            this.events.control(parseControlBytes(body));
          } catch (e) {
            // One message we do not understand (a newer server?) must not end the meeting.
            console.warn('quicmeet: skipped control message', e);
          }
        }
      }
      this.finish('control stream ended');
    } catch (e) {
      this.finish(`control stream failed: ${(e as Error)?.message ?? e}`);
    }
  }

  private async readUniStreams(): Promise<void> {
    const reader = this.wt.incomingUnidirectionalStreams.getReader();
    try {
      for (;;) {
        const { value, done } = await reader.read();
        if (done) return;
        this.readFrames(value as ReadableStream<Uint8Array>);
      }
    } catch {
      /* session closed */
    }
  }

  private async readFrames(stream: ReadableStream<Uint8Array>): Promise<void> {
    const reader = stream.getReader();
    const parser = new FrameStreamReader();
    try {
      for (;;) {
        const { value, done } = await reader.read();
        if (done) return;
        for (const f of parser.push(value)) this.events.frame(f);
      }
    } catch {
      // Reset by the server: the receiver notices the gap and waits for a keyframe.
    }
  }

  private finish(reason: string): void {
    if (this.finished) return;
    this.finished = true;
    this.events.closed(reason, this.closedByUs);
  }
}
