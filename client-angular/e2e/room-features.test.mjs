// What a Meet user expects in the room, end to end against the real server: switching camera and
// microphone mid-call, an unplugged camera falling back to the default, a microphone that cannot
// start ("Your microphone isn't working" + Retry), the connection-quality indicator and the
// troubleshooting panel, and screen share with tab audio (Chromium's fake screen offers audio).
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { apiMeeting, apiUser, cleanup, expectLiveCanvas, joinMeeting, launchBrowser, newPage, roomState, screenshot, sleep, startServer, waitFor } from './harness.mjs';

const REMOTE_TILE = '.tile[data-self="false"]';

describe('room features', { timeout: 300_000 }, () => {
  let server;
  let browser;
  let host;
  const pages = [];

  async function page(name) {
    const p = await newPage(browser, server.base, name);
    p.qmName = name;
    pages.push(p);
    return p;
  }

  const join = (p, code, { guest, transport = 'wt' } = {}) => joinMeeting(p, code, { guest, query: `transport=${transport}` });

  /** Frames painted from `trackId` on `p` so far. */
  async function painted(p, trackId) {
    const st = await roomState(p);
    return st.media.remotes.find((r) => r.trackId === trackId)?.painted ?? 0;
  }

  async function morePainted(p, trackId, what) {
    const from = await painted(p, trackId);
    try {
      await waitFor(p, ([id, n]) => (globalThis.__quicmeet.state().media.remotes.find((r) => r.trackId === id)?.painted ?? 0) > n + 10, [trackId, from], 15_000, what);
    } catch (e) {
      for (const q of pages) {
        const st = await roomState(q).catch(() => null);
        console.log(`[${q.qmName}] ${JSON.stringify({ encoded: st?.media?.encoded, remotes: st?.media?.remotes, devices: st?.devices })}`);
        for (const l of q.qmLog) console.log(l);
      }
      console.log(server.log().split('\n').slice(-30).join('\n'));
      throw e;
    }
  }

  async function hearsTrack(p, trackId, what) {
    await waitFor(p, (id) => globalThis.__quicmeet.state().audio.some((a) => a.trackId === id && a.frames > 20), trackId, 15_000, what);
  }

  before(async () => {
    // These two-person calls check the server path (encoder bitrate, frames decoded from the
    // server's packets); with P2P on, two people would talk directly and pause those encoders.
    server = await startServer({ extraArgs: ['--p2p', 'off'] });
    browser = await launchBrowser({ cameras: 2 });
    host = await page('host');
    await apiUser(host, server, 'Dev Host', `dev-${Date.now()}@example.com`);
  });

  after(async () => {
    await cleanup(() => browser?.close(), () => server?.stop());
  });

  test('switch camera and microphone mid-call from the settings panel; an unplugged camera falls back to the default', async () => {
    const code = (await apiMeeting(host, { title: 'Devices' })).code;
    const guest = await page('dev-guest');
    await join(host, code);
    await join(guest, code, { guest: { name: 'Vi Viewer', email: 'vi@example.com' } });
    const hostId = (await roomState(host)).selfId;
    const cam = hostId * 16 + 1;
    const mic = hostId * 16;
    await expectLiveCanvas(guest, `${REMOTE_TILE} canvas`);
    await hearsTrack(guest, mic, 'the host heard before the switch');
    const before = await roomState(host);
    assert.equal(before.devices.camera, 'fake_device_0');

    await host.click('[data-testid=settings]');
    await host.waitForSelector('[data-testid=settings-panel]');
    const camValue = await host.$eval('#cam-select', (s) => [...s.options].find((o) => o.text === 'fake_device_1')?.value);
    const micValue = await host.$eval('#mic-select', (s) => [...s.options].find((o) => o.text === 'Fake Audio Input 1')?.value);
    assert.ok(camValue && micValue, 'the settings panel lists the second camera and microphone');
    await host.selectOption('#cam-select', camValue);
    await host.selectOption('#mic-select', micValue);
    await waitFor(host, () => globalThis.__quicmeet.state().devices.camera === 'fake_device_1', undefined, 10_000, 'camera switched');
    await waitFor(host, () => globalThis.__quicmeet.state().devices.mic === 'Fake Audio Input 1', undefined, 10_000, 'microphone switched');
    const after = await roomState(host);
    assert.ok(after.media.encoded.starts[1] > before.media.encoded.starts[1], 'the camera encoder restarted on the new device');
    assert.ok(after.media.encoded.starts[0] > before.media.encoded.starts[0], 'the microphone encoder restarted on the new device');
    // Same tracks for the others, still flowing.
    assert.deepEqual(
      (await roomState(guest)).tracks.filter((t) => t.participant_id === hostId).map((t) => t.track_id).sort(),
      [mic, cam],
    );
    await morePainted(guest, cam, 'video from the second camera');
    const heard = (await roomState(guest)).audio.find((a) => a.trackId === mic).frames;
    await waitFor(guest, ([id, n]) => globalThis.__quicmeet.state().audio.find((a) => a.trackId === id).frames > n + 20, [mic, heard], 10_000, 'audio from the second microphone');
    await screenshot(host, '09-settings-panel');

    // Unplug the camera in use: the default camera takes over and the others keep seeing us.
    assert.ok(await host.evaluate(() => globalThis.__quicmeet.unplug('camera')));
    await waitFor(host, () => globalThis.__quicmeet.state().devices.camera === 'fake_device_0', undefined, 10_000, 'fallback to the default camera');
    await morePainted(guest, cam, 'video after the unplug');
    assert.equal(await host.$eval('#cam-select', (s) => s.selectedOptions[0]?.text), 'fake_device_0');
    await host.click('[data-testid=settings]');
    await guest.click('[data-testid=leave]');
    await host.click('[data-testid=leave]');
  });

  test("a microphone that cannot start says so, and Retry publishes it", async () => {
    const code = (await apiMeeting(host, { title: 'Broken mic' })).code;
    const broken = await page('broken-mic');
    // The first two microphone opens fail the way a busy device does; the third works.
    await broken.addInitScript(() => {
      const real = navigator.mediaDevices.getUserMedia.bind(navigator.mediaDevices);
      let audioFails = 2;
      navigator.mediaDevices.getUserMedia = (c) => {
        if (c?.audio && audioFails > 0) {
          audioFails--;
          return Promise.reject(new DOMException('Could not start audio source', 'NotReadableError'));
        }
        return real(c);
      };
    });
    await join(host, code);
    await broken.goto(`/${code}?transport=ws`);
    await broken.waitForSelector('[data-testid=device-problem-microphone] >> text=Your microphone isn\'t working', { timeout: 15_000 });
    await broken.fill('#gname', 'Mo Mic');
    await broken.fill('#gemail', 'mo@example.com');
    await broken.click('.join-btn:not([disabled])');
    await broken.waitForSelector('.room [data-testid=device-problem-microphone]', { timeout: 20_000 });
    const id = (await roomState(broken)).selfId;
    await morePainted(host, id * 16 + 1, 'the camera works meanwhile');
    assert.ok(!(await roomState(host)).tracks.some((t) => t.track_id === id * 16), 'no microphone track while it is broken');
    await screenshot(broken, '10-mic-problem');
    await broken.click('.room [data-testid=device-problem-microphone] button:has-text("Retry")');
    // The second open fails too: still broken, still saying so.
    await broken.waitForSelector('.room [data-testid=device-problem-microphone]');
    await sleep(300);
    await broken.click('.room [data-testid=device-problem-microphone] button:has-text("Retry")');
    await broken.waitForSelector('.room [data-testid=device-problem-microphone]', { state: 'detached', timeout: 10_000 });
    await waitFor(host, (t) => globalThis.__quicmeet.state().tracks.some((x) => x.track_id === t), id * 16, 10_000, 'the microphone published after Retry');
    await hearsTrack(host, id * 16, 'audio after Retry');
    await broken.click('[data-testid=leave]');
    await host.click('[data-testid=leave]');
  });

  test('connection-quality indicator on every tile and the troubleshooting panel', async () => {
    const code = (await apiMeeting(host, { title: 'Quality' })).code;
    const guest = await page('q-guest');
    await join(host, code, { transport: 'wt' });
    await join(guest, code, { guest: { name: 'Qi Quality', email: 'qi@example.com' }, transport: 'ws' });
    await expectLiveCanvas(host, `${REMOTE_TILE} canvas`);
    // On loopback nothing is lost and the round trip is short: every tile says "good", from the
    // start (the server's climb to the full layer in the first seconds is not held against the
    // connection). A starved machine (two browsers and a debug server on two cores in CI) can
    // hold a tile on "fair" for a while (a late ping, or video still a layer down after the
    // start), so the wait is long, and a failure says what the indicator was fed.
    for (const p of [host, guest]) {
      try {
        await waitFor(p, () => {
          const q = [...document.querySelectorAll('.tile [data-testid=quality]')].map((e) => e.getAttribute('data-quality'));
          return q.length === 2 && q.every((x) => x === 'good');
        }, undefined, 45_000, 'two tiles with a good connection');
      } catch (e) {
        for (const [name, x] of [['host', host], ['guest', guest]]) {
          const s = await x.evaluate(() => {
            const st = globalThis.__quicmeet.state();
            return { rttMs: st.rttMs, quality: st.quality, p2p: st.p2p.path, remotes: st.media.remotes.map((r) => ({ track: r.trackId, layer: r.layer, h: r.height, painted: r.painted })), layerChanges: st.layerChanges.slice(-6), audio: st.audio.map((a) => ({ track: a.trackId, frames: a.frames })) };
          });
          console.log(`# ${name}: ${JSON.stringify(s)}`);
        }
        throw e;
      }
    }
    assert.match(await host.getAttribute(`${REMOTE_TILE} [data-testid=quality]`, 'aria-label'), /Connection is good/);

    await host.click('[data-testid=troubleshoot]');
    await host.waitForSelector('[data-testid=troubleshooting]');
    assert.equal(await host.textContent('[data-testid=ts-transport]'), 'WebTransport');
    await waitFor(host, () => parseInt(document.querySelector('[data-testid=ts-in]').textContent, 10) > 50, undefined, 10_000, 'bitrate in');
    await waitFor(host, () => parseInt(document.querySelector('[data-testid=ts-out]').textContent, 10) > 50, undefined, 10_000, 'bitrate out');
    assert.match(await host.textContent('[data-testid=ts-rtt]'), /^\d+ ms$/);
    // What the camera encodes at, and whether the CPU made it smaller.
    assert.match(await host.textContent('[data-testid=ts-camera]'), /^[1-9]\d*×[1-9]\d*, encode \d+ ms\/frame(, reduced to (75|50) % for the CPU)?$/);
    const guestCam = (await roomState(guest)).selfId * 16 + 1;
    const row = `[data-testid=ts-tiles] tr[data-track-id="${guestCam}"]`;
    await host.waitForSelector(row);
    assert.match(await host.textContent(`${row} [data-testid=ts-resolution]`), /^\d+×\d+$/);
    assert.match(await host.textContent(`${row} [data-testid=ts-layer]`), /^[0-2]$/);
    assert.match(await host.textContent(`${row} [data-testid=ts-dropped]`), /^\d+$/);
    await screenshot(host, '11-troubleshooting');
    await host.click('[data-testid=troubleshoot]');
    await guest.click('[data-testid=leave]');
    await host.click('[data-testid=leave]');
  });

  test('screen share with tab audio: the others get the screen on stage and its audio on slot 3', async () => {
    const code = (await apiMeeting(host, { title: 'Tab audio' })).code;
    const guest = await page('tab-guest');
    await join(host, code);
    await join(guest, code, { guest: { name: 'Ty Tab', email: 'ty@example.com' } });
    const hostId = (await roomState(host)).selfId;
    await host.click('[data-testid=share]');
    await guest.waitForSelector('[data-testid=stage] canvas', { timeout: 15_000 });
    await expectLiveCanvas(guest, '[data-testid=stage] canvas');
    await waitFor(guest, (t) => globalThis.__quicmeet.state().tracks.some((x) => x.track_id === t && x.kind === 'audio'), hostId * 16 + 3, 10_000, 'tab audio track published');
    await hearsTrack(guest, hostId * 16 + 3, 'tab audio frames');
    await host.click('[data-testid=share]');
    await guest.waitForSelector('[data-testid=stage]', { state: 'detached', timeout: 10_000 });
    await waitFor(guest, (t) => !globalThis.__quicmeet.state().tracks.some((x) => x.track_id === t), hostId * 16 + 3, 10_000, 'tab audio retracted with the share');
    await guest.click('[data-testid=leave]');
    await host.click('[data-testid=leave]');
  });
});
