// End-to-end: the real server binary, the built app, two or three headless Chromium contexts.
// Run: QUICMEET_BIN=/path/to/quicmeet node --test client-angular/e2e/
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import {
  apiMeeting,
  apiUser,
  cleanup,
  cspViolations,
  expectLiveCanvas,
  launchBrowser,
  newPage,
  roomState,
  screenshot,
  sleep,
  startServer,
  verificationLink,
  waitFor,
} from './harness.mjs';

const REMOTE_TILE = '.tile[data-self="false"]';
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

/** Opens the meeting link, fills the guest form when asked, clicks Join and waits for the room. */
async function join(p, code, { guest, transport, expectRoom = true } = {}) {
  await p.goto(`/${code}${transport ? `?transport=${transport}` : ''}`);
  await p.waitForSelector('.join-btn, [data-testid=lobby]', { timeout: 15_000 });
  if (guest) {
    await p.fill('#gname', guest.name);
    await p.fill('#gemail', guest.email);
  }
  // Wait for the camera preview so "Join meeting" → first frame measures the call, not the camera.
  await p.waitForSelector('.preview video', { timeout: 15_000 });
  await p.click('.join-btn');
  if (expectRoom) await p.waitForSelector('.room', { timeout: 20_000 });
}

async function firstFrameMs(p) {
  await waitFor(p, () => globalThis.__quicmeet?.state().firstFrameMs !== null, undefined, 20_000, 'first remote frame');
  return (await roomState(p)).firstFrameMs;
}

/**
 * Remote audio is decoded (the tile's level moves) and played: the mixer's AudioWorklet module
 * loaded under the server's CSP and has rendered remote samples, with no policy violation.
 */
async function expectAudio(p) {
  await waitFor(
    p,
    (sel) => [...document.querySelectorAll(sel)].some((t) => Number(t.getAttribute('data-audio-level')) > 0),
    REMOTE_TILE,
    20_000,
    'remote audio level > 0',
  );
  await waitFor(
    p,
    () => {
      const o = globalThis.__quicmeet.state().audioOutput;
      return o.state === 'running' && o.samplesRendered > 0;
    },
    undefined,
    10_000,
    'the audio mixer worklet playing remote audio',
  );
  assert.deepEqual(await cspViolations(p), [], 'no Content-Security-Policy violation');
  // Each remote speaker's jitter buffer has a target from measured jitter, within its bounds.
  const buffers = (await roomState(p)).audio.map((a) => a.buffer.targetMs).filter((x) => x !== null);
  assert.ok(buffers.length > 0 && buffers.every((ms) => ms >= 20 && ms <= 120), `audio jitter buffer targets ${JSON.stringify(buffers)} within 20–120 ms`);
  console.log(`# audio jitter buffer targets: ${buffers.join(', ')} ms`);
}

let serverLogShown = 0;
async function dumpOnFailure() {
  for (const p of pages) {
    const st = await roomState(p).catch(() => null);
    if (st) {
      const { phase, transport, transportState, transportError, error, selfId, participants, firstFrameMs } = st;
      console.log(`[${p.qmName}] state ${JSON.stringify({ phase, transport, transportState, transportError, error, selfId, n: participants?.length, firstFrameMs })}`);
    }
    for (const l of p.qmLog ?? []) console.log(l);
    if (p.qmLog) p.qmLog.length = 0;
  }
  if (server) {
    const lines = server.log().split('\n');
    console.log(lines.slice(Math.max(serverLogShown, lines.length - 80)).join('\n'));
    serverLogShown = lines.length;
  }
}

