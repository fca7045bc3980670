import type { MediaFrame } from '../../protocol/frame';
import { MediaPath } from './path-gate';
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
  /** A decoded frame of the track's direct (P2P) path; the tile's PathGate picks which path shows. */
  pushDirect(trackId: number, frame: VideoFrame): void;
  /** Which path a track is shown from (kept for a track whose frames have not come yet). */
  prefer(trackId: number, path: MediaPath): void;
  /** When the track's video last came over `path` (performance.now() ms; -Infinity if never). */
  lastAt(trackId: number, path: MediaPath): number;
  attach(trackId: number, canvas: HTMLCanvasElement | null): void;
  remove(trackId: number): void;
  stats(): RemoteVideoStats[];
  timings(): Promise<Record<number, FrameTiming[]>>;
  close(): void;
}

/**
 * Decoding on the page by default; `?decode=worker` on the page URL moves it to the decode worker
 * with OffscreenCanvas. Measured on headless Chromium without a GPU on two loaded cores
 * (BENCHMARKS.md §3), the worker made the page's main thread busier, not idler (more long
 * tasks; in the in-test-SFU suite the control round trip grew from under 0.5 s to 3–12 s), and
 * reading a worker-owned canvas back lags by seconds. Why is not established; until the worker
 * measures better, the page path is the default.
 */
export function videoPlayback(events: VideoEvents): VideoPlayback {
  const inWorker = typeof location !== 'undefined' && new URLSearchParams(location.search).get('decode') === 'worker';
  const canWorker =
    inWorker && typeof Worker === 'function' && typeof OffscreenCanvas === 'function' && typeof HTMLCanvasElement !== 'undefined' && 'transferControlToOffscreen' in HTMLCanvasElement.prototype;
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
  /** Tracks told to show the direct path, kept for decoders made later. */
  private readonly paths = new Map<number, MediaPath>();

  constructor(private readonly events: VideoEvents) {}

  private remote(trackId: number): RemoteVideo {
    let r = this.remotes.get(trackId);
    if (!r) {
      r = new RemoteVideo(trackId, (id) => this.events.keyframeNeeded(id), (v) => v.framesPainted === 1 && this.events.firstPaint(v.trackId));
      r.gate.preferred = this.paths.get(trackId) ?? 'server';
      this.remotes.set(trackId, r);
      const c = this.canvases.get(trackId);
      if (c) r.attach(c);
    }
    return r;
  }

  push(f: MediaFrame): void {
    this.remote(f.trackId).push(f);
  }

  pushDirect(trackId: number, frame: VideoFrame): void {
    this.remote(trackId).showDirect(frame);
  }

  prefer(trackId: number, path: MediaPath): void {
    this.paths.set(trackId, path);
    const r = this.remotes.get(trackId);
    if (r) r.gate.preferred = path;
  }

  lastAt(trackId: number, path: MediaPath): number {
    return this.remotes.get(trackId)?.gate.lastAt(path) ?? -Infinity;
  }

  attach(trackId: number, canvas: HTMLCanvasElement | null): void {
    if (canvas) this.canvases.set(trackId, canvas);
    else this.canvases.delete(trackId);
    this.remotes.get(trackId)?.attach(canvas);
  }

  remove(trackId: number): void {
    this.remotes.get(trackId)?.close();
    this.remotes.delete(trackId);
    this.paths.delete(trackId);
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
  /**
   * When each track's frames last arrived per path, as the page saw them (the worker's PathGate
   * decides what is painted; this answers lastAt without a round trip to the worker).
   */
  private readonly arrived = new Map<number, Record<MediaPath, number>>();

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

  private arrival(trackId: number, path: MediaPath): void {
    let a = this.arrived.get(trackId);
    if (!a) {
      a = { server: -Infinity, p2p: -Infinity };
      this.arrived.set(trackId, a);
    }
    a[path] = performance.now();
  }

  pushDirect(trackId: number, frame: VideoFrame): void {
    this.arrival(trackId, 'p2p');
    this.post({ type: 'direct', trackId, frame }, [frame]);
  }

  prefer(trackId: number, path: MediaPath): void {
    this.post({ type: 'prefer', trackId, path });
  }

  lastAt(trackId: number, path: MediaPath): number {
    return this.arrived.get(trackId)?.[path] ?? -Infinity;
  }

  push(f: MediaFrame): void {
    this.arrival(f.trackId, 'server');
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
    this.arrived.delete(trackId);
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
