// Two temporal layers from a real browser, end to end against the real server. Chromium encodes
// the camera with WebCodecs' `L1T2` (every other frame is referred to by none); a busy server's
// transcoder decodes only the base layer to make the lower layers. The server here runs with
// `--transcode-temporal base-layer`, which is what it does when busy (an idle one decodes every
// frame; the pool's policy is tested in crates/transcode). What a user relies on:
// - a viewer whose tile wants a lower layer gets it, moving, at its size;
// - the server decodes about half the camera's frames to make it (the CPU the change saves);
// - a viewer of the full layer still gets every frame (checked in meeting.test.mjs, unchanged).
// Without `L1T2` the server would decode every frame: the ratio check fails.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { apiMeeting, apiUser, cleanup, joinMeeting, launchBrowser, metric, newPage, roomState, sleep, startServer, waitFor } from './harness.mjs';

describe('two temporal layers from the browser', { timeout: 90_000 }, () => {
  let server;
  let browser;

  before(async () => {
    // Two people would talk directly with P2P on; layers are the server path's.
    server = await startServer({ extraArgs: ['--p2p', 'off', '--transcode-temporal', 'base-layer'] });
    browser = await launchBrowser();
  });

  after(async () => {
    await cleanup(() => browser?.close(), () => server?.stop());
  });

  test('the small tile\'s layer is made from the base layer alone: half the frames decoded', async () => {
    const pub = await newPage(browser, server.base, 'pub');
    const viewer = await newPage(browser, server.base, 'viewer');
    await apiUser(pub, server, 'Tem Poral', `temporal-${Date.now()}@example.com`);
    const code = (await apiMeeting(pub, { title: 'Temporal layers' })).code;
    // The camera keeps its 640x480 (see publisher-layers.test.mjs: otherwise it may shrink by
    // itself on a busy machine and the small tile then wants the full layer).
    await joinMeeting(pub, code, { query: 'transport=wt&pressure=off&size=keep' });
    await joinMeeting(viewer, code, { guest: { name: 'Vi Ewer', email: 'vi@example.com' }, query: 'transport=wt' });
    const camTrack = (await roomState(pub)).selfId * 16 + 1;
    const remote = () => viewer.evaluate((id) => globalThis.__quicmeet.state().media.remotes.find((r) => r.trackId === id), camTrack);
    await waitFor(viewer, (id) => globalThis.__quicmeet.state().media.remotes.some((r) => r.trackId === id && r.painted > 10), camTrack, 20_000, 'the viewer sees the camera');

    // The window shrinks: the tile wants a lower layer, which the server's transcoder makes.
    await viewer.setViewportSize({ width: 640, height: 420 });
    await waitFor(viewer, (id) => (globalThis.__quicmeet.state().media.remotes.find((r) => r.trackId === id)?.layer ?? 0) >= 1, camTrack, 20_000, 'a lower layer');

    // Over 4 s windows (until one is steady: the same lower layer throughout, made by the
    // server): frames in, decoded, made, and what the viewer decoded.
    const counters = async () => ({
      in: await metric(server, 'quicmeet_transcode_frames_in_total'),
      decoded: await metric(server, 'quicmeet_transcode_frames_decoded_total'),
      out: await metric(server, 'quicmeet_transcode_frames_out_total'),
      r: await remote(),
    });
    let steady = null;
    const windows = [];
    const deadline = Date.now() + 20_000;
    while (!steady && Date.now() < deadline) {
      const a = await counters();
      await sleep(4000);
      const b = await counters();
      const w = { layer: [a.r.layer, b.r.layer], size: [b.r.width, b.r.height], in: b.in - a.in, decoded: b.decoded - a.decoded, out: b.out - a.out, viewerDecoded: b.r.decoded - a.r.decoded };
      windows.push(JSON.stringify(w));
      if (w.layer[0] >= 1 && w.layer[0] === w.layer[1] && w.in >= 40 && w.out > 0) steady = w;
    }
    console.log(`# windows: ${windows.join(' ')}`);
    assert.ok(steady, `a steady lower layer made by the server within 20 s: ${windows.join('\n')}`);
    const L = steady.layer[1];
    assert.deepEqual(steady.size, [640 >> L, 480 >> L], `layer ${L} at its size`);
    // Base layer only: half the camera's frames (a keyframe or two may add to it).
    assert.ok(steady.decoded <= steady.in * 0.6, `decoded ${steady.decoded} of ${steady.in} frames: the camera is not sending L1T2, or the server decodes every frame`);
    assert.ok(steady.decoded >= steady.in * 0.4, `decoded only ${steady.decoded} of ${steady.in} frames`);
    // The viewer's picture moves at about half the camera's rate.
    assert.ok(steady.viewerDecoded >= 20, `the viewer decoded ${steady.viewerDecoded} frames of layer ${L} in 4 s`);
  });
});
