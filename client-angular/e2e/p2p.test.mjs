// End-to-end: two-person calls go peer to peer and switch back to the server for a third.
// The real server binary, the built app, three headless Chromium contexts on one machine.
// Run: QUICMEET_BIN=/path/to/quicmeet node --test client-angular/e2e/p2p.test.mjs
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import {
  apiMeeting,
  apiUser,
  canvasFingerprint,
  cleanup,
  expectLiveCanvas,
  launchBrowser,
  newPage,
  roomState,
  sleep,
  startServer,
  waitFor,
} from './harness.mjs';

const figures = [];
let server;
let browser;
const pages = [];

async function page(name) {
  const p = await newPage(browser, server.base, name);
  p.qmName = name;
  pages.push(p);
  return p;
}

async function join(p, code, guest) {
  await p.goto(`/${code}`);
  await p.waitForSelector('.join-btn', { timeout: 15_000 });
  if (guest) {
    await p.fill('#gname', guest.name);
    await p.fill('#gemail', guest.email);
  }
  await p.waitForSelector('.preview video', { timeout: 15_000 });
  await p.click('.join-btn');
  await p.waitForSelector('.room', { timeout: 20_000 });
}

/** quicmeet_media_frames_in_total from /metrics: every frame any publisher sent the server. */
async function framesIn() {
  const text = await (await fetch(`${server.base}/metrics`)).text();
  const m = text.match(/^quicmeet_media_frames_in_total(?:\{[^}]*\})? (\d+)/m);
  assert.ok(m, 'quicmeet_media_frames_in_total is exported');
  return Number(m[1]);
}

const tile = (pid) => `.tile[data-participant-id="${pid}"] canvas`;

/** Canvas pixels of the peer's tile change, and audio from the peer keeps being played. */
async function seesAndHears(p, peer) {
  await expectLiveCanvas(p, tile(peer), 10_000);
  const audioOf = async () =>
    (await roomState(p)).audio.find((a) => a.trackId === peer * 16)?.played ?? 0;
  const a0 = await audioOf();
  await sleep(600);
  const a1 = await audioOf();
  assert.ok(a1 > a0 + 10, `audio frames from ${peer} grow (${a0} → ${a1})`);
}

async function dumpOnFailure() {
  for (const p of pages) {
    const st = await roomState(p).catch(() => null);
    if (st)
      console.log(
        `[${p.qmName}] ${JSON.stringify({ phase: st.phase, selfId: st.selfId, n: st.participants?.length, p2p: st.p2p })}`,
      );
    for (const l of p.qmLog ?? []) console.log(l);
  }
  if (server) console.log(server.log().split('\n').slice(-60).join('\n'));
}

