/** Messages between AudioPublisher and audio-encode.worker.ts. */
export type ToAudioEncoder =
  | { type: 'start'; readable: ReadableStream<AudioData>; paused: boolean }
  | { type: 'paused'; paused: boolean }
  | { type: 'stop' };

export type FromAudioEncoder =
  | { type: 'chunk'; payload: ArrayBuffer; level: number; timestampUs: number }
  | { type: 'error'; message: string };
