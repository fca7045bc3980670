// Benchmark, not a test: glass-to-glass video latency of a two-person call peer to peer against
// the same call through the server, on this machine. Each sender's camera is replaced by a
// canvas that paints the wall-clock time (ms mod 2^20) as 20 black/white blocks; each receiver
// reads the blocks back from the remote tile's canvas the moment the picture changes, so the
// figure covers capture → encode → network → decode → paint, whatever path carried it.
// Both browsers run on one machine, so their clocks agree.
// Run: QUICMEET_BIN=target/release/quicmeet node client-angular/e2e/bench/p2p-latency.mjs [seconds]
import {
  apiMeeting,
  apiUser,
  cleanup,
  launchBrowser,
  newPage,
  roomState,
  sleep,
  startServer,
  waitFor,
} from '../harness.mjs';

const SECONDS = Number(process.argv[2] ?? 15);
const BITS = 20;

/** Runs in the page before the app: getUserMedia video becomes the time-code canvas. */
function timecodeCamera(bits) {
  const orig = navigator.mediaDevices.getUserMedia.bind(navigator.mediaDevices);
  navigator.mediaDevices.getUserMedia = async (c) => {
    if (!c || !c.video) return orig(c);
    const canvas = document.createElement('canvas');
    canvas.width = 640;
    canvas.height = 480;
    const ctx = canvas.getContext('2d');
    const bw = canvas.width / bits;
    const draw = () => {
      const t = Math.floor(performance.timeOrigin + performance.now()) % (1 << bits);
      ctx.fillStyle = '#336';
      ctx.fillRect(0, 0, canvas.width, canvas.height);
      for (let i = 0; i < bits; i++) {
        ctx.fillStyle = (t >> (bits - 1 - i)) & 1 ? '#fff' : '#000';
        ctx.fillRect(i * bw, 0, bw, 48);
      }
      ctx.fillStyle = '#c84';
      ctx.fillRect((t / 4) % 600, 200, 40, 40);
    };
    draw();
    setInterval(draw, 5);
    return canvas.captureStream(30);
  };
}

/** Runs in the receiving page: samples the tile every 4 ms, one latency per new time code. */
function sampleLatency([selector, bits, ms]) {
  return new Promise((resolve) => {
    const out = [];
    let last = -1;
    const scratch = document.createElement('canvas').getContext('2d', { willReadFrequently: true });
    const timer = setInterval(() => {
      const c = document.querySelector(selector);
      if (!c || !c.width) return;
      const y = Math.floor((24 / 480) * c.height);
      scratch.canvas.width = c.width;
      scratch.canvas.height = 1;
      scratch.drawImage(c, 0, y, c.width, 1, 0, 0, c.width, 1);
      const row = scratch.getImageData(0, 0, c.width, 1).data;
      let t = 0;
      for (let i = 0; i < bits; i++) {
        const x = Math.floor(((i + 0.5) / bits) * c.width);
        t = (t << 1) | (row[x * 4] > 128 ? 1 : 0);
      }
      if (t === last) return;
      last = t;
      const now = Math.floor(performance.timeOrigin + performance.now()) % (1 << bits);
      const d = (now - t + (1 << bits)) % (1 << bits);
      if (d < 5000) out.push(d);
    }, 4);
    setTimeout(() => {
      clearInterval(timer);
      resolve(out);
    }, ms);
  });
}

function summary(xs) {
  const s = [...xs].sort((a, b) => a - b);
  const q = (p) => s[Math.min(s.length - 1, Math.floor(p * s.length))];
  return `median ${q(0.5)} ms, p90 ${q(0.9)} ms, n=${s.length}`;
}

async function run(server, browser, p2p) {
  const a = await newPage(browser, server.base, 'a');
  const b = await newPage(browser, server.base, 'b');
  for (const p of [a, b]) await p.addInitScript(timecodeCamera, BITS);
  await a.goto('/');
  await apiUser(a, server, 'Ann', `ann-${p2p}-${Date.now()}@example.com`);
  const m = await apiMeeting(a, { title: 'latency', type: 'public' });
  const r = await a.request.put(`/api/meetings/${m.code}/p2p`, { data: { enabled: p2p } });
  if (!r.ok()) throw new Error(`toggle ${r.status()}`);
  for (const [p, guest] of [
    [a, null],
    [b, { name: 'Bob', email: 'bob@example.com' }],
  ]) {
    await p.goto(`/${m.code}`);
    await p.waitForSelector('.join-btn');
    if (guest) {
      await p.fill('#gname', guest.name);
      await p.fill('#gemail', guest.email);
    }
    await p.click('.join-btn');
    await p.waitForSelector('.room');
  }
  const ids = [(await roomState(a)).selfId, (await roomState(b)).selfId];
  if (p2p)
    for (const p of [a, b])
      await waitFor(
        p,
        () => globalThis.__quicmeet.state().p2p.receivingDirect,
        undefined,
        20_000,
        'direct',
      );
  await sleep(3000);
  const [la, lb] = await Promise.all([
    a.evaluate(sampleLatency, [
      `.tile[data-participant-id="${ids[1]}"] canvas`,
      BITS,
      SECONDS * 1000,
    ]),
    b.evaluate(sampleLatency, [
      `.tile[data-participant-id="${ids[0]}"] canvas`,
      BITS,
      SECONDS * 1000,
    ]),
  ]);
  const path = (await roomState(a)).p2p.path;
  await a.context().close();
  await b.context().close();
  return { path, all: [...la, ...lb] };
}

// Server-made layers off: a small tile would otherwise get a transcoded layer, and this compares
// paths, not the transcoder (which a debug build runs far below real time).
process.env.QUICMEET_TRANSCODE_WORKERS ??= '0';
const server = await startServer();
const browser = await launchBrowser();
try {
  for (const p2p of [false, true]) {
    const r = await run(server, browser, p2p);
    console.log(
      `glass-to-glass ${p2p ? 'peer to peer' : 'through the server'} (path ${r.path}): ${summary(r.all)}`,
    );
  }
} finally {
  await cleanup(
    () => browser.close(),
    () => server.stop(),
  );
}
