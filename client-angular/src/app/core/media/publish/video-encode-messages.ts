import type { UplinkStep } from './uplink';
import { EncodeOptions } from './video-encode-loop';

/** Messages between VideoPublisher and video-encode.worker.ts. */
export type ToWorker =
  | { type: 'start'; readable: ReadableStream<VideoFrame>; opts: EncodeOptions }
  | { type: 'keyframe' }
  | { type: 'pause'; paused: boolean }
  | { type: 'adapt'; step: UplinkStep }
  | { type: 'stop' };

export type FromWorker =
  | { type: 'chunk'; keyframe: boolean; timestamp: number; encodedAt: number; data: ArrayBuffer; width: number; height: number; dropped: number; cpuScale: number; encodeMs: number }
  | { type: 'error'; message: string };
