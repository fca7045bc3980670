// The app and the API over HTTP/3 in Chromium: the real server with a TLS certificate (made
// here with openssl), Chromium forced to QUIC for that origin and told to trust the key.
// Run: QUICMEET_BIN=/path/to/quicmeet node --test client-angular/e2e/http3.test.mjs
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawn } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { chromium } from 'playwright-core';
import { CHROMIUM, CHROMIUM_FLAGS, STATIC_DIR } from './harness.mjs';

let dir;
let server;
let port;
let spki;

before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'qm-h3-'));
  const key = join(dir, 'key.pem');
  const cert = join(dir, 'cert.pem');
  execFileSync('openssl', ['ecparam', '-name', 'prime256v1', '-genkey', '-noout', '-out', key]);
  execFileSync('openssl', ['req', '-x509', '-new', '-key', key, '-sha256', '-days', '10',
    '-subj', '/CN=localhost', '-addext', 'subjectAltName=DNS:localhost,IP:127.0.0.1', '-out', cert]);
  // Chromium's --ignore-certificate-errors-spki-list wants base64(SHA-256(SubjectPublicKeyInfo)).
  const pub = execFileSync('openssl', ['x509', '-in', cert, '-pubkey', '-noout']);
  const der = execFileSync('openssl', ['pkey', '-pubin', '-outform', 'der'], { input: pub });
  spki = execFileSync('openssl', ['dgst', '-sha256', '-binary'], { input: der }).toString('base64');
  server = spawn(process.env.QUICMEET_BIN, [
    '--data-dir', join(dir, 'data'), '--http-addr', '127.0.0.1:0', '--quic-addr', '127.0.0.1:0',
    '--tls-cert', cert, '--tls-key', key, '--static-dir', STATIC_DIR, '--log', 'warn',
  ], { stdio: ['ignore', 'pipe', 'inherit'] });
  port = await new Promise((resolve, reject) => {
    let out = '';
    server.stdout.on('data', (d) => {
      out += d;
      const m = /QUICMEET_READY http=[^ ]+:(\d+)/.exec(out);
      if (m) resolve(Number(m[1]));
    });
    server.once('exit', (code) => reject(new Error(`server exited with ${code}`)));
  });
});

after(async () => {
  server?.kill('SIGTERM');
  if (dir) await rm(dir, { recursive: true, force: true });
});

test('the app loads over HTTP/3 under the CSP and the API answers over HTTP/3', async () => {
  const browser = await chromium.launch({
    executablePath: CHROMIUM,
    args: [
      ...CHROMIUM_FLAGS,
      `--origin-to-force-quic-on=localhost:${port}`,
      `--ignore-certificate-errors-spki-list=${spki}`,
      // Chromium resolves localhost to ::1 for QUIC; the server listens on 127.0.0.1.
      '--host-resolver-rules=MAP localhost 127.0.0.1',
    ],
  });
  try {
    const page = await browser.newPage();
    const violations = [];
    page.on('console', (m) => {
      if (/Content Security Policy/i.test(m.text())) violations.push(m.text());
    });
    const res = await page.goto(`https://localhost:${port}/signup`);
    assert.equal(res.status(), 200);
    assert.match(res.headers()['content-security-policy'], /frame-ancestors 'none'/);
    assert.equal(
      await page.evaluate(() => performance.getEntriesByType('navigation')[0].nextHopProtocol),
      'h3',
    );
    // The app ran (its script is allowed) and rendered the sign-up form.
    await page.locator('input[type="email"]').first().waitFor({ timeout: 20_000 });
    const api = await page.evaluate(async () => {
      const r = await fetch('/api/me');
      const entry = performance.getEntriesByType('resource').find((e) => e.name.endsWith('/api/me'));
      return { status: r.status, code: (await r.json()).error.code, protocol: entry?.nextHopProtocol };
    });
    assert.deepEqual(api, { status: 401, code: 'unauthenticated', protocol: 'h3' });
    assert.deepEqual(violations, []);
  } finally {
    await browser.close();
  }
});
