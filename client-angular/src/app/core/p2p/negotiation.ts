/**
 * When and how a two-person meeting goes peer to peer, as pure code. The driver (P2pService)
 * feeds it facts (who is in the room, relayed `signal` data, ICE states, "media arrives
 * directly", the clock) and carries out the actions it returns: open or close an
 * RTCPeerConnection, apply a description or candidate, send signalling data, and switch what we
 * play and where we publish. No WebRTC objects in here, so every rule has a spec.
 *
 * Rules (PROTOCOL.md §5.12):
 * - exactly one other admitted participant and P2P allowed on both sides → both open a session
 *   and offer; glare is resolved by participant id (the lower id's offer wins);
 * - every message names its session (`<sender id>.<counter>`); anything for another session is
 *   ignored, and an offer whose counter is not newer than the last one seen from that sender
 *   is stale;
 * - we play the peer's direct media once it arrives (`receiving`) and tell the peer (`flowing`);
 *   we stop publishing to the server only when the peer says our media reaches it directly;
 * - a third participant, the peer leaving, ICE failed/disconnected, a `bye`, the host switching
 *   P2P off or no progress for NEGOTIATE_TIMEOUT_MS → back to the server at once; the old
 *   connection lingers until the server path shows media, so nothing goes black. A failed pair
 *   tries again when the room changes or after RETRY_MS.
 */

export const P2P_SIGNAL_VERSION = 1;
/** Give up on a session that has not carried media after this long (generous: busy machines). */
export const NEGOTIATE_TIMEOUT_MS = 20_000;
/** After a failed or refused session, try the same peer again after this long. */
export const RETRY_MS = 30_000;

export type ByeReason = 'third' | 'failed' | 'off' | 'timeout' | 'left';

/** The `data` of a `signal` message when it carries P2P signalling (PROTOCOL.md §5.12). */
export type P2pSignal =
  | { p2p: 1; type: 'offer'; session: string; sdp: string }
  | { p2p: 1; type: 'answer'; session: string; sdp: string }
  | { p2p: 1; type: 'candidate'; session: string; candidate: RTCIceCandidateInit | null }
  | { p2p: 1; type: 'flowing'; session: string }
  | { p2p: 1; type: 'bye'; session: string; reason: ByeReason };

export type Action =
  /** Create a peer connection for `session`; the offerer creates and sends the offer. */
  | { do: 'open'; session: string; peer: number; offerer: boolean }
  /** Set the peer's offer, create and send the answer. */
  | { do: 'apply-offer'; session: string; sdp: string }
  | { do: 'apply-answer'; session: string; sdp: string }
  | { do: 'add-candidate'; session: string; candidate: RTCIceCandidateInit | null }
  /** Close now (the peer is gone, or the session never carried media). */
  | { do: 'close'; session: string }
  /** Keep the connection until the server path shows the peer's media, then close it. */
  | { do: 'retire'; session: string }
  | { do: 'send'; to: number; data: P2pSignal }
  /** Play the peer's media from this path. */
  | { do: 'play'; peer: number; path: 'p2p' | 'server' }
  /** Publish our media over this path (`media_path` to the server; encoders stop or resume). */
  | { do: 'publish'; path: 'p2p' | 'server'; peer: number | null };

interface Session {
  id: string;
  peer: number;
  offerer: boolean;
  /** Our offer is out and not answered yet (the only moment glare can happen). */
  awaitingAnswer: boolean;
  openedAt: number;
  /** We play the peer's direct media. */
  receiving: boolean;
  /** The peer plays ours: we stopped publishing to the server. */
  peerReceiving: boolean;
}

export function isP2pSignal(data: unknown): data is P2pSignal {
  if (!data || typeof data !== 'object') return false;
  const d = data as Record<string, unknown>;
  return (
    d['p2p'] === P2P_SIGNAL_VERSION &&
    typeof d['type'] === 'string' &&
    typeof d['session'] === 'string'
  );
}

/** The counter in `<sender id>.<counter>`, or -1 when malformed. */
export function sessionCounter(session: string, sender: number): number {
  const [who, n] = session.split('.');
  if (Number(who) !== sender || !/^\d+$/.test(n ?? '')) return -1;
  return Number(n);
}

export class Negotiation {
  private selfId: number | null = null;
  private others: number[] = [];
  private allowed = false;
  private session: Session | null = null;
  private counter = 0;
  /** Highest offer counter seen per sender: older offers are stale. */
  private readonly seen = new Map<number, number>();
  /** Peers we stopped trying with (failure, timeout, their bye) → when to try again. */
  private readonly declined = new Map<number, number>();

  /** The session in progress, for the driver and the UI. */
  get current(): Readonly<Session> | null {
    return this.session;
  }

  /** Both directions run peer to peer. */
  get active(): boolean {
    return !!this.session && this.session.receiving && this.session.peerReceiving;
  }

