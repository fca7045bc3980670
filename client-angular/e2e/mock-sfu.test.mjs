// Client-only integration test, no server binary needed: the built app is served from a tiny
// static server, the REST API is answered by page.route, and the WebSocket is answered by a
// small in-test SFU (page.routeWebSocket) that speaks the contract's control messages and
// forwards media frames. It proves the browser side (capture → WebCodecs → frames → decode →
// canvas and audio) and the room UI without waiting for the real media plane.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { createServer } from 'node:http';
import { readFile, stat } from 'node:fs/promises';
import { extname, join, normalize } from 'node:path';
import { expectLiveCanvas, freeUdpPort, launchBrowser, newPage, roomState, screenshot, STATIC_DIR, waitFor } from './harness.mjs';
import { installStampingCamera } from './latency-source.mjs';

const CODE = 'abc-defg-hij';
const TYPES = { '.html': 'text/html', '.js': 'text/javascript', '.css': 'text/css', '.ico': 'image/x-icon', '.json': 'application/json' };

function staticServer() {
  const srv = createServer(async (req, res) => {
    const path = normalize(decodeURIComponent(new URL(req.url, 'http://x').pathname)).replace(/^(\.\.[/\\])+/, '');
    let file = join(STATIC_DIR, path);
    try {
      if (!(await stat(file)).isFile()) throw new Error('dir');
    } catch {
      file = join(STATIC_DIR, 'index.html');
    }
    res.writeHead(200, { 'content-type': TYPES[extname(file)] ?? 'application/octet-stream' });
    res.end(await readFile(file));
  });
  return new Promise((r) => srv.listen(0, '127.0.0.1', () => r(srv)));
}

/** A minimal SFU: enough of the contract to run a two-person call over WebSocket. */
class MockSfu {
  nextId = 1;
  conns = new Map(); // pid -> { ws, participant }
  tracks = new Map(); // track_id -> track
  chat = [];
  framesForwarded = 0;

  attach(ws) {
    let pid = 0;
    const send = (msg) => ws.send(Buffer.concat([Buffer.from([1]), Buffer.from(JSON.stringify({ v: 1, ...msg }))]));
    ws.onMessage((raw) => {
      const buf = Buffer.isBuffer(raw) ? raw : Buffer.from(raw);
      if (buf[0] === 2) {
        const trackId = buf.readUInt32BE(1 + 4);
        if (Math.floor(trackId / 16) !== pid) return;
        for (const [other, c] of this.conns) if (other !== pid) c.ws.send(buf);
        this.framesForwarded++;
        return;
      }
      const m = JSON.parse(buf.subarray(1).toString('utf8'));
      switch (m.type) {
        case 'hello': {
          pid = this.nextId++;
          const name = m.token.replace(/^t-/, '');
          const participant = { id: pid, name, role: pid === 1 ? 'host' : 'guest', audio_muted: false, video_muted: false, hand_raised: false, transport: 'websocket' };
          this.conns.set(pid, { ws, participant, send });
          send({
            type: 'welcome',
            participant_id: pid,
            role: participant.role,
            meeting: { code: CODE, title: 'Mock', host_name: 'Host' },
            participants: [...this.conns.values()].map((c) => c.participant),
            tracks: [...this.tracks.values()],
            chat: this.chat,
          });
          this.broadcast({ type: 'participant_joined', participant }, pid);
          break;
        }
        case 'publish': {
          const track = { track_id: m.track_id, participant_id: pid, kind: m.kind, codec: m.codec, width: m.width, height: m.height };
          this.tracks.set(m.track_id, track);
          this.broadcast({ type: 'track_published', track }, pid);
          break;
        }
        case 'unpublish':
          this.tracks.delete(m.track_id);
          this.broadcast({ type: 'track_unpublished', track_id: m.track_id }, pid);
          break;
        case 'mute': {
          const c = this.conns.get(pid);
          c.participant.audio_muted = m.audio;
          c.participant.video_muted = m.video;
          this.broadcast({ type: 'mute_state', participant_id: pid, audio: m.audio, video: m.video }, pid);
          break;
        }
        case 'chat': {
          const msg = { id: this.chat.length + 1, participant_id: pid, name: this.conns.get(pid).participant.name, text: m.text, ts_ms: Date.now() };
          this.chat.push(msg);
          this.broadcast({ type: 'chat', ...msg });
          break;
        }
        case 'keyframe_request': {
          const owner = this.conns.get(Math.floor(m.track_id / 16));
          owner?.send({ type: 'keyframe_request', track_id: m.track_id, layer: 0 });
          break;
        }
        case 'ping':
          send({ type: 'pong', t: m.t });
          break;
        case 'leave':
          this.drop(pid);
          break;
        default:
          break;
      }
    });
    ws.onClose(() => this.drop(pid));
  }

  drop(pid) {
    if (!this.conns.delete(pid)) return;
    for (const [id, t] of this.tracks) if (t.participant_id === pid) this.tracks.delete(id);
    this.broadcast({ type: 'participant_left', participant_id: pid, reason: 'left' });
  }

  broadcast(msg, except) {
    for (const [id, c] of this.conns) if (id !== except) c.send(msg);
  }
}

let deadUdpPort = 0;

