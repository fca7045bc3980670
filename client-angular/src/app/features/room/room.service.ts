import { computed, inject, Injectable, OnDestroy, signal } from '@angular/core';
import { GuestInfo, JoinAnswer } from '../../core/api/api.models';
import { ApiService } from '../../core/api/api.service';
import { CaptureService } from '../../core/media/publish/capture.service';
import { PublishService } from '../../core/media/publish/publish.service';
import { PlaybackService } from '../../core/media/watch/playback.service';
import { P2pService } from '../../core/p2p/p2p.service';
import { rmsToDbov, SPEAKING_DBOV } from '../../core/media/levels';
import { ChatMessage, MAX_CHAT_CHARS, Participant, ServerMessage, Track, TransportKind } from '../../core/protocol/control';
import { MediaFrame, MediaKind, participantOfTrack, Slot, trackIdOf } from '../../core/protocol/frame';
import { TransportPreference, TransportService } from '../../core/transport/transport.service';
import { environment } from '../../../environments/environment';
import { connectionQuality, layersBelow, LossMeter, Quality, START_RAMP_MS } from './call-quality';
import { SentSizes } from './sent-size';

export type RoomPhase = 'idle' | 'joining' | 'lobby' | 'in-room' | 'left' | 'denied' | 'ended' | 'removed' | 'error';

export interface Knock {
  participant_id: number;
  name: string;
  email?: string;
}

export interface Reaction {
  key: number;
  participant_id: number;
  name: string;
  emoji: string;
}

export interface ChatLine extends ChatMessage {
  self: boolean;
}

/** A `layer_changed` the server sent, for the troubleshooting panel. */
export interface LayerEvent {
  at: number;
  trackId: number;
  layer: number;
  width: number;
  height: number;
}

interface SubState {
  w: number;
  h: number;
}

/**
 * The meeting as the UI sees it: who is here, their tracks, chat, knocks, levels. Feeds control
 * messages from the transport into signals and turns UI actions into control messages. Media
 * bytes go straight between TransportService and the publish/playback services. Provided by the
 * meeting page, so all of this state ends with the meeting.
 */
@Injectable()
export class RoomService implements OnDestroy {
  private readonly api = inject(ApiService);
  private readonly transport = inject(TransportService);
  private readonly publish = inject(PublishService);
  private readonly capture = inject(CaptureService);
  private readonly playback = inject(PlaybackService);
  /** Two-person calls go peer to peer; this service decides when and carries the media. */
  readonly p2p = inject(P2pService);

  readonly phase = signal<RoomPhase>('idle');
  readonly error = signal<string | null>(null);
  readonly notice = signal<string | null>(null);
  readonly lobbyMessage = signal<string | null>(null);
  readonly selfId = signal<number | null>(null);
  readonly role = signal<string>('member');
  readonly code = signal<string>('');
  readonly meetingInfo = signal<{ code?: string; title?: string; host_name?: string } | null>(null);
  private readonly _participants = signal<ReadonlyMap<number, Participant>>(new Map());
  private readonly _tracks = signal<ReadonlyMap<number, Track>>(new Map());
  readonly chat = signal<ChatLine[]>([]);
  readonly knocks = signal<Knock[]>([]);
  readonly reactions = signal<Reaction[]>([]);
  readonly activeSpeaker = signal<number | null>(null);
  /** participant id → -dBov level from audio frame headers (127 = silent). */
  readonly levels = signal<Record<number, number>>({});
  /** participant id → loudness of the audio we decoded from them, 0..1 RMS. */
  readonly rxLoudness = signal<Record<number, number>>({});
  readonly handRaised = signal(false);
  readonly firstFrameMs = signal<number | null>(null);
  readonly unreadChat = signal(0);
  /** Short text for screen readers: who joined, left, knocked. */
  readonly announcement = signal('');
  /** participant id → connection quality (refreshed every second). */
  readonly quality = signal<Record<number, Quality>>({});
  /** The latest `layer_changed` events, newest last. */
  readonly layerLog = signal<LayerEvent[]>([]);

