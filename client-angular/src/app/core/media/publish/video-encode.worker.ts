/**
 * Runs the camera/screen encode loop off the main thread: the page transfers the track's
 * MediaStreamTrackProcessor stream here and gets encoded chunks back (their buffers transferred).
 */
import { pump } from './pump';
import { VideoEncodeLoop } from './video-encode-loop';
import { FromWorker, ToWorker } from './video-encode-messages';

let loop: VideoEncodeLoop | null = null;
let reader: ReadableStreamDefaultReader<VideoFrame> | null = null;

const post = (m: FromWorker, transfer: Transferable[] = []) => postMessage(m, transfer);

addEventListener('message', ({ data }: MessageEvent<ToWorker>) => {
  switch (data.type) {
    case 'start': {
      const l = new VideoEncodeLoop(
        data.opts,
        (c) => post({ type: 'chunk', keyframe: c.keyframe, timestamp: c.timestamp, encodedAt: c.encodedAt, data: c.data.buffer, width: l.width, height: l.height, dropped: l.framesDropped, cpuScale: l.load.scale, encodeMs: l.load.encodeMs }, [c.data.buffer]),
        (message) => post({ type: 'error', message }),
      );
      loop = l;
      reader = data.readable.getReader();
      void pump(reader, (v) => l.push(v), (message) => post({ type: 'error', message }));
      break;
    }
    case 'keyframe':
      loop?.requestKeyframe();
      break;
    case 'pause':
      if (loop) loop.paused = data.paused;
      break;
    case 'adapt':
      loop?.adapt(data.step);
      break;
    case 'stop':
      reader?.cancel().catch(() => undefined);
      loop?.close();
      loop = null;
      close();
      break;
  }
});
