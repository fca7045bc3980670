import { effect, inject, Injectable, InjectionToken, OnDestroy, untracked } from '@angular/core';
import type { ClientMessage, Track, TrackKindName } from '../../protocol/control';
import { MediaFrame, MediaKind, Slot } from '../../protocol/frame';
import { AudioPublisher } from './audio-publisher';
import { CAMERA, CaptureService, DeviceKind, isLive, SCREEN } from './capture.service';
import { Current, PUBLISH_SLOTS, PublishSlot, reconcile, Step, Wanted } from './reconcile';
import { LADDER, UplinkController, UplinkStep } from './uplink';
import { PressureFollow, PressureState, watchCpuPressure } from './cpu-pressure';
import { cameraKeepsSize } from './encode-load';
import { SentTiming, VideoPublisher } from './video-publisher';
import { defaultLayerEncoder, LayerEncoderFactory, LayerEncoders, LayerRequest } from './layer-encoders';
import type { UplinkState } from '../../transport/connection';

const KEYFRAME_MS = 2000;
/** A live, unmuted source whose encoder produced nothing for this long is restarted. */
const STALL_MS = 4000;
/** After this many restarts in a row without a frame, the device is reported as not working. */
const MAX_RESTARTS = 3;
const HEALTH_EVERY_MS = 1000;

/** One connection's publishing: what to send control messages and frames through. */
export interface PublishSession {
  selfId: number;
  control(msg: ClientMessage): void;
  frame(f: MediaFrame): void;
  /** A track of ours was announced (the room shows it before the server's echo). */
  announced(track: Track): void;
  retracted(trackId: number): void;
  /** The connection's send backlog and transport drops (see UplinkController). */
  uplink(): UplinkState;
}

/** What PublishService needs from an encoder (AudioPublisher and VideoPublisher have it). */
export interface SlotEncoder {
  readonly framesEncoded: number;
  start(): void;
  stop(): void;
  /** Audio: muted, so no frames are expected. */
  paused?: boolean;
  requestKeyframe?(): void;
  /** Video: follow the uplink's step. */
  adapt?(step: UplinkStep): void;
  framesDropped?: number;
  mode?: string;
  /** Video: the size it encodes at, the share of the full size its CPU allows, ms per frame. */
  width?: number;
  height?: number;
  cpuScale?: number;
  encodeMs?: number;
}

export type EncoderFactory = (slot: PublishSlot, track: MediaStreamTrack, trackId: number, sink: (f: MediaFrame) => void, onError: (message: string) => void) => SlotEncoder;

/** Opus for the microphone and tab audio, VP8 for camera and screen. */
export const defaultEncoders: EncoderFactory = (slot, track, trackId, sink, onError) => {
  if (slot === Slot.Microphone || slot === Slot.ScreenAudio) return new AudioPublisher(track, trackId, sink, onError);
  const o = slot === Slot.Camera ? CAMERA : SCREEN;
  const kind = slot === Slot.Camera ? MediaKind.Video : MediaKind.Screen;
  return new VideoPublisher(track, { trackId, kind, bitrate: o.bitrate, maxWidth: o.width, maxHeight: o.height, framerate: o.framerate, keyframeIntervalMs: KEYFRAME_MS, keepSize: slot === Slot.ScreenVideo || (slot === Slot.Camera && cameraKeepsSize()), temporalLayers: slot === Slot.Camera ? 2 : 1 }, sink, onError);
};

/** The encoders PublishService starts; specs replace it with counting fakes. */
export const ENCODERS = new InjectionToken<EncoderFactory>('publish encoders', { factory: () => defaultEncoders });

/** The encoders of layers the server asks us to make (PROTOCOL §5.6); specs replace it. */
export const LAYER_ENCODERS = new InjectionToken<LayerEncoderFactory>('layer encoders', { factory: () => defaultLayerEncoder });

/**
 * Whether this browser can encode a second, smaller copy of its camera when the server's
 * transcoder is saturated: declared with `publish{layers_capable: true}`.
 */
