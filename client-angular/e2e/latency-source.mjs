// Page-side code for the glass-to-glass benchmark, injected with addInitScript / evaluate.
//
// The camera is a canvas that paints its own wall-clock time (ms, low 32 bits) as a binary stripe
// across the top of every frame: two rows of 32 blocks, the second row inverted, so a receiver
// can tell a clean read from a smeared one. The receiving page reads the stripe back from the
// tile canvas the client painted, on every animation frame, and records now − stamp.

/** Replaces the camera (not the microphone) with the stamping canvas. Runs before the app. */
export function installStampingCamera({ width = 640, height = 480, fps = 30 } = {}) {
  const W = width;
  const H = height;
  const BITS = 32;
  const canvas = document.createElement('canvas');
  canvas.width = W;
  canvas.height = H;
  const ctx = canvas.getContext('2d');
  let n = 0;
  const paint = () => {
    n++;
    // A moving picture, so the encoder has real work and frames differ.
    ctx.fillStyle = `hsl(${(n * 3) % 360} 60% 45%)`;
    ctx.fillRect(0, 0, W, H);
    ctx.fillStyle = '#ddd';
    ctx.fillRect((n * 7) % W, H / 4, H / 6, H / 6);
    const stamp = Math.floor(performance.timeOrigin + performance.now()) >>> 0;
    const bw = W / BITS;
    for (let i = 0; i < BITS; i++) {
      const bit = (stamp >>> (BITS - 1 - i)) & 1;
      ctx.fillStyle = bit ? '#fff' : '#000';
      ctx.fillRect(i * bw, 0, bw, H / 20);
      ctx.fillStyle = bit ? '#000' : '#fff';
      ctx.fillRect(i * bw, H / 20, bw, H / 20);
    }
  };
  paint();
  setInterval(paint, 1000 / fps);
  const stream = canvas.captureStream(fps);
  const real = navigator.mediaDevices.getUserMedia.bind(navigator.mediaDevices);
  navigator.mediaDevices.getUserMedia = async (c) => {
    if (c && c.video) {
      const rest = c.audio ? await real({ audio: c.audio }) : null;
      const tracks = [stream.getVideoTracks()[0].clone(), ...(rest ? rest.getAudioTracks() : [])];
      return new MediaStream(tracks);
    }
    return real(c);
  };
  // Main-thread long tasks (> 50 ms), counted from page load.
  globalThis.__qmLongTasks = { count: 0, ms: 0 };
  try {
    new PerformanceObserver((list) => {
      for (const e of list.getEntries()) {
        globalThis.__qmLongTasks.count++;
        globalThis.__qmLongTasks.ms += e.duration;
      }
    }).observe({ type: 'longtask', buffered: true });
  } catch {
    /* no long-task timing here */
  }
}

/**
 * Starts reading stripes back from every remote camera tile (of the participants in `only`, when
 * given: simulated participants send no stripe); samples accumulate in
 * globalThis.__qmG2g: { trackId, g2g, readAt, captureTsUs, paintedAt }.
 */
export function startStripeReader(only = null) {
  const BITS = 32;
  globalThis.__qmG2g = [];
  const last = new Map();
  const scratch = document.createElement('canvas');
  const sctx = scratch.getContext('2d', { willReadFrequently: true });
  const read = (canvas) => {
    const w = canvas.width;
    const h = canvas.height;
    if (!w || !h) return null;
    // The middle of each stripe row (each is 1/20 of the height) at any size.
    const y1 = Math.floor((12 / 480) * h);
    const y2 = Math.floor((36 / 480) * h);
    if (scratch.width !== w) scratch.width = w;
    scratch.height = 1;
    let v = 0;
    const rows = [y1, y2].map((y) => {
      sctx.drawImage(canvas, 0, y, w, 1, 0, 0, w, 1);
      return sctx.getImageData(0, 0, w, 1).data;
    });
    for (let i = 0; i < BITS; i++) {
      const x = Math.floor(((i + 0.5) * w) / BITS) * 4;
      const a = rows[0][x] + rows[0][x + 1] + rows[0][x + 2];
      const b = rows[1][x] + rows[1][x + 1] + rows[1][x + 2];
      if (Math.abs(a - b) < 150) return null; // smeared: not a clean read
      v = ((v << 1) | (a > b ? 1 : 0)) >>> 0;
    }
    return v;
  };
  const tick = () => {
    const now = performance.timeOrigin + performance.now();
    for (const c of document.querySelectorAll('.tile[data-self="false"] canvas')) {
      const tile = c.closest('.tile');
      const pid = Number(tile?.getAttribute('data-participant-id'));
      if (only && !only.includes(pid)) continue;
      const stamp = read(c);
      if (stamp === null) continue;
      if (last.get(pid) === stamp) continue;
      last.set(pid, stamp);
      // Undo the 32-bit wrap against our own clock.
      const g2g = ((Math.floor(now) >>> 0) - stamp) >>> 0;
      if (g2g > 60_000) continue;
      globalThis.__qmG2g.push({ trackId: pid * 16 + 1, g2g: g2g + (now - Math.floor(now)), readAt: now });
    }
    requestAnimationFrame(tick);
  };
  requestAnimationFrame(tick);
}