  readonly participants = computed(() => [...this._participants().values()]);
  readonly others = computed(() => this.participants().filter((p) => p.id !== this.selfId()));
  readonly self = computed(() => {
    const id = this.selfId();
    return id === null ? null : (this._participants().get(id) ?? null);
  });
  readonly tracks = computed(() => [...this._tracks().values()]);
  readonly isHost = computed(() => this.role() === 'host');
  /** The screen share shown as the main stage: a remote one first, else our own. */
  readonly stage = computed(() => {
    const screens = this.tracks().filter((t) => t.kind === 'screen');
    const remote = screens.find((t) => t.participant_id !== this.selfId());
    return remote ?? screens[0] ?? null;
  });

  private guest: GuestInfo = {};
  private prefer: TransportPreference = 'auto';
  private joinClickedAt = 0;
  private readonly rawLevels = new Map<number, { level: number; at: number }>();
  private levelTimer: ReturnType<typeof setInterval> | undefined;
  private reactionKey = 0;
  private readonly subscribed = new Map<number, SubState>();
  private readonly wanted = new Map<number, SubState>();
  private readonly receivedLayer = new Map<number, { layer: number; width: number; height: number }>();
  /** The subscribe bound we last asked for, per video track. */
  private readonly asked = new Map<number, SubState>();
  /** When this connection's first video subscription went out (null: none yet). */
  private firstVideoAt: number | null = null;
  /** The size a publisher really sends (layer 0), per video track, when we have seen it. */
  private readonly sentSize = new SentSizes();
  private levelTicks = 0;
  private readonly loss = new LossMeter();
  private ticks = 0;
  /** Welcomes received since the page loaded: more than one means we reconnected. */
  welcomes = 0;
  chatOpen = false;

  constructor() {
    this.playback.onKeyframeNeeded((trackId) => this.transport.send({ type: 'keyframe_request', track_id: trackId }));
    this.playback.onPaint(() => {
      if (this.firstFrameMs() === null && this.joinClickedAt > 0) {
        this.firstFrameMs.set(Math.round(performance.now() - this.joinClickedAt));
      }
    });
    this.p2p.bind({ selfId: this.selfId, participants: this.participants, tracks: this.tracks });
    environment.installTestHook?.({ room: this, transport: this.transport, capture: this.capture, publish: this.publish, playback: this.playback, p2p: this.p2p });
  }

  ngOnDestroy(): void {
    clearInterval(this.levelTimer);
  }

  async join(code: string, guest: GuestInfo, prefer: TransportPreference): Promise<void> {
    this.code.set(code);
    this.guest = guest;
    this.prefer = prefer;
    this.error.set(null);
    this.notice.set(null);
    this.firstFrameMs.set(null);
    this.joinClickedAt = performance.now();
    this.phase.set('joining');
    const audio = this.playback.startAudioOutput();
    let answer: JoinAnswer;
    try {
      answer = await this.api.join(code, guest);
    } catch (e) {
      this.phase.set('error');
      this.error.set((e as Error).message);
      return;
    }
    this.p2p.configure(answer);
    if (answer.status === 'waiting') {
      this.phase.set('lobby');
      this.lobbyMessage.set(answer.message ?? 'Asking to be let in…');
    }
    await audio;
    try {
      await this.transport.connect(
        answer,
        {
          control: (m) => this.onControl(m),
          frame: (f) => this.onFrame(f),
          connected: (kind) => this.onConnected(kind),
          keyframeNeeded: (trackId, layer) => this.publish.requestLocalKeyframe(trackId, layer),
          failed: (msg, code) => {
            if (code === 'meeting_ended') {
              // Our goodbye was lost with the connection; the rejoin says what it said.
              this.closedBy('ended', msg);
              return;
            }
            this.phase.set('error');
            this.error.set(msg);
          },
        },
        { prefer, rejoin: () => this.api.join(this.code(), this.guest) },
      );
    } catch (e) {
      this.phase.set('error');
      this.error.set((e as Error).message);
    }
    clearInterval(this.levelTimer);
    this.levelTimer = setInterval(() => this.publishLevels(), 200);
  }

  leave(): void {
    this.transport.disconnect('left');
    this.teardown();
    this.phase.set('left');
  }

  // ---- UI actions -------------------------------------------------------------------------

  toggleMic(): void {
    this.capture.setMic(!this.capture.micOn());
    this.sendMute();
  }

  /** Publishing follows the camera switch (PublishService reconciles); others learn from `mute`. */
  async toggleCamera(): Promise<void> {
    const on = !this.capture.camOn();
    const done = this.capture.setCamera(on);
    this.sendMute();
    await done;
  }