export function canMakeLayers(): boolean {
  return typeof VideoEncoder === 'function';
}

interface Encoder {
  pub: SlotEncoder;
  trackId: number;
  sourceId: string;
  healthy: boolean;
  lastFrames: number;
  lastProgressAt: number;
}

export interface PublishStats {
  audio: number;
  video: number;
  screen: number;
  screenAudio: number;
  videoMode: string;
  /** Encoder (re)starts since the page loaded, per slot: restarts show up in the tests. */
  starts: number[];
  /** Frames the camera/screen encoders dropped because they fell behind. */
  droppedFrames: number;
  /** The uplink step (0 = full quality) and what it means for the camera. */
  uplink: { step: number; bitrate: number; framerate: number; scale: number };
  /**
   * The camera's encoder: the size it encodes at, the share its CPU allows, mean ms per frame,
   * and the LADDER step it runs at (the lowest of what the uplink, the server's `track_demand` and
   * the CPU allow) with that step's bitrate; `demandStep` is the demand's part alone; `bytes`
   * the encoded bytes sent so far.
   */
  camera: { width: number; height: number; cpuScale: number; encodeMs: number; step: number; bitrate: number; demandStep: number; bytes: number };
  /** The machine's CPU pressure as the browser reports it, and the LADDER step it holds video to. */
  pressure: { state: PressureState; step: number };
}

/**
 * What we send. Follows CaptureService continuously: whenever a local track appears, changes,
 * stops or comes back, when an encoder dies or stalls, and when a connection is new, it runs
 * `reconcile` and carries out the steps, so the published tracks always match what the user has
 * switched on. Provided by the meeting page.
 */
@Injectable()
export class PublishService implements OnDestroy {
  readonly capture = inject(CaptureService);
  private readonly makeEncoder = inject(ENCODERS);
  /** Lower layers of our camera the server asked for (`produce_layer`). */
  private readonly layers = new LayerEncoders((f) => this.session?.frame(f), inject(LAYER_ENCODERS), CAMERA.framerate);
  private session: PublishSession | null = null;
  /** What we announced on this connection, per slot. */
  private announced = new Map<PublishSlot, TrackKindName | null>();
  private readonly encoders = new Map<PublishSlot, Encoder>();
  private readonly restarts = new Map<PublishSlot, number>();
  /** Slots whose device was reported broken: no more restarts until a new source arrives. */
  private readonly gaveUp = new Set<PublishSlot>();
  /** The source each slot's encoder last read from: a new one resets the restart count. */
  private readonly lastSource = new Map<PublishSlot, string>();
  /** Next sequence number per track id on this connection. */
  private seqs = new Map<number, number>();
  private readonly starts = [0, 0, 0, 0];
  private scheduled = false;
  /** A direct call carries our media (P2P): tracks stay announced, nothing is encoded. */
  private suspended = false;
  private readonly health = setInterval(() => {
    this.checkHealth();
    this.followUplink();
    this.followPressure();
  }, HEALTH_EVERY_MS);
  private readonly pressure = new PressureFollow();
  private pressureState: PressureState = 'nominal';
  /**
   * Layers the server asked us to make are held (their encoders stopped, the requests kept)
   * while this machine's CPU is critical, and resume once it is back to nominal or fair: a
   * second encoder on a starved machine would slow our own call, and the server keeps sending
   * its own frames of the layer until ours arrive (PROTOCOL §5.6), so nobody loses a picture.
   */
  private layersHeld = false;
  private readonly stopPressure = watchCpuPressure((state) => {
    this.pressureState = state;
    this.followLayerPressure();
    this.followPressure();
  });
  private uplinkCtl = new UplinkController();
  /** What the server says each video track's subscribers need (`track_demand`), as a LADDER step. */
  private demand = new Map<number, number>();
  private lastDrops = 0;

