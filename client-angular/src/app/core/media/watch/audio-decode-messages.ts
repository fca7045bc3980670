/** Messages between AudioMixer and audio-decode.worker.ts. */
export type ToAudioDecoder =
  /** The AudioWorklet's end of a MessageChannel: decoded PCM goes straight there. */
  | { type: 'port'; port: MessagePort }
  | { type: 'frame'; trackId: number; timestampUs: number; payload: Uint8Array }
  | { type: 'remove'; trackId: number };

export interface FromAudioDecoder {
  type: 'stats';
  /** [track id, loudness 0..1, frames decoded] */
  tracks: [number, number, number][];
}