describe('peer to peer for two', { timeout: 240_000 }, () => {
  before(async () => {
    server = await startServer();
    browser = await launchBrowser();
  });

  after(async () => {
    for (const f of figures) console.log(`# ${f}`);
    await cleanup(
      () => browser?.close(),
      () => server?.stop(),
    );
  });

  test('two go direct; a third brings everyone back to the server within 2 s; when it leaves the two go direct again', async (t) => {
    t.after(async () => t.passed === false && (await dumpOnFailure()));
    const a = await page('ann');
    await a.goto('/');
    await apiUser(a, server, 'Ann Host', `ann-${Date.now()}@example.com`);
    const m = await apiMeeting(a, { title: 'P2P E2E', type: 'public' });
    const b = await page('bob');
    await join(a, m.code);
    await join(b, m.code, { name: 'Bob Guest', email: 'bob@example.com' });
    const ids = [(await roomState(a)).selfId, (await roomState(b)).selfId];

    // 1. Both end up on the direct path, with a succeeded candidate pair.
    for (const p of [a, b]) {
      await waitFor(
        p,
        () =>
          globalThis.__quicmeet?.state().p2p.path === 'p2p' &&
          globalThis.__quicmeet.state().p2p.receivingDirect,
        undefined,
        20_000,
        'direct call',
      );
      const s = await p.evaluate(() => globalThis.__quicmeet.p2pStats());
      assert.equal(
        s.pairState,
        'succeeded',
        `${p.qmName}: getStats() has a succeeded, nominated candidate pair`,
      );
      assert.ok(s.framesDirect[1] > 0, `${p.qmName}: camera frames arrive over the direct track`);
    }
    for (const [p, peer] of [
      [a, ids[1]],
      [b, ids[0]],
    ]) {
      const sw = (await roomState(p)).p2p.switches.find((x) => x.to === 'p2p');
      figures.push(
        `${p.qmName}: session start → direct media playing: ${Math.round(sw.done - sw.from)} ms`,
      );
      void peer;
    }

    // 2. The server receives nothing from the two any more, and they still see and hear each other.
    await sleep(500);
    const f0 = await framesIn();
    await sleep(1500);
    const f1 = await framesIn();
    assert.equal(
      f1,
      f0,
      `frames into the server stop growing while the call is direct (${f0} → ${f1})`,
    );
    await seesAndHears(a, ids[1]);
    await seesAndHears(b, ids[0]);

    // Screen sharing and mute work over the direct call as they do through the server.
    await a.click('[data-testid=share]');
    await b.waitForSelector('[data-testid=stage] canvas', { timeout: 15_000 });
    await expectLiveCanvas(b, '[data-testid=stage] canvas', 15_000);
    assert.equal(
      (await roomState(a)).p2p.path,
      'p2p',
      'sharing a screen does not leave the direct call',
    );
    await a.click('[data-testid=share]');
    await b.waitForSelector('[data-testid=stage]', { state: 'detached', timeout: 10_000 });
    await b.click('[data-testid=mic]');
    await a.waitForSelector(`.tile[data-participant-id="${ids[1]}"] [data-testid=mute-badge]`, {
      timeout: 10_000,
    });
    await b.click('[data-testid=mic]');
    assert.equal(await framesIn(), f1, 'nothing went through the server meanwhile');

    // 3. A third joins: within 2 s everyone sees everyone through the server.
    const c = await page('cy');
    const joined = Date.now();
    await join(c, m.code, { name: 'Cy Third', email: 'cy@example.com' });
    const admittedAt = Date.now();
    const cid = (await roomState(c)).selfId;
    for (const p of [a, b]) {
      await waitFor(
        p,
        () => globalThis.__quicmeet?.state().p2p.path === 'server',
        undefined,
        2_000,
        `${p.qmName} back on the server path`,
      );
    }
    // Every pair of participants: the tile's canvas shows frames that came through the server.
    const pairs = [
      [a, ids[1]],
      [a, cid],
      [b, ids[0]],
      [b, cid],
      [c, ids[0]],
      [c, ids[1]],
    ];
    await Promise.all(
      pairs.map(([p, peer]) =>
        waitFor(
          p,
          (pid) => {
            const r = globalThis.__quicmeet
              .state()
              .media.remotes.find((v) => v.trackId === pid * 16 + 1);
            return r && r.painted > 0 && r.latencyMs !== null;
          },
          peer,
          10_000,
          `${p.qmName} paints ${peer}'s camera from the server`,
        ),
      ),
    );
    const allSeen = Date.now();
    figures.push(
      `third participant admitted → all three see each other through the server: ${allSeen - admittedAt} ms (join click → admitted ${admittedAt - joined} ms)`,
    );
    for (const p of [a, b]) {
      const sw = (await roomState(p)).p2p.switches.filter((x) => x.to === 'server').at(-1);
      assert.ok(sw?.done, `${p.qmName}: the server path showed the peer again`);
      // A figure, not an assertion: on a loaded shared machine the encoders and decoders can
      // be starved for seconds. The decision itself is checked above (path within 2 s).
      figures.push(
        `${p.qmName}: third admitted → peer's camera from the server: ${Math.round(sw.done - sw.from)} ms`,
      );
    }
    const g0 = await framesIn();
    await sleep(500);
    assert.ok((await framesIn()) > g0, 'the server forwards media again');
    for (const [p, peer] of pairs) await expectLiveCanvas(p, tile(peer), 10_000);

    // 4. The third leaves: the two go direct again.
    await c.click('[data-testid=leave]');
    for (const p of [a, b]) {
      await waitFor(
        p,
        () =>
          globalThis.__quicmeet?.state().p2p.path === 'p2p' &&
          globalThis.__quicmeet.state().p2p.receivingDirect,
        undefined,
        20_000,
        `${p.qmName} direct again`,
      );
    }
    await seesAndHears(a, ids[1]);
    await seesAndHears(b, ids[0]);
    const fp = await canvasFingerprint(a, tile(ids[1]));
    assert.ok(fp && fp.lit > 0, 'no black tile after switching back');
  });
});