  constructor() {
    effect(() => {
      // Any change of a track or a switch is a reason to reconcile.
      this.capture.camera();
      this.capture.mic();
      this.capture.screen();
      this.capture.screenAudio();
      this.capture.camOn();
      untracked(() => this.schedule());
    });
    effect(() => {
      const on = this.capture.micOn();
      untracked(() => {
        const e = this.encoders.get(Slot.Microphone);
        if (e && e.pub.paused !== undefined) e.pub.paused = !on || this.suspended;
      });
    });
  }

  ngOnDestroy(): void {
    clearInterval(this.health);
    this.stopPressure();
    this.unbind();
  }

  static supported(): string | null {
    if (!globalThis.isSecureContext) return 'This page is not a secure context (use https or localhost): camera and WebCodecs are unavailable.';
    if (typeof VideoEncoder !== 'function' || typeof AudioEncoder !== 'function') return 'This browser lacks WebCodecs; use a recent Chrome, Edge or Chromium.';
    return null;
  }

  /** A new connection (first join or reconnect): nothing is announced on it yet. */
  bind(session: PublishSession): void {
    this.stopEncoders();
    this.suspended = false;
    this.session = session;
    this.seqs = new Map();
    // A new connection may be a new network: start from full quality again.
    this.uplinkCtl = new UplinkController();
    // Before the first track_demand a publisher assumes its full layer is wanted (PROTOCOL §5.6).
    this.demand = new Map();
    this.lastDrops = 0;
    this.announced = new Map();
    this.restarts.clear();
    this.gaveUp.clear();
    this.run();
  }

  /** Leaving: stop encoding; the connection is going away, so nothing is unpublished. */
  unbind(): void {
    this.stopEncoders();
    this.session = null;
    this.announced = new Map();
  }

  /**
   * A direct (peer-to-peer) call carries our media: stop sending it to the server, but keep
   * the tracks announced so a late joiner still finds them. The encoders pause rather than
   * stop, so resuming is immediate and opens every video track with a keyframe.
   */
  suspend(on: boolean): void {
    if (this.suspended === on) return;
    this.suspended = on;
    for (const [slot, e] of this.encoders) this.applyPause(slot, e.pub);
    // A direct call needs no server layers; coming back, they resume with a keyframe.
    const cam = this.encoders.get(Slot.Camera);
    if (cam) this.layers.restart(cam.trackId, this.layerSource());
  }

  private applyPause(slot: PublishSlot, pub: SlotEncoder): void {
    if (pub.paused === undefined) return;
    pub.paused = this.suspended || (slot === Slot.Microphone && !this.capture.micOn());
  }

  /** The server (or a subscriber) needs a fresh keyframe on one of our tracks (and layers). */
  requestLocalKeyframe(trackId: number, layer = 0): void {
    if (layer > 0) return this.layers.requestKeyframe(trackId, layer);
    for (const e of this.encoders.values()) if (e.trackId === trackId) e.pub.requestKeyframe?.();
  }

  /**
   * `produce_layer`: the server's transcoder is saturated, so we encode that layer of our
   * camera ourselves, at the size and bitrate asked, until `stop_layer`.
   */
  produceLayer(req: LayerRequest): void {
    const cam = this.encoders.get(Slot.Camera);
    if (!cam || cam.trackId !== req.trackId) return;
    this.layers.produce(req, this.layerSource());
  }

  /** `stop_layer`: the server makes the layer again (or nobody watches it). */
  stopLayer(trackId: number, layer: number): void {
    this.layers.stop(trackId, layer);
  }

  /** Layers we make for the server now, with the frames each has encoded. */
  producedLayers(): (LayerRequest & { framesEncoded: number })[] {
    return this.layers.active();
  }

  cameraSize(): { width: number; height: number } {
    const s = this.capture.camera()?.getSettings();
    return { width: s?.width ?? CAMERA.width, height: s?.height ?? CAMERA.height };
  }

