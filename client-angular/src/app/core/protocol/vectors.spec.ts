/**
 * Golden vectors owned by crates/proto (../crates/proto/vectors/*.json, see docs/PROTOCOL.md):
 * every valid frame must encode to and decode from its exact bytes, every invalid one must be
 * refused with the same error code Rust gives, and every control message must parse to the same
 * object. A missing folder, file or section fails: nothing is skipped silently.
 */
import { existsSync, readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import {
  ControlError,
  ControlStreamReader,
  controlJson,
  ClientMessage,
  parseControl,
  parseClientControlBytes,
  parseControlBytes,
  parseWsMessage,
} from './control';
import { decodeWholeFrame, encodeFrame, FrameError, FrameStreamReader, fromHex, MediaFrame, toHex } from './frame';

const DIR = resolve(process.cwd(), '../crates/proto/vectors');
const KINDS: Record<string, number> = { audio: 0, video: 1, screen: 2 };

interface FrameJson {
  version: number;
  kind: string;
  layer: number;
  keyframe: boolean;
  track_id: number;
  seq: number;
  capture_ts_us: number;
  audio_level: number | null;
  payload_len: number;
  payload_hex: string;
}
interface Named {
  name: string;
  hex: string;
}
interface FramesFile {
  valid: (Named & { frame: FrameJson })[];
  invalid: (Named & { error: string })[];
  streams: (Named & { frames: string[] })[];
}
interface ControlFile {
  client: (Named & { json: Record<string, unknown> })[];
  server: (Named & { json: Record<string, unknown> })[];
  invalid: (Named & { direction: 'client' | 'server'; error: string })[];
  wt_control_stream: (Named & { messages: Record<string, unknown>[] })[];
  wt_invalid: (Named & { error: string })[];
  ws: (Named & { type: number; json?: Record<string, unknown>; frame?: FrameJson })[];
  ws_invalid: (Named & { error: string })[];
}

function load<T>(name: string): T {
  const path = resolve(DIR, name);
  if (!existsSync(path)) throw new Error(`golden vectors missing: ${path}`);
  return JSON.parse(readFileSync(path, 'utf8')) as T;
}

function toFrame(j: FrameJson): MediaFrame {
  const f: MediaFrame = {
    kind: KINDS[j.kind],
    layer: j.layer,
    keyframe: j.keyframe,
    trackId: j.track_id,
    seq: j.seq,
    captureTsUs: j.capture_ts_us,
    payload: fromHex(j.payload_hex),
  };
  if (j.audio_level !== null && j.audio_level !== undefined) f.audioLevel = j.audio_level;
  return f;
}

const comparable = (f: MediaFrame) => ({ ...f, payload: toHex(f.payload) });

function errorCode(fn: () => unknown): string {
  try {
    fn();
  } catch (e) {
    if (e instanceof FrameError || e instanceof ControlError) return e.code;
    return `unexpected ${String(e)}`;
  }
  return 'accepted';
}

const frames = load<FramesFile>('frames.json');
const control = load<ControlFile>('control.json');

describe('golden vectors: frames.json', () => {
  it('has every section', () => {
    expect(frames.valid.length).toBeGreaterThan(0);
    expect(frames.invalid.length).toBeGreaterThan(0);
    expect(frames.streams.length).toBeGreaterThan(0);
  });

  for (const v of frames.valid) {
    it(`encodes "${v.name}" to its exact bytes`, () => {
      expect(toHex(encodeFrame(toFrame(v.frame)))).toBe(v.hex);
    });
    it(`decodes "${v.name}"`, () => {
      expect(v.frame.version).toBe(1);
      const f = decodeWholeFrame(fromHex(v.hex));
      expect(comparable(f)).toEqual(comparable(toFrame(v.frame)));
      expect(f.payload.byteLength).toBe(v.frame.payload_len);
    });
  }

  for (const v of frames.invalid) {
    it(`refuses "${v.name}" with ${v.error}`, () => {
      expect(errorCode(() => decodeWholeFrame(fromHex(v.hex)))).toBe(v.error);
    });
  }

  for (const s of frames.streams) {
    it(`splits stream "${s.name}" byte by byte`, () => {
      const bytes = fromHex(s.hex);
      const r = new FrameStreamReader();
      const got: MediaFrame[] = [];
      for (let i = 0; i < bytes.length; i++) got.push(...r.push(bytes.subarray(i, i + 1)));
      const want = s.frames.map((name) => {
        const v = frames.valid.find((x) => x.name === name);
        if (!v) throw new Error(`stream names unknown frame ${name}`);
        return comparable(toFrame(v.frame));
      });
      expect(got.map(comparable)).toEqual(want);
      expect(r.pending).toBe(0);
    });
  }
});

describe('golden vectors: control.json', () => {
  it('has every section', () => {
    for (const k of ['client', 'server', 'invalid', 'wt_control_stream', 'wt_invalid', 'ws', 'ws_invalid'] as const) {
      expect(control[k]?.length, k).toBeGreaterThan(0);
    }
  });

  for (const v of control.server) {
    it(`parses server message "${v.name}"`, () => {
      expect(parseControlBytes(fromHex(v.hex))).toEqual(v.json);
    });
  }

  for (const v of control.client) {
    it(`encodes client message "${v.name}" to the same object`, () => {
      const { v: version, ...msg } = v.json;
      expect(version).toBe(1);
      const ours = JSON.parse(controlJson(msg as unknown as ClientMessage));
      expect(ours).toEqual(v.json);
      expect(ours).toEqual(JSON.parse(new TextDecoder().decode(fromHex(v.hex))));
      // Rust puts "v" then "type" first; so do we.
      expect(Object.keys(ours).slice(0, 2)).toEqual(['v', 'type']);
    });
  }

  for (const v of control.invalid.filter((x) => x.direction === 'server')) {
    it(`refuses server message "${v.name}" with ${v.error}`, () => {
      expect(errorCode(() => parseControlBytes(fromHex(v.hex)))).toBe(v.error);
    });
  }

  for (const v of control.client) {
    it(`parses client message "${v.name}" as the server would`, () => {
      expect(parseClientControlBytes(fromHex(v.hex))).toEqual(v.json);
    });
  }

  for (const v of control.invalid.filter((x) => x.direction === 'client')) {
    it(`refuses client message "${v.name}" with ${v.error}`, () => {
      expect(errorCode(() => parseClientControlBytes(fromHex(v.hex)))).toBe(v.error);
    });
  }

  it('checks every invalid vector in one direction or the other', () => {
    expect(control.invalid.every((x) => x.direction === 'client' || x.direction === 'server')).toBe(true);
  });

  for (const v of control.wt_control_stream) {
    it(`splits the WebTransport control stream "${v.name}"`, () => {
      const bytes = fromHex(v.hex);
      const r = new ControlStreamReader();
      const got: unknown[] = [];
      for (let i = 0; i < bytes.length; i += 5) got.push(...r.pushRaw(bytes.subarray(i, i + 5)).map((t) => JSON.parse(t)));
      expect(got).toEqual(v.messages);
    });
  }

  for (const v of control.wt_invalid) {
    it(`refuses control stream "${v.name}" with ${v.error}`, () => {
      expect(errorCode(() => new ControlStreamReader().pushRaw(fromHex(v.hex)))).toBe(v.error);
    });
  }

  for (const v of control.ws) {
    it(`splits WebSocket message "${v.name}"`, () => {
      const m = parseWsMessage(fromHex(v.hex));
      if (v.type === 1) {
        expect(m.kind).toBe('control');
        if (m.kind === 'control') expect(JSON.parse(new TextDecoder().decode(m.body))).toEqual(v.json);
      } else {
        expect(m.kind).toBe('media');
        if (m.kind === 'media' && v.frame) expect(comparable(decodeWholeFrame(m.bytes))).toEqual(comparable(toFrame(v.frame)));
      }
    });
  }

  for (const v of control.ws_invalid) {
    it(`refuses WebSocket message "${v.name}" with ${v.error}`, () => {
      expect(
        errorCode(() => {
          const m = parseWsMessage(fromHex(v.hex));
          if (m.kind === 'media') decodeWholeFrame(m.bytes);
          else parseControlBytes(m.body);
        }),
      ).toBe(v.error);
    });
  }

  it('accepts a well-formed message of a known type and refuses unknown ones', () => {
    expect(parseControl('{"v":1,"type":"pong","t":1}').type).toBe('pong');
    expect(errorCode(() => parseControl('{"v":1,"type":"teleport"}'))).toBe('unknown_message');
  });
});
