import { effect, inject, Injectable, OnDestroy, signal, Signal, untracked } from '@angular/core';
import type { JoinAnswer } from '../api/api.models';
import { CaptureService } from '../media/publish/capture.service';
import { PublishService } from '../media/publish/publish.service';
import { PlaybackService } from '../media/watch/playback.service';
import type { Participant, Track } from '../protocol/control';
import { Slot, trackIdOf } from '../protocol/frame';
import { TransportService } from '../transport/transport.service';
import { Action, isP2pSignal, Negotiation, P2pSignal } from './negotiation';

/** What P2pService reads from the room. */
export interface RoomView {
  selfId: Signal<number | null>;
  participants: Signal<Participant[]>;
  tracks: Signal<Track[]>;
}

/** One transceiver per publish slot, in this order, so m-line i carries slot i. */
const SLOTS = [Slot.Microphone, Slot.Camera, Slot.ScreenVideo, Slot.ScreenAudio] as const;
const KINDS: ('audio' | 'video')[] = ['audio', 'video', 'video', 'audio'];
/** Direct media counts as flowing when every track the peer publishes delivered this recently. */
const FRESH_MS = 1000;
/** A retired connection closes at the latest after this long. */
const RETIRE_MAX_MS = 3000;

interface Conn {
  session: string;
  peer: number;
  pc: RTCPeerConnection;
  transceivers: RTCRtpTransceiver[];
  /** Per slot: when the direct track last delivered a frame, and how many it delivered. */
  lastAt: number[];
  frames: number[];
  readers: ReadableStreamDefaultReader<VideoFrame | AudioData>[];
  sinks: HTMLAudioElement[];
  remoteSet: boolean;
  queued: (RTCIceCandidateInit | null)[];
  chain: Promise<void>;
  retiredAt: number | null;
}

/** A move between paths, for the tests and the report. */
export interface PathSwitch {
  to: 'p2p' | 'server';
  peer: number;
  /** When the reason happened (pairing, a third participant, a failure), performance.now(). */
  from: number;
  /** When the peer's media first played from the new path, or null while pending. */
  done: number | null;
}

/**
 * Carries out Negotiation's decisions with real WebRTC: one RTCPeerConnection per session with a
 * fixed transceiver per publish slot (so mute, camera changes and screen sharing are
 * `replaceTrack`, never a renegotiation), VP8 and Opus only, direct tracks read with
 * MediaStreamTrackProcessor into PlaybackService's tiles and mix, and PublishService suspended
 * while the peer gets our media directly. Provided by the meeting page.
 */
@Injectable()
export class P2pService implements OnDestroy {
  private readonly transport = inject(TransportService);
  private readonly capture = inject(CaptureService);
  private readonly publish = inject(PublishService);
  private readonly playback = inject(PlaybackService);

  /** Where our media goes now. */
  readonly path = signal<'server' | 'p2p'>('server');
  /** The peer's media plays from the direct path. */
  readonly receivingDirect = signal(false);
  /** This meeting allows direct calls (the host's switch); the host changes it in the room. */
  readonly meetingAllows = signal(true);
  readonly switches: PathSwitch[] = [];
  /** The last actions carried out, for the troubleshooting panel and the tests. */
  readonly events: string[] = [];

  private machine = new Negotiation();
  private readonly conns = new Map<string, Conn>();
  private readonly view = signal<RoomView | null>(null);
  private iceServers: RTCIceServer[] = [];
  private serverAllows = false;
  /** Track ids published in the room (refreshed by tick). */
  private published = new Set<number>();
  private readonly timer = setInterval(() => this.tick(), 100);

  constructor() {
    effect(() => {
      const v = this.view();
      if (!v) return;
      const self = v.selfId();
      const others = v
        .participants()
        .map((p) => p.id)
        .filter((id) => id !== self);
      const allowed = this.meetingAllows();
      untracked(() => {
        if (self !== null)
          this.run(this.machine.roster(self, others, this.allowed(allowed), performance.now()));
      });
    });
    effect(() => {
      // Our tracks follow the devices and switches, on every live connection.
      const tracks = [
        this.capture.mic(),
        this.capture.camOn() ? this.capture.camera() : null,
        this.capture.screen(),
        this.capture.screenAudio(),
      ];
      untracked(() => {
        for (const c of this.conns.values()) this.attachTracks(c, tracks);
      });
    });
  }

  ngOnDestroy(): void {
    clearInterval(this.timer);
    this.reset();
  }

