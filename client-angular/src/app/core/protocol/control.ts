/**
 * Control messages: JSON objects `{"v":1,"type":…}`. On WebTransport each message is framed on
 * the control stream as a u32 big-endian byte length followed by UTF-8 JSON; on WebSocket a
 * binary message starts with a type byte (0x01 control, 0x02 media frame).
 * Mirrors `crates/proto`'s control module; pure code.
 */
import { concat } from './frame';

export const CONTROL_VERSION = 1;
export const WS_CONTROL = 0x01;
export const WS_MEDIA = 0x02;
/** Upper bound on one control message (crates/proto MAX_CONTROL_LEN). */
export const MAX_CONTROL_LEN = 64 * 1024;
export const MAX_CHAT_CHARS = 2000;

export type Role = 'host' | 'member' | 'guest';
export type TransportKind = 'webtransport' | 'websocket';
export type TrackKindName = 'audio' | 'video' | 'screen';

export interface Participant {
  id: number;
  name: string;
  role: Role | string;
  audio_muted: boolean;
  video_muted: boolean;
  hand_raised: boolean;
  transport?: TransportKind | string;
}

export interface Track {
  track_id: number;
  participant_id: number;
  kind: TrackKindName | string;
  codec: string;
  width?: number;
  height?: number;
}

export interface ChatMessage {
  id: number | string;
  participant_id: number;
  name: string;
  text: string;
  ts_ms: number;
}

/** Messages the client sends. */
export type ClientMessage =
  | { type: 'hello'; token: string; client?: string; uplink_reports?: boolean }
  | { type: 'publish'; track_id: number; kind: TrackKindName; codec: string; width?: number; height?: number; layers_capable?: boolean }
  | { type: 'unpublish'; track_id: number }
  | { type: 'subscribe'; track_id: number; max_width?: number; max_height?: number; layer?: number }
  | { type: 'unsubscribe'; track_id: number }
  | { type: 'mute'; audio: boolean; video: boolean }
  | { type: 'chat'; text: string }
  | { type: 'reaction'; emoji: string }
  | { type: 'hand'; raised: boolean }
  | { type: 'keyframe_request'; track_id: number }
  | { type: 'admit'; participant_id: number }
  | { type: 'deny'; participant_id: number }
  | { type: 'mute_participant'; participant_id: number }
  | { type: 'remove'; participant_id: number }
  | { type: 'end_meeting' }
  | { type: 'signal'; to: number; data: unknown }
  | { type: 'ping'; t: number }
  | { type: 'leave' }
  | { type: 'media_path'; path: MediaPathKind; peer?: number }
  | { type: 'receiver_report'; queue_ms: number };

/** Where a participant's own media travels (PROTOCOL.md §5.12). */
export type MediaPathKind = 'server' | 'p2p';

/** Messages the server sends. Unknown types are passed through for forward compatibility. */
export type ServerMessage =
  | {
      type: 'welcome';
      participant_id: number;
      role: Role | string;
      meeting: Record<string, unknown>;
      participants: Participant[];
      tracks: Track[];
      chat: ChatMessage[];
    }
  | { type: 'lobby'; message: string }
  | { type: 'denied'; reason: string }
  | { type: 'participant_joined'; participant: Participant }
  | { type: 'participant_left'; participant_id: number; reason?: string }
  | { type: 'track_published'; track: Track }
  | { type: 'track_unpublished'; track_id: number }
  | { type: 'mute_state'; participant_id: number; audio: boolean; video: boolean }
  | { type: 'please_mute'; by: number }
  | ({ type: 'chat' } & ChatMessage)
  | { type: 'reaction'; participant_id: number; emoji: string }
  | { type: 'hand'; participant_id: number; raised: boolean }
  | { type: 'active_speaker'; participant_id: number }
  | { type: 'knock'; participant_id: number; name: string; email: string }
  | { type: 'keyframe_request'; track_id: number; layer: number }
  | { type: 'track_demand'; track_id: number; layer: number; viewers: number }
  | { type: 'produce_layer'; track_id: number; layer: number; width: number; height: number; bitrate: number }
  | { type: 'stop_layer'; track_id: number; layer: number }
  | { type: 'layer_changed'; track_id: number; layer: number; width: number; height: number }
  | { type: 'uplink_report'; queue_ms: number; kbps: number }
  | { type: 'signal'; from: number; data: unknown }
  | { type: 'pong'; t: number }
  | { type: 'error'; code: string; message: string }
  | { type: 'goodbye'; reason: string; message: string };

