/**
 * Decodes and paints every remote video track off the main thread: frames arrive by message,
 * tile canvases arrive once as OffscreenCanvas, and RemoteVideo does the rest here. Keyframe
 * requests, first paints and a stats snapshot every 250 ms go back to the page.
 */
import { MediaPath } from './path-gate';
import { RemoteVideo } from './remote-video';
import { FromDecoder, statsOf, ToDecoder } from './video-decode-messages';

const remotes = new Map<number, RemoteVideo>();
const canvases = new Map<number, OffscreenCanvas>();
/** track id → canvas id */
const attached = new Map<number, number>();
/** Tracks told to show the direct path, kept for decoders made later. */
const paths = new Map<number, MediaPath>();

const post = (m: FromDecoder) => postMessage(m);

function remote(trackId: number): RemoteVideo {
  let r = remotes.get(trackId);
  if (!r) {
    r = new RemoteVideo(
      trackId,
      (id) => post({ type: 'keyframe', trackId: id }),
      (v) => {
        if (v.framesPainted === 1) post({ type: 'painted', trackId: v.trackId });
      },
    );
    r.gate.preferred = paths.get(trackId) ?? 'server';
    remotes.set(trackId, r);
    const id = attached.get(trackId);
    if (id !== undefined) r.attach(canvases.get(id) ?? null);
  }
  return r;
}

addEventListener('message', ({ data }: MessageEvent<ToDecoder>) => {
  switch (data.type) {
    case 'frame':
      remote(data.frame.trackId).push(data.frame);
      break;
    case 'direct':
      remote(data.trackId).showDirect(data.frame);
      break;
    case 'prefer': {
      paths.set(data.trackId, data.path);
      const r = remotes.get(data.trackId);
      if (r) r.gate.preferred = data.path;
      break;
    }
    case 'canvas':
      canvases.set(data.id, data.canvas);
      break;
    case 'attach':
      if (data.id === null) attached.delete(data.trackId);
      else attached.set(data.trackId, data.id);
      remotes.get(data.trackId)?.attach(data.id === null ? null : (canvases.get(data.id) ?? null));
      break;
    case 'drop-canvas':
      canvases.delete(data.id);
      for (const [t, id] of attached) {
        if (id !== data.id) continue;
        attached.delete(t);
        remotes.get(t)?.attach(null);
      }
      break;
    case 'remove':
      remotes.get(data.trackId)?.close();
      remotes.delete(data.trackId);
      paths.delete(data.trackId);
      break;
    case 'timings':
      post({ type: 'timings', requestId: data.requestId, timings: Object.fromEntries([...remotes].map(([id, r]) => [id, r.timings])) });
      break;
  }
});

setInterval(() => post({ type: 'stats', stats: [...remotes.values()].map(statsOf) }), 250);
