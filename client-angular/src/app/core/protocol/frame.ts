/**
 * Media frame codec: the TypeScript mirror of `crates/proto` (see docs/CONTRACT.md, PROTOCOL.md).
 *
 * A frame is a 28-byte big-endian header followed by its payload. The same bytes travel as a
 * WebTransport datagram, back to back on a unidirectional stream, or after the 0x02 type byte of
 * a WebSocket message. Pure code: no I/O, no browser APIs.
 */

export const FRAME_VERSION = 1;
export const FRAME_HEADER_LEN = 28;
/** Largest payload on the wire (crates/proto MAX_PAYLOAD); anything bigger is refused. */
export const MAX_FRAME_PAYLOAD = 512 * 1024;
export const MAX_AUDIO_LEVEL = 127;

export enum MediaKind {
  Audio = 0,
  Video = 1,
  Screen = 2,
}

export const FLAG_KEYFRAME = 0x01;
export const FLAG_AUDIO_LEVEL = 0x02;

/** Track slots: track_id = participant_id * 16 + slot. */
export enum Slot {
  Microphone = 0,
  Camera = 1,
  ScreenVideo = 2,
  ScreenAudio = 3,
}

export function trackIdOf(participantId: number, slot: number): number {
  return participantId * 16 + slot;
}
export function participantOfTrack(trackId: number): number {
  return Math.floor(trackId / 16);
}
export function slotOfTrack(trackId: number): number {
  return trackId % 16;
}

export interface MediaFrame {
  kind: MediaKind;
  layer: number;
  keyframe: boolean;
  trackId: number;
  seq: number;
  /** Capture time in microseconds (u64 on the wire; safe as a JS number for 285 years). */
  captureTsUs: number;
  /** 0..127 = -dBov, or undefined when the header does not carry a level. */
  audioLevel?: number;
  payload: Uint8Array;
}

/** Stable codes, the same strings crates/proto's FrameError::code gives. */
export type FrameErrorCode = 'bad_version' | 'unknown_kind' | 'oversized' | 'truncated' | 'reserved_bits' | 'trailing_bytes' | 'bad_hex';

export class FrameError extends Error {
  constructor(
    readonly code: FrameErrorCode | string,
    message: string,
  ) {
    super(message);
    this.name = 'FrameError';
  }
}

export function encodeFrame(f: MediaFrame): Uint8Array<ArrayBuffer> {
  if (f.payload.byteLength > MAX_FRAME_PAYLOAD) throw new FrameError('oversized', `frame payload too large (${f.payload.byteLength} bytes)`);
  const out = new Uint8Array(FRAME_HEADER_LEN + f.payload.byteLength);
  const dv = new DataView(out.buffer);
  let flags = 0;
  if (f.keyframe) flags |= FLAG_KEYFRAME;
  if (f.audioLevel !== undefined) flags |= FLAG_AUDIO_LEVEL;
  dv.setUint8(0, FRAME_VERSION);
  dv.setUint8(1, f.kind);
  dv.setUint8(2, f.layer);
  dv.setUint8(3, flags);
  dv.setUint32(4, f.trackId >>> 0);
  dv.setUint32(8, f.seq >>> 0);
  dv.setBigUint64(12, BigInt(Math.max(0, Math.floor(f.captureTsUs))));
  dv.setUint8(20, f.audioLevel === undefined ? 0 : Math.min(127, Math.max(0, Math.round(f.audioLevel))));
  dv.setUint8(21, 0);
  dv.setUint16(22, 0);
  dv.setUint32(24, f.payload.byteLength);
  out.set(f.payload, FRAME_HEADER_LEN);
  return out;
}

export interface Decoded {
  frame: MediaFrame;
  /** Bytes consumed from the input (header + payload). */
  consumed: number;
}

/**
 * Decodes one frame from the start of `buf`. Returns `null` when more bytes are needed (stream
 * reassembly), throws FrameError on bytes that can never become a valid frame.
 */
