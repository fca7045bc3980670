// Repeated joins: a host and a guest join the same meeting by its link again and again, over
// every pair of transports, with a random delay between them and without waiting for the camera
// preview (the race between devices starting and `welcome` is the point). Every join must
// publish everything: each side sees the other's microphone and camera tracks and gets frames
// from both. QM_JOINS sets the number of joins (default 20; scripts/bench-client.sh runs more),
// QM_JOIN_SEED replays a run.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { apiMeeting, apiUser, cleanup, launchBrowser, newPage, roomState, screenshot, sleep, startServer } from './harness.mjs';

const JOINS = Number(process.env.QM_JOINS || 20);
const SEED = Number(process.env.QM_JOIN_SEED || Date.now() % 1_000_000);
const PAIRS = [
  ['wt', 'wt'],
  ['wt', 'ws'],
  ['ws', 'wt'],
  ['ws', 'ws'],
];

/** mulberry32: a small seeded generator, so a failing run can be replayed with QM_JOIN_SEED. */
function rng(seed) {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** Opens the link and clicks Join as soon as it is enabled: the camera may not have started. */
async function quickJoin(p, code, transport, guest) {
  await p.goto(`/${code}?transport=${transport}`);
  await p.waitForSelector('.join-btn:not([disabled]), #gname', { timeout: 15_000 });
  if (guest) {
    await p.fill('#gname', guest.name);
    await p.fill('#gemail', guest.email);
  }
  await p.click('.join-btn:not([disabled])', { timeout: 15_000 });
  await p.waitForSelector('.room', { timeout: 20_000 });
}

/**
 * Waits until `p` sees the other participant's microphone and camera tracks and receives frames
 * from both; returns what it saw at the end either way.
 */
async function seesEverything(p, timeoutMs) {
  const deadline = Date.now() + timeoutMs;
  let st = null;
  while (Date.now() < deadline) {
    st = await roomState(p);
    if (st?.phase === 'in-room') {
      const other = st.participants.find((x) => x.id !== st.selfId);
      if (other) {
        const mic = other.id * 16;
        const cam = other.id * 16 + 1;
        const has = (id) => st.tracks.some((t) => t.track_id === id);
        const heard = st.audio.some((a) => a.trackId === mic && a.frames > 0);
        const seen = st.media.remotes.some((r) => r.trackId === cam && r.painted > 0);
        if (has(mic) && has(cam) && heard && seen) return { ok: true, st };
      }
    }
    await sleep(150);
  }
  return { ok: false, st };
}

describe('repeated joins', { timeout: 60_000 + JOINS * 30_000 }, () => {
  let server;
  let browser;
  let host;
  let guest;
  let code;

  before(async () => {
    server = await startServer();
    browser = await launchBrowser();
    host = await newPage(browser, server.base, 'host');
    guest = await newPage(browser, server.base, 'guest');
    await apiUser(host, server, 'Jo Host', `jo-${Date.now()}@example.com`);
    code = (await apiMeeting(host, { title: 'Join loop', type: 'public' })).code;
  });

  after(async () => {
    await cleanup(() => browser?.close(), () => server?.stop());
  });

  test(`${JOINS} joins across the four transport pairs with random delays: every join publishes mic and camera (seed ${SEED})`, async () => {
    const random = rng(SEED);
    const times = [];
    for (let i = 0; i < JOINS; i++) {
      const [ht, gt] = PAIRS[i % PAIRS.length];
      const delay = Math.round(random() * 1500);
      const guestFirst = random() < 0.5;
      const joinHost = () => quickJoin(host, code, ht);
      const joinGuest = () => quickJoin(guest, code, gt, { name: 'Gus Guest', email: 'gus@example.com' });
      const t0 = Date.now();
      const [first, second] = guestFirst ? [joinGuest, joinHost] : [joinHost, joinGuest];
      await Promise.all([first(), sleep(delay).then(second)]);
      const [h, g] = await Promise.all([seesEverything(host, 20_000), seesEverything(guest, 20_000)]);
      const label = `join ${i + 1}/${JOINS} host=${ht} guest=${gt} delay=${delay} ms ${guestFirst ? 'guest first' : 'host first'}`;
      if (!h.ok || !g.ok) {
        await screenshot(host, `joins-${i + 1}-host`);
        await screenshot(guest, `joins-${i + 1}-guest`);
        for (const l of [...host.qmLog, ...guest.qmLog]) console.log(l);
        console.log(server.log().split('\n').slice(-40).join('\n'));
      }
      assert.ok(h.ok, `${label}: the host did not get the guest's mic and camera: ${JSON.stringify({ tracks: h.st?.tracks, audio: h.st?.audio, remotes: h.st?.media?.remotes, encoded: h.st?.media?.encoded })}`);
      assert.ok(g.ok, `${label}: the guest did not get the host's mic and camera: ${JSON.stringify({ tracks: g.st?.tracks, audio: g.st?.audio, remotes: g.st?.media?.remotes, encoded: g.st?.media?.encoded })}`);
      assert.equal(h.st.transport, ht === 'wt' ? 'webtransport' : 'websocket', label);
      assert.equal(g.st.transport, gt === 'wt' ? 'webtransport' : 'websocket', label);
      times.push(Date.now() - t0 - delay);
      await Promise.all([host.click('[data-testid=leave]'), guest.click('[data-testid=leave]')]);
      await Promise.all([host.waitForSelector('[data-testid=left-title]'), guest.waitForSelector('[data-testid=left-title]')]);
    }
    times.sort((a, b) => a - b);
    console.log(`# ${JOINS} joins, seed ${SEED}: both sides see and hear each other after p50 ${times[Math.floor(times.length / 2)]} ms, max ${times.at(-1)} ms (from the first click, minus the random delay)`);
  });
});