  /** The room to follow, once. */
  bind(view: RoomView): void {
    this.view.set(view);
  }

  /** Settings from the join answer (ICE servers, whether the server and meeting allow it). */
  configure(answer: JoinAnswer): void {
    this.iceServers = answer.p2p?.ice_servers ?? [];
    this.serverAllows =
      !!answer.p2p &&
      answer.p2p.server_enabled !== false &&
      typeof RTCPeerConnection === 'function';
    this.meetingAllows.set(answer.p2p?.enabled ?? false);
  }

  /** A new connection to the server (or leaving): every direct call ends, publishing resumes. */
  reset(): void {
    for (const c of [...this.conns.values()]) this.close(c);
    this.machine = new Negotiation();
    this.publish.suspend(false);
    this.path.set('server');
    this.receivingDirect.set(false);
  }

  /** A `signal` relayed from `from`; anything that is not our signalling is ignored. */
  onSignal(from: number, data: unknown): void {
    if (!isP2pSignal(data)) return;
    // The host's client speaks for the meeting's switch: its offer means on, its "off" means off.
    const host =
      this.view()
        ?.participants()
        .find((p) => p.id === from)?.role === 'host';
    if (host && data.type === 'offer' && !this.meetingAllows()) this.meetingAllows.set(true);
    if (host && data.type === 'bye' && data.reason === 'off') this.meetingAllows.set(false);
    this.syncRoster();
    this.run(this.machine.signal(from, data, performance.now()));
  }

  /** Direct calls are available here at all (server and browser). */
  available(): boolean {
    return this.serverAllows;
  }

  /** For the e2e tests: the selected candidate pair of the live session, from getStats(). */
  async stats(): Promise<{
    session: string | null;
    active: boolean;
    pairState: string | null;
    ice: string | null;
    framesDirect: number[];
  }> {
    const s = this.machine.current;
    const c = s ? this.conns.get(s.id) : undefined;
    let pairState: string | null = null;
    if (c) {
      const report = await c.pc.getStats();
      report.forEach(
        (r: { type: string; state?: string; nominated?: boolean; selected?: boolean }) => {
          if (r.type === 'candidate-pair' && r.state === 'succeeded' && r.nominated)
            pairState = 'succeeded';
        },
      );
    }
    return {
      session: s?.id ?? null,
      active: this.machine.active,
      pairState,
      ice: c?.pc.iceConnectionState ?? null,
      framesDirect: c ? [...c.frames] : [],
    };
  }

  private allowed(meeting: boolean): boolean {
    return this.serverAllows && meeting;
  }

  private syncRoster(): void {
    const v = this.view();
    const self = v?.selfId();
    if (!v || self === null || self === undefined) return;
    const others = v
      .participants()
      .map((p) => p.id)
      .filter((id) => id !== self);
    this.run(
      this.machine.roster(self, others, this.allowed(this.meetingAllows()), performance.now()),
    );
  }

  // ---- actions ----------------------------------------------------------------------------

  private run(actions: Action[]): void {
    for (const a of actions) {
      this.events.push(
        `${Math.round(performance.now())} ${a.do} ${'session' in a ? a.session : ''}${a.do === 'send' ? ` ${a.data.type}` : ''}${a.do === 'play' || a.do === 'publish' ? ` ${a.path}` : ''}`,
      );
      if (this.events.length > 100) this.events.shift();
      this.carryOut(a);
    }
  }

  private carryOut(a: Action): void {
    switch (a.do) {
      case 'open':
        this.open(a.session, a.peer, a.offerer);
        break;
      case 'apply-offer':
        this.enqueue(a.session, (c) => this.applyOffer(c, a.sdp));
        break;
      case 'apply-answer':
        this.enqueue(a.session, async (c) => {
          await c.pc.setRemoteDescription({ type: 'answer', sdp: a.sdp });
          await this.remoteReady(c);
        });
        break;
      case 'add-candidate':
        this.enqueue(a.session, async (c) => {
          if (!c.remoteSet) c.queued.push(a.candidate);
          else await c.pc.addIceCandidate(a.candidate ?? undefined).catch(() => undefined);
        });
        break;
      case 'close': {
        const c = this.conns.get(a.session);
        if (c) this.close(c);
        break;
      }
      case 'retire': {
        const c = this.conns.get(a.session);
        if (c) c.retiredAt = performance.now();
        break;
      }
      case 'send':
        this.transport.send({ type: 'signal', to: a.to, data: a.data });
        break;
      case 'play':
        this.playback.prefer(
          SLOTS.map((s) => trackIdOf(a.peer, s)),
          a.path,
        );
        this.receivingDirect.set(a.path === 'p2p');
        // To P2P: from the session's start until its media plays. Back: from the reason until
        // the server path shows the peer's camera again (tick).
        this.switches.push({
          to: a.path,
          peer: a.peer,
          from:
            a.path === 'p2p'
              ? (this.machine.current?.openedAt ?? performance.now())
              : performance.now(),
          done: a.path === 'p2p' ? performance.now() : null,
        });
        if (this.switches.length > 50) this.switches.shift();
        break;
      case 'publish':
        this.publish.suspend(a.path === 'p2p');
        this.path.set(a.path);
        this.transport.send(
          a.path === 'p2p' && a.peer !== null
            ? { type: 'media_path', path: 'p2p', peer: a.peer }
            : { type: 'media_path', path: 'server' },
        );
        break;
    }
  }