export function decodeFrame(buf: Uint8Array): Decoded | null {
  // Check what we can as early as we can, so a broken stream fails fast instead of waiting.
  if (buf.byteLength >= 1 && buf[0] !== FRAME_VERSION) throw new FrameError('bad_version', `unsupported frame version ${buf[0]}`);
  if (buf.byteLength >= 2 && buf[1] > 2) throw new FrameError('unknown_kind', `unknown media kind ${buf[1]}`);
  if (buf.byteLength < FRAME_HEADER_LEN) return null;
  const dv = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
  const kind = dv.getUint8(1);
  const flags = dv.getUint8(3);
  if (flags & ~(FLAG_KEYFRAME | FLAG_AUDIO_LEVEL)) throw new FrameError('reserved_bits', `unknown flag bits 0x${flags.toString(16)}`);
  if (dv.getUint8(21) !== 0 || dv.getUint16(22) !== 0) throw new FrameError('reserved_bits', 'reserved header bytes are not zero');
  const level = dv.getUint8(20);
  if (flags & FLAG_AUDIO_LEVEL ? level > MAX_AUDIO_LEVEL : level !== 0) {
    throw new FrameError('reserved_bits', `audio level byte ${level} is not allowed with flags 0x${flags.toString(16)}`);
  }
  const len = dv.getUint32(24);
  if (len > MAX_FRAME_PAYLOAD) throw new FrameError('oversized', `frame payload too large (${len} bytes)`);
  if (buf.byteLength < FRAME_HEADER_LEN + len) return null;
  const frame: MediaFrame = {
    kind: kind as MediaKind,
    layer: dv.getUint8(2),
    keyframe: (flags & FLAG_KEYFRAME) !== 0,
    trackId: dv.getUint32(4),
    seq: dv.getUint32(8),
    captureTsUs: Number(dv.getBigUint64(12)),
    payload: buf.slice(FRAME_HEADER_LEN, FRAME_HEADER_LEN + len),
  };
  if (flags & FLAG_AUDIO_LEVEL) frame.audioLevel = level;
  return { frame, consumed: FRAME_HEADER_LEN + len };
}

/** Decodes a buffer that must hold exactly one frame (a datagram or a WebSocket message). */
export function decodeWholeFrame(buf: Uint8Array): MediaFrame {
  const d = decodeFrame(buf);
  if (!d) throw new FrameError('truncated', `truncated frame (${buf.byteLength} bytes)`);
  if (d.consumed !== buf.byteLength) {
    throw new FrameError('trailing_bytes', `trailing bytes after frame (${buf.byteLength - d.consumed})`);
  }
  return d.frame;
}

/** Reassembles frames sent back to back on a stream, from chunks of any size. */
export class FrameStreamReader {
  private buf: Uint8Array = new Uint8Array(0);

  /** Feeds a chunk; returns every frame that is now complete. */
  push(chunk: Uint8Array): MediaFrame[] {
    this.buf = concat(this.buf, chunk);
    const frames: MediaFrame[] = [];
    let off = 0;
    for (;;) {
      const d = decodeFrame(this.buf.subarray(off));
      if (!d) break;
      frames.push(d.frame);
      off += d.consumed;
    }
    if (off > 0) this.buf = this.buf.slice(off);
    return frames;
  }

  /** Bytes held back waiting for the rest of a frame. */
  get pending(): number {
    return this.buf.byteLength;
  }
}

export function concat(a: Uint8Array, b: Uint8Array): Uint8Array {
  if (a.byteLength === 0) return b;
  if (b.byteLength === 0) return a;
  const out = new Uint8Array(a.byteLength + b.byteLength);
  out.set(a, 0);
  out.set(b, a.byteLength);
  return out;
}

export function toHex(b: Uint8Array): string {
  let s = '';
  for (const x of b) s += x.toString(16).padStart(2, '0');
  return s;
}

export function fromHex(hex: string): Uint8Array {
  const clean = hex.replace(/[\s:]/g, '');
  if (clean.length % 2 !== 0 || /[^0-9a-fA-F]/.test(clean)) throw new FrameError('bad_hex', `bad hex: ${hex}`);
  const out = new Uint8Array(clean.length / 2);
  for (let i = 0; i < out.length; i++) out[i] = parseInt(clean.slice(i * 2, i * 2 + 2), 16);
  return out;
}