  /** Starts or stops presenting; the screen (and tab audio, when offered) publish by themselves. */
  async toggleScreen(): Promise<void> {
    if (this.selfId() === null) return;
    if (this.capture.sharing()) this.capture.stopScreenShare();
    else await this.capture.startScreenShare();
  }

  toggleHand(): void {
    const raised = !this.handRaised();
    this.handRaised.set(raised);
    this.transport.send({ type: 'hand', raised });
    const id = this.selfId();
    if (id !== null) this.patchParticipant(id, { hand_raised: raised });
  }

  react(emoji: string): void {
    this.transport.send({ type: 'reaction', emoji });
    const id = this.selfId();
    if (id !== null) this.showReaction(id, emoji);
  }

  sendChat(text: string): void {
    const t = text.trim();
    if (!t) return;
    // The server assigns id and time and echoes the message to everyone, the author included.
    this.transport.send({ type: 'chat', text: t.slice(0, MAX_CHAT_CHARS) });
  }

  admit(k: Knock): void {
    this.transport.send({ type: 'admit', participant_id: k.participant_id });
    this.knocks.update((l) => l.filter((x) => x.participant_id !== k.participant_id));
  }

  deny(k: Knock): void {
    this.transport.send({ type: 'deny', participant_id: k.participant_id });
    this.knocks.update((l) => l.filter((x) => x.participant_id !== k.participant_id));
  }

  askToMute(p: Participant): void {
    this.transport.send({ type: 'mute_participant', participant_id: p.id });
  }

  remove(p: Participant): void {
    this.transport.send({ type: 'remove', participant_id: p.id });
  }

  /** Host: allow or forbid direct calls in this meeting; a running one ends at once. */
  async setP2p(on: boolean): Promise<void> {
    this.p2p.meetingAllows.set(on);
    try {
      await this.api.setMeetingP2p(this.code(), on);
    } catch (e) {
      this.notice.set(`Could not save the setting: ${(e as Error).message}`);
    }
  }

  endForAll(): void {
    this.transport.send({ type: 'end_meeting' });
  }

  setChatOpen(open: boolean): void {
    this.chatOpen = open;
    if (open) this.unreadChat.set(0);
  }

  dismissNotice(): void {
    this.notice.set(null);
  }

  /** A tile now shows `trackId` at w×h CSS pixels: re-subscribe when that changed a lot. */
  setTileSize(trackId: number, w: number, h: number): void {
    const dpr = Math.min(2, globalThis.devicePixelRatio || 1);
    const want = { w: Math.max(160, Math.round(w * dpr)), h: Math.max(90, Math.round(h * dpr)) };
    this.wanted.set(trackId, want);
    const cur = this.subscribed.get(trackId);
    if (!cur) return;
    const change = Math.max(Math.abs(want.w - cur.w) / cur.w, Math.abs(want.h - cur.h) / cur.h);
    if (change > 0.25) this.subscribe(trackId);
  }

  // ---- protocol ---------------------------------------------------------------------------

  private onConnected(kind: TransportKind): void {
    this.subscribed.clear();
    console.info(`quicmeet: connected over ${kind}`);
  }

