import { MediaFrame } from '../../protocol/frame';
import { PathGate } from './path-gate';

/** One received frame's way through the client, wall-clock ms (same-machine clocks agree). */
export interface FrameTiming {
  captureTsUs: number;
  /** The layer it came in (0: the publisher's own; higher: made by the server's transcoder). */
  layer: number;
  arrived: number;
  decodeStart: number;
  decoded: number;
  painted: number;
}

export function wallMs(): number {
  return performance.timeOrigin + performance.now();
}

/**
 * One remote video track: VP8 frames → VideoDecoder → a canvas (on the page, or an OffscreenCanvas
 * in the decode worker). Waits for a keyframe before
 * decoding, asks for one after a gap or a decode error, and paints the newest decoded frame.
 * Frames on a stream arrive in order, so the "jitter buffer" is a one-frame hold that lets a late
 * canvas attach and always shows the latest picture.
 */
export class RemoteVideo {
  private decoder: VideoDecoder | null = null;
  private waitingForKey = true;
  private lastSeq = -1;
  private canvas: HTMLCanvasElement | OffscreenCanvas | null = null;
  private ctx: CanvasRenderingContext2D | OffscreenCanvasRenderingContext2D | null = null;
  private held: VideoFrame | null = null;
  private lastKeyRequest = 0;
  /** Layer of the group being decoded (-1 before the first keyframe). */
  private groupLayer = -1;
  /**
   * Layer of the picture on the tile (-1 before the first one), set with `width` and `height`
   * when it is painted: the pair tells the room what the publisher sends (`width << layer`).
   * The group's layer changes when the new layer's keyframe arrives, a decode earlier than its
   * size, and read together with the old picture's size it doubles or halves that answer.
   */
  layer = -1;
  /** Layer of each frame inside the decoder, in decode order (a decoder outputs in that order). */
  private readonly decoding: { ts: number; layer: number }[] = [];
  private heldLayer = -1;
  framesDecoded = 0;
  /** Frames thrown away: before a keyframe, after a gap, when the decoder fell behind. */
  framesDropped = 0;
  /** Per-frame timings (wall-clock ms) of the last frames, for the latency benchmark. */
  readonly timings: FrameTiming[] = [];
  private readonly pending = new Map<number, FrameTiming>();
  framesPainted = 0;
  firstPaintAt: number | null = null;
  width = 0;
  height = 0;
  /** Capture→paint delay of the last frame (same-machine clocks only), ms. */
  latencyMs: number | null = null;
  /** Server frames or the direct (P2P) track: which one this tile shows (PathGate). */
  readonly gate = new PathGate(300);
  /** Frames that came over the direct (P2P) track. */
  framesDirect = 0;
  private heldDirect = false;

  constructor(
    readonly trackId: number,
    private readonly requestKeyframe: (trackId: number) => void,
    private readonly onPaint: (v: RemoteVideo) => void = () => undefined,
  ) {}

  attach(canvas: HTMLCanvasElement | OffscreenCanvas | null): void {
    this.canvas = canvas;
    this.ctx = canvas ? (canvas.getContext("2d") as CanvasRenderingContext2D | OffscreenCanvasRenderingContext2D | null) : null;
    if (this.held && canvas) this.paint(this.held, !this.heldDirect);
  }

