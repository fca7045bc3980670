import { signal } from '@angular/core';
import { P2pService } from '../../core/p2p/p2p.service';
import { TestBed } from '@angular/core/testing';
import { JoinAnswer } from '../../core/api/api.models';
import { ApiService } from '../../core/api/api.service';
import { CaptureService } from '../../core/media/publish/capture.service';
import { ENCODERS, PublishService } from '../../core/media/publish/publish.service';
import { PlaybackService } from '../../core/media/watch/playback.service';
import { ClientMessage, ServerMessage } from '../../core/protocol/control';
import { MediaKind } from '../../core/protocol/frame';
import { TransportListener, TransportService } from '../../core/transport/transport.service';
import { layerBound, RoomService } from './room.service';

const answer: JoinAnswer = {
  status: 'ready',
  token: 'jt',
  expires_in_secs: 60,
  participant: { name: 'Bob', role: 'member' },
  media: { websocket: { url: 'ws://x/ws' } },
};

function setup(join: JoinAnswer = answer) {
  const sent: ClientMessage[] = [];
  let listener!: TransportListener;
  const transport = {
    kind: signal('websocket'),
    rttMs: signal(5),
    state: signal('connected'),
    send: (m: ClientMessage) => sent.push(m),
    sendFrame: vi.fn(),
    connect: vi.fn(async (_a: JoinAnswer, l: TransportListener) => {
      listener = l;
    }),
    disconnect: vi.fn(),
    reconnect: vi.fn(),
    uplink: () => ({ backlogBytes: 0, drops: 0 }),
  };
  const micOn = signal(true);
  const camOn = signal(true);
  const track = (id: string) => ({ id, readyState: 'live', getSettings: () => ({ width: 640, height: 480 }) }) as unknown as MediaStreamTrack;
  const media = {
    micOn,
    camOn,
    micLevel: signal(0),
    sharing: signal(false),
    mic: signal<MediaStreamTrack | null>(track('mic')),
    camera: signal<MediaStreamTrack | null>(track('cam')),
    screen: signal<MediaStreamTrack | null>(null),
    screenAudio: signal<MediaStreamTrack | null>(null),
    setMic: vi.fn((on: boolean) => micOn.set(on)),
    setCamera: vi.fn(async (on: boolean) => camOn.set(on)),
    stopAll: vi.fn(),
    reportBroken: vi.fn(),
  };
  const keyframes: number[] = [];
  const encoders = (slot: number) => ({ framesEncoded: 0, start: () => undefined, stop: () => undefined, requestKeyframe: () => keyframes.push(slot) });
  const playback = {
    startAudioOutput: vi.fn(async () => undefined),
    push: vi.fn(),
    remove: vi.fn(),
    reset: vi.fn(),
    onKeyframeNeeded: vi.fn(),
    onPaint: vi.fn(),
    closeRemotes: vi.fn(),
    loudness: () => 0,
    audioFrames: () => 0,
    stats: () => [],
  };
  const api = { join: vi.fn(async () => join) };
  TestBed.configureTestingModule({
    providers: [
      { provide: TransportService, useValue: transport },
      { provide: CaptureService, useValue: media },
      { provide: ENCODERS, useValue: encoders },
      PublishService,
      { provide: PlaybackService, useValue: playback },
      RoomService,
      P2pService,
      { provide: ApiService, useValue: api },
    ],
  });
  const room = TestBed.inject(RoomService);
  return { room, sent, media, playback, keyframes, transport, api, control: (m: ServerMessage) => listener.control(m), listener: () => listener };
}