  private onControl(m: ServerMessage): void {
    switch (m.type) {
      case 'welcome':
        this.onWelcome(m);
        break;
      case 'lobby':
        this.phase.set('lobby');
        this.lobbyMessage.set(m.message);
        break;
      case 'denied':
        this.transport.disconnect('denied');
        this.teardown();
        this.phase.set('denied');
        this.error.set(m.reason || 'The host did not let you in.');
        break;
      case 'participant_joined':
        this.upsertParticipant(m.participant);
        this.announcement.set(`${m.participant.name} joined`);
        break;
      case 'participant_left': {
        const name = this._participants().get(m.participant_id)?.name;
        this.removeParticipant(m.participant_id);
        if (name) this.announcement.set(`${name} left`);
        break;
      }
      case 'track_published':
        this.upsertTrack(m.track);
        if (m.track.participant_id !== this.selfId()) this.subscribe(m.track.track_id);
        break;
      case 'track_unpublished':
        this.removeTrack(m.track_id);
        break;
      case 'mute_state':
        this.patchParticipant(m.participant_id, { audio_muted: m.audio, video_muted: m.video });
        break;
      case 'please_mute':
        if (this.capture.micOn()) {
          this.capture.setMic(false);
          this.sendMute();
        }
        this.notice.set(`${this._participants().get(m.by)?.name ?? 'The host'} asked you to mute, so your microphone is off.`);
        break;
      case 'chat': {
        const self = m.participant_id === this.selfId();
        this.chat.update((c) => [...c, { id: m.id, participant_id: m.participant_id, name: m.name, text: m.text, ts_ms: m.ts_ms, self }]);
        if (!this.chatOpen && !self) this.unreadChat.update((n) => n + 1);
        break;
      }
      case 'reaction':
        if (m.participant_id !== this.selfId()) this.showReaction(m.participant_id, m.emoji);
        break;
      case 'hand':
        this.patchParticipant(m.participant_id, { hand_raised: m.raised });
        if (m.participant_id === this.selfId()) this.handRaised.set(m.raised);
        break;
      case 'active_speaker':
        this.activeSpeaker.set(m.participant_id);
        break;
      case 'knock':
        this.announcement.set(`${m.name} wants to join`);
        this.knocks.update((l) => [...l.filter((k) => k.participant_id !== m.participant_id), { participant_id: m.participant_id, name: m.name, email: m.email }]);
        break;
      case 'keyframe_request':
        this.publish.requestLocalKeyframe(m.track_id, m.layer);
        break;
      case 'produce_layer':
        this.publish.produceLayer({ trackId: m.track_id, layer: m.layer, width: m.width, height: m.height, bitrate: m.bitrate });
        break;
      case 'stop_layer':
        this.publish.stopLayer(m.track_id, m.layer);
        break;
      case 'track_demand':
        this.publish.onDemand(m.track_id, m.layer, m.viewers);
        break;
      case 'layer_changed':
        // Keep the published size on the track (layer choice is computed from it).
        this.receivedLayer.set(m.track_id, { layer: m.layer, width: m.width, height: m.height });
        this.layerLog.update((l) => [...l.slice(-19), { at: Date.now(), trackId: m.track_id, layer: m.layer, width: m.width, height: m.height }]);
        break;
      case 'signal':
        this.p2p.onSignal(m.from, m.data);
        break;
      case 'error':
        this.notice.set(m.message);
        break;
      case 'goodbye':
        if (m.reason === 'shutdown') {
          // The server is restarting: reconnect (with a fresh token) instead of leaving.
          this.notice.set(m.message || 'The server is restarting; reconnecting…');
          this.transport.reconnect(m.reason);
          break;
        }
        this.closedBy(m.reason, m.message || null);
        break;
      default:
        break;
    }
  }

  private onWelcome(m: Extract<ServerMessage, { type: 'welcome' }>): void {
    this.welcomes++;
    // A new connection: any direct call belonged to the old participant id.
    this.p2p.reset();
    // After a reconnect everything is new (ids are not reused): start from a clean slate.
    this.playback.reset();
    this.subscribed.clear();
    this.rawLevels.clear();
    this.loss.clear();
    this.asked.clear();
    this.firstVideoAt = null;
    this.sentSize.clear();
    this.selfId.set(m.participant_id);
    this.role.set(m.role);
    this.meetingInfo.set(m.meeting ?? null);
    this._participants.set(new Map((m.participants ?? []).map((p) => [p.id, p])));
    this._tracks.set(new Map((m.tracks ?? []).map((t) => [t.track_id, t])));
    this.chat.set((m.chat ?? []).map((c) => ({ ...c, self: c.participant_id === m.participant_id })));
    this.phase.set('in-room');
    this.lobbyMessage.set(null);
    const id = m.participant_id;
    if (!this._participants().has(id)) {
      this.upsertParticipant({ id, name: 'You', role: m.role, audio_muted: !this.capture.micOn(), video_muted: !this.capture.camOn(), hand_raised: false });
    }
    // A new connection: announce and encode whatever is switched on now, and keep following it.
    this.publish.bind({
      selfId: id,
      control: (msg) => this.transport.send(msg),
      frame: (f) => this.transport.sendFrame(f),
      announced: (t) => this.upsertTrack(t),
      retracted: (trackId) => this.removeTrack(trackId),
      uplink: () => this.transport.uplink(),
    });
    this.sendMute();
    if (this.handRaised()) this.transport.send({ type: 'hand', raised: true });
    for (const t of this.tracks()) if (t.participant_id !== id) this.subscribe(t.track_id);
  }