export type ServerMessageType = ServerMessage['type'];

const encoder = new TextEncoder();
const decoder = new TextDecoder('utf-8', { fatal: true });

/** JSON text of a client message, with the protocol version first. */
export function controlJson(msg: ClientMessage): string {
  // "v" then "type" first, as crates/proto writes them; the rest in the order given.
  const { type, ...rest } = msg;
  return JSON.stringify({ v: CONTROL_VERSION, type, ...rest });
}

/** Stable codes, the same strings crates/proto's ControlError::code / WsError::code give. */
export type ControlErrorCode = 'too_large' | 'bad_json' | 'bad_version' | 'missing_type' | 'unknown_message' | 'invalid_message' | 'empty' | 'unknown_type' | 'truncated';

export class ControlError extends Error {
  constructor(
    readonly code: ControlErrorCode,
    message: string,
  ) {
    super(message);
    this.name = 'ControlError';
  }
}

type FieldKind = 'u32' | 'u8' | 'string' | 'bool' | 'object' | 'array' | 'number' | 'any';
const u = 'u32' as const;
const str = 'string' as const;
const bool = 'bool' as const;

/** Required fields of each server message: what crates/proto's ServerMessage insists on. */
const SERVER_FIELDS: Record<ServerMessageType, Record<string, FieldKind>> = {
  welcome: { participant_id: u, role: str, meeting: 'object', participants: 'array', tracks: 'array', chat: 'array' },
  lobby: { message: str },
  denied: { reason: str },
  participant_joined: { participant: 'object' },
  participant_left: { participant_id: u, reason: str },
  track_published: { track: 'object' },
  track_unpublished: { track_id: u },
  mute_state: { participant_id: u, audio: bool, video: bool },
  please_mute: { by: u },
  chat: { id: 'any', participant_id: u, name: str, text: str, ts_ms: 'number' },
  reaction: { participant_id: u, emoji: str },
  hand: { participant_id: u, raised: bool },
  active_speaker: { participant_id: u },
  knock: { participant_id: u, name: str, email: str },
  keyframe_request: { track_id: u, layer: 'u8' },
  track_demand: { track_id: u, layer: 'u8', viewers: u },
  produce_layer: { track_id: u, layer: 'u8', width: u, height: u, bitrate: u },
  stop_layer: { track_id: u, layer: 'u8' },
  layer_changed: { track_id: u, layer: 'u8', width: u, height: u },
  uplink_report: { queue_ms: u, kbps: u },
  signal: { from: u, data: 'any' },
  pong: { t: 'number' },
  error: { code: str, message: str },
  goodbye: { reason: str, message: str },
};

type ClientMessageType = ClientMessage['type'];