async function mockedPage(browser, base, sfu, name) {
  deadUdpPort ||= await freeUdpPort();
  const page = await newPage(browser, base, name);
  // Every media frame crosses the test runner (routeWebSocket) on the same connection as the
  // test's clicks; under load, Chromium's 640x480 fake camera at 20 fps once queued a chat click
  // behind seconds of video and the test timed out. A small moving camera (320x240 at 10 fps)
  // checks the same path (capture → encode → frames → decode → canvas) with an eighth of the
  // bytes.
  await page.addInitScript(installStampingCamera, { width: 320, height: 240, fps: 10 });
  await page.route('**/api/**', async (route) => {
    const url = new URL(route.request().url());
    const json = (status, body) => route.fulfill({ status, contentType: 'application/json', body: JSON.stringify(body) });
    if (url.pathname === '/api/me') return json(401, { error: { code: 'unauthenticated', message: 'Sign in first.' } });
    if (url.pathname === `/api/meetings/${CODE}`) {
      return json(200, { meeting: { code: CODE, title: 'Mock meeting', start: new Date().toISOString(), duration_minutes: 30, type: 'public', host_name: 'Host', link: `${base}/${CODE}`, cancelled: false } });
    }
    if (url.pathname === `/api/meetings/${CODE}/join`) {
      const body = route.request().postDataJSON() ?? {};
      return json(200, {
        status: 'ready',
        token: `t-${body.name ?? name}`,
        expires_in_secs: 60,
        participant: { name: body.name ?? name, email: body.email, role: 'guest' },
        // A WebTransport endpoint where nothing listens: the client must fall back to WebSocket.
        media: { webtransport: { url: `https://127.0.0.1:${deadUdpPort}/wt`, cert_hashes: [{ algorithm: 'sha-256', value_hex: '00'.repeat(32) }] }, websocket: { url: `${base.replace('http', 'ws')}/ws` } },
      });
    }
    return json(404, { error: { code: 'not_found', message: 'Not mocked' } });
  });
  await page.routeWebSocket(/\/ws/, (ws) => sfu.attach(ws));
  return page;
}

describe('client against an in-test SFU over WebSocket', { timeout: 180_000 }, () => {
  let srv;
  let browser;
  let base;

  before(async () => {
    srv = await staticServer();
    base = `http://localhost:${srv.address().port}`;
    browser = await launchBrowser();
  });
  after(async () => {
    await browser?.close();
    srv?.close();
  });

  test('WebTransport unreachable → WebSocket; two guests see, hear and chat; mute and camera-off show remotely; screen stage', async () => {
    const sfu = new MockSfu();
    const a = await mockedPage(browser, base, sfu, 'alice');
    const b = await mockedPage(browser, base, sfu, 'bob');
    for (const [p, name] of [[a, 'Alice'], [b, 'Bob']]) {
      await p.goto(`/${CODE}`);
      await p.fill('#gname', name);
      await p.fill('#gemail', `${name.toLowerCase()}@example.com`);
      await p.waitForSelector('.preview video', { timeout: 15_000 });
      await p.click('.join-btn');
      await p.waitForSelector('.room', { timeout: 15_000 });
    }
    for (const p of [a, b]) {
      await waitFor(p, () => document.querySelectorAll('.tile').length === 2, undefined, 15_000, 'two tiles');
      assert.equal(await p.textContent('[data-testid=transport-label]'), 'WebSocket');
    }
    for (const p of [a, b]) await expectLiveCanvas(p, '.tile[data-self="false"] canvas');
    for (const p of [a, b]) {
      await waitFor(p, () => [...document.querySelectorAll('.tile[data-self="false"]')].some((t) => Number(t.getAttribute('data-audio-level')) > 0), undefined, 20_000, 'audio level');
    }
    const st = await roomState(b);
    assert.equal(st.media.encoded.videoMode, 'worker', 'camera encoding runs in a Web Worker');
    console.log(`# mock SFU: join-to-first-frame ${st.firstFrameMs} ms, frames forwarded ${sfu.framesForwarded}, rtt ${st.rttMs} ms`);
    assert.ok(st.firstFrameMs > 0);

    await a.click('[data-testid=chat]');
    await a.fill('#chat-input', 'hi bob');
    await a.press('#chat-input', 'Enter');
    await b.click('[data-testid=chat]');
    await b.waitForSelector('[data-testid=chat-log] >> text=hi bob', { timeout: 15_000 });

    const bid = (await roomState(b)).selfId;
    await b.click('[data-testid=mic]');
    await a.waitForSelector(`.tile[data-participant-id="${bid}"] [data-testid=mute-badge]`, { timeout: 15_000 });

    // Camera off: the other side shows the avatar instead of video.
    const aid = (await roomState(a)).selfId;
    await a.click('[data-testid=camera]');
    await b.waitForSelector(`.tile[data-participant-id="${aid}"] .avatar`, { timeout: 15_000 });
    await a.click('[data-testid=camera]');
    await b.waitForSelector(`.tile[data-participant-id="${aid}"] canvas`, { timeout: 15_000 });
    await expectLiveCanvas(b, `.tile[data-participant-id="${aid}"] canvas`);

    await a.click('[data-testid=share]');
    await b.waitForSelector('[data-testid=stage] canvas', { timeout: 10_000 });
    await expectLiveCanvas(b, '[data-testid=stage] canvas');
    await screenshot(b, 'mock-sfu-stage');
    await screenshot(a, 'mock-sfu-room');
    // Phone-sized layout.
    await b.setViewportSize({ width: 390, height: 844 });
    await screenshot(b, 'mock-sfu-phone');
    await b.click('[data-testid=chat]');
    await screenshot(b, 'mock-sfu-phone-chat');
    for (const p of [a, b]) for (const l of p.qmLog) console.log(l);
    await a.context().close();
    await b.context().close();
  });
});
