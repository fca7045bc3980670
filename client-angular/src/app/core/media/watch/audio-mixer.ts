import { MediaFrame } from '../../protocol/frame';
import { rms } from '../levels';
import { MediaPath, PathGate } from './path-gate';
import { FromAudioDecoder, ToAudioDecoder } from './audio-decode-messages';
import { OpusDecoders } from './opus-decoders';
import { mediaWorkersOn } from '../workers';

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
    const onPcm = (e) => {
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
    // The decode worker's port, when decoding runs in a worker: PCM then bypasses the page.
    this.port.onmessage = (e) => {
      if (e.data.type === 'port') e.data.port.onmessage = onPcm;
      else onPcm(e);
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

/**
 * Decodes every remote Opus track and plays the mix through one AudioWorklet. With `?workers=on`
 * decoding runs in a worker (audio-decode.worker.ts) that hands PCM to the worklet through a
 * MessagePort, so the page only forwards the encoded frames; by default it runs on the page.
 * A track may also arrive decoded over a direct (P2P) path; a PathGate per track picks which
 * path is heard.
 */
export class AudioMixer {
  private ctx: AudioContext | null = null;
  private node: AudioWorkletNode | null = null;
  private ready: Promise<void> | null = null;
  private worker: Worker | null = null;
  private local: OpusDecoders | null = null;
  private stats = new Map<number, { rms: number; frames: number }>();
  /** 'worker' or 'main': where Opus is decoded. */
  readonly decodeIn: 'worker' | 'main';

  constructor() {
    if (mediaWorkersOn()) {
      try {
        this.worker = new Worker(new URL('./audio-decode.worker', import.meta.url), { type: 'module' });
        this.worker.onmessage = ({ data }: MessageEvent<FromAudioDecoder>) => {
          this.stats = new Map(data.tracks.map(([id, rms, frames]) => [id, { rms, frames }]));
        };
      } catch {
        this.worker = null;
      }
    }
    this.decodeIn = this.worker ? 'worker' : 'main';
  }

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
        const node = new AudioWorkletNode(ctx, 'qm-mixer', { numberOfInputs: 0, numberOfOutputs: 1, outputChannelCount: [2] });
        node.connect(ctx.destination);
        this.node = node;
        if (this.worker) {
          const ch = new MessageChannel();
          node.port.postMessage({ type: 'port', port: ch.port1 }, [ch.port1]);
          this.worker.postMessage({ type: 'port', port: ch.port2 } satisfies ToAudioDecoder, [ch.port2]);
        }
        void ctx.resume();
      })
      .catch((e: Error) => console.warn('quicmeet: audio output unavailable', e))
      .finally(() => URL.revokeObjectURL(url));
    return this.ready;
  }

  push(f: MediaFrame): void {
    const now = performance.now();
    if (this.worker) {
      // The worker hands PCM straight to the worklet, so the path is chosen before decoding.
      if (!this.gateFor(f.trackId).accept('server', now)) return;
      this.countPlayed(f.trackId);
      const payload = f.payload.slice();
      this.worker.postMessage({ type: 'frame', trackId: f.trackId, timestampUs: f.captureTsUs, payload } satisfies ToAudioDecoder, [payload.buffer]);
      return;
    }
    this.local ??= new OpusDecoders((id, rate, samples) => this.onServerPcm(id, rate, samples));
    this.local.push(f.trackId, f.captureTsUs, f.payload);
  }

  /** Decoded audio of the direct (P2P) track: into the same queue as the server's packets. */
  pushDirect(trackId: number, data: AudioData): void {
    const gate = this.gateFor(trackId);
    try {
      if (!gate.accept('p2p', performance.now())) return;
      const samples = new Float32Array(data.numberOfFrames);
      data.copyTo(samples, { planeIndex: 0, format: 'f32-planar' });
      this.play(trackId, data.sampleRate, samples);
    } finally {
      data.close();
    }
  }

  /** Which path of a remote track is heard (the other fills in while it is silent). */
  prefer(trackId: number, path: MediaPath): void {
    this.gateFor(trackId).preferred = path;
  }

  /** Decoded loudness of one remote track (0..1 RMS, smoothed). */
  loudness(trackId: number): number {
    const direct = this.loud.get(trackId) ?? 0;
    if (this.worker) return Math.max(direct, this.stats.get(trackId)?.rms ?? 0);
    return direct;
  }

  framesDecoded(trackId: number): number {
    return this.local ? this.local.frames(trackId) : (this.stats.get(trackId)?.frames ?? 0);
  }

  /** Frames played from either path (server packets decoded, or the direct track). */
  framesPlayed(trackId: number): number {
    return this.played.get(trackId) ?? 0;
  }

  remove(trackId: number): void {
    this.gates.delete(trackId);
    this.played.delete(trackId);
    this.loud.delete(trackId);
    this.stats.delete(trackId);
    if (this.worker) this.worker.postMessage({ type: 'remove', trackId } satisfies ToAudioDecoder);
    this.local?.remove(trackId);
    this.node?.port.postMessage({ type: 'remove', id: trackId });
  }

  /** Ends audio output; the decode worker stays for a later start() (rejoining). */
  close(): void {
    for (const id of new Set([...this.stats.keys(), ...this.gates.keys()])) this.remove(id);
    this.local?.close();
    this.local = null;
    this.node?.disconnect();
    this.node = null;
    void this.ctx?.close();
    this.ctx = null;
    this.ready = null;
  }

  /** Ends the decode worker too (the meeting page is going away). */
  destroy(): void {
    this.close();
    this.worker?.terminate();
    this.worker = null;
  }

  private readonly gates = new Map<number, PathGate>();
  /** Frames played per track, from either path. */
  private readonly played = new Map<number, number>();
  /** Loudness of what is played on the page (server audio decoded here, or the direct track). */
  private readonly loud = new Map<number, number>();

  private gateFor(trackId: number): PathGate {
    let g = this.gates.get(trackId);
    if (!g) {
      // Opus packets come every 20 ms: 100 ms without one means the path went quiet.
      g = new PathGate(100);
      this.gates.set(trackId, g);
    }
    return g;
  }

  private countPlayed(id: number): void {
    this.played.set(id, (this.played.get(id) ?? 0) + 1);
  }

  /** Server audio decoded on the page: heard only if its path is the one chosen. */
  private onServerPcm(id: number, rate: number, samples: Float32Array<ArrayBuffer>): void {
    if (!this.gateFor(id).accept('server', performance.now())) return;
    this.play(id, rate, samples);
  }

  private play(id: number, rate: number, samples: Float32Array<ArrayBuffer>): void {
    this.countPlayed(id);
    this.loud.set(id, (this.loud.get(id) ?? 0) * 0.7 + rms(samples) * 0.3);
    this.node?.port.postMessage({ type: 'pcm', id, rate, samples }, [samples.buffer]);
  }
}