  stats(): PublishStats {
    const frames = (slot: PublishSlot) => this.encoders.get(slot)?.pub.framesEncoded ?? 0;
    const camEntry = this.encoders.get(Slot.Camera);
    const cam = camEntry?.pub;
    const demandStep = camEntry ? (this.demand.get(camEntry.trackId) ?? 0) : 0;
    const step = Math.max(this.uplinkCtl.stepIndex, demandStep, this.pressure.step);
    let dropped = 0;
    for (const e of this.encoders.values()) dropped += e.pub.framesDropped ?? 0;
    return {
      audio: frames(Slot.Microphone),
      video: frames(Slot.Camera),
      screen: frames(Slot.ScreenVideo),
      screenAudio: frames(Slot.ScreenAudio),
      videoMode: cam?.mode ?? '',
      starts: [...this.starts],
      droppedFrames: dropped,
      camera: { width: cam?.width ?? 0, height: cam?.height ?? 0, cpuScale: cam?.cpuScale ?? 1, encodeMs: Math.round(cam?.encodeMs ?? 0), step, bitrate: Math.round(CAMERA.bitrate * LADDER[step].bitrate), demandStep, bytes: cam instanceof VideoPublisher ? cam.bytesEncoded : 0 },
      pressure: { state: this.pressureState, step: this.pressure.step },
      uplink: { step: this.uplinkCtl.stepIndex, bitrate: Math.round(CAMERA.bitrate * this.uplinkCtl.step.bitrate), framerate: Math.min(CAMERA.framerate, this.uplinkCtl.step.framerate), scale: this.uplinkCtl.step.scale },
    };
  }

  /** Capture timestamp → send time of the camera's last frames (the latency benchmark reads them). */
  sentTimings(): readonly SentTiming[] {
    const cam = this.encoders.get(Slot.Camera)?.pub;
    return cam instanceof VideoPublisher ? cam.sent : [];
  }

  // ---- reconciliation ---------------------------------------------------------------------

  private schedule(): void {
    if (this.scheduled) return;
    this.scheduled = true;
    queueMicrotask(() => {
      this.scheduled = false;
      this.run();
    });
  }

  private wanted(): Map<PublishSlot, Wanted | null> {
    const c = this.capture;
    const video = (t: MediaStreamTrack | null, kind: TrackKindName, def: { width: number; height: number }): Wanted | null => {
      if (!isLive(t)) return null;
      const s = t.getSettings();
      return { kind, sourceId: t.id, width: s.width ?? def.width, height: s.height ?? def.height };
    };
    const audio = (t: MediaStreamTrack | null): Wanted | null => (isLive(t) ? { kind: 'audio', sourceId: t.id } : null);
    return new Map<PublishSlot, Wanted | null>([
      [Slot.Microphone, audio(c.mic())],
      [Slot.Camera, c.camOn() ? video(c.camera(), 'video', CAMERA) : null],
      [Slot.ScreenVideo, video(c.screen(), 'screen', SCREEN)],
      [Slot.ScreenAudio, c.screen() ? audio(c.screenAudio()) : null],
    ]);
  }

  private run(): void {
    const session = this.session;
    if (!session) return;
    const current = new Map<PublishSlot, Current>();
    for (const slot of PUBLISH_SLOTS) {
      const e = this.encoders.get(slot);
      current.set(slot, { announced: this.announced.get(slot) ?? null, encoderSource: e?.sourceId ?? null, encoderHealthy: e?.healthy ?? true });
    }
    const steps = reconcile(session.selfId, this.wanted(), current);
    for (const s of steps) {
      this.carryOut(session, s);
      if (s.type === 'publish') this.announced.set(s.slot, s.kind);
      if (s.type === 'unpublish') this.announced.set(s.slot, null);
    }
  }