  private open(session: string, peer: number, offerer: boolean): void {
    const pc = new RTCPeerConnection({ iceServers: this.iceServers });
    const c: Conn = {
      session,
      peer,
      pc,
      transceivers: [],
      lastAt: [0, 0, 0, 0],
      frames: [0, 0, 0, 0],
      readers: [],
      sinks: [],
      remoteSet: false,
      queued: [],
      chain: Promise.resolve(),
      retiredAt: null,
    };
    this.conns.set(session, c);
    pc.onicecandidate = (e) =>
      this.send(c, {
        p2p: 1,
        type: 'candidate',
        session,
        candidate: e.candidate ? e.candidate.toJSON() : null,
      });
    pc.oniceconnectionstatechange = () =>
      this.run(this.machine.ice(session, pc.iceConnectionState, performance.now()));
    if (!offerer) return;
    this.enqueue(session, async () => {
      c.transceivers = KINDS.map((k) => pc.addTransceiver(k, { direction: 'sendrecv' }));
      this.setCodecs(c);
      this.attachTracks(c, this.localTracks());
      const offer = await pc.createOffer();
      await pc.setLocalDescription(offer);
      this.send(c, {
        p2p: 1,
        type: 'offer',
        session,
        sdp: pc.localDescription?.sdp ?? offer.sdp ?? '',
      });
    });
  }

  private async applyOffer(c: Conn, sdp: string): Promise<void> {
    await c.pc.setRemoteDescription({ type: 'offer', sdp });
    // The offer's m-lines are the slots in order; the browser made one transceiver for each.
    c.transceivers = c.pc.getTransceivers().slice(0, SLOTS.length);
    for (const t of c.transceivers) t.direction = 'sendrecv';
    this.setCodecs(c);
    this.attachTracks(c, this.localTracks());
    const answer = await c.pc.createAnswer();
    await c.pc.setLocalDescription(answer);
    this.send(c, {
      p2p: 1,
      type: 'answer',
      session: c.session,
      sdp: c.pc.localDescription?.sdp ?? answer.sdp ?? '',
    });
    await this.remoteReady(c);
  }

  private async remoteReady(c: Conn): Promise<void> {
    c.remoteSet = true;
    for (const cand of c.queued.splice(0))
      await c.pc.addIceCandidate(cand ?? undefined).catch(() => undefined);
    c.transceivers.forEach((t, i) => this.read(c, i, t.receiver.track));
  }

  /** Reads a direct track into the peer's tile or the mix. */
  private read(c: Conn, i: number, track: MediaStreamTrack): void {
    if (typeof MediaStreamTrackProcessor !== 'function') return;
    const trackId = trackIdOf(c.peer, SLOTS[i]);
    if (track.kind === 'audio') {
      // Chromium renders a remote WebRTC audio track (and feeds its other sinks) only while a
      // media element plays it: a muted one does, and the mix plays the sound.
      const el = new Audio();
      el.muted = true;
      el.srcObject = new MediaStream([track]);
      void el.play().catch(() => undefined);
      c.sinks.push(el);
    }
    const reader = new MediaStreamTrackProcessor<VideoFrame | AudioData>({
      track,
    }).readable.getReader();
    c.readers.push(reader);
    const loop = async () => {
      try {
        for (;;) {
          const { value, done } = await reader.read();
          if (done || !value) return;
          c.lastAt[i] = performance.now();
          c.frames[i]++;
          if (c.retiredAt !== null && !this.conns.has(c.session)) {
            value.close();
            return;
          }
          if (!this.published.has(trackId)) {
            // Nothing published in this slot (an idle transceiver still renders silence).
            value.close();
            continue;
          }
          if (value instanceof VideoFrame) this.playback.pushDirectVideo(trackId, value);
          else this.playback.pushDirectAudio(trackId, value);
        }
      } catch {
        /* closed */
      }
    };
    void loop();
  }

