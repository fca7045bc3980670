import { describe, expect, it } from 'vitest';
import {
  Action,
  isP2pSignal,
  Negotiation,
  NEGOTIATE_TIMEOUT_MS,
  P2pSignal,
  RETRY_MS,
  sessionCounter,
} from './negotiation';

const kinds = (a: Action[]) => a.map((x) => x.do);
const sent = (a: Action[]) =>
  a.filter((x): x is Extract<Action, { do: 'send' }> => x.do === 'send').map((x) => x.data);

/** Two machines wired through a relay that delivers every `send` in order. */
function pair() {
  const a = new Negotiation();
  const b = new Negotiation();
  const log: { who: 1 | 2; actions: Action[] }[] = [];
  const deliver = (who: 1 | 2, actions: Action[]) => {
    log.push({ who, actions });
    for (const x of actions) {
      if (x.do !== 'send') continue;
      const target = who === 1 ? b : a;
      deliver(who === 1 ? 2 : 1, target.signal(who, x.data, 0));
    }
  };
  return { a, b, log, deliver };
}

describe('Negotiation', () => {
  it('opens an offering session when exactly one other participant is admitted and P2P is allowed', () => {
    const n = new Negotiation();
    expect(n.roster(1, [], true, 0)).toEqual([]);
    const out = n.roster(1, [2], true, 0);
    expect(out).toEqual([{ do: 'open', session: '1.1', peer: 2, offerer: true }]);
    expect(new Negotiation().roster(1, [2], false, 0)).toEqual([]);
    expect(new Negotiation().roster(1, [2, 3], true, 0)).toEqual([]);
  });

  it('resolves glare by participant id: the lower id keeps its offer, the higher one answers it', () => {
    const low = new Negotiation();
    const high = new Negotiation();
    low.roster(1, [2], true, 0);
    high.roster(2, [1], true, 0);
    const lowOffer: P2pSignal = { p2p: 1, type: 'offer', session: '1.1', sdp: 'v=0 low' };
    const highOffer: P2pSignal = { p2p: 1, type: 'offer', session: '2.1', sdp: 'v=0 high' };
    // Both offers cross on the relay.
    expect(low.signal(2, highOffer, 0)).toEqual([]);
    const out = high.signal(1, lowOffer, 0);
    expect(out).toEqual([
      { do: 'close', session: '2.1' },
      { do: 'open', session: '1.1', peer: 1, offerer: false },
      { do: 'apply-offer', session: '1.1', sdp: 'v=0 low' },
    ]);
    expect(high.current?.id).toBe('1.1');
    expect(low.current?.id).toBe('1.1');
    // The answer from the winner's peer is applied once; candidates of the dropped session are not.
    expect(low.signal(2, { p2p: 1, type: 'answer', session: '1.1', sdp: 'a' }, 0)).toEqual([
      { do: 'apply-answer', session: '1.1', sdp: 'a' },
    ]);
    expect(low.signal(2, { p2p: 1, type: 'answer', session: '1.1', sdp: 'a' }, 0)).toEqual([]);
    expect(
      low.signal(
        2,
        { p2p: 1, type: 'candidate', session: '2.1', candidate: { candidate: 'x' } },
        0,
      ),
    ).toEqual([]);
    expect(
      low.signal(
        2,
        { p2p: 1, type: 'candidate', session: '1.1', candidate: { candidate: 'y' } },
        0,
      ),
    ).toEqual([{ do: 'add-candidate', session: '1.1', candidate: { candidate: 'y' } }]);
  });

  it('ignores stale offers (a counter not newer than one already seen) and messages of other sessions', () => {
    const n = new Negotiation();
    n.roster(2, [1], true, 0);
    n.signal(1, { p2p: 1, type: 'offer', session: '1.5', sdp: 's5' }, 0);
    expect(n.signal(1, { p2p: 1, type: 'offer', session: '1.4', sdp: 's4' }, 0)).toEqual([]);
    expect(n.signal(1, { p2p: 1, type: 'offer', session: '1.5', sdp: 's5' }, 0)).toEqual([]);
    expect(n.signal(1, { p2p: 1, type: 'offer', session: '3.9', sdp: 'forged' }, 0)).toEqual([]);
    expect(n.signal(1, { p2p: 1, type: 'flowing', session: '1.4' }, 0)).toEqual([]);
    expect(n.signal(1, { p2p: 1, type: 'bye', session: '1.4', reason: 'failed' }, 0)).toEqual([]);
    expect(n.current?.id).toBe('1.5');
    // A newer offer (the peer restarted) replaces the session.
    expect(kinds(n.signal(1, { p2p: 1, type: 'offer', session: '1.6', sdp: 's6' }, 0))).toEqual([
      'close',
      'open',
      'apply-offer',
    ]);
  });

  it('plays direct media when it arrives and stops publishing to the server only when the peer receives ours', () => {
    const { a, b, deliver } = pair();
    deliver(1, a.roster(1, [2], true, 0));
    deliver(2, b.roster(2, [1], true, 0));
    deliver(2, b.signal(1, { p2p: 1, type: 'offer', session: a.current!.id, sdp: 'o' }, 0));
    expect(a.current?.id).toBe(b.current?.id);
    const first = a.receiving(a.current!.id);
    expect(first[0]).toEqual({ do: 'play', peer: 2, path: 'p2p' });
    expect(a.active).toBe(false);
    // b learns that a receives it: b stops publishing to the server.
    const bOut = b.signal(1, sent(first)[0], 0);
    expect(bOut).toEqual([{ do: 'publish', path: 'p2p', peer: 1 }]);
    expect(a.receiving(a.current!.id)).toEqual([]);
    const bFlow = b.receiving(b.current!.id);
    expect(a.signal(2, sent(bFlow)[0], 0)).toEqual([{ do: 'publish', path: 'p2p', peer: 2 }]);
    expect(a.active && b.active).toBe(true);
  });

  function active() {
    const n = new Negotiation();
    n.roster(1, [2], true, 0);
    n.signal(2, { p2p: 1, type: 'answer', session: '1.1', sdp: 'a' }, 0);
    n.receiving('1.1');
    n.signal(2, { p2p: 1, type: 'flowing', session: '1.1' }, 0);
    expect(n.active).toBe(true);
    return n;
  }

  it('goes back to the server at once when a third participant is admitted, keeping the old path until the server shows media', () => {
    const n = active();
    expect(n.roster(1, [2, 3], true, 100)).toEqual([
      { do: 'publish', path: 'server', peer: null },
      { do: 'play', peer: 2, path: 'server' },
      { do: 'retire', session: '1.1' },
    ]);
    expect(n.current).toBeNull();
    // The third leaves: a fresh session starts.
    expect(n.roster(1, [2], true, 200)).toEqual([
      { do: 'open', session: '1.2', peer: 2, offerer: true },
    ]);
  });

  it('goes back to the server on ICE failure or disconnection, tells the peer, and retries only when the room changes or later', () => {
    for (const state of ['failed', 'disconnected'] as RTCIceConnectionState[]) {
      const n = active();
      expect(n.ice('1.1', 'checking', 0)).toEqual([]);
      const out = n.ice('1.1', state, 0);
      expect(out).toEqual([
        { do: 'send', to: 2, data: { p2p: 1, type: 'bye', session: '1.1', reason: 'failed' } },
        { do: 'publish', path: 'server', peer: null },
        { do: 'play', peer: 2, path: 'server' },
        { do: 'retire', session: '1.1' },
      ]);
      expect(n.roster(1, [2], true, 10)).toEqual([]);
      expect(n.tick(RETRY_MS - 1)).toEqual([]);
      expect(kinds(n.tick(RETRY_MS))).toEqual(['open']);
      const m = active();
      m.ice('1.1', state, 0);
      expect(kinds(m.roster(1, [2, 3], true, 20))).toEqual([]);
      expect(kinds(m.roster(1, [2], true, 30))).toEqual(['open']);
    }
  });

  it('a bye from the peer ends the session without answering it; one of another session is ignored', () => {
    const n = active();
    expect(n.signal(2, { p2p: 1, type: 'bye', session: '0.9', reason: 'failed' }, 0)).toEqual([]);
    expect(kinds(n.signal(2, { p2p: 1, type: 'bye', session: '1.1', reason: 'off' }, 0))).toEqual([
      'publish',
      'play',
      'retire',
    ]);
  });

  it('the host switching P2P off ends the call and refuses new offers with a bye', () => {
    const n = active();
    expect(kinds(n.roster(1, [2], false, 0))).toEqual(['send', 'publish', 'play', 'retire']);
    expect(sent(n.signal(2, { p2p: 1, type: 'offer', session: '2.7', sdp: 'o' }, 0))).toEqual([
      { p2p: 1, type: 'bye', session: '2.7', reason: 'off' },
    ]);
  });

  it('the peer leaving closes the connection at once, with nobody to tell', () => {
    const n = active();
    expect(n.roster(1, [], true, 0)).toEqual([
      { do: 'publish', path: 'server', peer: null },
      { do: 'play', peer: 2, path: 'server' },
      { do: 'close', session: '1.1' },
    ]);
  });

  it('gives up on a session that carries no media within the timeout', () => {
    const n = new Negotiation();
    n.roster(1, [2], true, 1000);
    expect(n.tick(1000 + NEGOTIATE_TIMEOUT_MS)).toEqual([]);
    expect(n.tick(1001 + NEGOTIATE_TIMEOUT_MS)).toEqual([
      { do: 'send', to: 2, data: { p2p: 1, type: 'bye', session: '1.1', reason: 'timeout' } },
      { do: 'close', session: '1.1' },
    ]);
  });

  it('recognises its signalling data and parses session ids', () => {
    expect(isP2pSignal({ p2p: 1, type: 'offer', session: '1.1', sdp: '' })).toBe(true);
    expect(isP2pSignal({ candidate: 'x' })).toBe(false);
    expect(isP2pSignal(null)).toBe(false);
    expect(sessionCounter('4.12', 4)).toBe(12);
    expect(sessionCounter('4.12', 5)).toBe(-1);
    expect(sessionCounter('4.x', 4)).toBe(-1);
  });
});
