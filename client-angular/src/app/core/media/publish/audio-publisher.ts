import { MediaFrame, MediaKind } from '../../protocol/frame';
import { pump } from './pump';
import { mediaWorkersOn } from '../workers';
import { AudioChunkOut, AudioEncodeLoop } from './audio-encode-loop';
import type { FromAudioEncoder, ToAudioEncoder } from './audio-encode-messages';

/**
 * Microphone (or tab audio) → Opus frames for `sink`. With `?workers=on` it encodes in a Web
 * Worker when the browser can move the track's sample stream there; by default on the page. Each frame's header carries the audio level of its samples.
 * `paused` (mute) stops sending altogether.
 */
export class AudioPublisher {
  private worker: Worker | null = null;
  private loop: AudioEncodeLoop | null = null;
  private reader: ReadableStreamDefaultReader<AudioData> | null = null;
  private seq = 0;
  private stopped = false;
  private _paused = false;
  framesEncoded = 0;
  /** 'worker' | 'main': where encoding runs (for diagnostics and tests). */
  mode = '';

  constructor(
    readonly track: MediaStreamTrack,
    readonly trackId: number,
    private readonly sink: (f: MediaFrame) => void,
    private readonly onError: (message: string) => void = (m) => console.warn(m),
  ) {}

  get paused(): boolean {
    return this._paused;
  }

  set paused(p: boolean) {
    this._paused = p;
    if (this.loop) this.loop.paused = p;
    this.worker?.postMessage({ type: 'paused', paused: p } satisfies ToAudioEncoder);
  }

  start(): void {
    if (typeof MediaStreamTrackProcessor !== 'function' || typeof AudioEncoder !== 'function') {
      this.onError('This browser cannot encode audio (no WebCodecs AudioEncoder).');
      return;
    }
    const readable = new MediaStreamTrackProcessor<AudioData>({ track: this.track }).readable;
    if (mediaWorkersOn() && this.startWorker(readable)) return;
    this.mode = 'main';
    this.loop = new AudioEncodeLoop((c) => this.onChunk(c), this.onError);
    this.loop.paused = this._paused;
    this.reader = readable.getReader();
    void pump(this.reader, (v) => this.loop?.push(v), (m) => this.onError(`microphone ${m}`), () => this.stopped);
  }

  stop(): void {
    this.stopped = true;
    this.worker?.postMessage({ type: 'stop' } satisfies ToAudioEncoder);
    this.worker = null;
    this.reader?.cancel().catch(() => undefined);
    this.loop?.close();
    this.loop = null;
  }

  private startWorker(readable: ReadableStream<AudioData>): boolean {
    let worker: Worker;
    try {
      worker = new Worker(new URL('./audio-encode.worker', import.meta.url), { type: 'module' });
      worker.postMessage({ type: 'start', readable, paused: this._paused } satisfies ToAudioEncoder, [readable as unknown as Transferable]);
    } catch {
      // No transferable streams here: encode on the main thread.
      return false;
    }
    worker.onmessage = ({ data }: MessageEvent<FromAudioEncoder>) => {
      if (this.stopped) return;
      if (data.type === 'chunk') this.onChunk({ payload: new Uint8Array(data.payload), level: data.level, timestampUs: data.timestampUs });
      else this.onError(data.message);
    };
    worker.onerror = (e) => this.onError(`audio worker failed: ${e.message}`);
    this.worker = worker;
    this.mode = 'worker';
    return true;
  }

  private onChunk(c: AudioChunkOut): void {
    if (this.stopped || this._paused) return;
    this.framesEncoded++;
    this.sink({
      kind: MediaKind.Audio,
      layer: 0,
      keyframe: false,
      trackId: this.trackId,
      seq: this.seq++ >>> 0,
      captureTsUs: c.timestampUs,
      audioLevel: c.level,
      payload: c.payload,
    });
  }
}
