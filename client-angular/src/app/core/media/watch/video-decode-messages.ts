import type { MediaFrame } from '../../protocol/frame';
import type { MediaPath } from './path-gate';
import type { FrameTiming } from './remote-video';

/** What the room and the troubleshooting panel show about one remote video track. */
export interface RemoteVideoStats {
  trackId: number;
  painted: number;
  decoded: number;
  dropped: number;
  layer: number;
  width: number;
  height: number;
  latencyMs: number | null;
}

/** Messages between PlaybackService and video-decode.worker.ts. */
export type ToDecoder =
  | { type: 'frame'; frame: MediaFrame }
  /** A decoded frame of the track's direct (P2P) path, transferred. */
  | { type: 'direct'; trackId: number; frame: VideoFrame }
  | { type: 'prefer'; trackId: number; path: MediaPath }
  /** A tile canvas handed over with transferControlToOffscreen, once per element. */
  | { type: 'canvas'; id: number; canvas: OffscreenCanvas }
  | { type: 'attach'; trackId: number; id: number | null }
  | { type: 'drop-canvas'; id: number }
  | { type: 'remove'; trackId: number }
  | { type: 'timings'; requestId: number };

export type FromDecoder =
  | { type: 'keyframe'; trackId: number }
  /** The first frame of a track reached its canvas. */
  | { type: 'painted'; trackId: number }
  | { type: 'stats'; stats: RemoteVideoStats[] }
  | { type: 'timings'; requestId: number; timings: Record<number, FrameTiming[]> };

export function statsOf(r: {
  trackId: number;
  framesPainted: number;
  framesDecoded: number;
  framesDropped: number;
  layer: number;
  width: number;
  height: number;
  latencyMs: number | null;
}): RemoteVideoStats {
  return { trackId: r.trackId, painted: r.framesPainted, decoded: r.framesDecoded, dropped: r.framesDropped, layer: r.layer, width: r.width, height: r.height, latencyMs: r.latencyMs };
}
