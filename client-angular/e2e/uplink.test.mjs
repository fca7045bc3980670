// A browser publisher on a real link, end to end against the real server: its WebTransport
// session goes through a userspace UDP link (udp-shaper.mjs) whose uplink the test caps.
// 1. `track_demand`: when the only viewer's window is small, the server's demand for a lower
//    layer makes the publisher's encoder send less (measured on the link, not only in its stats),
//    and the full rate comes back when the window does.
// 2. Uplink adaptation: with the uplink capped far below the camera's bitrate, the publisher's
//    uplink controller steps down (bitrate first) until its target fits under the cap, and the
//    troubleshooting panel says so. On WebTransport the browser hides its send queue, so this is
//    the round trip at work (uplink.ts); before it, the publisher stayed at full quality.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { apiMeeting, apiUser, cleanup, launchBrowser, newPage, roomState, sleep, startServer, waitFor } from './harness.mjs';
import { startUdpShaper } from './udp-shaper.mjs';

describe('publisher on a capped link', { timeout: 600_000 }, () => {
  let server;
  let browser;
  let shaper;

  before(async () => {
    // Two people would talk directly with P2P on; this checks the server path.
    server = await startServer({ extraArgs: ['--p2p', 'off'] });
    browser = await launchBrowser();
    shaper = await startUdpShaper();
  });

  after(async () => {
    await cleanup(() => browser?.close(), () => shaper?.close(), () => server?.stop());
  });

  /** Bytes/s over `ms`: everything through the shaper, and the camera's encoded frames alone. */
  async function rates(p, ms) {
    const from = shaper.stats.upBytes;
    const cam0 = (await camera(p)).camera.bytes;
    await sleep(ms);
    const cam1 = (await camera(p)).camera.bytes;
    return { link: ((shaper.stats.upBytes - from) * 1000) / ms, camera: ((cam1 - cam0) * 1000) / ms };
  }
  const kbit = (bytesPerS) => Math.round((bytesPerS * 8) / 1000);

  const camera = (p) => p.evaluate(() => globalThis.__quicmeet.state().media.encoded);

  test('a demand for a lower layer lowers what the publisher sends; a capped uplink makes it step down', async () => {
    // The server's Content-Security-Policy lists its own media endpoint in connect-src, not the
    // shaper the test puts in between: the publisher's page does not enforce it (the meeting
    // e2e checks the policy).
    const pub = await newPage(browser, server.base, 'pub', { bypassCSP: true });
    const viewer = await newPage(browser, server.base, 'viewer');
    await apiUser(pub, server, 'Up Link', `uplink-${Date.now()}@example.com`);
    const code = (await apiMeeting(pub, { title: 'Uplink' })).code;
    // The publisher's join answer points its WebTransport session at the shaper.
    await pub.route('**/api/meetings/*/join', async (route) => {
      const res = await route.fetch();
      const body = await res.json();
      const wt = body?.media?.webtransport;
      if (wt?.url) {
        const u = new URL(wt.url);
        shaper.setUpstream(Number(u.port));
        u.hostname = '127.0.0.1';
        u.port = String(shaper.port);
        wt.url = u.toString();
      }
      await route.fulfill({ response: res, json: body });
    });
    for (const [p, guest] of [[pub, null], [viewer, { name: 'Vi Ewer', email: 'vi@example.com' }]]) {
      // The publisher ignores the machine's CPU pressure here (?pressure=off): on a busy test
      // machine it would lower the camera on its own, and this test is about the link.
      await p.goto(`/${code}?transport=wt${p === pub ? '&pressure=off' : ''}`);
      await p.waitForSelector('.join-btn', { timeout: 15_000 });
      if (guest) {
        await p.fill('#gname', guest.name);
        await p.fill('#gemail', guest.email);
        // The viewer only watches: a second camera encoder (and its decoder in the publisher's
        // page) would take the CPU the two browsers share, and a starved viewer's estimate
        // moves its subscription down and up again, which is not what this test is about.
        await p.click('.prejoin button[aria-label="Turn off camera"]');
      }
      await p.click('.join-btn:not([disabled])');
      try {
        await p.waitForSelector('.room', { timeout: 20_000 });
      } catch (e) {
        console.log(JSON.stringify(await roomState(p).catch(() => null)), p.qmLog.join('\n'), JSON.stringify(shaper.stats));
        throw e;
      }
    }
    assert.equal((await roomState(pub)).transport, 'webtransport', 'the publisher is on WebTransport through the shaper');
    const camTrack = (await roomState(pub)).selfId * 16 + 1;
    await waitFor(viewer, (id) => (globalThis.__quicmeet.state().media.remotes.find((r) => r.trackId === id)?.painted ?? 0) > 20, camTrack, 20_000, 'the viewer sees the camera');
    assert.ok(shaper.stats.upBytes > 0, 'the publisher sends through the shaper');

    // 1. Full window: the full layer is wanted, the camera runs at its full bitrate. A new
    // subscription may start below the layer its tile asks for and climb as its link proves
    // it carries more (PROTOCOL §5.6). The publisher's demand is 0 before the first track_demand too, so wait for the viewer's
    // own subscription to be on the full layer first. On a machine busy with two browsers the
    // viewer's own estimate may still move it down for a while (its receiver reports see the
    // late timers as queue), and that is not what this test is about: the full layer's rate is
    // measured over a stretch in which the full layer stayed wanted, tried up to six times (a
    // viewer whose tries failed waits up to 40 s before the next one).
    const t0 = Date.now();
    let full;
    let before1;
    for (let attempt = 1; ; attempt++) {
      await waitFor(viewer, (id) => globalThis.__quicmeet.state().media.remotes.find((r) => r.trackId === id)?.layer === 0, camTrack, 90_000, 'the viewer on the full layer');
      try {
        await waitFor(pub, () => globalThis.__quicmeet.state().media.encoded.camera.demandStep === 0, undefined, 10_000, 'track_demand for the full layer');
      } catch (e) {
        // The viewer left the full layer before its demand reached the publisher: a join's
        // first pictures come on the full layer and the start ceiling then moves them down
        // (CI saw 3 pictures on layer 0, then layer 2), so wait for its climb back.
        const layers = (await roomState(viewer)).layerChanges.map((l) => l.layer).join(',');
        console.log(`# attempt ${attempt}: no full-layer demand within 10 s (viewer's layer_changed ${layers})`);
        assert.ok(attempt < 6, e.message);
        continue;
      }
      console.log(`# the viewer's full layer wanted ${Date.now() - t0} ms after its first 20 pictures (attempt ${attempt})`);
      await sleep(2000);
      const wantedBefore = (await camera(pub)).camera.demandStep === 0;
      full = await rates(pub, 5000);
      before1 = await camera(pub);
      if (wantedBefore && before1.camera.demandStep === 0) break;
      assert.ok(attempt < 6, `full layer still wanted: ${JSON.stringify(before1.camera)}`);
    }

    // A small window: the viewer's tile needs a lower layer, the server sends track_demand.
    await viewer.setViewportSize({ width: 360, height: 240 });
    await waitFor(pub, () => globalThis.__quicmeet.state().media.encoded.camera.demandStep > 0, undefined, 15_000, 'track_demand for a lower layer');
    const lowered = await camera(pub);
    assert.ok(lowered.camera.bitrate < before1.camera.bitrate, `the encoder's bitrate came down: ${before1.camera.bitrate} → ${lowered.camera.bitrate}`);
    await sleep(1500); // the encoder reconfigures; the next frames are smaller
    // Over 10 s, not 5: the server's transcoder starts the lower layer and asks the publisher
    // for a keyframe, which at 280 kbit/s is a large share of a short window (CI once measured
    // 355 kbit/s over 5 s against the 350 allowed).
    const low = await rates(pub, 10_000);
    console.log(`# full layer wanted: camera ${kbit(full.camera)} kbit/s, link ${kbit(full.link)}; lower layer only: camera ${kbit(low.camera)}, link ${kbit(low.link)} (encoder target ${before1.camera.bitrate / 1000} → ${lowered.camera.bitrate / 1000})`);
    // The camera's output keeps to its new target (Chromium's fake camera needs less than the
    // full 800 kbit/s, so the drop on the link is what the picture used above 280), and the link
    // carries less.
    assert.ok(low.camera * 8 <= lowered.camera.bitrate * 1.25, `the camera keeps to its lower target: ${kbit(low.camera)} kbit/s for ${lowered.camera.bitrate / 1000}`);
    // The lower target only binds when the picture used more than it: a CPU-starved browser's
    // fake camera may use less than 280 kbit/s even at the full target, and then there is
    // nothing to cut (the target itself came down, checked above).
    if (full.camera * 8 > lowered.camera.bitrate * 1.25) {
      assert.ok(low.camera < full.camera, `the camera sends less: ${kbit(full.camera)} → ${kbit(low.camera)} kbit/s`);
      assert.ok(low.link < full.link, `the link carries less: ${kbit(full.link)} → ${kbit(low.link)} kbit/s`);
    }

    // The window grows back: the full layer is wanted again.
    await viewer.setViewportSize({ width: 1280, height: 800 });
    await waitFor(pub, () => globalThis.__quicmeet.state().media.encoded.camera.demandStep === 0, undefined, 15_000, 'track_demand for the full layer again');

    // 2. The uplink capped at 200 kbit/s (the camera wants 800, the picture uses ~320): the
    // publisher steps down.
    shaper.cap(200_000, 150);
    // What the publisher sees meanwhile, printed if it does not adapt.
    const seen = [];
    const probe = setInterval(async () => {
      const st = await roomState(pub).catch(() => null);
      if (st) seen.push(`rtt ${st.rttMs} ms, ${JSON.stringify(st.uplinkState)}, step ${st.media.encoded.uplink.step}, shaper up ${shaper.stats.upBytes} B, dropped ${shaper.stats.upDropped}`);
    }, 1000);
    try {
      // Down the ladder until the camera's target fits under the cap.
      await waitFor(pub, () => globalThis.__quicmeet.state().media.encoded.uplink.bitrate <= 200_000, undefined, 30_000, 'the uplink controller stepping down');
    } catch (e) {
      console.log(seen.join('\n'));
      throw e;
    } finally {
      clearInterval(probe);
    }
    const capped = await camera(pub);
    assert.ok(capped.camera.bitrate <= 200_000, `the camera's bitrate follows the uplink: ${JSON.stringify(capped.uplink)}`);
    await pub.click('[data-testid="troubleshoot"]');
    const text = await pub.textContent('[data-testid="ts-uplink"]');
    assert.match(text, /step \d/, `the troubleshooting panel shows the uplink step: ${text}`);
    console.log(`# capped at 200 kbit/s: uplink ${text.trim()}; shaper dropped ${shaper.stats.upDropped} datagrams`);
    // The viewer still gets pictures on the capped link.
    const painted = (await roomState(viewer)).media.remotes.find((r) => r.trackId === camTrack)?.painted ?? 0;
    await waitFor(viewer, ([id, n]) => (globalThis.__quicmeet.state().media.remotes.find((r) => r.trackId === id)?.painted ?? 0) > n + 5, [camTrack, painted], 15_000, 'video still arriving on the capped link');
  });
});
