import { MediaFrame, MediaKind } from '../../protocol/frame';
import { pump } from './pump';
import { EncodedChunkOut, EncodeOptions, VideoEncodeLoop } from './video-encode-loop';
import type { UplinkStep } from './uplink';
import type { FromWorker, ToWorker } from './video-encode-messages';

export { fit } from './video-encode-loop';

/** When one encoded frame came out of the encoder and when it left for the network, wall ms. */
export interface SentTiming {
  captureTsUs: number;
  encodedAt: number;
  sentAt: number;
}

export interface VideoPublisherOptions extends EncodeOptions {
  trackId: number;
  kind: MediaKind.Video | MediaKind.Screen;
  /** The layer its frames carry: 0 for the published track, 1 or 2 for a layer the server asked us to make (PROTOCOL §5.6). */
  layer?: number;
}

/**
 * Camera or screen → VP8 frames for `sink`. Encodes in a Web Worker when the browser can move
 * the track's frame stream there (MediaStreamTrackProcessor + transferable streams), otherwise on
 * the main thread; without MediaStreamTrackProcessor it draws a <video> onto a canvas.
 */
export class VideoPublisher {
  private worker: Worker | null = null;
  private loop: VideoEncodeLoop | null = null;
  private seq = 0;
  private stopped = false;
  private step: UplinkStep | null = null;
  private reader: ReadableStreamDefaultReader<VideoFrame> | null = null;
  private fallbackTimer: ReturnType<typeof setInterval> | undefined;
  private fallbackVideo: HTMLVideoElement | null = null;
  width = 0;
  height = 0;
  framesEncoded = 0;
  /** Encoded bytes handed to the connection so far. */
  bytesEncoded = 0;
  framesDropped = 0;
  /** Share of the size the CPU allows (encode-load.ts) and the mean encode time, ms. */
  cpuScale = 1;
  encodeMs = 0;
  /** Capture timestamp (µs) → when its encoded frame left for the network (wall ms), last frames. */
  readonly sent: SentTiming[] = [];
  /** 'worker' | 'main' | 'canvas': where encoding runs (for diagnostics and tests). */
  mode = '';

  constructor(
    readonly track: MediaStreamTrack,
    private readonly opts: VideoPublisherOptions,
    private readonly sink: (f: MediaFrame) => void,
    private readonly onError: (message: string) => void = (m) => console.warn(m),
  ) {}

  get trackId(): number {
    return this.opts.trackId;
  }

  start(): void {
    const encodeOpts: EncodeOptions = {
      bitrate: this.opts.bitrate,
      maxWidth: this.opts.maxWidth,
      maxHeight: this.opts.maxHeight,
      framerate: this.opts.framerate,
      keyframeIntervalMs: this.opts.keyframeIntervalMs,
      keepSize: this.opts.keepSize,
      temporalLayers: this.opts.temporalLayers,
    };
    if (typeof MediaStreamTrackProcessor !== 'function') {
      this.loop = new VideoEncodeLoop(encodeOpts, (c) => this.onChunk(c), this.onError);
    this.loop.paused = this._paused;
    if (this.step) this.loop.adapt(this.step);
      this.startCanvasFallback();
      return;
    }
    const readable = new MediaStreamTrackProcessor<VideoFrame>({ track: this.track, maxBufferSize: 2 }).readable;
    if (typeof Worker === 'function' && this.startWorker(readable, encodeOpts)) return;
    this.mode = 'main';
    this.loop = new VideoEncodeLoop(encodeOpts, (c) => this.onChunk(c), this.onError);
    this.loop.paused = this._paused;
    if (this.step) this.loop.adapt(this.step);
    this.reader = readable.getReader();
    void pump(this.reader, (v) => this.loop?.push(v), (m) => this.onError(`camera ${m}`), () => this.stopped);
  }

  /** Follows the uplink (see uplink.ts); kept for an encoder that starts later. */
  adapt(step: UplinkStep): void {
    this.step = step;
    this.loop?.adapt(step);
    this.worker?.postMessage({ type: 'adapt', step } satisfies ToWorker);
  }