  private sendMute(): void {
    const audio = !this.capture.micOn();
    const video = !this.capture.camOn();
    this.transport.send({ type: 'mute', audio, video });
    const id = this.selfId();
    if (id !== null) this.patchParticipant(id, { audio_muted: audio, video_muted: video });
  }

  private subscribe(trackId: number): void {
    const t = this._tracks().get(trackId);
    if (!t) return;
    if (t.kind === 'audio' || t.kind === 'screen_audio') {
      this.transport.send({ type: 'subscribe', track_id: trackId });
      this.subscribed.set(trackId, { w: 1, h: 1 });
      return;
    }
    const def = t.kind === 'screen' ? { w: 1280, h: 720 } : { w: 640, h: 480 };
    const tile = this.wanted.get(trackId) ?? def;
    const bound = layerBound(t.width, t.height, tile.w, tile.h, this.sentSize.get(trackId));
    this.transport.send({ type: 'subscribe', track_id: trackId, max_width: bound.w, max_height: bound.h });
    this.subscribed.set(trackId, tile);
    this.asked.set(trackId, bound);
    this.firstVideoAt ??= performance.now();
  }

  private onFrame(f: MediaFrame): void {
    if (f.kind === MediaKind.Audio) this.loss.record(f.trackId, f.seq, performance.now());
    if (f.kind === MediaKind.Audio && f.audioLevel !== undefined) {
      this.rawLevels.set(participantOfTrack(f.trackId), { level: f.audioLevel, at: performance.now() });
    }
    this.playback.push(f);
  }

  /**
   * A publisher whose CPU cannot keep up sends a smaller picture than it announced
   * (encode-load.ts), and the server's lower layers are halvings of what it sends. So the layer
   * that covers a tile follows the size that really arrives (sent-size.ts): otherwise a tile
   * would get a layer transcoded down from an already small picture (smaller than the tile).
   */
  private followSentSizes(): void {
    if (this.p2p.receivingDirect()) return;
    const now = performance.now();
    for (const r of this.playback.stats()) {
      if (r.layer < 0 || !r.width || !r.height || !this.subscribed.has(r.trackId)) continue;
      const sent = this.sentSize.sample(now, r.trackId, r.layer, r.width, r.height);
      if (!sent) continue;
      const t = this._tracks().get(r.trackId);
      const tile = this.subscribed.get(r.trackId);
      const asked = this.asked.get(r.trackId);
      if (!t || !tile || !asked) continue;
      const bound = layerBound(t.width, t.height, tile.w, tile.h, sent);
      if (bound.w !== asked.w || bound.h !== asked.h) this.subscribe(r.trackId);
    }
  }

  private publishLevels(): void {
    // Every second, not every level tick: a size only settles after a keyframe.
    if (++this.levelTicks % 5 === 0) this.followSentSizes();
    const now = performance.now();
    const out: Record<number, number> = {};
    for (const [pid, v] of this.rawLevels) out[pid] = now - v.at < 500 ? v.level : 127;
    const rx: Record<number, number> = {};
    for (const t of this.tracks()) {
      if (t.kind === 'audio' && t.participant_id !== this.selfId()) rx[t.participant_id] = this.playback.loudness(t.track_id);
    }
    // A direct call brings no frame headers: the level comes from the audio we decoded.
    if (this.p2p.receivingDirect()) for (const [pid, l] of Object.entries(rx)) out[Number(pid)] = Math.min(out[Number(pid)] ?? 127, rmsToDbov(l));
    this.levels.set(out);
    this.rxLoudness.set(rx);
    if (this.ticks++ % 5 === 0) this.updateQuality(now);
  }

  private updateQuality(now: number): void {
    const rttMs = this.transport.rttMs();
    const video = new Map(this.playback.stats().map((v) => [v.trackId, v]));
    const out: Record<number, Quality> = {};
    const rampingUp = this.firstVideoAt !== null && now - this.firstVideoAt < START_RAMP_MS;
    for (const p of this.participants()) {
      if (p.id === this.selfId()) {
        out[p.id] = connectionQuality({ rttMs, loss: null, layerDrop: 0 });
        continue;
      }
      const cam = trackIdOf(p.id, Slot.Camera);
      const v = video.get(cam);
      const asked = this.asked.get(cam);
      out[p.id] = connectionQuality({ rttMs, loss: this.loss.loss(trackIdOf(p.id, Slot.Microphone), now), layerDrop: v && asked ? layersBelow(asked.h, v.height) : 0, rampingUp });
    }
    this.quality.set(out);
  }

