import { MediaFrame, MediaKind } from '../../protocol/frame';
import { rms, rmsToDbov } from '../levels';

/**
 * Microphone → Opus 48 kHz mono, 20 ms frames. Each frame's header carries the audio level of
 * the samples that went into it. `paused` (mute) stops sending altogether.
 */
export class AudioPublisher {
  private encoder: AudioEncoder | null = null;
  private reader: ReadableStreamDefaultReader<AudioData> | null = null;
  private seq = 0;
  private stopped = false;
  /** Loudest level (lowest -dBov) seen since the last encoded frame. */
  private pendingLevel = 127;
  private configuredRate = 0;
  paused = false;
  /** Last measured level, -dBov, for the local meter. */
  level = 127;
  framesEncoded = 0;

  constructor(
    readonly track: MediaStreamTrack,
    readonly trackId: number,
    private readonly sink: (f: MediaFrame) => void,
    private readonly onError: (message: string) => void = (m) => console.warn(m),
  ) {}

  start(): void {
    if (typeof MediaStreamTrackProcessor !== 'function' || typeof AudioEncoder !== 'function') {
      this.onError('This browser cannot encode audio (no WebCodecs AudioEncoder).');
      return;
    }
    const proc = new MediaStreamTrackProcessor<AudioData>({ track: this.track });
    this.reader = proc.readable.getReader();
    void this.pump();
  }

  stop(): void {
    this.stopped = true;
    this.reader?.cancel().catch(() => undefined);
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
        this.handle(value);
      }
    } catch (e) {
      if (!this.stopped) this.onError(`microphone capture stopped: ${(e as Error).message}`);
    }
  }

  private handle(data: AudioData): void {
    try {
      const samples = new Float32Array(data.numberOfFrames);
      data.copyTo(samples, { planeIndex: 0, format: 'f32-planar' });
      const lvl = rmsToDbov(rms(samples));
      this.level = lvl;
      if (this.paused || this.stopped) return;
      this.pendingLevel = Math.min(this.pendingLevel, lvl);
      this.ensureEncoder(data.sampleRate);
      if (!this.encoder || this.encoder.state !== 'configured') return;
      if (data.numberOfChannels === 1) {
        this.encoder.encode(data);
      } else {
        // Downmix: we publish mono.
        const mono = new AudioData({
          format: 'f32-planar',
          sampleRate: data.sampleRate,
          numberOfFrames: data.numberOfFrames,
          numberOfChannels: 1,
          timestamp: data.timestamp,
          data: samples,
        });
        this.encoder.encode(mono);
        mono.close();
      }
    } catch (e) {
      this.onError(`audio encode failed: ${(e as Error).message}`);
    } finally {
      data.close();
    }
  }

  private ensureEncoder(sampleRate: number): void {
    if (this.encoder && this.encoder.state === 'configured' && this.configuredRate === sampleRate) return;
    if (!this.encoder || this.encoder.state === 'closed') {
      this.encoder = new AudioEncoder({
        output: (chunk) => this.onChunk(chunk),
        error: (e) => {
          this.onError(`audio encoder error: ${e.message}`);
          this.configuredRate = 0;
        },
      });
    }
    this.encoder.configure({
      codec: 'opus',
      sampleRate,
      numberOfChannels: 1,
      bitrate: 32000,
      opus: { frameDuration: 20000, format: 'opus' },
    } as AudioEncoderConfig);
    this.configuredRate = sampleRate;
  }

  private onChunk(chunk: EncodedAudioChunk): void {
    if (this.stopped || this.paused) return;
    const payload = new Uint8Array(chunk.byteLength);
    chunk.copyTo(payload);
    const level = this.pendingLevel;
    this.pendingLevel = 127;
    this.framesEncoded++;
    this.sink({
      kind: MediaKind.Audio,
      layer: 0,
      keyframe: false,
      trackId: this.trackId,
      seq: this.seq++ >>> 0,
      captureTsUs: Math.round((performance.timeOrigin + performance.now()) * 1000),
      audioLevel: level,
      payload,
    });
  }
}
