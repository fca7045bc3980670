/**
 * The VP8 encode loop for one video track, free of DOM so it runs in a worker or on the main
 * thread alike: frames in, encoded chunks out, a keyframe every `keyframeIntervalMs` and on
 * request, frames dropped rather than queued when the encoder falls behind.
 */

import { EncodeLoad } from './encode-load';
import type { UplinkStep } from './uplink';

/**
 * Frames inside the encoder at once. One: a frame that comes while the encoder is busy is
 * dropped, and the next one after it is fresh; a second frame would wait behind the first and
 * arrive a whole encode late (measured: g2g p50 over 2× higher with two, BENCHMARKS.md §3).
 */
const MAX_IN_FLIGHT = 1;

export interface EncodeOptions {
  bitrate: number;
  maxWidth: number;
  maxHeight: number;
  framerate: number;
  keyframeIntervalMs: number;
  /**
   * Keep the size whatever happens (a screen: its text must stay readable). When the CPU cannot
   * keep up, frames that come while the encoder is busy are still dropped; when the uplink steps
   * down, its bitrate and frame rate still apply. So it loses frame rate and sharpness, never
   * pixels.
   */
  keepSize?: boolean;
  /**
   * 2: encode two temporal layers (WebCodecs' `L1T2`) where the browser can. Every other frame
   * is then referred to by no later frame, so the server makes this track's lower layers from
   * the base layer alone, at half the frame rate and half the CPU (BENCHMARKS.md §4, seventh
   * pass); subscribers of the full layer still get every frame.
   */
  temporalLayers?: 1 | 2;
}

export interface EncodedChunkOut {
  keyframe: boolean;
  /** Wall-clock capture time, µs. */
  timestamp: number;
  /** Wall-clock time the encoder produced it, ms. */
  encodedAt: number;
  data: Uint8Array<ArrayBuffer>;
}

export class VideoEncodeLoop {
  private encoder: VideoEncoder | null = null;
  private configured = '';
  private configuredBitrate = 0;
  /** The uplink's step (uplink.ts): share of the bitrate, frame rate, share of the size. */
  private adaptation: UplinkStep = { bitrate: 1, framerate: Infinity, scale: 1 };
  private lastFrameAt = -Infinity;
  /** When each frame still inside the encoder was handed to it (performance.now()). */
  private readonly inFlight: number[] = [];
  private lastKeyAt = -Infinity;
  /** Encode time against the frame interval: the size follows what the CPU can encode in time. */
  readonly load = new EncodeLoad();
  private fps = 30;
  private forceKey = true;
  private closed = false;
  private canvas: OffscreenCanvas | null = null;
  width = 0;
  height = 0;
  framesEncoded = 0;
  /** Frames dropped because the encoder had fallen behind. */
  framesDropped = 0;
  /**
   * Paused (a direct call carries this track): frames are dropped unencoded, the encoder stays
   * configured, and the first frame after resuming is a keyframe, so resuming is immediate.
   */
  paused = false;

  /** `L1T2` asked for and supported here (see EncodeOptions.temporalLayers). */
  temporalLayers: 1 | 2 = 1;

  constructor(
    private readonly opts: EncodeOptions,
    private readonly emit: (c: EncodedChunkOut) => void,
    private readonly onError: (message: string) => void,
  ) {
    if (opts.temporalLayers === 2) void this.probeTemporalLayers();
  }

  /**
   * Asks the browser whether it encodes `L1T2`. Until it answers the encoder runs with one
   * layer; a yes reconfigures it at the next frame (with a keyframe), and the camera's first
   * frame usually comes after the answer.
   */
  private async probeTemporalLayers(): Promise<void> {
    if (typeof VideoEncoder === 'undefined' || typeof VideoEncoder.isConfigSupported !== 'function') return;
    try {
      const probe = { ...this.config(this.opts.maxWidth, this.opts.maxHeight, this.opts.bitrate), scalabilityMode: 'L1T2' };
      const { supported } = await VideoEncoder.isConfigSupported(probe);
      if (!supported || this.closed) return;
      this.temporalLayers = 2;
      this.configured = '';
    } catch {
      // Not supported: one layer.
    }
  }

  requestKeyframe(): void {
    this.forceKey = true;
  }