  isSpeaking(pid: number): boolean {
    // Our own level comes from the local meter; everyone else's from their frame headers.
    if (pid === this.selfId()) return this.capture.micOn() && this.capture.micLevel() > 0.25;
    const l = this.levels()[pid];
    const p = this._participants().get(pid);
    return l !== undefined && l < SPEAKING_DBOV && !p?.audio_muted;
  }

  private upsertParticipant(p: Participant): void {
    this._participants.update((m) => new Map(m).set(p.id, { ...m.get(p.id), ...p }));
  }

  private patchParticipant(id: number, patch: Partial<Participant>): void {
    const cur = this._participants().get(id);
    if (!cur) return;
    this._participants.update((m) => new Map(m).set(id, { ...cur, ...patch }));
  }

  private removeParticipant(id: number): void {
    this._participants.update((m) => {
      const n = new Map(m);
      n.delete(id);
      return n;
    });
    for (const t of this.tracks()) if (t.participant_id === id) this.removeTrack(t.track_id);
    this.knocks.update((l) => l.filter((k) => k.participant_id !== id));
    this.rawLevels.delete(id);
  }

  private upsertTrack(t: Track): void {
    if (!t || t.track_id === undefined) return;
    this._tracks.update((m) => new Map(m).set(t.track_id, t));
  }

  private removeTrack(trackId: number): void {
    this._tracks.update((m) => {
      const n = new Map(m);
      n.delete(trackId);
      return n;
    });
    this.subscribed.delete(trackId);
    this.asked.delete(trackId);
    this.sentSize.delete(trackId);
    this.loss.remove(trackId);
    this.playback.remove(trackId);
  }

  private showReaction(pid: number, emoji: string): void {
    const key = ++this.reactionKey;
    const name = this._participants().get(pid)?.name ?? '';
    this.reactions.update((r) => [...r, { key, participant_id: pid, name, emoji }]);
    setTimeout(() => this.reactions.update((r) => r.filter((x) => x.key !== key)), 4000);
  }

  /**
   * The server closed the meeting for us (`goodbye`, or a rejoin refused because it ended):
   * ended/removed end it; anything else (a refused token, a full room, flood) is an error the
   * pre-join page shows so the user can try again.
   */
  private closedBy(reason: string, message: string | null): void {
    this.transport.disconnect('goodbye');
    this.teardown();
    this.phase.set(reason === 'ended' ? 'ended' : reason === 'removed' ? 'removed' : 'error');
    this.error.set(message);
  }

  private teardown(): void {
    clearInterval(this.levelTimer);
    this.p2p.reset();
    this.publish.unbind();
    this.capture.stopAll();
    this.playback.closeRemotes();
    this.subscribed.clear();
    this._tracks.set(new Map());
    this._participants.set(new Map());
    this.knocks.set([]);
    this.rawLevels.clear();
    this.loss.clear();
    this.asked.clear();
    this.firstVideoAt = null;
    this.sentSize.clear();
    this.levels.set({});
  }
}

/**
 * The subscribe bound for a tile of tw×th device pixels: the size of the smallest layer (full,
 * ½, ¼ of the published size) that still covers the tile, so the server (which picks the largest
 * layer fitting the bound, by the published size) sends that layer. `sent`: what the publisher
 * really sends when it is less than it published; the layers are halvings of that, so the
 * choice is made against it and expressed in published sizes. Unknown published size: the tile.
 */
export function layerBound(width: number | undefined, height: number | undefined, tw: number, th: number, sent?: SubState): SubState {
  if (!width || !height) return { w: tw, h: th };
  const sw = sent?.w || width;
  const sh = sent?.h || height;
  for (const shift of [2, 1]) {
    if (sw >> shift >= tw * 0.9 && sh >> shift >= th * 0.9) return { w: width >> shift, h: height >> shift };
  }
  return { w: width, h: height };
}
