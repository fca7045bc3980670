// End-to-end harness: starts the real quicmeet binary on free ports with a temp data dir, and
// headless Debian Chromium (playwright-core, never a downloaded browser) with fake media.
import { spawn } from 'node:child_process';
import { mkdtemp, mkdir, readdir, readFile, rm } from 'node:fs/promises';
import { createServer } from 'node:net';
import { createSocket } from 'node:dgram';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';

const here = dirname(fileURLToPath(import.meta.url));
export const APP_DIR = resolve(here, '..');
export const REPO = resolve(APP_DIR, '..');
export const ARTIFACTS = join(REPO, 'test-artifacts');
/** The e2e build (production plus the window.__quicmeet hook): scripts/test-client.sh makes it. */
export const STATIC_DIR = process.env.QM_E2E_STATIC_DIR || join(APP_DIR, 'dist/quicmeet-e2e/browser');
export const CHROMIUM = process.env.CHROME_BIN || '/usr/bin/chromium';

export const CHROMIUM_FLAGS = [
  '--no-sandbox',
  '--disable-gpu',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
  '--use-fake-device-for-media-stream',
  '--use-fake-ui-for-media-stream',
  '--autoplay-policy=no-user-gesture-required',
];

function freeTcpPort() {
  return new Promise((res, rej) => {
    const s = createServer();
    s.once('error', rej);
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address();
      s.close(() => res(port));
    });
  });
}

export function freeUdpPort() {
  return new Promise((res, rej) => {
    const s = createSocket('udp4');
    s.once('error', rej);
    s.bind(0, '127.0.0.1', () => {
      const { port } = s.address();
      s.close(() => res(port));
    });
  });
}

export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/**
 * Starts `$QUICMEET_BIN` and waits for /healthz. `restart()` keeps the data dir and ports.
 * `extraArgs` go on the server's command line (e.g. `['--p2p', 'off']`).
 */