const welcome: ServerMessage = {
  type: 'welcome',
  participant_id: 2,
  role: 'member',
  meeting: { code: 'abc-defg-hij', title: 'Standup' },
  participants: [
    { id: 1, name: 'Ann', role: 'host', audio_muted: false, video_muted: false, hand_raised: false, transport: 'webtransport' },
    { id: 2, name: 'Bob', role: 'member', audio_muted: false, video_muted: false, hand_raised: false, transport: 'websocket' },
  ],
  tracks: [
    { track_id: 16, participant_id: 1, kind: 'audio', codec: 'opus' },
    { track_id: 17, participant_id: 1, kind: 'video', codec: 'vp8', width: 1280, height: 720 },
  ],
  chat: [{ id: 1, participant_id: 1, name: 'Ann', text: 'hi', ts_ms: 1 }],
};

describe('RoomService', () => {
  it('joins, then on welcome publishes mic and camera and subscribes to everyone else', async () => {
    const { room, sent, control, api } = setup();
    await room.join('abc-defg-hij', { name: 'Bob', email: 'b@x.io' }, 'auto');
    expect(api.join).toHaveBeenCalledWith('abc-defg-hij', { name: 'Bob', email: 'b@x.io' });
    control(welcome);
    expect(room.phase()).toBe('in-room');
    expect(room.selfId()).toBe(2);
    expect(room.others().map((p) => p.name)).toEqual(['Ann']);
    expect(room.chat().length).toBe(1);
    expect(sent).toContainEqual({ type: 'publish', track_id: 32, kind: 'audio', codec: 'opus' });
    expect(sent).toContainEqual({ type: 'publish', track_id: 33, kind: 'video', codec: 'vp8', width: 640, height: 480 });
    expect(sent).toContainEqual({ type: 'mute', audio: false, video: false });
    expect(sent).toContainEqual({ type: 'subscribe', track_id: 16 });
    expect(sent).toContainEqual({ type: 'subscribe', track_id: 17, max_width: 1280, max_height: 720 });
  });

  it('shows the lobby for a waiting answer, then the room once admitted', async () => {
    const { room, control } = setup({ ...answer, status: 'waiting' });
    await room.join('abc-defg-hij', {}, 'auto');
    expect(room.phase()).toBe('lobby');
    control({ type: 'lobby', message: 'Waiting for the host to let you in' });
    expect(room.lobbyMessage()).toContain('Waiting');
    control(welcome);
    expect(room.phase()).toBe('in-room');
  });

  it('follows room events: joins, tracks, mute, hands, chat echo, knocks, leaving', async () => {
    const { room, sent, control, playback } = setup();
    await room.join('abc-defg-hij', {}, 'auto');
    control(welcome);
    control({ type: 'participant_joined', participant: { id: 3, name: 'Cy', role: 'guest', audio_muted: true, video_muted: true, hand_raised: false } });
    expect(room.participants().length).toBe(3);
    control({ type: 'track_published', track: { track_id: 50, participant_id: 3, kind: 'screen', codec: 'vp8', width: 1920, height: 1080 } });
    expect(room.stage()?.track_id).toBe(50);
    expect(sent).toContainEqual({ type: 'subscribe', track_id: 50, max_width: 1920, max_height: 1080 });
    control({ type: 'mute_state', participant_id: 1, audio: true, video: false });
    expect(room.participants().find((p) => p.id === 1)?.audio_muted).toBe(true);
    control({ type: 'hand', participant_id: 3, raised: true });
    expect(room.participants().find((p) => p.id === 3)?.hand_raised).toBe(true);

    room.sendChat('  hello  ');
    expect(sent).toContainEqual({ type: 'chat', text: 'hello' });
    control({ type: 'chat', id: 2, participant_id: 2, name: 'Bob', text: 'hello', ts_ms: 2 });
    expect(room.chat().at(-1)).toMatchObject({ text: 'hello', self: true });
    expect(room.unreadChat()).toBe(0);
    control({ type: 'chat', id: 3, participant_id: 1, name: 'Ann', text: 'yo', ts_ms: 3 });
    expect(room.unreadChat()).toBe(1);

    control({ type: 'knock', participant_id: 4, name: 'Dee', email: 'dee@example.org' });
    expect(room.knocks().map((k) => k.name)).toEqual(['Dee']);

    control({ type: 'track_unpublished', track_id: 50 });
    expect(room.stage()).toBeNull();
    expect(playback.remove).toHaveBeenCalledWith(50);
    control({ type: 'participant_left', participant_id: 3, reason: 'left' });
    expect(room.participants().length).toBe(2);
  });

  it('mutes itself when the host asks, and answers keyframe requests', async () => {
    const { room, sent, control, media, keyframes } = setup();
    await room.join('abc-defg-hij', {}, 'auto');
    control(welcome);
    control({ type: 'please_mute', by: 1 });
    expect(media.setMic).toHaveBeenCalledWith(false);
    expect(sent.at(-1)).toEqual({ type: 'mute', audio: true, video: false });
    expect(room.notice()).toContain('Ann');
    control({ type: 'keyframe_request', track_id: 33, layer: 0 });
    expect(keyframes).toEqual([1]);
  });

  it('records audio levels from frame headers and hands frames to media', async () => {
    const { room, control, playback, listener } = setup();
    await room.join('abc-defg-hij', {}, 'auto');
    control(welcome);
    const f = { kind: MediaKind.Audio, layer: 0, keyframe: false, trackId: 16, seq: 1, captureTsUs: 1, audioLevel: 20, payload: new Uint8Array(3) };
    listener().frame(f);
    expect(playback.push).toHaveBeenCalledWith(f);
    await new Promise((r) => setTimeout(r, 250));
    expect(room.levels()[1]).toBe(20);
    expect(room.isSpeaking(1)).toBe(true);
  });

  it('ends on goodbye{ended} and reconnects on goodbye{shutdown}', async () => {
    const { room, control, transport } = setup();
    await room.join('abc-defg-hij', {}, 'auto');
    control(welcome);
    control({ type: 'goodbye', reason: 'shutdown', message: 'Server restarting' });
    expect(transport.reconnect).toHaveBeenCalled();
    expect(room.phase()).toBe('in-room');
    control({ type: 'goodbye', reason: 'ended', message: 'The host ended the meeting' });
    expect(room.phase()).toBe('ended');
    expect(room.error()).toBe('The host ended the meeting');
  });

  it('shows the API error when joining fails', async () => {
    const { room, api } = setup();
    api.join.mockRejectedValueOnce(new Error('This meeting is private.'));
    await room.join('abc-defg-hij', {}, 'auto');
    expect(room.phase()).toBe('error');
    expect(room.error()).toBe('This meeting is private.');
  });
});

describe('layerBound', () => {
  it('asks for the smallest layer that covers the tile', () => {
    expect(layerBound(1280, 720, 1200, 700)).toEqual({ w: 1280, h: 720 });
    expect(layerBound(1280, 720, 600, 340)).toEqual({ w: 640, h: 360 });
    expect(layerBound(1280, 720, 300, 170)).toEqual({ w: 320, h: 180 });
    expect(layerBound(640, 480, 620, 380)).toEqual({ w: 640, h: 480 });
    expect(layerBound(undefined, undefined, 300, 200)).toEqual({ w: 300, h: 200 });
  });

  it('chooses against what the publisher really sends when its CPU made the picture smaller', () => {
    // Published 640x480, sending 320x240: a 300x220 tile needs layer 0 (asked as the full size),
    // not layer 1, which would be 160x120.
    expect(layerBound(640, 480, 300, 220, { w: 320, h: 240 })).toEqual({ w: 640, h: 480 });
    expect(layerBound(640, 480, 300, 220)).toEqual({ w: 320, h: 240 });
    // A tile half that size gets layer 1 (160x120 of the real picture), asked in published sizes.
    expect(layerBound(640, 480, 150, 110, { w: 320, h: 240 })).toEqual({ w: 320, h: 240 });
  });
});
