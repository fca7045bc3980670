/**
 * Publishing as a function of local state. Pure code: given what the user has switched on (and
 * the tracks the devices gave us) and what is announced and encoding right now, it returns the
 * steps that make the two match. PublishService runs it whenever anything on either side changes
 * (a device starts late, a track ends, a device switch, an encoder dies, a reconnect), so no
 * single moment (like `welcome`) decides what gets published.
 */
import { Slot, trackIdOf } from '../../protocol/frame';
import type { TrackKindName } from '../../protocol/control';

export const PUBLISH_SLOTS = [Slot.Microphone, Slot.Camera, Slot.ScreenVideo, Slot.ScreenAudio] as const;
export type PublishSlot = (typeof PUBLISH_SLOTS)[number];

/** What one slot should publish: a live local track, or null when it should publish nothing. */
export interface Wanted {
  kind: TrackKindName;
  /** Identity of the source (MediaStreamTrack.id): a new id means a new device or a new capture. */
  sourceId: string;
  width?: number;
  height?: number;
}

/** What one slot publishes now. */
export interface Current {
  /** The kind we announced with `publish` on this connection, or null. */
  announced: TrackKindName | null;
  /** Source id the running encoder reads from, or null when none runs. */
  encoderSource: string | null;
  /** False when the encoder reported an error or stopped producing frames. */
  encoderHealthy: boolean;
}

export type Step =
  | { type: 'publish'; slot: PublishSlot; trackId: number; kind: TrackKindName; width?: number; height?: number }
  | { type: 'unpublish'; slot: PublishSlot; trackId: number }
  | { type: 'start-encoder'; slot: PublishSlot; trackId: number; sourceId: string }
  | { type: 'stop-encoder'; slot: PublishSlot };

export const IDLE: Current = { announced: null, encoderSource: null, encoderHealthy: true };

/**
 * The steps, in the order to carry them out: per slot, stop what must stop before announcing
 * and starting what must run. An encoder starts after its `publish`, so the server knows the
 * track before its first frame arrives. `selfId` null (not in a room yet): nothing is published
 * and nothing encodes.
 */
export function reconcile(selfId: number | null, wanted: ReadonlyMap<PublishSlot, Wanted | null>, current: ReadonlyMap<PublishSlot, Current>): Step[] {
  const steps: Step[] = [];
  for (const slot of PUBLISH_SLOTS) {
    const w = selfId === null ? null : (wanted.get(slot) ?? null);
    const c = current.get(slot) ?? IDLE;
    const trackId = trackIdOf(selfId ?? 0, slot);
    if (!w) {
      if (c.encoderSource !== null) steps.push({ type: 'stop-encoder', slot });
      if (c.announced !== null && selfId !== null) steps.push({ type: 'unpublish', slot, trackId });
      continue;
    }
    if (c.announced !== null && c.announced !== w.kind) {
      if (c.encoderSource !== null) steps.push({ type: 'stop-encoder', slot });
      steps.push({ type: 'unpublish', slot, trackId });
      steps.push({ type: 'publish', slot, trackId, kind: w.kind, width: w.width, height: w.height });
      steps.push({ type: 'start-encoder', slot, trackId, sourceId: w.sourceId });
      continue;
    }
    if (c.announced === null) steps.push({ type: 'publish', slot, trackId, kind: w.kind, width: w.width, height: w.height });
    if (c.encoderSource !== w.sourceId || !c.encoderHealthy) {
      if (c.encoderSource !== null) steps.push({ type: 'stop-encoder', slot });
      steps.push({ type: 'start-encoder', slot, trackId, sourceId: w.sourceId });
    }
  }
  return steps;
}

/** Applies steps to a copy of `current`, as carrying them out will (for callers and specs). */
export function applySteps(current: ReadonlyMap<PublishSlot, Current>, steps: readonly Step[]): Map<PublishSlot, Current> {
  const next = new Map(current);
  for (const s of steps) {
    const c = { ...(next.get(s.slot) ?? IDLE) };
    switch (s.type) {
      case 'publish':
        c.announced = s.kind;
        break;
      case 'unpublish':
        c.announced = null;
        break;
      case 'start-encoder':
        c.encoderSource = s.sourceId;
        c.encoderHealthy = true;
        break;
      case 'stop-encoder':
        c.encoderSource = null;
        c.encoderHealthy = true;
        break;
    }
    next.set(s.slot, c);
  }
  return next;
}