export async function startServer({ extraArgs = [] } = {}) {
  const bin = process.env.QUICMEET_BIN;
  if (!bin) throw new Error('QUICMEET_BIN is not set: point it at a quicmeet server binary');
  const dataDir = await mkdtemp(join(tmpdir(), 'qm-e2e-'));
  const httpPort = await freeTcpPort();
  const quicPort = await freeUdpPort();
  const base = `http://localhost:${httpPort}`;
  const args = [
    '--data-dir', dataDir,
    '--http-addr', `127.0.0.1:${httpPort}`,
    '--quic-addr', `127.0.0.1:${quicPort}`,
    '--public-url', base,
    '--static-dir', STATIC_DIR,
    ...extraArgs,
  ];
  // The WebTransport URL then names "localhost", which Chromium resolves to ::1 only for QUIC
  // while the server listens on 127.0.0.1: the client retries on 127.0.0.1 by itself. Set
  // QM_E2E_MEDIA_HOST to hand the server an explicit --media-host instead.
  if (process.env.QM_E2E_MEDIA_HOST) args.push('--media-host', process.env.QM_E2E_MEDIA_HOST);
  const log = [];
  const keep = (d) => {
    log.push(d.toString());
    if (log.length > 400) log.splice(0, log.length - 400);
  };
  let child = null;
  let exited = null;

  async function launch() {
    exited = null;
    child = spawn(bin, args, {
      env: {
        ...process.env,
        QUICMEET_AUTH_RATE_PER_MIN: process.env.QUICMEET_AUTH_RATE_PER_MIN ?? '1000',
        QUICMEET_JOIN_RATE_PER_MIN: process.env.QUICMEET_JOIN_RATE_PER_MIN ?? '1000',
        QUICMEET_LOG: process.env.QUICMEET_LOG ?? 'info',
      },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    child.stdout.on('data', keep);
    child.stderr.on('data', keep);
    const me = child;
    me.on('exit', (code, sig) => {
      if (child === me) exited = `exited with ${code ?? sig}`;
    });
    const deadline = Date.now() + 30_000;
    for (;;) {
      if (exited) throw new Error(`quicmeet ${exited}:\n${log.join('')}`);
      try {
        const r = await fetch(`${base}/healthz`);
        if (r.ok) return;
      } catch {
        /* not yet */
      }
      if (Date.now() > deadline) {
        me.kill('SIGKILL');
        throw new Error(`quicmeet did not answer /healthz within 30 s:\n${log.join('')}`);
      }
      await sleep(200);
    }
  }

  async function halt() {
    const me = child;
    if (!me || exited) return;
    const done = new Promise((r) => me.once('exit', r));
    me.kill('SIGTERM');
    const t = setTimeout(() => me.kill('SIGKILL'), 10_000);
    await done;
    clearTimeout(t);
    exited = 'stopped';
  }

  await launch();
  return {
    base,
    dataDir,
    /** The server process's id (the benchmarks read its CPU time from /proc). */
    pid: () => child?.pid ?? null,
    log: () => log.join(''),
    /** Graceful stop (SIGTERM: clients are told to reconnect), then the same server again. */
    async restart(downMs = 500) {
      await halt();
      await sleep(downMs);
      await launch();
    },
    async stop() {
      await halt();
      await rm(dataDir, { recursive: true, force: true });
    },
  };
}

/** Quoted-printable soft breaks and escapes, enough to read a link out of an .eml. */
function decodeQuotedPrintable(s) {
  return s.replace(/=\r?\n/g, '').replace(/=([0-9A-F]{2})/g, (_, h) => String.fromCharCode(parseInt(h, 16)));
}

/** Polls <data-dir>/outbox/*.eml for a mail to `email` and returns the /verify link in it. */
export async function verificationLink(dataDir, email, timeoutMs = 15_000) {
  const outbox = join(dataDir, 'outbox');
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    let files = [];
    try {
      files = (await readdir(outbox)).filter((f) => f.endsWith('.eml'));
    } catch {
      /* no outbox yet */
    }
    for (const f of files) {
      const raw = await readFile(join(outbox, f), 'utf8');
      let text = decodeQuotedPrintable(raw);
      if (!text.includes(email)) {
        // Base64 bodies: decode every long base64 block and look again.
        for (const block of raw.match(/(?:^[A-Za-z0-9+/=]{40,}\r?\n)+/gm) ?? []) {
          text += Buffer.from(block.replace(/\s+/g, ''), 'base64').toString('utf8');
        }
        if (!text.includes(email)) continue;
      }
      const m = text.match(/https?:\/\/[^\s"'<>]+\/verify\?token=[A-Za-z0-9._~%-]+/);
      if (m) return m[0];
    }
    await sleep(200);
  }
  throw new Error(`no verification mail for ${email} in ${outbox}`);
}

/** `cameras`: how many fake cameras Chromium offers (fake_device_0, fake_device_1, …). */
export async function launchBrowser({ cameras = 1 } = {}) {
  const args = CHROMIUM_FLAGS.map((f) => (f === '--use-fake-device-for-media-stream' && cameras > 1 ? `${f}=device-count=${cameras}` : f));
  return chromium.launch({ executablePath: CHROMIUM, headless: true, args });
}

/**
 * A page in its own context (own cookies), with console errors collected. `contextOptions` go to
 * browser.newContext (e.g. `{ bypassCSP: true }` for a page whose media goes through a test relay
 * the server's policy does not list).
 */
export async function newPage(browser, base, name, contextOptions = {}) {
  const context = await browser.newContext({ baseURL: base, viewport: { width: 1280, height: 800 }, permissions: ['camera', 'microphone'], ...contextOptions });
  const page = await context.newPage();
  page.qmLog = [];
  page.on('console', (m) => {
    if (m.type() === 'error' || m.type() === 'warning') page.qmLog.push(`[${name}] ${m.type()}: ${m.text()}`);
  });
  page.on('pageerror', (e) => page.qmLog.push(`[${name}] pageerror: ${e.message}`));
  page.on('dialog', (d) => d.accept());
  // Every Content-Security-Policy violation the page meets (a script, worker or worklet the
  // server's policy refused), for cspViolations().
  await page.addInitScript(() => {
    globalThis.__qmCsp = [];
    document.addEventListener('securitypolicyviolation', (e) => globalThis.__qmCsp.push(`${e.effectiveDirective} ${e.blockedURI}`));
  });
  return page;
}

/** The CSP violations the page has reported so far ("directive blocked-uri" strings). */
export function cspViolations(page) {
  return page.evaluate(() => globalThis.__qmCsp ?? []);
}

export async function screenshot(page, name) {
  await mkdir(ARTIFACTS, { recursive: true });
  await page.screenshot({ path: join(ARTIFACTS, `${name}.png`) }).catch(() => undefined);
}

/** window.__quicmeet.state() from the page. */
export function roomState(page) {
  return page.evaluate(() => globalThis.__quicmeet?.state());
}

/**
 * A cheap fingerprint of the pixels of the first canvas matching `selector`. The tile canvases
 * may belong to a decode worker (transferControlToOffscreen), so the picture is read by drawing
 * the canvas onto a scratch one, which works either way.
 */
export function canvasFingerprint(page, selector) {
  return page.evaluate((sel) => {
    const c = document.querySelector(sel);
    if (!c || !c.width || !c.height) return null;
    const scratch = document.createElement('canvas');
    scratch.width = c.width;
    scratch.height = c.height;
    const ctx = scratch.getContext('2d');
    ctx.drawImage(c, 0, 0);
    const d = ctx.getImageData(0, 0, c.width, c.height).data;
    let h = 0;
    let lit = 0;
    for (let i = 0; i < d.length; i += 4 * 97) {
      h = (h * 31 + d[i] + d[i + 1] * 3 + d[i + 2] * 7) >>> 0;
      if (d[i] + d[i + 1] + d[i + 2] > 30) lit++;
    }
    return { h, lit, w: c.width, h2: c.height };
  }, selector);
}

/** Waits until the canvas shows something and then changes (live video, not a still). */
export async function expectLiveCanvas(page, selector, timeoutMs = 20_000) {
  const deadline = Date.now() + timeoutMs;
  let first = null;
  while (Date.now() < deadline) {
    const fp = await canvasFingerprint(page, selector);
    if (fp && fp.lit > 0) {
      if (first && fp.h !== first.h) return fp;
      first ??= fp;
    }
    await sleep(300);
  }
  throw new Error(`canvas ${selector} did not show changing video within ${timeoutMs} ms (first=${JSON.stringify(first)})`);
}

export async function waitFor(page, fn, arg, timeoutMs = 20_000, what = 'condition') {
  try {
    await page.waitForFunction(fn, arg, { timeout: timeoutMs, polling: 200 });
  } catch (e) {
    throw new Error(`timed out waiting for ${what}: ${e.message.split('\n')[0]}`);
  }
}

/**
 * Opens the meeting's page with `?query` (e.g. `transport=wt&pressure=off`), fills the guest
 * form when `guest` is given, joins and waits for the room.
 */
export async function joinMeeting(p, code, { guest = null, query = 'transport=wt' } = {}) {
  await p.goto(`/${code}?${query}`);
  await p.waitForSelector('.join-btn', { timeout: 15_000 });
  if (guest) {
    await p.fill('#gname', guest.name);
    await p.fill('#gemail', guest.email);
  }
  await p.click('.join-btn:not([disabled])');
  await p.waitForSelector('.room', { timeout: 20_000 });
}

/** Signs up, verifies through the outbox link and logs in, all through the REST API. */
export async function apiUser(page, server, name, email, password = 'correct horse 42') {
  const r = await page.request.post('/api/auth/signup', { data: { name, email, password } });
  if (r.status() !== 201) throw new Error(`signup ${r.status()}: ${await r.text()}`);
  const link = await verificationLink(server.dataDir, email);
  const token = new URL(link).searchParams.get('token');
  const v = await page.request.post('/api/auth/verify', { data: { token } });
  if (!v.ok()) throw new Error(`verify ${v.status()}: ${await v.text()}`);
  const l = await page.request.post('/api/auth/login', { data: { email, password } });
  if (!l.ok()) throw new Error(`login ${l.status()}: ${await l.text()}`);
  return (await l.json()).user;
}

export async function apiMeeting(page, body) {
  const r = await page.request.post('/api/meetings', {
    data: { title: 'E2E', start: new Date(Date.now() + 60_000).toISOString(), duration_minutes: 30, type: 'public', invitees: [], ...body },
  });
  if (r.status() !== 201) throw new Error(`create meeting ${r.status()}: ${await r.text()}`);
  return (await r.json()).meeting;
}

/** A Prometheus counter from the server's /metrics, summed over labels. */
export async function metric(server, name) {
  const text = await (await fetch(`${server.base}/metrics`)).text();
  let sum = 0;
  let found = false;
  for (const line of text.split('\n')) {
    const m = line.match(/^([a-z_]+)(?:\{[^}]*\})? ([0-9.e+-]+)$/);
    if (m && m[1] === name) {
      sum += Number(m[2]);
      found = true;
    }
  }
  if (!found) throw new Error(`${name} missing from /metrics`);
  return sum;
}

export async function cleanup(...fns) {
  for (const f of fns) {
    try {
      await f?.();
    } catch {
      /* best effort */
    }
  }
}
