// The audio mixer's AudioWorklet (loaded by audio-mixer.ts with audioWorklet.addModule). It is a
// file of its own, emitted by the build beside the app's scripts, so it loads from our origin
// under the CSP's `script-src 'self'` (a blob: URL would need `blob:` there). Plain JavaScript:
// it runs in the AudioWorkletGlobalScope, which has no access to the app's modules.
//
// One queue per remote speaker at 48 kHz, resampled by linear interpolation to the context's rate
// (44.1 kHz here) and summed. A speaker starts playing once 40 ms are buffered; more than 200 ms
// buffered drops the oldest audio to keep latency down. About every 0.3 s it tells the page how
// many samples it has played from remote speakers, so the page (and its tests) know the output
// really runs.
class QmMixer extends AudioWorkletProcessor {
  constructor() {
    super();
    this.sources = new Map();
    this.rendered = 0;
    this.quanta = 0;
    const onPcm = (e) => {
      const m = e.data;
      if (m.type === 'pcm') {
        let s = this.sources.get(m.id);
        if (!s) { s = { chunks: [], offset: 0, buffered: 0, playing: false, pos: 0, rate: m.rate }; this.sources.set(m.id, s); }
        s.rate = m.rate;
        s.chunks.push(m.samples);
        s.buffered += m.samples.length;
        const max = m.rate * 0.2;
        while (s.buffered > max && s.chunks.length > 1) { const c = s.chunks.shift(); s.buffered -= c.length - s.offset; s.offset = 0; }
      } else if (m.type === 'remove') {
        this.sources.delete(m.id);
      }
    };
    // The decode worker's port, when decoding runs in a worker: PCM then bypasses the page.
    this.port.onmessage = (e) => {
      if (e.data.type === 'port') e.data.port.onmessage = onPcm;
      else onPcm(e);
    };
  }
  process(inputs, outputs) {
    const out = outputs[0][0];
    out.fill(0);
    let heard = 0;
    for (const s of this.sources.values()) {
      if (!s.playing) { if (s.buffered >= s.rate * 0.04) s.playing = true; else continue; }
      const step = s.rate / sampleRate;
      for (let i = 0; i < out.length; i++) {
        if (s.chunks.length === 0) { s.playing = false; break; }
        if (i >= heard) heard = i + 1;
        const c = s.chunks[0];
        const idx = s.offset + s.pos;
        const i0 = Math.floor(idx);
        const frac = idx - i0;
        const a = c[i0];
        const b = i0 + 1 < c.length ? c[i0 + 1] : (s.chunks[1] ? s.chunks[1][0] : a);
        out[i] += a + (b - a) * frac;
        s.pos += step;
        while (s.chunks.length && s.offset + s.pos >= s.chunks[0].length) {
          const used = s.chunks[0].length - s.offset;
          s.pos -= used;
          s.buffered -= used;
          s.offset = 0;
          s.chunks.shift();
        }
      }
    }
    for (let i = 0; i < out.length; i++) out[i] = Math.max(-1, Math.min(1, out[i]));
    for (let ch = 1; ch < outputs[0].length; ch++) outputs[0][ch].set(out);
    this.rendered += heard;
    if (++this.quanta % 100 === 0) this.port.postMessage({ type: 'rendered', samples: this.rendered });
    return true;
  }
}
registerProcessor('qm-mixer', QmMixer);
