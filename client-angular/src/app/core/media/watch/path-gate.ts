/**
 * Which path a remote track is shown or heard from while both may deliver it: the server's
 * frames, or a direct (peer-to-peer) WebRTC track. The preferred path always wins; the other one
 * fills in only while the preferred one has delivered nothing for `staleMs`. So switching the
 * preference never blanks a tile or leaves a gap: the old path keeps playing until the new one
 * actually delivers. Pure code.
 */
export type MediaPath = 'server' | 'p2p';

export class PathGate {
  preferred: MediaPath = 'server';
  private readonly last: Record<MediaPath, number> = { server: -Infinity, p2p: -Infinity };

  constructor(private readonly staleMs: number) {}

  /** A frame from `path` arrived at `now` (ms): play it? */
  accept(path: MediaPath, now: number): boolean {
    this.last[path] = now;
    if (path === this.preferred) return true;
    return now - this.last[this.preferred] > this.staleMs;
  }

  /** When `path` last delivered a frame (ms), -Infinity if never. */
  lastAt(path: MediaPath): number {
    return this.last[path];
  }
}
