import { MediaFrame } from '../../protocol/frame';
import { rms } from '../levels';

/**
 * The AudioWorklet: one queue per remote speaker at 48 kHz, resampled by linear interpolation to
 * the context's rate (44.1 kHz here) and summed. A speaker starts playing once 40 ms are
 * buffered; more than 200 ms buffered drops the oldest audio to keep latency down.
 */
export const WORKLET_SOURCE = `
class QmMixer extends AudioWorkletProcessor {
  constructor() {
    super();
    this.sources = new Map();
    this.port.onmessage = (e) => {
      const m = e.data;
      if (m.type === 'pcm') {
        let s = this.sources.get(m.id);
        if (!s) { s = { chunks: [], offset: 0, buffered: 0, playing: false, pos: 0, rate: m.rate }; this.sources.set(m.id, s); }
        s.rate = m.rate;
        s.chunks.push(m.samples);
        s.buffered += m.samples.length;
        const max = m.rate * 0.2;
        while (s.buffered > max && s.chunks.length > 1) { const c = s.chunks.shift(); s.buffered -= c.length - s.offset; s.offset = 0; }
      } else if (m.type === 'remove') {
        this.sources.delete(m.id);
      }
    };
  }
  process(inputs, outputs) {
    const out = outputs[0][0];
    out.fill(0);
    for (const s of this.sources.values()) {
      if (!s.playing) { if (s.buffered >= s.rate * 0.04) s.playing = true; else continue; }
      const step = s.rate / sampleRate;
      for (let i = 0; i < out.length; i++) {
        if (s.chunks.length === 0) { s.playing = false; break; }
        const c = s.chunks[0];
        const idx = s.offset + s.pos;
        const i0 = Math.floor(idx);
        const frac = idx - i0;
        const a = c[i0];
        const b = i0 + 1 < c.length ? c[i0 + 1] : (s.chunks[1] ? s.chunks[1][0] : a);
        out[i] += a + (b - a) * frac;
        s.pos += step;
        while (s.chunks.length && s.offset + s.pos >= s.chunks[0].length) {
          const used = s.chunks[0].length - s.offset;
          s.pos -= used;
          s.buffered -= used;
          s.offset = 0;
          s.chunks.shift();
        }
      }
    }
    for (let i = 0; i < out.length; i++) out[i] = Math.max(-1, Math.min(1, out[i]));
    for (let ch = 1; ch < outputs[0].length; ch++) outputs[0][ch].set(out);
    return true;
  }
}
registerProcessor('qm-mixer', QmMixer);
`;

interface Speaker {
  decoder: AudioDecoder;
  /** Loudness of the decoded audio, 0..1 RMS, for tests and meters. */
  rms: number;
  frames: number;
}

/** Decodes every remote Opus track and plays the mix through one AudioWorklet. */
export class AudioMixer {
  private ctx: AudioContext | null = null;
  private node: AudioWorkletNode | null = null;
  private ready: Promise<void> | null = null;
  private readonly speakers = new Map<number, Speaker>();

  /** Creates/resumes the AudioContext. Call from a user gesture (the Join click). */
  start(): Promise<void> {
    if (this.ready) {
      void this.ctx?.resume();
      return this.ready;
    }
    this.ctx = new AudioContext({ latencyHint: 'interactive' });
    const url = URL.createObjectURL(new Blob([WORKLET_SOURCE], { type: 'text/javascript' }));
    const ctx = this.ctx;
    this.ready = ctx.audioWorklet
      .addModule(url)
      .then(() => {
        this.node = new AudioWorkletNode(ctx, 'qm-mixer', { numberOfInputs: 0, numberOfOutputs: 1, outputChannelCount: [2] });
        this.node.connect(ctx.destination);
        void ctx.resume();
      })
      .catch((e: Error) => console.warn('quicmeet: audio output unavailable', e))
      .finally(() => URL.revokeObjectURL(url));
    return this.ready;
  }

  push(f: MediaFrame): void {
    let s = this.speakers.get(f.trackId);
    if (!s) {
      const id = f.trackId;
      const decoder = new AudioDecoder({
        output: (data) => this.onDecoded(id, data),
        error: () => this.speakers.delete(id),
      });
      decoder.configure({ codec: 'opus', sampleRate: 48000, numberOfChannels: 1 });
      s = { decoder, rms: 0, frames: 0 };
      this.speakers.set(f.trackId, s);
    }
    if (s.decoder.state !== 'configured') return;
    try {
      s.decoder.decode(new EncodedAudioChunk({ type: 'key', timestamp: f.captureTsUs, data: f.payload }));
    } catch {
      /* a bad packet: skip it */
    }
  }

  /** Decoded loudness of one remote track (0..1 RMS, smoothed). */
  loudness(trackId: number): number {
    return this.speakers.get(trackId)?.rms ?? 0;
  }

  framesDecoded(trackId: number): number {
    return this.speakers.get(trackId)?.frames ?? 0;
  }

  remove(trackId: number): void {
    const s = this.speakers.get(trackId);
    if (!s) return;
    if (s.decoder.state !== 'closed') s.decoder.close();
    this.speakers.delete(trackId);
    this.node?.port.postMessage({ type: 'remove', id: trackId });
  }

  close(): void {
    for (const id of [...this.speakers.keys()]) this.remove(id);
    this.node?.disconnect();
    this.node = null;
    void this.ctx?.close();
    this.ctx = null;
    this.ready = null;
  }

  private onDecoded(id: number, data: AudioData): void {
    try {
      const samples = new Float32Array(data.numberOfFrames);
      data.copyTo(samples, { planeIndex: 0, format: 'f32-planar' });
      const s = this.speakers.get(id);
      if (s) {
        s.frames++;
        s.rms = s.rms * 0.7 + rms(samples) * 0.3;
      }
      this.node?.port.postMessage({ type: 'pcm', id, rate: data.sampleRate, samples }, [samples.buffer]);
    } finally {
      data.close();
    }
  }
}