  /** Who is admitted besides us, and whether P2P is allowed here (server, host, browser). */
  roster(selfId: number, others: readonly number[], allowed: boolean, now: number): Action[] {
    const changed =
      selfId !== this.selfId ||
      others.length !== this.others.length ||
      others.some((o, i) => o !== this.others[i]);
    const turnedOff = this.allowed && !allowed;
    this.selfId = selfId;
    this.others = [...others].sort((a, b) => a - b);
    this.allowed = allowed;
    if (changed) this.declined.clear();
    const out: Action[] = [];
    const s = this.session;
    if (s) {
      if (!this.others.includes(s.peer)) return this.end('left', now, false);
      if (this.others.length !== 1) return this.end('third', now, true);
      if (turnedOff) return this.end('off', now, true);
      return out;
    }
    return this.maybeStart(now);
  }

  /** A `signal` from `from` whose data is P2P signalling. */
  signal(from: number, data: P2pSignal, now: number): Action[] {
    const s = this.session;
    if (data.type === 'offer') return this.onOffer(from, data, now);
    if (!s || s.peer !== from || data.session !== s.id) return [];
    switch (data.type) {
      case 'answer':
        if (!s.offerer || !s.awaitingAnswer) return [];
        s.awaitingAnswer = false;
        return [{ do: 'apply-answer', session: s.id, sdp: data.sdp }];
      case 'candidate':
        return [{ do: 'add-candidate', session: s.id, candidate: data.candidate }];
      case 'flowing': {
        if (s.peerReceiving) return [];
        s.peerReceiving = true;
        return [{ do: 'publish', path: 'p2p', peer: s.peer }];
      }
      case 'bye':
        this.declined.set(from, now + RETRY_MS);
        return this.end(data.reason, now, true, false);
    }
  }

  /** The peer connection of `session` reports an ICE connection state. */
  ice(session: string, state: RTCIceConnectionState, now: number): Action[] {
    const s = this.session;
    if (!s || s.id !== session) return [];
    if (state === 'failed' || state === 'disconnected' || state === 'closed') {
      this.declined.set(s.peer, now + RETRY_MS);
      return this.end('failed', now, true);
    }
    return [];
  }

  /** The peer's media arrives over `session` (connected, and frames decode). */
  receiving(session: string): Action[] {
    const s = this.session;
    if (!s || s.id !== session || s.receiving) return [];
    s.receiving = true;
    return [
      { do: 'play', peer: s.peer, path: 'p2p' },
      { do: 'send', to: s.peer, data: { p2p: 1, type: 'flowing', session: s.id } },
    ];
  }

  /** Timers: a session that never carried media is given up; a failed pair tries again. */
  tick(now: number): Action[] {
    const s = this.session;
    if (s && !s.receiving && now - s.openedAt > NEGOTIATE_TIMEOUT_MS) {
      this.declined.set(s.peer, now + RETRY_MS);
      return this.end('timeout', now, true);
    }
    if (!s) return this.maybeStart(now);
    return [];
  }

  private maybeStart(now: number): Action[] {
    if (this.selfId === null || !this.allowed || this.others.length !== 1) return [];
    const peer = this.others[0];
    if ((this.declined.get(peer) ?? -Infinity) > now) return [];
    return this.open(peer, true, `${this.selfId}.${++this.counter}`, now);
  }

  private open(peer: number, offerer: boolean, id: string, now: number): Action[] {
    this.session = {
      id,
      peer,
      offerer,
      awaitingAnswer: offerer,
      openedAt: now,
      receiving: false,
      peerReceiving: false,
    };
    return [{ do: 'open', session: id, peer, offerer }];
  }

  private onOffer(
    from: number,
    data: Extract<P2pSignal, { type: 'offer' }>,
    now: number,
  ): Action[] {
    const n = sessionCounter(data.session, from);
    if (n < 0 || n <= (this.seen.get(from) ?? 0)) return [];
    this.seen.set(from, n);
    const bye = (reason: ByeReason): Action[] => [
      { do: 'send', to: from, data: { p2p: 1, type: 'bye', session: data.session, reason } },
    ];
    if (this.selfId === null || !this.others.includes(from)) return [];
    if (!this.allowed) return bye('off');
    if (this.others.length !== 1) return bye('third');
    const out: Action[] = [];
    const s = this.session;
    if (s) {
      // Glare: both offered. The lower participant id's offer wins; the other side answers it.
      if (s.peer === from && s.awaitingAnswer && this.selfId < from) return [];
      out.push(...this.end('left', now, s.receiving || s.peerReceiving, false));
    }
    this.declined.delete(from);
    out.push(...this.open(from, false, data.session, now));
    out.push({ do: 'apply-offer', session: data.session, sdp: data.sdp });
    return out;
  }

  /**
   * Back to the server. `linger`: keep the old connection until the server path shows media
   * (it was carrying some). `tell`: send the peer a `bye` so it does not wait for ICE to notice.
   */
  private end(
    reason: ByeReason,
    _now: number,
    linger: boolean,
    tell = reason !== 'left' && reason !== 'third',
  ): Action[] {
    const s = this.session;
    if (!s) return [];
    this.session = null;
    const out: Action[] = [];
    if (tell)
      out.push({ do: 'send', to: s.peer, data: { p2p: 1, type: 'bye', session: s.id, reason } });
    if (s.peerReceiving) out.push({ do: 'publish', path: 'server', peer: null });
    if (s.receiving) out.push({ do: 'play', peer: s.peer, path: 'server' });
    out.push({
      do: linger && (s.receiving || s.peerReceiving) ? 'retire' : 'close',
      session: s.id,
    });
    return out;
  }
}