  private setCodecs(c: Conn): void {
    c.transceivers.forEach((t, i) => {
      const kind = KINDS[i];
      const caps = RTCRtpReceiver.getCapabilities(kind);
      if (!caps || typeof t.setCodecPreferences !== 'function') return;
      const want = kind === 'video' ? ['video/vp8', 'video/rtx'] : ['audio/opus'];
      const codecs = caps.codecs.filter((x) => want.includes(x.mimeType.toLowerCase()));
      try {
        if (codecs.length) t.setCodecPreferences(codecs);
      } catch {
        // Some builds refuse RTX without its primary: VP8 (or Opus) alone then.
        t.setCodecPreferences(codecs.filter((x) => x.mimeType.toLowerCase() === want[0]));
      }
    });
  }

  private localTracks(): (MediaStreamTrack | null)[] {
    const k = this.capture;
    return [k.mic(), k.camOn() ? k.camera() : null, k.screen(), k.screenAudio()];
  }

  private attachTracks(c: Conn, tracks: (MediaStreamTrack | null)[]): void {
    c.transceivers.forEach((t, i) => {
      const want = tracks[i] && tracks[i]!.readyState === 'live' ? tracks[i] : null;
      if (t.sender.track !== want) t.sender.replaceTrack(want).catch(() => undefined);
    });
  }

  private send(c: Conn, data: P2pSignal): void {
    if (!this.conns.has(c.session)) return;
    this.transport.send({ type: 'signal', to: c.peer, data });
  }

  private enqueue(session: string, step: (c: Conn) => Promise<void>): void {
    const c = this.conns.get(session);
    if (!c) return;
    c.chain = c.chain
      .then(() => (this.conns.get(session) === c ? step(c) : undefined))
      .catch((e: Error) => {
        console.warn('quicmeet: p2p negotiation failed', e);
        this.run(this.machine.ice(session, 'failed', performance.now()));
      });
  }

  private close(c: Conn): void {
    this.conns.delete(c.session);
    for (const r of c.readers) r.cancel().catch(() => undefined);
    for (const el of c.sinks) el.srcObject = null;
    c.pc.onicecandidate = null;
    c.pc.oniceconnectionstatechange = null;
    c.pc.close();
  }

  // ---- timers -----------------------------------------------------------------------------

  private tick(): void {
    const now = performance.now();
    this.published = new Set((this.view()?.tracks() ?? []).map((t) => t.track_id));
    this.run(this.machine.tick(now));
    const s = this.machine.current;
    const c = s ? this.conns.get(s.id) : undefined;
    if (s && c && !s.receiving && this.flowing(c, now)) this.run(this.machine.receiving(s.id));
    for (const r of [...this.conns.values()]) {
      if (r.retiredAt === null) continue;
      // Close once the server path shows the peer's video again (or it has none), or at the cap.
      const video = [Slot.Camera, Slot.ScreenVideo]
        .map((slot) => trackIdOf(r.peer, slot))
        .filter((id) => this.playback.lastVideoAt(id, 'p2p') > r.retiredAt! - 1000);
      const back = video.every((id) => this.playback.lastVideoAt(id, 'server') > r.retiredAt!);
      if ((back && now - r.retiredAt > 200) || now - r.retiredAt > RETIRE_MAX_MS) this.close(r);
    }
    for (const sw of this.switches) {
      if (sw.to !== 'server' || sw.done !== null) continue;
      const at = this.playback.lastVideoAt(trackIdOf(sw.peer, Slot.Camera), 'server');
      if (at > sw.from) sw.done = at;
    }
  }

  /** Connected, and every track the peer publishes on the server arrives directly too. */
  private flowing(c: Conn, now: number): boolean {
    const ice = c.pc.iceConnectionState;
    if (ice !== 'connected' && ice !== 'completed') return false;
    const tracks = this.view()?.tracks() ?? [];
    const theirs = tracks.filter((t) => t.participant_id === c.peer);
    return theirs.every((t) => {
      const i = SLOTS.indexOf((t.track_id % 16) as (typeof SLOTS)[number]);
      return i < 0 || (c.frames[i] >= 3 && now - c.lastAt[i] < FRESH_MS);
    });
  }
}
