import { MediaFrame, MediaKind } from '../protocol/frame';

export interface VideoPublisherOptions {
  trackId: number;
  kind: MediaKind.Video | MediaKind.Screen;
  bitrate: number;
  maxWidth: number;
  maxHeight: number;
  framerate: number;
  keyframeIntervalMs: number;
}

/**
 * Camera or screen → VP8 frames. Reads the track with MediaStreamTrackProcessor (or, where that
 * is missing, draws a video element onto a canvas), encodes in realtime mode and hands each
 * encoded frame to `sink`. A keyframe every ~2 s and whenever the server asks.
 */
export class VideoPublisher {
  private encoder: VideoEncoder | null = null;
  private configured = '';
  private seq = 0;
  private lastKeyAt = -Infinity;
  private forceKey = true;
  private stopped = false;
  private reader: ReadableStreamDefaultReader<VideoFrame> | null = null;
  private fallbackTimer: ReturnType<typeof setInterval> | undefined;
  private fallbackVideo: HTMLVideoElement | null = null;
  width = 0;
  height = 0;
  framesEncoded = 0;

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
    if (typeof MediaStreamTrackProcessor === 'function') {
      const proc = new MediaStreamTrackProcessor<VideoFrame>({ track: this.track, maxBufferSize: 2 });
      this.reader = proc.readable.getReader();
      void this.pump();
    } else {
      this.startCanvasFallback();
    }
  }

  requestKeyframe(): void {
    this.forceKey = true;
  }

  stop(): void {
    this.stopped = true;
    this.reader?.cancel().catch(() => undefined);
    clearInterval(this.fallbackTimer);
    if (this.fallbackVideo) this.fallbackVideo.srcObject = null;
    if (this.encoder && this.encoder.state !== 'closed') this.encoder.close();
    this.encoder = null;
  }

  private async pump(): Promise<void> {
    const reader = this.reader;
    if (!reader) return;
    try {
      while (!this.stopped) {
        const { value, done } = await reader.read();
        if (done || !value) break;
        this.encode(value);
      }
    } catch (e) {
      if (!this.stopped) this.onError(`camera capture stopped: ${(e as Error).message}`);
    }
  }

  private startCanvasFallback(): void {
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
      this.encode(new VideoFrame(canvas, { timestamp: Math.round(performance.now() * 1000) }));
    }, 1000 / this.opts.framerate);
  }

  private encode(frame: VideoFrame): void {
    try {
      if (this.stopped) return;
      const { w, h } = fit(frame.displayWidth, frame.displayHeight, this.opts.maxWidth, this.opts.maxHeight);
      this.ensureEncoder(w, h);
      const enc = this.encoder;
      if (!enc || enc.state !== 'configured') return;
      // Realtime: never let the encoder queue up; drop instead.
      if (enc.encodeQueueSize > 2) return;
      const now = performance.now();
      const key = this.forceKey || now - this.lastKeyAt >= this.opts.keyframeIntervalMs;
      if (key) {
        this.forceKey = false;
        this.lastKeyAt = now;
      }
      // Stamp the frame with wall-clock capture time so receivers can measure latency.
      const stamped = new VideoFrame(frame, { timestamp: Math.round((performance.timeOrigin + now) * 1000) });
      enc.encode(stamped, { keyFrame: key });
      stamped.close();
    } catch (e) {
      this.onError(`video encode failed: ${(e as Error).message}`);
      this.forceKey = true;
    } finally {
      frame.close();
    }
  }

  private ensureEncoder(w: number, h: number): void {
    const key = `${w}x${h}`;
    if (this.encoder && this.configured === key && this.encoder.state === 'configured') return;
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
    this.encoder.configure({
      codec: 'vp8',
      width: w,
      height: h,
      bitrate: this.opts.bitrate,
      framerate: this.opts.framerate,
      latencyMode: 'realtime',
      bitrateMode: 'variable',
    });
    this.configured = key;
    this.width = w;
    this.height = h;
    this.forceKey = true;
  }

  private onChunk(chunk: EncodedVideoChunk): void {
    if (this.stopped) return;
    const payload = new Uint8Array(chunk.byteLength);
    chunk.copyTo(payload);
    this.framesEncoded++;
    this.sink({
      kind: this.opts.kind,
      layer: 0,
      keyframe: chunk.type === 'key',
      trackId: this.opts.trackId,
      seq: this.seq++ >>> 0,
      captureTsUs: chunk.timestamp,
      payload,
    });
  }
}

/** Scales (w,h) down to fit within (maxW,maxH), keeping the aspect ratio and even sizes. */
export function fit(w: number, h: number, maxW: number, maxH: number): { w: number; h: number } {
  const s = Math.min(1, maxW / w, maxH / h);
  return { w: Math.max(2, Math.round((w * s) / 2) * 2), h: Math.max(2, Math.round((h * s) / 2) * 2) };
}