  /** Takes ownership of `frame` (always closes it). */
  push(frame: VideoFrame): void {
    try {
      if (this.closed) return;
      if (this.paused) {
        this.forceKey = true;
        return;
      }
      const now = performance.now();
      // Frame rate follows the uplink: skip frames that come sooner than it allows.
      const fps = Math.min(this.opts.framerate, this.adaptation.framerate);
      if (fps < this.opts.framerate && now - this.lastFrameAt < 1000 / fps - 5) return;
      const a = this.adaptation;
      this.fps = fps;
      // The smaller of the sizes the uplink and the CPU allow, unless the size is kept.
      const sc = this.opts.keepSize ? 1 : Math.min(a.scale, this.load.scale);
      const { w, h } = fit(frame.displayWidth, frame.displayHeight, this.opts.maxWidth * sc, this.opts.maxHeight * sc);
      this.ensureEncoder(w, h);
      const enc = this.encoder;
      if (!enc || enc.state !== 'configured') return;
      // Realtime: never let the encoder queue up; drop instead. encodeQueueSize only counts
      // requests not yet handed to the codec thread, so count frames without output ourselves
      // (a starved CPU otherwise builds seconds of queue inside the codec). The encoder's rate
      // control may drop a frame without output: entries older than a second are forgotten.
      while (this.inFlight.length && now - this.inFlight[0] > 1000) this.inFlight.shift();
      if (enc.encodeQueueSize > 2 || this.inFlight.length >= MAX_IN_FLIGHT) {
        this.framesDropped++;
        return;
      }
      this.inFlight.push(now);
      this.lastFrameAt = now;
      const key = this.forceKey || now - this.lastKeyAt >= this.opts.keyframeIntervalMs;
      if (key) {
        this.forceKey = false;
        this.lastKeyAt = now;
      }
      // Stamp with wall-clock capture time so receivers can measure latency. Frames in a pixel
      // format the encoder cannot read (format null: a depth camera's Y16, say) go through a
      // canvas first, which gives RGBA.
      const timestamp = Math.round((performance.timeOrigin + now) * 1000);
      const stamped = frame.format === null ? this.convert(frame, timestamp) : new VideoFrame(frame, { timestamp });
      enc.encode(stamped, { keyFrame: key });
      stamped.close();
    } catch (e) {
      this.onError(`video encode failed: ${(e as Error).message}`);
      this.forceKey = true;
    } finally {
      frame.close();
    }
  }

  private convert(frame: VideoFrame, timestamp: number): VideoFrame {
    const w = frame.displayWidth;
    const h = frame.displayHeight;
    if (!this.canvas || this.canvas.width !== w || this.canvas.height !== h) this.canvas = new OffscreenCanvas(w, h);
    const ctx = this.canvas.getContext('2d');
    if (!ctx) throw new Error('no 2D canvas to convert the camera frames');
    ctx.drawImage(frame, 0, 0, w, h);
    return new VideoFrame(this.canvas, { timestamp });
  }

  close(): void {
    this.closed = true;
    if (this.encoder && this.encoder.state !== 'closed') this.encoder.close();
    this.encoder = null;
  }

  /** Follows the uplink: a new bitrate applies at once, a new size at the next frame (with a keyframe). */
  adapt(step: UplinkStep): void {
    this.adaptation = step;
  }

  private ensureEncoder(w: number, h: number): void {
    const key = `${w}x${h}`;
    const bitrate = Math.round(this.opts.bitrate * this.adaptation.bitrate);
    if (this.encoder && this.configured === key && this.encoder.state === 'configured') {
      if (bitrate === this.configuredBitrate) return;
      // Same size, new bitrate: reconfigure without forcing a keyframe.
      this.encoder.configure(this.config(w, h, bitrate));
      this.configuredBitrate = bitrate;
      return;
    }
    if (!this.encoder || this.encoder.state === 'closed') {
      this.encoder = new VideoEncoder({
        output: (chunk) => this.onChunk(chunk),
        error: (e) => {
          this.onError(`video encoder error: ${e.message}`);
          this.configured = '';
          this.forceKey = true;
        },
      });
    }
    this.encoder.configure(this.config(w, h, bitrate));
    this.configured = key;
    this.configuredBitrate = bitrate;
    this.width = w;
    this.height = h;
    this.forceKey = true;
  }

  private config(w: number, h: number, bitrate: number): VideoEncoderConfig {
    const config: VideoEncoderConfig = { codec: 'vp8', width: w, height: h, bitrate, framerate: Math.min(this.opts.framerate, this.adaptation.framerate), latencyMode: 'realtime', bitrateMode: 'variable' };
    if (this.temporalLayers === 2) config.scalabilityMode = 'L1T2';
    return config;
  }

  private onChunk(chunk: EncodedVideoChunk): void {
    if (this.closed) return;
    const started = this.inFlight.shift();
    const now = performance.now();
    if (started !== undefined) this.load.sample(now, now - started, this.fps);
    const data = new Uint8Array(chunk.byteLength);
    chunk.copyTo(data);
    this.framesEncoded++;
    this.emit({ keyframe: chunk.type === 'key', timestamp: chunk.timestamp, data, encodedAt: performance.timeOrigin + performance.now() });
  }
}

/** Scales (w,h) down to fit within (maxW,maxH), keeping the aspect ratio and even sizes. */
export function fit(w: number, h: number, maxW: number, maxH: number): { w: number; h: number } {
  const s = Math.min(1, maxW / w, maxH / h);
  return { w: Math.max(2, Math.round((w * s) / 2) * 2), h: Math.max(2, Math.round((h * s) / 2) * 2) };
}
