import { rms } from '../levels';

/** Opus packets (20 ms each) allowed to wait in a decoder: 60 ms. */
export const MAX_QUEUED = 3;

/**
 * One Opus decoder per remote audio track, DOM-free so it runs in the audio decode worker or, as
 * a fallback, on the page. Decoded PCM (48 kHz mono, f32) goes to `pcm`; loudness and frame
 * counts are kept for meters and tests.
 */
export class OpusDecoders {
  private readonly tracks = new Map<number, { decoder: AudioDecoder; rms: number; frames: number; stale: number }>();

  constructor(private readonly pcm: (trackId: number, rate: number, samples: Float32Array<ArrayBuffer>) => void) {}

  push(trackId: number, timestampUs: number, payload: Uint8Array): void {
    let s = this.tracks.get(trackId);
    if (!s) {
      const decoder = new AudioDecoder({
        output: (data) => this.onDecoded(trackId, data),
        error: () => this.tracks.delete(trackId),
      });
      decoder.configure({ codec: 'opus', sampleRate: 48000, numberOfChannels: 1 });
      s = { decoder, rms: 0, frames: 0, stale: 0 };
      this.tracks.set(trackId, s);
    }
    if (s.decoder.state !== 'configured') return;
    // The decoder is behind (its thread was starved): what waits there would be played late, and
    // the jitter buffer would drop it anyway. Drop it before decoding, and count it.
    if (s.decoder.decodeQueueSize >= MAX_QUEUED) {
      s.stale++;
      return;
    }
    try {
      s.decoder.decode(new EncodedAudioChunk({ type: 'key', timestamp: timestampUs, data: payload }));
    } catch {
      /* a bad packet: skip it */
    }
  }

  loudness(trackId: number): number {
    return this.tracks.get(trackId)?.rms ?? 0;
  }

  /** Packets dropped unplayed because the decoder was behind. */
  stale(trackId: number): number {
    return this.tracks.get(trackId)?.stale ?? 0;
  }

  frames(trackId: number): number {
    return this.tracks.get(trackId)?.frames ?? 0;
  }

  /** [track id, loudness, frames] for every track. */
  snapshot(): [number, number, number][] {
    return [...this.tracks].map(([id, s]) => [id, s.rms, s.frames]);
  }

  remove(trackId: number): void {
    const s = this.tracks.get(trackId);
    if (!s) return;
    if (s.decoder.state !== 'closed') s.decoder.close();
    this.tracks.delete(trackId);
  }

  close(): void {
    for (const id of [...this.tracks.keys()]) this.remove(id);
  }

  private onDecoded(id: number, data: AudioData): void {
    try {
      const samples = new Float32Array(data.numberOfFrames);
      data.copyTo(samples, { planeIndex: 0, format: 'f32-planar' });
      const s = this.tracks.get(id);
      if (s) {
        s.frames++;
        s.rms = s.rms * 0.7 + rms(samples) * 0.3;
      }
      this.pcm(id, data.sampleRate, samples);
    } finally {
      data.close();
    }
  }
}
