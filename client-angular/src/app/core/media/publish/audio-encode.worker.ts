/**
 * Runs the microphone's Opus encode loop off the main thread: the page transfers the track's
 * MediaStreamTrackProcessor stream here and gets encoded frames back (buffers transferred).
 */
import { pump } from './pump';
import { AudioEncodeLoop } from './audio-encode-loop';
import { FromAudioEncoder, ToAudioEncoder } from './audio-encode-messages';

let loop: AudioEncodeLoop | null = null;
let reader: ReadableStreamDefaultReader<AudioData> | null = null;

const post = (m: FromAudioEncoder, transfer: Transferable[] = []) => postMessage(m, transfer);

addEventListener('message', ({ data }: MessageEvent<ToAudioEncoder>) => {
  switch (data.type) {
    case 'start': {
      const l = new AudioEncodeLoop(
        (c) => post({ type: 'chunk', payload: c.payload.buffer, level: c.level, timestampUs: c.timestampUs }, [c.payload.buffer]),
        (message) => post({ type: 'error', message }),
      );
      l.paused = data.paused;
      loop = l;
      reader = data.readable.getReader();
      void pump(reader, (v) => l.push(v), (message) => post({ type: 'error', message }));
      break;
    }
    case 'paused':
      if (loop) loop.paused = data.paused;
      break;
    case 'stop':
      reader?.cancel().catch(() => undefined);
      loop?.close();
      loop = null;
      close();
      break;
  }
});
