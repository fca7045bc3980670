/**
 * Connection quality as the room shows it: per participant, from our round trip to the server,
 * the loss we see on their audio (sequence gaps on datagrams) and how far below the layer we
 * asked for their video arrives. Pure code; RoomService feeds it.
 */

export type Quality = 'good' | 'fair' | 'poor' | 'unknown';

export interface QualityInput {
  /** Our round trip to the server, ms (null before the first pong). */
  rttMs: number | null;
  /** Fraction of their audio frames lost over the last seconds, 0..1 (null: no audio seen). */
  loss: number | null;
  /** How many layers (halvings) below the one we subscribed to their video arrives. */
  layerDrop: number;
  /**
   * Our first video started less than {@link START_RAMP_MS} ago: the server is still
   * climbing to the layers we asked for, so a layer below says nothing about the connection.
   */
  rampingUp?: boolean;
}

/**
 * How long after our first video subscription a layer below the one we asked for is the
 * server's start, not the connection. The server starts a subscriber's first video under a
 * start ceiling and steps it up as the path proves it carries more: 8–11 s to the full
 * layers on a clean path (BENCHMARKS, real networks, ninth pass). Calling that "unstable"
 * would greet every call with a warning; round trip and loss still count from the first
 * second.
 */
export const START_RAMP_MS = 15_000;

export function connectionQuality({ rttMs, loss, layerDrop: drop, rampingUp = false }: QualityInput): Quality {
  if (rttMs === null) return 'unknown';
  const l = loss ?? 0;
  const layerDrop = rampingUp ? 0 : drop;
  if (rttMs >= 400 || l >= 0.1 || layerDrop >= 2) return 'poor';
  if (rttMs >= 150 || l >= 0.03 || layerDrop >= 1) return 'fair';
  return 'good';
}

/** Halvings between the height we asked for and the height that arrives (0 when none). */
export function layersBelow(askedHeight: number, receivedHeight: number): number {
  if (!askedHeight || !receivedHeight || receivedHeight >= askedHeight * 0.9) return 0;
  return Math.max(0, Math.round(Math.log2(askedHeight / receivedHeight)));
}

const WINDOW_MS = 5000;

/**
 * Audio loss per track from sequence numbers, over a sliding window of about five seconds.
 * Datagrams can arrive out of order: a late frame fills the gap it left.
 */
export class LossMeter {
  private readonly tracks = new Map<number, { next: number; missing: Set<number>; events: { at: number; lost: boolean }[] }>();

  record(trackId: number, seq: number, now: number): void {
    let t = this.tracks.get(trackId);
    if (!t) {
      t = { next: (seq + 1) >>> 0, missing: new Set(), events: [] };
      this.tracks.set(trackId, t);
      t.events.push({ at: now, lost: false });
      return;
    }
    if (t.missing.delete(seq)) {
      // A late arrival: take back one loss.
      const i = t.events.findIndex((e) => e.lost);
      if (i >= 0) t.events.splice(i, 1);
    } else {
      const ahead = (seq - t.next) >>> 0;
      if (ahead < 1000) {
        for (let s = 0; s < ahead; s++) {
          t.missing.add((t.next + s) >>> 0);
          t.events.push({ at: now, lost: true });
        }
        t.next = (seq + 1) >>> 0;
      }
      if (t.missing.size > 200) t.missing.clear();
    }
    t.events.push({ at: now, lost: false });
    while (t.events.length && now - t.events[0].at > WINDOW_MS) t.events.shift();
  }

  /** Lost fraction over the window, or null when nothing arrived lately. */
  loss(trackId: number, now: number): number | null {
    const t = this.tracks.get(trackId);
    if (!t) return null;
    const recent = t.events.filter((e) => now - e.at <= WINDOW_MS);
    if (!recent.length) return null;
    return recent.filter((e) => e.lost).length / recent.length;
  }

  remove(trackId: number): void {
    this.tracks.delete(trackId);
  }

  clear(): void {
    this.tracks.clear();
  }
}
