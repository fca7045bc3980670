import { rms, rmsToDbov } from '../levels';

export interface AudioChunkOut {
  payload: Uint8Array<ArrayBuffer>;
  /** Loudest level (-dBov) of the samples that went into this frame. */
  level: number;
  /** Wall-clock time the frame was encoded, µs. */
  timestampUs: number;
}

/**
 * Microphone samples → Opus 48 kHz mono, 20 ms frames, with the audio level of each frame's
 * samples. DOM-free, so it runs in the audio encode worker or on the page alike. `paused` (mute)
 * encodes nothing.
 */
export class AudioEncodeLoop {
  private encoder: AudioEncoder | null = null;
  private configuredRate = 0;
  private pendingLevel = 127;
  private closed = false;
  paused = false;

  constructor(
    private readonly emit: (c: AudioChunkOut) => void,
    private readonly onError: (message: string) => void,
  ) {}

  /** Takes ownership of `data` (always closes it). */
  push(data: AudioData): void {
    try {
      if (this.paused || this.closed) return;
      const samples = new Float32Array(data.numberOfFrames);
      data.copyTo(samples, { planeIndex: 0, format: 'f32-planar' });
      this.pendingLevel = Math.min(this.pendingLevel, rmsToDbov(rms(samples)));
      this.ensureEncoder(data.sampleRate);
      if (!this.encoder || this.encoder.state !== 'configured') return;
      if (data.numberOfChannels === 1) {
        this.encoder.encode(data);
      } else {
        // Downmix: we publish mono.
        const mono = new AudioData({ format: 'f32-planar', sampleRate: data.sampleRate, numberOfFrames: data.numberOfFrames, numberOfChannels: 1, timestamp: data.timestamp, data: samples });
        this.encoder.encode(mono);
        mono.close();
      }
    } catch (e) {
      this.onError(`audio encode failed: ${(e as Error).message}`);
    } finally {
      data.close();
    }
  }

  close(): void {
    this.closed = true;
    if (this.encoder && this.encoder.state !== 'closed') this.encoder.close();
    this.encoder = null;
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
    this.encoder.configure({ codec: 'opus', sampleRate, numberOfChannels: 1, bitrate: 32000, opus: { frameDuration: 20000, format: 'opus' } } as AudioEncoderConfig);
    this.configuredRate = sampleRate;
  }

  private onChunk(chunk: EncodedAudioChunk): void {
    if (this.closed || this.paused) return;
    const payload = new Uint8Array(chunk.byteLength);
    chunk.copyTo(payload);
    const level = this.pendingLevel;
    this.pendingLevel = 127;
    this.emit({ payload, level, timestampUs: Math.round((performance.timeOrigin + performance.now()) * 1000) });
  }
}