describe('QuicMeet end to end', { timeout: 300_000 }, () => {
  let host;
  let hostEmail;
  let meetingCode;

  before(async () => {
    server = await startServer();
    browser = await launchBrowser();
  });

  after(async () => {
    for (const f of figures) console.log(`# ${f}`);
    await cleanup(() => browser?.close(), () => server?.stop());
  });

  test('sign up, verify through the outbox link, log in, create/edit/cancel meetings, .ics, log out and in', async (t) => {
    t.after(async () => t.passed === false && (await dumpOnFailure()));
    host = await page('host');
    hostEmail = `host-${Date.now()}@example.com`;
    await host.goto('/');
    await host.click('[data-testid=landing-signup]:has-text("Sign up")');
    await host.fill('#name', 'Ada Host');
    await host.fill('#email', hostEmail);
    await host.fill('#password', 'correct horse 42');
    await host.click('button[type=submit]:has-text("Create account")');
    await host.waitForSelector('text=Check your email');
    await screenshot(host, '01-check-email');

    const link = await verificationLink(server.dataDir, hostEmail);
    await host.goto(new URL(link).pathname + new URL(link).search);
    await host.waitForSelector('text=Your email is verified');
    await host.click('a:has-text("Log in")');
    await host.waitForSelector('#password');
    await host.fill('#email', hostEmail);
    await host.fill('#password', 'correct horse 42');
    await host.click('button[type=submit]');
    await host.waitForURL('**/dashboard');

    await host.fill('#title', 'E2E standup');
    await host.selectOption('#type', 'public');
    await host.click('button:has-text("Create meeting")');
    const a = await host.waitForSelector('[data-testid=meeting-link]');
    meetingCode = (await a.textContent()).trim().split('/').pop();
    assert.match(meetingCode, /^[a-z0-9]+-[a-z0-9]+-[a-z0-9]+$/);
    await host.waitForSelector(`li[data-code="${meetingCode}"] a:has-text("Join meeting")`);
    await screenshot(host, '02-dashboard');

    // Edit, .ics and cancel on a second meeting.
    await host.fill('#title', 'To be changed');
    await host.click('button:has-text("Create meeting")');
    const second = (await (await host.waitForSelector('[data-testid=meeting-link]')).textContent()).trim().split('/').pop();
    const row = `li[data-code="${second}"]`;
    await host.click(`${row} button:has-text("Edit")`);
    await host.fill('#title', 'Changed title');
    await host.click('button:has-text("Save changes")');
    await host.waitForSelector(`${row} >> text=Changed title`);
    const ics = await host.request.get(`/api/meetings/${second}/ics`);
    assert.equal(ics.status(), 200);
    assert.match(ics.headers()['content-type'], /text\/calendar/);
    assert.match(await ics.text(), /BEGIN:VCALENDAR[\s\S]*Changed title/);
    await host.click(`${row} button:has-text("Cancel meeting")`);
    await host.waitForSelector(`${row} >> text=Cancelled`);

    // Log out and back in.
    await host.click('button:has-text("Log out")');
    await host.waitForSelector('a:has-text("Log in")');
    await host.goto('/dashboard');
    await host.waitForURL('**/login?next=%2Fdashboard');
    await host.fill('#email', hostEmail);
    await host.fill('#password', 'correct horse 42');
    await host.click('button[type=submit]');
    await host.waitForURL('**/dashboard');
  });

  test('two participants over WebTransport: video, audio, chat, mute, screen share; a guest joins a public meeting', async (t) => {
    t.after(async () => t.passed === false && (await dumpOnFailure()));
    assert.ok(meetingCode, 'needs the meeting from the first test');
    const guest = await page('guest');
    await join(host, meetingCode);
    // Let the host publish for a moment so both transports' figures measure the same thing: a
    // newcomer joining a call that is already running.
    await waitFor(host, () => globalThis.__quicmeet?.state().media.encoded.video > 20, undefined, 15_000, 'host publishing');
    await join(guest, meetingCode, { guest: { name: 'Grace Guest', email: 'grace@example.com' } });

    for (const p of [host, guest]) {
      await waitFor(p, () => document.querySelectorAll('.tile').length >= 2, undefined, 20_000, 'two tiles');
      assert.equal((await roomState(p)).transport, 'webtransport');
      assert.equal(await p.textContent('[data-testid=transport-label]'), 'WebTransport');
    }
    const ms = await firstFrameMs(guest);
    figures.push(`join-to-first-frame WebTransport: ${ms} ms (guest clicked "Join meeting" → first remote frame painted)`);
    for (const p of [host, guest]) await expectLiveCanvas(p, `${REMOTE_TILE} canvas`);
    for (const p of [host, guest]) await expectAudio(p);
    await screenshot(host, '03-room-host-wt');
    await screenshot(guest, '03-room-guest-wt');

    // Chat both ways.
    await host.click('[data-testid=chat]');
    await host.fill('#chat-input', 'hello from the host');
    await host.press('#chat-input', 'Enter');
    await guest.click('[data-testid=chat]');
    await guest.waitForSelector('[data-testid=chat-log] >> text=hello from the host', { timeout: 10_000 });
    await guest.fill('#chat-input', 'hi host, guest here');
    await guest.press('#chat-input', 'Enter');
    await host.waitForSelector('[data-testid=chat-log] >> text=hi host, guest here', { timeout: 10_000 });
    await guest.click('[data-testid=chat]');
    await host.click('[data-testid=chat]');

    // Mute shows on the other side.
    const guestId = (await roomState(guest)).selfId;
    await guest.click('[data-testid=mic]');
    await host.waitForSelector(`.tile[data-participant-id="${guestId}"] [data-testid=mute-badge]`, { timeout: 10_000 });

    // Screen share becomes the stage on the other side.
    await host.click('[data-testid=share]');
    await guest.waitForSelector('[data-testid=stage] canvas', { timeout: 15_000 });
    await expectLiveCanvas(guest, '[data-testid=stage] canvas');
    await screenshot(guest, '04-stage-guest');
    await host.click('[data-testid=share]');
    await guest.waitForSelector('[data-testid=stage]', { state: 'detached', timeout: 10_000 });

    await guest.click('[data-testid=leave]');
    await guest.waitForSelector('[data-testid=left-title]');
    await waitFor(host, () => document.querySelectorAll('.tile').length === 1, undefined, 15_000, 'guest tile gone');
  });

  test('mixed room: one participant forced to WebSocket (?transport=ws); the host removes them', async (t) => {
    t.after(async () => t.passed === false && (await dumpOnFailure()));
    const ws = await page('ws');
    await join(ws, meetingCode, { guest: { name: 'Wes Socket', email: 'wes@example.com' }, transport: 'ws' });
    assert.equal((await roomState(ws)).transport, 'websocket');
    assert.equal(await ws.textContent('[data-testid=transport-label]'), 'WebSocket');
    const ms = await firstFrameMs(ws);
    figures.push(`join-to-first-frame WebSocket: ${ms} ms (?transport=ws participant)`);
    await expectLiveCanvas(ws, `${REMOTE_TILE} canvas`);
    await expectLiveCanvas(host, `${REMOTE_TILE} canvas`);
    await expectAudio(ws);
    await expectAudio(host);
    // Chat across transports.
    await ws.click('[data-testid=chat]');
    await ws.fill('#chat-input', 'over websocket');
    await ws.press('#chat-input', 'Enter');
    await host.click('[data-testid=chat]');
    await host.waitForSelector('[data-testid=chat-log] >> text=over websocket', { timeout: 10_000 });
    await host.click('[data-testid=chat]');
    await screenshot(ws, '05-room-ws');
    // The host removes the WebSocket participant.
    const wsId = (await roomState(ws)).selfId;
    await host.click('[data-testid=people]');
    await host.click(`li[data-participant-id="${wsId}"] button:has-text("Remove")`);
    await ws.waitForSelector('[data-testid=left-title] >> text=You were removed', { timeout: 10_000 });
    await waitFor(host, (id) => !document.querySelector(`.tile[data-participant-id="${id}"]`), wsId, 10_000, 'removed tile gone');
    await host.click('[data-testid=people]');
    await host.click('[data-testid=leave]');
    await host.waitForSelector('[data-testid=left-title]');
  });

  test('a server restart: both participants reconnect without reloading and see each other again', async (t) => {
    t.after(async () => t.passed === false && (await dumpOnFailure()));
    const m = await apiMeeting(host, { title: 'Restart E2E', type: 'public' });
    const other = await page('restart-guest');
    await join(host, m.code);
    await join(other, m.code, { guest: { name: 'Rita Restart', email: 'rita@example.com' }, transport: 'ws' });
    await expectLiveCanvas(other, `${REMOTE_TILE} canvas`);
    // Ids may repeat on a fresh server, so count welcomes: one more means a new session.
    const before = [(await roomState(host)).welcomes, (await roomState(other)).welcomes];
    await host.evaluate(() => (globalThis.__qmMarker = 'same page'));
    const t0 = Date.now();
    await server.restart();
    for (const p of [host, other]) {
      await waitFor(
        p,
        (old) => {
          const s = globalThis.__quicmeet?.state();
          return s && s.phase === 'in-room' && s.welcomes > old && s.participants.length >= 2;
        },
        p === host ? before[0] : before[1],
        40_000,
        'back in the room after the restart',
      );
    }
    assert.equal(await host.evaluate(() => globalThis.__qmMarker), 'same page', 'no page reload');
    await expectLiveCanvas(other, `${REMOTE_TILE} canvas`);
    await expectLiveCanvas(host, `${REMOTE_TILE} canvas`);
    figures.push(`reconnect after a server restart: ${Date.now() - t0} ms until both see video again`);
    await other.click('[data-testid=leave]');
    await host.click('[data-testid=leave]');
    await host.waitForSelector('[data-testid=left-title]');
  });

  test('a private meeting: the knock is admitted by the host', async (t) => {
    t.after(async () => t.passed === false && (await dumpOnFailure()));
    const m = await apiMeeting(host, { title: 'Private E2E', type: 'private', invitees: [] });
    await join(host, m.code);
    const knocker = await page('knocker');
    await knocker.goto(`/${m.code}`);
    await knocker.waitForSelector('h1:has-text("Private E2E")');
    assert.equal((await knocker.textContent('.join-btn')).trim(), 'Ask to join');
    await join(knocker, m.code, { guest: { name: 'Kim Knocker', email: 'kim@example.com' }, expectRoom: false });
    await knocker.waitForSelector('[data-testid=lobby]', { timeout: 15_000 });
    await screenshot(knocker, '06-lobby');
    await host.waitForSelector('[data-testid=knock-toast] >> text=Kim Knocker', { timeout: 15_000 });
    await host.click('[data-testid=knock-toast] button:has-text("Admit")');
    await knocker.waitForSelector('.room', { timeout: 15_000 });
    await waitFor(knocker, () => document.querySelectorAll('.tile').length >= 2, undefined, 15_000, 'knocker sees the host');
    await expectLiveCanvas(knocker, `${REMOTE_TILE} canvas`);
    await screenshot(host, '07-admitted');

    // Host powers: ask to mute (the knocker's client mutes itself), then end the meeting for all.
    const kimId = (await roomState(knocker)).selfId;
    await host.click('[data-testid=people]');
    await host.click(`li[data-participant-id="${kimId}"] button:has-text("Ask to mute")`);
    await host.waitForSelector(`.tile[data-participant-id="${kimId}"] [data-testid=mute-badge]`, { timeout: 10_000 });
    await knocker.waitForSelector('.toast >> text=asked you to mute', { timeout: 10_000 });
    await screenshot(host, '08-people-panel');
    await host.click('button:has-text("End meeting for all")');
    await knocker.waitForSelector('[data-testid=left-title] >> text=The meeting has ended', { timeout: 10_000 });
    await host.waitForSelector('[data-testid=left-title]', { timeout: 10_000 });
  });
});

// Keep a reference so linters do not flag it; `sleep` is handy when debugging a scenario.
void sleep;
void apiUser;
