import type { MediaFrame } from '../../protocol/frame';
import { MediaKind } from '../../protocol/frame';
import type { SlotEncoder } from './publish.service';
import { VideoPublisher, VideoPublisherOptions } from './video-publisher';

/** `produce_layer{track_id, layer, width, height, bitrate}` (PROTOCOL.md §5.6). */
export interface LayerRequest {
  trackId: number;
  layer: number;
  width: number;
  height: number;
  bitrate: number;
}

/** Makes the encoder of one layer; specs replace it with a fake. */
export type LayerEncoderFactory = (source: MediaStreamTrack, opts: VideoPublisherOptions, sink: (f: MediaFrame) => void, onError: (m: string) => void) => SlotEncoder;

/**
 * A second VideoEncoder on a clone of the camera track: its own frame stream, its own size
 * and bitrate; its frames carry the layer and number themselves from 0. Stopping it stops the
 * clone, so the camera is released once the user turns it off.
 */
export const defaultLayerEncoder: LayerEncoderFactory = (source, opts, sink, onError) => {
  const clone = source.clone();
  return new ClonedSourceEncoder(clone, new VideoPublisher(clone, opts, sink, onError));
};

class ClonedSourceEncoder implements SlotEncoder {
  constructor(
    private readonly clone: MediaStreamTrack,
    private readonly pub: VideoPublisher,
  ) {}

  get framesEncoded(): number {
    return this.pub.framesEncoded;
  }

  start(): void {
    this.pub.start();
  }

  stop(): void {
    this.pub.stop();
    this.clone.stop();
  }

  requestKeyframe(): void {
    this.pub.requestKeyframe();
  }
}

const KEYFRAME_MS = 2000;

interface Running {
  req: LayerRequest;
  enc: SlotEncoder;
}

/**
 * The lower layers the server asked this publisher to make while its transcoder is saturated
 * (PROTOCOL.md §5.6, publisher-made layers): one extra encoder per requested (track, layer),
 * started on `produce_layer`, stopped on `stop_layer`, restarted when the camera's source
 * changes. Each starts with a keyframe (a new VideoEncoder's first frame is one).
 */
export class LayerEncoders {
  private readonly running = new Map<string, Running>();

  constructor(
    private readonly sink: (f: MediaFrame) => void,
    private readonly make: LayerEncoderFactory = defaultLayerEncoder,
    private readonly framerate = 30,
  ) {}

  /** Starts (or retunes, by restarting) the encoder of a requested layer. */
  produce(req: LayerRequest, source: MediaStreamTrack | null): void {
    if (req.layer < 1 || req.layer > 2) return;
    const key = keyOf(req.trackId, req.layer);
    const old = this.running.get(key);
    if (old && old.enc !== idle && sameRequest(old.req, req)) return;
    old?.enc.stop();
    this.running.delete(key);
    if (!source) {
      // Remembered without an encoder: it starts when the camera comes back.
      this.running.set(key, { req, enc: idle });
      return;
    }
    this.start(req, source);
  }

  stop(trackId: number, layer: number): void {
    const key = keyOf(trackId, layer);
    this.running.get(key)?.enc.stop();
    this.running.delete(key);
  }

  /** The track went away: its layers with it. */
  forget(trackId: number): void {
    for (const [key, r] of [...this.running]) {
      if (r.req.trackId !== trackId) continue;
      r.enc.stop();
      this.running.delete(key);
    }
  }

  stopAll(): void {
    for (const r of this.running.values()) r.enc.stop();
    this.running.clear();
  }

  /** The track's source changed (new camera, restart): the layers follow it. */
  restart(trackId: number, source: MediaStreamTrack | null): void {
    for (const [key, r] of [...this.running]) {
      if (r.req.trackId !== trackId) continue;
      r.enc.stop();
      this.running.delete(key);
      if (source) this.start(r.req, source);
      else this.running.set(key, { req: r.req, enc: idle });
    }
  }

  requestKeyframe(trackId: number, layer: number): void {
    this.running.get(keyOf(trackId, layer))?.enc.requestKeyframe?.();
  }

  /** Layers being made and the frames each has encoded so far, for diagnostics and tests. */
  active(): (LayerRequest & { framesEncoded: number })[] {
    return [...this.running.values()].filter((r) => r.enc !== idle).map((r) => ({ ...r.req, framesEncoded: r.enc.framesEncoded }));
  }

  private start(req: LayerRequest, source: MediaStreamTrack): void {
    const opts: VideoPublisherOptions = {
      trackId: req.trackId,
      kind: MediaKind.Video,
      layer: req.layer,
      bitrate: req.bitrate,
      // 0 = the server does not know the published size: a half (quarter) of what we capture.
      maxWidth: req.width || Math.max(16, (source.getSettings().width ?? 640) >> req.layer),
      maxHeight: req.height || Math.max(16, (source.getSettings().height ?? 480) >> req.layer),
      framerate: this.framerate,
      keyframeIntervalMs: KEYFRAME_MS,
      // The server told the layer's subscribers this size (layer_changed): the encoder's own
      // CPU rule (encode-load.ts) must not shrink it. The camera's full layer still follows
      // the CPU; a half- or quarter-size encode costs a fraction of it.
      keepSize: true,
    };
    const enc = this.make(source, opts, this.sink, (m) => console.warn(`quicmeet: layer ${req.layer}: ${m}`));
    this.running.set(keyOf(req.trackId, req.layer), { req, enc });
    enc.start();
  }
}

const idle: SlotEncoder = { framesEncoded: 0, start: () => undefined, stop: () => undefined };

function keyOf(trackId: number, layer: number): string {
  return `${trackId}/${layer}`;
}

function sameRequest(a: LayerRequest, b: LayerRequest): boolean {
  return a.width === b.width && a.height === b.height && a.bitrate === b.bitrate;
}
