// Glass-to-glass latency benchmark (not a test: it prints figures). For each transport (wt, ws)
// and meeting size (2, 4) it starts N headless Chromium contexts whose cameras are canvases that
// stamp their wall-clock time into the picture (latency-source.mjs), lets them join one meeting,
// and reads the stamps back from the painted tiles. Every page also records per-frame timings
// (sent, arrived, decode start, decoded, painted) through window.__quicmeet, which give the
// breakdown. Same machine, so all clocks agree.
//
// Run: QUICMEET_BIN=… node e2e/latency.bench.mjs   (scripts/bench-client.sh does it all)
// Env: QM_BENCH_SECONDS (measurement window, default 15), QM_BENCH_CASES (e.g. "wt:2,ws:4"),
// QM_BENCH_SERVER_ARGS (extra server options for the run), QM_LOADTEST_BIN (the load tester for
// "bots=K" cases; default: quicmeet-loadtest next to QUICMEET_BIN).
import { apiMeeting, apiUser, cleanup, launchBrowser, newPage, roomState, sleep, startServer, waitFor } from './harness.mjs';
import { installStampingCamera, startStripeReader } from './latency-source.mjs';
import { childrenOf, cpuWindow } from './cpu-sample.mjs';
import { cpus, loadavg } from 'node:os';
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';

const SECONDS = Number(process.env.QM_BENCH_SECONDS || 15);
/** The stamping camera: QM_BENCH_SOURCE=WxH@FPS (default 640x480@30, the client's camera cap). */
const [DEF_W, DEF_H, DEF_FPS] = (process.env.QM_BENCH_SOURCE || '640x480@30').split(/[x@]/).map(Number);
// A case is transport:people[:query]; the query (e.g. "workers=on") goes on every page's URL,
// so variants of the client can be compared in one run under the same load.
// "bots=K" in the query makes K of the people simulated participants (the load tester, joined
// as guests over the same transport, sending VP8 360p at 30 fps and Opus and watching everyone):
// each browser then does a K-person call's work (decodes people − 1 streams, encodes one) without
// sharing this machine's two cores with K more browsers, as each participant of a real call has
// their own machine. Latency is read between the browsers only.
const CASES = (process.env.QM_BENCH_CASES || 'wt:2,ws:2,wt:4:bots=2,ws:4:bots=2,wt:4,ws:4').split(',').map((c) => {
  const [t, n, query = ''] = c.split(':');
  return { transport: t, n: Number(n), query };
});

function pct(xs, p) {
  if (!xs.length) return NaN;
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))];
}
const f1 = (x) => (Number.isFinite(x) ? x.toFixed(1) : '–');

/** The server's queue and layer figures (Prometheus text), summed over labels. */
async function serverMetrics(server) {
  const text = await (await fetch(`${server.base}/metrics`)).text();
  const want = ['quicmeet_queue_frames', 'quicmeet_queue_bytes', 'quicmeet_layer_switches_total', 'quicmeet_media_dropped_by_queue_total', 'quicmeet_media_group_resets_total', 'quicmeet_transcode_frames_out_total'];
  const out = Object.fromEntries(want.map((k) => [k, 0]));
  for (const line of text.split('\n')) {
    const m = line.match(/^([a-z_]+)(?:\{[^}]*\})? ([0-9.e+-]+)$/);
    if (m && m[1] in out) out[m[1]] += Number(m[2]);
  }
  return out;
}

/** The load tester next to the server binary (or QM_LOADTEST_BIN). */
function loadtestBin() {
  return process.env.QM_LOADTEST_BIN || join(dirname(process.env.QUICMEET_BIN), 'quicmeet-loadtest');
}

