/**
 * Decodes every remote Opus track off the main thread and sends the PCM straight to the mixing
 * AudioWorklet through a MessagePort, so audio never waits for the page. Loudness and frame
 * counts go back to the page every 200 ms.
 */
import { FromAudioDecoder, ToAudioDecoder } from './audio-decode-messages';
import { OpusDecoders } from './opus-decoders';

let worklet: MessagePort | null = null;
const decoders = new OpusDecoders((id, rate, samples) => worklet?.postMessage({ type: 'pcm', id, rate, samples }, [samples.buffer]));

addEventListener('message', ({ data }: MessageEvent<ToAudioDecoder>) => {
  switch (data.type) {
    case 'port':
      worklet = data.port;
      break;
    case 'frame':
      decoders.push(data.trackId, data.timestampUs, data.payload);
      break;
    case 'remove':
      decoders.remove(data.trackId);
      worklet?.postMessage({ type: 'remove', id: data.trackId });
      break;
  }
});

setInterval(() => postMessage({ type: 'stats', tracks: decoders.snapshot() } satisfies FromAudioDecoder), 200);
