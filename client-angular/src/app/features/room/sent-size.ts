/** A width and height in pixels. */
export interface Size {
  w: number;
  h: number;
}

/**
 * How long a new sent size must hold before it counts, ms. The room looks once a second, so a
 * new size counts on its third look in a row. A layer changes hands within about a second when
 * the publisher takes it over (PROTOCOL §5.6); one look at the transcoder's picture in between
 * once moved a tile off the layer the publisher had just started, and the server stopped it.
 */
export const SENT_SIZE_HOLD_MS = 1500;

/**
 * What each publisher really sends (the size of its full layer), read from the pictures the room
 * paints: `width << layer`. A publisher whose CPU cannot keep up sends a smaller picture than it
 * announced, and the server's lower layers are halvings of what it sends, so the layer that
 * covers a tile follows this size rather than the announced one.
 *
 * A size seen once is not yet what the publisher sends. While a publisher takes a lower layer
 * over from the server's transcoder, the transcoder's picture is a halving of the camera's
 * CPU-reduced size and the publisher's own is the announced size: for under a second they
 * disagree. So a change counts only once it has held for SENT_SIZE_HOLD_MS; the first size seen
 * counts at once (anything is better than the announcement). Pure code, no clock of its own.
 */
export class SentSizes {
  private readonly known = new Map<number, Size>();
  private readonly seen = new Map<number, { size: Size; since: number }>();

  /** The size a track's publisher sends, once seen. */
  get(trackId: number): Size | undefined {
    return this.known.get(trackId);
  }

  /**
   * One look at a track's painted picture (`layer`, `width`×`height`) at `now` (ms). Returns the
   * sent size when it changed, else null.
   */
  sample(now: number, trackId: number, layer: number, width: number, height: number): Size | null {
    const size = { w: width << layer, h: height << layer };
    const known = this.known.get(trackId);
    if (known && known.w === size.w && known.h === size.h) {
      this.seen.delete(trackId);
      return null;
    }
    const s = this.seen.get(trackId);
    if (known && (!s || s.size.w !== size.w || s.size.h !== size.h)) {
      this.seen.set(trackId, { size, since: now });
      return null;
    }
    if (known && s && now - s.since < SENT_SIZE_HOLD_MS) return null;
    this.seen.delete(trackId);
    this.known.set(trackId, size);
    return size;
  }

  delete(trackId: number): void {
    this.known.delete(trackId);
    this.seen.delete(trackId);
  }

  clear(): void {
    this.known.clear();
    this.seen.clear();
  }
}
