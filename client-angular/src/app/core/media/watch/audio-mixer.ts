import { MediaFrame } from '../../protocol/frame';
import { rms } from '../levels';
import { MediaPath, PathGate } from './path-gate';
import { FromAudioDecoder, ToAudioDecoder } from './audio-decode-messages';
import { OpusDecoders } from './opus-decoders';
import { AudioJitter } from './audio-jitter';
import { mediaWorkersOn } from '../workers';
import workletUrl from './audio-mixer.worklet.js' with { loader: 'file' };

/**
 * Decodes every remote Opus track and plays the mix through one AudioWorklet. With `?workers=on`
 * decoding runs in a worker (audio-decode.worker.ts) that hands PCM to the worklet through a
 * MessagePort, so the page only forwards the encoded frames; by default it runs on the page.
 * A track may also arrive decoded over a direct (P2P) path; a PathGate per track picks which
 * path is heard. Each server track's jitter buffer target follows the jitter its packets arrive
 * with (audio-jitter.ts), measured here where every packet passes, and the underruns the worklet
 * reports.
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
  /** Audio output: 'off' before start(), 'running' once the worklet is loaded, 'failed' if it cannot load. */
  output: 'off' | 'running' | 'failed' = 'off';
  /** Samples of remote speech the worklet has played (it reports every ~0.3 s). */
  samplesRendered = 0;

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
    const ctx = this.ctx;
    // The worklet is a file the build emits (see audio-mixer.worklet.js), resolved against the
    // page's base so it loads from our origin whatever the route.
    this.ready = ctx.audioWorklet
      .addModule(new URL(workletUrl, document.baseURI).href)
      .then(() => {
        const node = new AudioWorkletNode(ctx, 'qm-mixer', { numberOfInputs: 0, numberOfOutputs: 1, outputChannelCount: [2] });
        node.connect(ctx.destination);
        node.port.onmessage = ({ data }: MessageEvent<{ type: string; samples: number; underruns?: [number, number][] }>) => {
          if (data.type !== 'rendered') return;
          this.samplesRendered = data.samples;
          for (const [id, n] of data.underruns ?? []) this.onUnderruns(id, n);
        };
        this.node = node;
        this.output = 'running';
        if (this.worker) {
          const ch = new MessageChannel();
          node.port.postMessage({ type: 'port', port: ch.port1 }, [ch.port1]);
          this.worker.postMessage({ type: 'port', port: ch.port2 } satisfies ToAudioDecoder, [ch.port2]);
        }
        void ctx.resume();
      })
      .catch((e: Error) => {
        this.output = 'failed';
        console.warn('quicmeet: audio output unavailable', e);
      });
    return this.ready;
  }

  push(f: MediaFrame): void {
    const now = performance.now();
    this.follow(f.trackId, now, f.captureTsUs);
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

  /** The jitter buffer target of a remote track, ms (diagnostics and tests). */
  bufferTargetMs(trackId: number): number | null {
    return this.jitter.get(trackId)?.sent ?? null;
  }

  /** Underruns the worklet reported for a track (it ran dry while the track was flowing). */
  underruns(trackId: number): number {
    return this.jitter.get(trackId)?.policy.underruns ?? 0;
  }

  remove(trackId: number): void {
    this.jitter.delete(trackId);
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
    this.output = 'off';
    this.samplesRendered = 0;
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

  /** Per server track: the jitter policy, the target last sent to the worklet, the last arrival. */
  private readonly jitter = new Map<number, { policy: AudioJitter; sent: number; lastArrival: number; reported: number }>();

  private follow(trackId: number, now: number, captureTsUs: number): void {
    let j = this.jitter.get(trackId);
    if (!j) {
      j = { policy: new AudioJitter(), sent: -1, lastArrival: now, reported: 0 };
      this.jitter.set(trackId, j);
    }
    j.lastArrival = now;
    j.policy.arrival(now, captureTsUs);
    this.sendTarget(trackId, j, now);
  }

  private onUnderruns(trackId: number, total: number): void {
    const j = this.jitter.get(trackId);
    if (!j) return;
    const fresh = total - j.reported;
    j.reported = total;
    const now = performance.now();
    // Running dry because the speaker's packets stopped (muted, left, path switched) is not
    // jitter: only count it while packets are still coming.
    if (fresh <= 0 || now - j.lastArrival > 100) return;
    for (let i = 0; i < fresh; i++) j.policy.underrun(now);
    this.sendTarget(trackId, j, now);
  }

  private sendTarget(trackId: number, j: { policy: AudioJitter; sent: number }, now: number): void {
    const ms = Math.round(j.policy.targetMs(now));
    if (ms === j.sent || !this.node) return;
    j.sent = ms;
    this.node.port.postMessage({ type: 'target', id: trackId, ms });
  }

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