  private carryOut(session: PublishSession, s: Step): void {
    switch (s.type) {
      case 'publish': {
        const msg = { type: 'publish', track_id: s.trackId, kind: s.kind, codec: s.kind === 'audio' ? 'opus' : 'vp8' } as const;
        const video = { ...msg, width: s.width, height: s.height };
        // The camera can make lower layers on request; the screen keeps one encoder.
        const sized = s.kind === 'audio' ? msg : s.kind === 'video' && canMakeLayers() ? { ...video, layers_capable: true } : video;
        session.control(sized);
        session.announced({ track_id: s.trackId, participant_id: session.selfId, kind: s.kind, codec: sized.codec, width: s.width, height: s.height });
        break;
      }
      case 'unpublish':
        this.layers.forget(s.trackId);
        session.control({ type: 'unpublish', track_id: s.trackId });
        session.retracted(s.trackId);
        break;
      case 'stop-encoder':
        this.encoders.get(s.slot)?.pub.stop();
        this.encoders.delete(s.slot);
        break;
      case 'start-encoder':
        this.encoders.get(s.slot)?.pub.stop();
        this.startEncoder(session, s.slot, s.trackId, s.sourceId);
        break;
    }
  }

  private startEncoder(session: PublishSession, slot: PublishSlot, trackId: number, sourceId: string): void {
    const track = this.sourceOf(slot);
    if (!track || track.id !== sourceId) return;
    // One sequence per track for the whole connection: a restarted encoder (device switch,
    // recovery) continues it, so subscribers and the server see one unbroken track.
    const sink = (f: MediaFrame) => {
      const seq = this.seqs.get(trackId) ?? 0;
      this.seqs.set(trackId, (seq + 1) >>> 0);
      session.frame({ ...f, seq });
    };
    // Marked only: the health check restarts it, counted, so a failing device cannot spin.
    const failed = (message: string) => {
      const e = this.encoders.get(slot);
      if (!e || e.pub !== pub) return;
      console.warn(`quicmeet: ${message}`);
      e.healthy = false;
    };
    if (this.lastSource.get(slot) !== sourceId) {
      this.lastSource.set(slot, sourceId);
      this.restarts.set(slot, 0);
      this.gaveUp.delete(slot);
    }
    const pub = this.makeEncoder(slot, track, trackId, sink, failed);
    this.applyPause(slot, pub);
    const step = this.stepFor(trackId);
    if (step !== LADDER[0]) pub.adapt?.(step);
    this.encoders.set(slot, { pub, trackId, sourceId, healthy: true, lastFrames: 0, lastProgressAt: performance.now() });
    this.starts[slot]++;
    pub.start();
    // Layers we make follow the camera to its new source.
    if (slot === Slot.Camera) this.layers.restart(trackId, this.suspended || this.layersHeld ? null : track);
  }

  /** What the layers we make encode from: nothing while suspended or held for the CPU. */
  private layerSource(): MediaStreamTrack | null {
    return this.suspended || this.layersHeld ? null : this.sourceOf(Slot.Camera);
  }

  /** Holds our layers at critical CPU pressure; resumes them at nominal or fair (not serious: no flapping). */
  private followLayerPressure(): void {
    const held = this.pressureState === 'critical' ? true : this.pressureState === 'serious' ? this.layersHeld : false;
    if (held === this.layersHeld) return;
    this.layersHeld = held;
    const cam = this.encoders.get(Slot.Camera);
    if (cam) this.layers.restart(cam.trackId, this.layerSource());
  }

  private sourceOf(slot: PublishSlot): MediaStreamTrack | null {
    const c = this.capture;
    return [c.mic(), c.camera(), c.screen(), c.screenAudio()][slot] ?? null;
  }