/** Required and optional fields of each client message (crates/proto's ClientMessage). */
const CLIENT_FIELDS: Record<ClientMessageType, [Record<string, FieldKind | 'media_kind' | 'media_path'>, Record<string, FieldKind>?]> = {
  hello: [{ token: str }, { client: str, uplink_reports: bool }],
  publish: [{ track_id: u, kind: 'media_kind', codec: str }, { width: u, height: u, layers_capable: bool }],
  unpublish: [{ track_id: u }],
  subscribe: [{ track_id: u }, { max_width: u, max_height: u, layer: 'u8' }],
  unsubscribe: [{ track_id: u }],
  mute: [{ audio: bool, video: bool }],
  chat: [{ text: str }],
  reaction: [{ emoji: str }],
  hand: [{ raised: bool }],
  keyframe_request: [{ track_id: u }],
  admit: [{ participant_id: u }],
  deny: [{ participant_id: u }],
  mute_participant: [{ participant_id: u }],
  remove: [{ participant_id: u }],
  end_meeting: [{}],
  signal: [{ to: u, data: 'any' }],
  ping: [{ t: 'number' }],
  leave: [{}],
  media_path: [{ path: 'media_path' }, { peer: u }],
  receiver_report: [{ queue_ms: u }],
};

function fieldOk(v: unknown, kind: FieldKind | 'media_kind' | 'media_path'): boolean {
  if (kind === 'media_kind') return v === 'audio' || v === 'video' || v === 'screen';
  if (kind === 'media_path') return v === 'server' || v === 'p2p';
  switch (kind) {
    case 'u32':
      return typeof v === 'number' && Number.isInteger(v) && v >= 0 && v <= 0xffffffff;
    case 'u8':
      return typeof v === 'number' && Number.isInteger(v) && v >= 0 && v <= 255;
    case 'string':
      return typeof v === 'string';
    case 'bool':
      return typeof v === 'boolean';
    case 'object':
      return typeof v === 'object' && v !== null && !Array.isArray(v);
    case 'array':
      return Array.isArray(v);
    case 'number':
      return typeof v === 'number' && Number.isFinite(v);
    case 'any':
      return v !== undefined;
  }
}

/** Parses the envelope shared by both directions: JSON object, `v` = 1, a string `type`. */
function parseEnvelope(json: string): { o: Record<string, unknown>; type: string } {
  let obj: unknown;
  try {
    obj = JSON.parse(json);
  } catch {
    throw new ControlError('bad_json', 'control message is not JSON');
  }
  if (typeof obj !== 'object' || obj === null || Array.isArray(obj)) throw new ControlError('bad_json', 'control message is not a JSON object');
  const o = obj as Record<string, unknown>;
  if (o['v'] !== CONTROL_VERSION) throw new ControlError('bad_version', `unsupported control version ${JSON.stringify(o['v'])}`);
  const type = o['type'];
  if (typeof type !== 'string') throw new ControlError('missing_type', 'control message without a type');
  return { o, type };
}

/**
 * Parses and checks one client→server message, as the server does (used by tests and tools
 * that play the server's side). Throws ControlError.
 */
export function parseClientControl(json: string): ClientMessage {
  const { o, type } = parseEnvelope(json);
  const spec = Object.prototype.hasOwnProperty.call(CLIENT_FIELDS, type) ? CLIENT_FIELDS[type as ClientMessageType] : undefined;
  if (!spec) throw new ControlError('unknown_message', `unknown client message "${type}"`);
  const [required, optional = {}] = spec;
  for (const [name, kind] of Object.entries(required)) {
    if (!fieldOk(o[name], kind)) throw new ControlError('invalid_message', `"${type}" has a missing or bad "${name}"`);
  }
  for (const [name, kind] of Object.entries(optional)) {
    if (o[name] !== undefined && o[name] !== null && !fieldOk(o[name], kind)) {
      throw new ControlError('invalid_message', `"${type}" has a bad "${name}"`);
    }
  }
  return o as unknown as ClientMessage;
}

/** Parses and checks one server→client control message (the JSON text). Throws ControlError. */
export function parseControl(json: string): ServerMessage {
  const { o, type } = parseEnvelope(json);
  const fields = Object.prototype.hasOwnProperty.call(SERVER_FIELDS, type) ? SERVER_FIELDS[type as ServerMessageType] : undefined;
  if (!fields) throw new ControlError('unknown_message', `unknown server message "${type}"`);
  for (const [name, kind] of Object.entries(fields)) {
    if (!fieldOk(o[name], kind)) throw new ControlError('invalid_message', `"${type}" has a missing or bad "${name}"`);
  }
  return o as unknown as ServerMessage;
}

