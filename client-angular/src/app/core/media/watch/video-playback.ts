import type { MediaFrame } from '../../protocol/frame';
import { FrameTiming, RemoteVideo } from './remote-video';
import { FromDecoder, RemoteVideoStats, statsOf, ToDecoder } from './video-decode-messages';

export interface VideoEvents {
  keyframeNeeded(trackId: number): void;
  /** The first frame of a track was painted. */
  firstPaint(trackId: number): void;
}

/** Where remote video is decoded and painted: a worker when the browser can, else the page. */
export interface VideoPlayback {
  readonly where: 'worker' | 'main';
  push(f: MediaFrame): void;
  attach(trackId: number, canvas: HTMLCanvasElement | null): void;
  remove(trackId: number): void;
  stats(): RemoteVideoStats[];
  timings(): Promise<Record<number, FrameTiming[]>>;
  close(): void;
}

/**
 * The decode worker when the browser can run one; `?decode=main` on the page URL keeps decoding on
 * the page (for comparing the two, and a way out if a browser's OffscreenCanvas misbehaves).
 */
export function videoPlayback(events: VideoEvents): VideoPlayback {
  const onPage = typeof location !== 'undefined' && new URLSearchParams(location.search).get('decode') === 'main';
  const canWorker =
    !onPage && typeof Worker === 'function' && typeof OffscreenCanvas === 'function' && typeof HTMLCanvasElement !== 'undefined' && 'transferControlToOffscreen' in HTMLCanvasElement.prototype;
  if (canWorker) {
    try {
      return new WorkerVideo(events);
    } catch {
      /* fall through to the page */
    }
  }
  return new MainThreadVideo(events);
}

/** Decoding on the page (no OffscreenCanvas or workers here, e.g. unit tests). */
class MainThreadVideo implements VideoPlayback {
  readonly where = 'main';
  private readonly remotes = new Map<number, RemoteVideo>();
  private readonly canvases = new Map<number, HTMLCanvasElement>();

  constructor(private readonly events: VideoEvents) {}

  push(f: MediaFrame): void {
    let r = this.remotes.get(f.trackId);
    if (!r) {
      r = new RemoteVideo(f.trackId, (id) => this.events.keyframeNeeded(id), (v) => v.framesPainted === 1 && this.events.firstPaint(v.trackId));
      this.remotes.set(f.trackId, r);
      const c = this.canvases.get(f.trackId);
      if (c) r.attach(c);
    }
    r.push(f);
  }

  attach(trackId: number, canvas: HTMLCanvasElement | null): void {
    if (canvas) this.canvases.set(trackId, canvas);
    else this.canvases.delete(trackId);
    this.remotes.get(trackId)?.attach(canvas);
  }

  remove(trackId: number): void {
    this.remotes.get(trackId)?.close();
    this.remotes.delete(trackId);
  }

  stats(): RemoteVideoStats[] {
    return [...this.remotes.values()].map(statsOf);
  }

  timings(): Promise<Record<number, FrameTiming[]>> {
    return Promise.resolve(Object.fromEntries([...this.remotes].map(([id, r]) => [id, r.timings])));
  }

  close(): void {
    for (const id of [...this.remotes.keys()]) this.remove(id);
  }
}

/**
 * Decoding in one shared worker (video-decode.worker.ts): frames are posted with their payload
 * transferred, tile canvases are handed over once with transferControlToOffscreen. The page
 * keeps only the latest stats snapshot the worker sends.
 */
class WorkerVideo implements VideoPlayback {
  readonly where = 'worker';
  private readonly worker: Worker;
  private snapshot: RemoteVideoStats[] = [];
  private readonly ids = new WeakMap<HTMLCanvasElement, number>();
  /** track id → canvas id, to let the worker drop a canvas whose element went away. */
  private readonly byTrack = new Map<number, number>();
  private nextId = 1;
  private nextRequest = 1;
  private readonly waiting = new Map<number, (t: Record<number, FrameTiming[]>) => void>();

  constructor(private readonly events: VideoEvents) {
    this.worker = new Worker(new URL('./video-decode.worker', import.meta.url), { type: 'module' });
    this.worker.onmessage = ({ data }: MessageEvent<FromDecoder>) => {
      switch (data.type) {
        case 'keyframe':
          this.events.keyframeNeeded(data.trackId);
          break;
        case 'painted':
          this.events.firstPaint(data.trackId);
          break;
        case 'stats':
          this.snapshot = data.stats;
          break;
        case 'timings':
          this.waiting.get(data.requestId)?.(data.timings);
          this.waiting.delete(data.requestId);
          break;
      }
    };
  }

  private post(m: ToDecoder, transfer: Transferable[] = []): void {
    this.worker.postMessage(m, transfer);
  }

  push(f: MediaFrame): void {
    // Its own buffer, so it can be transferred (a received payload may be a view of a larger one).
    const payload = f.payload.slice();
    this.post({ type: 'frame', frame: { ...f, payload } }, [payload.buffer]);
  }

  attach(trackId: number, canvas: HTMLCanvasElement | null): void {
    if (!canvas) {
      const id = this.byTrack.get(trackId);
      this.byTrack.delete(trackId);
      this.post({ type: 'attach', trackId, id: null });
      if (id !== undefined && ![...this.byTrack.values()].includes(id)) this.post({ type: 'drop-canvas', id });
      return;
    }
    let id = this.ids.get(canvas);
    if (id === undefined) {
      id = this.nextId++;
      this.ids.set(canvas, id);
      const off = canvas.transferControlToOffscreen();
      this.post({ type: 'canvas', id, canvas: off }, [off]);
    }
    this.byTrack.set(trackId, id);
    this.post({ type: 'attach', trackId, id });
  }

  remove(trackId: number): void {
    this.post({ type: 'remove', trackId });
    this.snapshot = this.snapshot.filter((s) => s.trackId !== trackId);
  }

  stats(): RemoteVideoStats[] {
    return this.snapshot;
  }

  timings(): Promise<Record<number, FrameTiming[]>> {
    const requestId = this.nextRequest++;
    return new Promise((resolve) => {
      this.waiting.set(requestId, resolve);
      this.post({ type: 'timings', requestId });
    });
  }

  close(): void {
    this.worker.terminate();
    this.snapshot = [];
  }
}