  private _paused = false;

  /** Paused: capture frames are dropped unencoded; resuming starts with a keyframe. */
  get paused(): boolean {
    return this._paused;
  }

  set paused(on: boolean) {
    this._paused = on;
    if (this.loop) this.loop.paused = on;
    this.worker?.postMessage({ type: 'pause', paused: on } satisfies ToWorker);
  }

  requestKeyframe(): void {
    this.loop?.requestKeyframe();
    this.worker?.postMessage({ type: 'keyframe' } satisfies ToWorker);
  }

  stop(): void {
    this.stopped = true;
    this.worker?.postMessage({ type: 'stop' } satisfies ToWorker);
    this.worker = null;
    this.reader?.cancel().catch(() => undefined);
    clearInterval(this.fallbackTimer);
    if (this.fallbackVideo) this.fallbackVideo.srcObject = null;
    this.loop?.close();
    this.loop = null;
  }

  private startWorker(readable: ReadableStream<VideoFrame>, opts: EncodeOptions): boolean {
    let worker: Worker;
    try {
      worker = new Worker(new URL('./video-encode.worker', import.meta.url), { type: 'module' });
      worker.postMessage({ type: 'start', readable, opts } satisfies ToWorker, [readable as unknown as Transferable]);
      if (this._paused) worker.postMessage({ type: 'pause', paused: true } satisfies ToWorker);
    } catch {
      // No transferable streams here: encode on the main thread.
      return false;
    }
    if (this.step) worker.postMessage({ type: 'adapt', step: this.step } satisfies ToWorker);
    worker.onmessage = ({ data }: MessageEvent<FromWorker>) => {
      if (this.stopped) return;
      if (data.type === 'chunk') {
        this.width = data.width;
        this.height = data.height;
        this.framesDropped = data.dropped;
        this.cpuScale = data.cpuScale;
        this.encodeMs = data.encodeMs;
        this.onChunk({ keyframe: data.keyframe, timestamp: data.timestamp, encodedAt: data.encodedAt, data: new Uint8Array(data.data) });
      } else {
        this.onError(data.message);
      }
    };
    worker.onerror = (e) => this.onError(`video worker failed: ${e.message}`);
    this.worker = worker;
    this.mode = 'worker';
    return true;
  }

  private startCanvasFallback(): void {
    this.mode = 'canvas';
    const video = document.createElement('video');
    video.muted = true;
    video.playsInline = true;
    video.srcObject = new MediaStream([this.track]);
    void video.play().catch(() => undefined);
    this.fallbackVideo = video;
    const canvas = document.createElement('canvas');
    const ctx = canvas.getContext('2d');
    this.fallbackTimer = setInterval(() => {
      if (!ctx || video.videoWidth === 0) return;
      canvas.width = video.videoWidth;
      canvas.height = video.videoHeight;
      ctx.drawImage(video, 0, 0);
      this.loop?.push(new VideoFrame(canvas, { timestamp: Math.round(performance.now() * 1000) }));
    }, 1000 / this.opts.framerate);
  }

  private onChunk(c: EncodedChunkOut): void {
    if (this.stopped) return;
    if (this.loop) {
      this.width = this.loop.width;
      this.height = this.loop.height;
      this.framesDropped = this.loop.framesDropped;
      this.cpuScale = this.loop.load.scale;
      this.encodeMs = this.loop.load.encodeMs;
    }
    this.framesEncoded++;
    this.bytesEncoded += c.data.byteLength;
    if (this.sent.length >= 600) this.sent.shift();
    this.sent.push({ captureTsUs: c.timestamp, encodedAt: c.encodedAt, sentAt: performance.timeOrigin + performance.now() });
    this.sink({
      kind: this.opts.kind,
      layer: this.opts.layer ?? 0,
      keyframe: c.keyframe,
      trackId: this.opts.trackId,
      seq: this.seq++ >>> 0,
      captureTsUs: c.timestamp,
      payload: c.data,
    });
  }
}