  push(f: MediaFrame): void {
    const arrived = wallMs();
    // Layers arrive on different streams, so around a layer switch an old-layer delta can land
    // after the new layer's keyframe: once a keyframe picks a layer, other layers' deltas go.
    if (f.keyframe) {
      this.groupLayer = f.layer;
      this.waitingForKey = false;
    } else if (f.layer !== this.groupLayer && this.groupLayer >= 0) {
      this.framesDropped++;
      return;
    } else if (this.waitingForKey) {
      this.framesDropped++;
      this.askForKey();
      return;
    } else if (this.lastSeq >= 0 && f.seq !== ((this.lastSeq + 1) >>> 0)) {
      // A gap inside a group of pictures: the reference chain is broken.
      this.framesDropped++;
      this.waitingForKey = true;
      this.askForKey();
      return;
    }
    this.lastSeq = f.seq;
    const dec = this.ensureDecoder();
    if (dec.decodeQueueSize > 10 && !f.keyframe) {
      // Far behind: skip to the next keyframe rather than show stale video.
      this.framesDropped++;
      this.waitingForKey = true;
      this.askForKey();
      return;
    }
    if (this.pending.size > 30) this.pending.clear();
    this.pending.set(f.captureTsUs, { captureTsUs: f.captureTsUs, layer: f.layer, arrived, decodeStart: wallMs(), decoded: 0, painted: 0 });
    if (this.decoding.length >= 64) this.decoding.shift();
    this.decoding.push({ ts: f.captureTsUs, layer: f.layer });
    try {
      dec.decode(new EncodedVideoChunk({ type: f.keyframe ? 'key' : 'delta', timestamp: f.captureTsUs, data: f.payload }));
    } catch {
      this.reset();
    }
  }

  close(): void {
    if (this.decoder && this.decoder.state !== 'closed') this.decoder.close();
    this.decoder = null;
    this.held?.close();
    this.held = null;
  }

  private ensureDecoder(): VideoDecoder {
    if (this.decoder && this.decoder.state !== 'closed') return this.decoder;
    this.decoder = new VideoDecoder({
      output: (frame) => this.onDecoded(frame),
      error: () => this.reset(),
    });
    this.decoder.configure({ codec: 'vp8', optimizeForLatency: true });
    return this.decoder;
  }

  private reset(): void {
    if (this.decoder && this.decoder.state !== 'closed') this.decoder.close();
    this.decoder = null;
    this.decoding.length = 0;
    this.waitingForKey = true;
    this.askForKey();
  }

  private askForKey(): void {
    const now = performance.now();
    if (now - this.lastKeyRequest < 500) return;
    this.lastKeyRequest = now;
    this.requestKeyframe(this.trackId);
  }

  /** A frame of the direct (P2P) WebRTC track: shown when the gate lets it. */
  showDirect(frame: VideoFrame): void {
    this.framesDirect++;
    if (!this.gate.accept('p2p', performance.now())) {
      frame.close();
      return;
    }
    this.held?.close();
    this.held = frame;
    this.heldDirect = true;
    // Its timestamp is not the sender's capture time: no latency from it.
    this.latencyMs = null;
    if (this.canvas) this.paint(frame, false);
  }

  private onDecoded(frame: VideoFrame): void {
    this.framesDecoded++;
    // Entries ahead of this frame's are frames that gave no picture (an error, a hidden frame).
    while (this.decoding.length && this.decoding[0].ts !== frame.timestamp) this.decoding.shift();
    const layer = this.decoding.shift()?.layer ?? this.groupLayer;
    if (!this.gate.accept('server', performance.now())) {
      frame.close();
      return;
    }
    this.heldDirect = false;
    const t = this.pending.get(frame.timestamp);
    if (t) {
      this.pending.delete(frame.timestamp);
      t.decoded = wallMs();
      if (this.timings.length >= 600) this.timings.shift();
      this.timings.push(t);
    }
    this.held?.close();
    this.held = frame;
    this.heldLayer = layer;
    if (this.canvas) this.paint(frame);
  }

  private paint(frame: VideoFrame, fromServer = true): void {
    if (!this.canvas || !this.ctx) return;
    const w = frame.displayWidth;
    const h = frame.displayHeight;
    if (this.canvas.width !== w) this.canvas.width = w;
    if (this.canvas.height !== h) this.canvas.height = h;
    this.ctx.drawImage(frame, 0, 0, w, h);
    const t = this.timings.at(-1);
    if (t && t.captureTsUs === frame.timestamp && !t.painted) t.painted = wallMs();
    this.width = w;
    this.height = h;
    if (fromServer) this.layer = this.heldLayer;
    this.framesPainted++;
    if (this.firstPaintAt === null) this.firstPaintAt = performance.now();
    if (fromServer) this.latencyMs = Math.max(0, performance.timeOrigin + performance.now() - (frame.timestamp ?? 0) / 1000);
    this.onPaint(this);
  }
}