  /**
   * Restarts encoders that failed, and mic and camera encoders that stopped producing frames
   * while their track is live and unmuted. After MAX_RESTARTS in a row without a frame the
   * device is reported broken (the user sees it and can retry) and left alone. Screen capture
   * delivers frames only when the screen changes, so only its errors count.
   */
  private checkHealth(): void {
    const now = performance.now();
    let restart = false;
    for (const [slot, e] of this.encoders) {
      const frames = e.pub.framesEncoded;
      if (frames !== e.lastFrames) {
        e.lastFrames = frames;
        e.lastProgressAt = now;
        this.restarts.set(slot, 0);
        continue;
      }
      if (e.pub.paused) e.lastProgressAt = now;
      const stalled = (slot === Slot.Microphone || slot === Slot.Camera) && now - e.lastProgressAt >= STALL_MS;
      if ((e.healthy && !stalled) || this.gaveUp.has(slot)) continue;
      const n = (this.restarts.get(slot) ?? 0) + 1;
      this.restarts.set(slot, n);
      if (n > MAX_RESTARTS) {
        this.gaveUp.add(slot);
        e.healthy = true;
        const kind: DeviceKind = slot === Slot.Camera || slot === Slot.ScreenVideo ? 'camera' : 'microphone';
        if (slot === Slot.Microphone || slot === Slot.Camera) this.capture.reportBroken(kind, `Nothing came from the ${kind} after ${MAX_RESTARTS} restarts.`);
        continue;
      }
      e.healthy = false;
      restart = true;
    }
    if (restart) this.run();
  }

  /** Feeds the uplink controller; a new step goes to every video encoder. */
  private followUplink(): void {
    const session = this.session;
    if (!session) return;
    const { backlogBytes, drops, rttMs, serverQueueMs, deliveredKbps } = session.uplink();
    const newDrops = drops >= this.lastDrops ? drops - this.lastDrops : drops;
    this.lastDrops = drops;
    let fullVideoBitrate = 0;
    let otherBitrate = 0;
    for (const [slot, e] of this.encoders) {
      if (slot === Slot.Camera) fullVideoBitrate += CAMERA.bitrate;
      else if (slot === Slot.ScreenVideo) fullVideoBitrate += SCREEN.bitrate;
      else if (!e.pub.paused) otherBitrate += 32_000;
    }
    const bitrate = fullVideoBitrate * this.uplinkCtl.step.bitrate + otherBitrate;
    const step = this.uplinkCtl.sample({ now: performance.now(), backlogBytes, drops: newDrops, bitrate, rttMs, serverQueueMs, deliveredKbps, fullVideoBitrate, otherBitrate });
    if (!step) return;
    for (const e of this.encoders.values()) e.pub.adapt?.(this.stepFor(e.trackId));
  }

  /** Feeds the CPU pressure policy; a new step goes to every video encoder. */
  private followPressure(): void {
    if (this.pressure.sample(performance.now(), this.pressureState) === null) return;
    for (const e of this.encoders.values()) e.pub.adapt?.(this.stepFor(e.trackId));
  }

  /**
   * `track_demand{track_id, layer, viewers}`: what the server says this track's subscribers get.
   * The encoder then runs at the lower of that and what the uplink allows.
   */
  onDemand(trackId: number, layer: number, viewers: number): void {
    this.demand.set(trackId, demandStep(layer, viewers));
    for (const e of this.encoders.values()) if (e.trackId === trackId) e.pub.adapt?.(this.stepFor(trackId));
  }

  /** The encoder settings for a track: the lowest of what the uplink, its demand and the CPU allow. */
  private stepFor(trackId: number): UplinkStep {
    return LADDER[Math.max(this.uplinkCtl.stepIndex, this.demand.get(trackId) ?? 0, this.pressure.step)];
  }

  private stopEncoders(): void {
    for (const e of this.encoders.values()) e.pub.stop();
    this.encoders.clear();
    this.layers.stopAll();
  }
}

/**
 * The uplink LADDER step a track's demand (PROTOCOL §5.6) asks for at most: full quality while
 * someone gets the full layer; when only the server's lower layers are watched, the lowest
 * bitrate that keeps size and frame rate (those layers are scaled from what we send: a ½ layer
 * has a quarter of the pixels); when nobody watches, also a lower frame rate, still at full
 * size, so the next viewer's first keyframe needs no new resolution.
 */
export function demandStep(layer: number, viewers: number): number {
  if (viewers === 0) return LADDER.findIndex((s) => s.framerate <= 15 && s.scale === 1);
  if (layer === 0) return 0;
  return LADDER.findIndex((s) => s.bitrate <= 0.35);
}