function utf8(body: Uint8Array): string {
  try {
    return decoder.decode(body);
  } catch {
    throw new ControlError('bad_json', 'control message is not UTF-8');
  }
}

/** Decodes a UTF-8 server→client control body (bytes) and parses it. */
export function parseControlBytes(body: Uint8Array): ServerMessage {
  return parseControl(utf8(body));
}

/** Decodes a UTF-8 client→server control body (bytes) and parses it. */
export function parseClientControlBytes(body: Uint8Array): ClientMessage {
  return parseClientControl(utf8(body));
}

/** u32 BE length + UTF-8 JSON, as written on the WebTransport control stream. */
export function encodeControlFrame(msg: ClientMessage): Uint8Array<ArrayBuffer> {
  return lengthPrefixed(encoder.encode(controlJson(msg)));
}

export function lengthPrefixed(body: Uint8Array): Uint8Array<ArrayBuffer> {
  const out = new Uint8Array(4 + body.byteLength);
  new DataView(out.buffer).setUint32(0, body.byteLength);
  out.set(body, 4);
  return out;
}

/** Splits the control stream into JSON messages, from chunks of any size. */
export class ControlStreamReader {
  private buf: Uint8Array = new Uint8Array(0);

  push(chunk: Uint8Array): ServerMessage[] {
    return this.pushBodies(chunk).map(parseControlBytes);
  }

  /** Same as push, but returns the JSON texts unchecked. */
  pushRaw(chunk: Uint8Array): string[] {
    return this.pushBodies(chunk).map((b) => decoder.decode(b));
  }

  /** Splits off every complete body. */
  pushBodies(chunk: Uint8Array): Uint8Array[] {
    this.buf = concat(this.buf, chunk);
    const out: Uint8Array[] = [];
    let off = 0;
    while (this.buf.byteLength - off >= 4) {
      const dv = new DataView(this.buf.buffer, this.buf.byteOffset + off, 4);
      const len = dv.getUint32(0);
      if (len > MAX_CONTROL_LEN) throw new ControlError('too_large', `control message too large (${len} bytes)`);
      if (this.buf.byteLength - off - 4 < len) break;
      out.push(this.buf.slice(off + 4, off + 4 + len));
      off += 4 + len;
    }
    if (off > 0) this.buf = this.buf.slice(off);
    return out;
  }
}

/** A WebSocket binary message: type byte then body. */
export function wsMessage(type: number, body: Uint8Array): Uint8Array<ArrayBuffer> {
  const out = new Uint8Array(1 + body.byteLength);
  out[0] = type;
  out.set(body, 1);
  return out;
}

export function wsControl(msg: ClientMessage): Uint8Array<ArrayBuffer> {
  return wsMessage(WS_CONTROL, encoder.encode(controlJson(msg)));
}

export type WsIncoming = { kind: 'control'; body: Uint8Array } | { kind: 'media'; bytes: Uint8Array };

/** Splits a binary WebSocket message by its type byte. Control JSON is parsed by the caller. */
export function parseWsMessage(data: Uint8Array): WsIncoming {
  if (data.byteLength < 1) throw new ControlError('empty', 'empty websocket message');
  const body = data.subarray(1);
  switch (data[0]) {
    case WS_CONTROL:
      if (body.byteLength > MAX_CONTROL_LEN) throw new ControlError('too_large', `control message too large (${body.byteLength} bytes)`);
      return { kind: 'control', body };
    case WS_MEDIA:
      return { kind: 'media', bytes: body };
    default:
      throw new ControlError('unknown_type', `unknown websocket message type 0x${data[0].toString(16)}`);
  }
}