/** K simulated participants joining `code` as guests for `seconds`; resolves when they are in. */
async function startBots(server, code, k, transport, seconds) {
  const base = server.base.replace('localhost', '127.0.0.1');
  const args = ['--server', base, '--meeting', code, '--guest', '--rooms', '1', '--publishers-per-room', String(k), '--subscribers-per-room', '0', '--transport', transport, '--video-res', '360p', '--video-kbps', '600', '--fps', '30', '--video-scene', 'camera', '--duration', String(seconds), '--ramp', '0'];
  if (!existsSync(loadtestBin())) {
    throw new Error(`"bots=" cases need the load tester: ${loadtestBin()} does not exist (cargo build -p quicmeet-loadtest, or set QM_LOADTEST_BIN)`);
  }
  const child = spawn(loadtestBin(), args, { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  child.stdout.on('data', (d) => (out += d));
  child.stderr.on('data', (d) => (out += d));
  const done = new Promise((r) => child.once('exit', (code) => r(code)));
  return {
    pid: child.pid,
    output: () => out,
    async stop() {
      const t = setTimeout(() => child.kill('SIGKILL'), 30_000);
      const code = await done;
      clearTimeout(t);
      return code;
    },
    kill: () => child.kill('SIGKILL'),
  };
}

async function runCase(server, { transport, n, query }) {
  const browser = await launchBrowser();
  const botsQ = /(?:^|&)bots=(\d+)/.exec(query);
  const bots = botsQ ? Number(botsQ[1]) : 0;
  const people = n - bots;
  if (people < 2) throw new Error(`case ${transport}:${n}:${query}: needs at least two browsers`);
  let botRun = null;
  // A case may set its own stamping camera: "wt:4:src=320x240@15".
  const src = /(?:^|&)src=(\d+)x(\d+)@(\d+)/.exec(query);
  const [SRC_W, SRC_H, SRC_FPS] = src ? src.slice(1).map(Number) : [DEF_W, DEF_H, DEF_FPS];
  try {
    const pages = [];
    for (let i = 0; i < people; i++) {
      const p = await newPage(browser, server.base, `p${i}`);
      // A case may set the window: "wt:4:vw=640x400" (small tiles want a lower layer).
      const vw = /(?:^|&)vw=(\d+)x(\d+)/.exec(query);
      if (vw) await p.setViewportSize({ width: Number(vw[1]), height: Number(vw[2]) });
      await p.addInitScript(installStampingCamera, { width: SRC_W, height: SRC_H, fps: SRC_FPS });
      pages.push(p);
    }
    await apiUser(pages[0], server, 'Lat Host', `lat-${Date.now()}-${transport}${n}@example.com`);
    const code = (await apiMeeting(pages[0], { title: `Latency ${transport} ${n}` })).code;
    const firstFrame = [];
    for (let i = 0; i < people; i++) {
      const p = pages[i];
      const extra = [process.env.QM_BENCH_QUERY, query].filter(Boolean).map((q) => `&${q}`).join('');
      await p.goto(`/${code}?transport=${transport}${extra}`);
      await p.waitForSelector('.join-btn', { timeout: 15_000 });
      if (i > 0) {
        await p.fill('#gname', `Guest ${i}`);
        await p.fill('#gemail', `g${i}@example.com`);
      }
      await p.waitForSelector('.preview video', { timeout: 15_000 });
      await p.click('.join-btn:not([disabled])');
      await p.waitForSelector('.room', { timeout: 20_000 });
      if (i > 0) {
        await waitFor(p, () => globalThis.__quicmeet.state().firstFrameMs !== null, undefined, 20_000, 'first frame');
        firstFrame.push((await roomState(p)).firstFrameMs);
      }
    }
    if (bots > 0) botRun = await startBots(server, code, bots, transport, Math.ceil(2 * SECONDS + 30));
    for (const p of pages) await waitFor(p, (k) => document.querySelectorAll('.tile[data-self="false"] canvas').length >= k, n - 1, 20_000, 'all tiles');
    await sleep(3000); // warm-up: encoders settle, layers chosen
    if (process.env.QM_BENCH_DEBUG) {
      for (const p of pages) {
        const d = await p.evaluate(() => ({
          tiles: [...document.querySelectorAll('.tile[data-self="false"] canvas')].map((c) => `${c.clientWidth}x${c.clientHeight}@${devicePixelRatio}`),
          remotes: globalThis.__quicmeet.state().media.remotes.map((r) => `${r.trackId}:L${r.layer} ${r.width}x${r.height}`),
          encoded: globalThis.__quicmeet.state().media.encoded.camera,
        }));
        console.log(JSON.stringify(d));
      }
      for (const l of server.log().split('\n').filter((l) => /layer|demand|estimate/i.test(l)).slice(-30)) console.log(l);
    }
    // Phase 1: the call alone, for the main thread's long tasks (the stripe reader below reads
    // canvases on the main thread, which costs more when a worker owns them).
    const longTasks = () => Promise.all(pages.map((p) => p.evaluate(() => ({ ...globalThis.__qmLongTasks }))));
    const longBefore = await longTasks();
    const l0 = Date.now();
    const load1 = loadavg()[0];
    // Where the CPU goes meanwhile: this case's browser (all its pages), the server, the rest.
    // (playwright-core's launched Browser does not expose its process: it is this script's
    // child that is not the server.)
    const botPid = botRun ? [botRun.pid] : [];
    const cpu = cpuWindow({ browser: childrenOf(process.pid, [server.pid(), ...botPid]), server: server.pid(), bots: botPid });
    await sleep(SECONDS * 1000);
    const cpuUse = cpu.end();
    const metrics = await serverMetrics(server);
    const longSecs = (Date.now() - l0) / 1000;
    const longAfter = await longTasks();
    // Phase 2: read the stamps back from the painted tiles.
    const browserIds = await Promise.all(pages.map((p) => p.evaluate(() => globalThis.__quicmeet.state().selfId)));
    for (const p of pages) await p.evaluate(startStripeReader, browserIds);
    const t0 = Date.now();
    await sleep(SECONDS * 1000);
    const elapsed = (Date.now() - t0) / 1000;
    const g2g = [];
    const parts = { encode: [], handoffOut: [], network: [], jitter: [], decode: [], paint: [] };
    // Network split by the layer received: the publisher's own (forwarded) or the server's.
    const networkDirect = [];
    const networkTranscoded = [];
    const timings = await Promise.all(pages.map((p) => p.evaluate(async () => ({ id: globalThis.__quicmeet.state().selfId, t: await globalThis.__quicmeet.timings(), g: globalThis.__qmG2g }))));
    const sentBy = new Map(timings.map((x) => [x.id, new Map(x.t.sent.map((s) => [s.captureTsUs, s]))]));
    let fps = 0;
    for (const x of timings) {
      for (const s of x.g) if (s.readAt >= 0) g2g.push(s.g2g);
      fps += x.g.length;
      for (const [trackId, frames] of Object.entries(x.t.received)) {
        const sent = sentBy.get(Math.floor(Number(trackId) / 16));
        for (const fr of frames) {
          const out = sent?.get(fr.captureTsUs);
          if (!out || !fr.painted) continue;
          // Older builds did not record encodedAt: the hand-off then counts as encode.
          const encodedAt = out.encodedAt ?? out.sentAt;
          parts.encode.push(encodedAt - fr.captureTsUs / 1000);
          parts.handoffOut.push(out.sentAt - encodedAt);
          parts.network.push(fr.arrived - out.sentAt);
          (fr.layer > 0 ? networkTranscoded : networkDirect).push(fr.arrived - out.sentAt);
          parts.jitter.push(fr.decodeStart - fr.arrived);
          parts.decode.push(fr.decoded - fr.decodeStart);
          parts.paint.push(fr.painted - fr.decoded);
        }
      }
    }
    // The size the tiles received (the publishers' encoders shrink it when the CPU cannot keep up).
    const sizes = {};
    for (const p of pages) for (const r of (await roomState(p)).media.remotes) if (r.width) sizes[`${r.width}x${r.height} L${r.layer}`] = (sizes[`${r.width}x${r.height} L${r.layer}`] ?? 0) + 1;
    // Lower layers the publishers make themselves at the end (publisher-made layers, PROTOCOL §5.6).
    let publisherLayers = 0;
    for (const p of pages) publisherLayers += (await roomState(p)).media.producedLayers?.length ?? 0;
    const sum = Object.keys(parts).reduce((a, k) => a + pct(parts[k], 50), 0);
    const longCount = longAfter.map((a, i) => a.count - longBefore[i].count);
    const longMs = longAfter.map((a, i) => a.ms - longBefore[i].ms);
    return {
      transport,
      n,
      query,
      sizes,
      publisherLayers,
      samples: g2g.length,
      readFps: fps / elapsed / (people * (people - 1)),
      bots,
      p50: pct(g2g, 50),
      p95: pct(g2g, 95),
      firstFrameP50: pct(firstFrame, 50),
      firstFrameMax: Math.max(...firstFrame),
      parts: Object.fromEntries(Object.entries(parts).map(([k, v]) => [k, pct(v, 50)])),
      // Capture (canvas → encoder input) and display (painted → seen by rAF) are what the
      // stamped picture shows beyond the header timings.
      rest: pct(g2g, 50) - sum,
      networkL0: pct(networkDirect, 50),
      networkL0Share: networkDirect.length / Math.max(1, networkDirect.length + networkTranscoded.length),
      networkTranscoded: pct(networkTranscoded, 50),
      pressure: await Promise.all(pages.map((p) => p.evaluate(() => globalThis.__quicmeet.state().media.encoded.pressure?.state))),
      metrics,
      source: `${SRC_W}x${SRC_H}@${SRC_FPS}`,
      load1,
      machineBusy: cpuUse.machineBusy,
      browserCores: cpuUse.trees.browser,
      serverCores: cpuUse.trees.server,
      botCores: cpuUse.trees.bots,
      longTasksPerPagePerMin: (longCount.reduce((a, b) => a + b, 0) / n / longSecs) * 60,
      longTaskMsPerPagePerMin: (longMs.reduce((a, b) => a + b, 0) / n / longSecs) * 60,
    };
  } finally {
    await browser.close();
    if (botRun) {
      botRun.kill();
      await botRun.stop();
      // What the simulated participants saw, when asked (or to tell why they never showed up).
      if (process.env.QM_BENCH_DEBUG) console.log(botRun.output());
    }
  }
}

// Measures the path through the server; with P2P on, two-person cases would go direct
// (e2e/bench/p2p-latency.mjs compares the two paths).
// QM_BENCH_SERVER_ARGS adds server options for the whole run, e.g. "--transcode-saturation-layers 0"
// (every lower layer a tile wants is made by its publisher's second encoder).
const server = await startServer({ extraArgs: ['--p2p', 'off', ...(process.env.QM_BENCH_SERVER_ARGS || '').split(/\s+/).filter(Boolean)] });
const rows = [];
try {
  for (const c of CASES) {
    const r = await runCase(server, c);
    rows.push(r);
    console.log(JSON.stringify(r));
  }
} finally {
  await cleanup(() => server.stop());
}
console.log('');
console.log(`source ${DEF_W}x${DEF_H}@${DEF_FPS} unless a case says otherwise; ${cpus().length} cores; load average at the end: ${loadavg().map((x) => x.toFixed(1)).join(' ')}`);
console.log('CPU during the long-task window (cores used; the machine has ' + cpus().length + '):');
for (const r of rows) {
  const other = r.machineBusy * cpus().length - r.browserCores - r.serverCores - r.botCores;
  console.log(`  ${r.transport}:${r.n}${r.query ? ':' + r.query : ''}: network p50 ${f1(r.networkL0)} ms for the publisher's own layer (${(r.networkL0Share * 100).toFixed(0)} % of frames), ${f1(r.networkTranscoded)} ms for lower layers (the server's or, when asked, the publisher's); publishers making layers ${r.publisherLayers}; CPU pressure ${r.pressure.join('/')}; server queues ${r.metrics.quicmeet_queue_frames} frames / ${r.metrics.quicmeet_queue_bytes} B, layer switches ${r.metrics.quicmeet_layer_switches_total}, transcoded frames ${r.metrics.quicmeet_transcode_frames_out_total}; load ${r.load1.toFixed(1)}, machine ${(r.machineBusy * 100).toFixed(0)} % busy; browser ${r.browserCores.toFixed(2)}, server ${r.serverCores.toFixed(2)}, simulated participants ${r.botCores.toFixed(2)}, everything else ${other.toFixed(2)}`);
}
console.log('| transport | people | g2g p50 | g2g p95 | encode | to main thread | network | jitter buf + to decoder | decode | paint | capture + display | join→first frame p50 / max | long tasks /page/min (ms/min) | samples | received size |');
console.log('|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|');
for (const r of rows) {
  const p = r.parts;
  console.log(
    `| ${r.transport === 'wt' ? 'WebTransport' : 'WebSocket'}${r.query ? ` ?${r.query}` : ''} | ${r.n}${r.bots ? ` (${r.n - r.bots} browsers)` : ''} | ${f1(r.p50)} | ${f1(r.p95)} | ${f1(p.encode)} | ${f1(p.handoffOut)} | ${f1(p.network)} | ${f1(p.jitter)} | ${f1(p.decode)} | ${f1(p.paint)} | ${f1(r.rest)} | ${f1(r.firstFrameP50)} / ${f1(r.firstFrameMax)} | ${f1(r.longTasksPerPagePerMin)} (${f1(r.longTaskMsPerPagePerMin)}) | ${r.samples} | ${Object.entries(r.sizes).map(([k, v]) => `${k}×${v}`).join(' ')} |`,
  );
}
process.exit(0);
