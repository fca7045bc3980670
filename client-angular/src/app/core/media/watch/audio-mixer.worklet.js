// The audio mixer's AudioWorklet (loaded by audio-mixer.ts with audioWorklet.addModule). It is a
// file of its own, emitted by the build beside the app's scripts, so it loads from our origin
// under the CSP's `script-src 'self'` (a blob: URL would need `blob:` there). Plain JavaScript:
// it runs in the AudioWorkletGlobalScope, which has no access to the app's modules.
//
// One queue per remote speaker at 48 kHz, resampled by linear interpolation to the context's rate
// (44.1 kHz here) and summed. The queue is a jitter buffer whose target the page sets per speaker
// from the jitter it measures (audio-jitter.ts; 40 ms until the page says otherwise):
// - a speaker starts playing, and starts again after running dry, once the target is buffered;
// - more than 20 ms above the target, it plays 5 % faster (a pitch change nobody notices in
//   speech) until it is back near the target, so the latency comes down without a gap;
// - more than 80 ms above the target, the oldest audio is dropped: late audio is worse than a
//   gap.
// About every 0.3 s it tells the page how many samples it has played from remote speakers (so the
// page and its tests know the output really runs) and how often each speaker ran dry (the page's
// policy grows that speaker's target).
const DEFAULT_TARGET_S = 0.04;
const COMPRESS_ABOVE_S = 0.02;
const COMPRESS_UNTIL_S = 0.005;
const DROP_ABOVE_S = 0.08;
const SPEEDUP = 1.05;

class QmMixer extends AudioWorkletProcessor {
  constructor() {
    super();
    this.sources = new Map();
    this.rendered = 0;
    this.quanta = 0;
    const source = (id, rate) => {
      let s = this.sources.get(id);
      if (!s) {
        s = { chunks: [], offset: 0, buffered: 0, playing: false, compressing: false, pos: 0, rate, target: DEFAULT_TARGET_S, underruns: 0 };
        this.sources.set(id, s);
      }
      return s;
    };
    const onPcm = (e) => {
      const m = e.data;
      if (m.type === 'pcm') {
        const s = source(m.id, m.rate);
        s.rate = m.rate;
        s.chunks.push(m.samples);
        s.buffered += m.samples.length;
        const max = m.rate * (s.target + DROP_ABOVE_S);
        while (s.buffered > max && s.chunks.length > 1) {
          const c = s.chunks.shift();
          s.buffered -= c.length - s.offset;
          s.offset = 0;
          s.pos = 0;
        }
      } else if (m.type === 'target') {
        source(m.id, 48000).target = Math.max(0.01, Math.min(0.2, m.ms / 1000));
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
      if (!s.playing) {
        if (s.chunks.length && s.buffered >= s.rate * s.target) s.playing = true;
        else continue;
      }
      // What is left to play: the head chunk is counted whole until it is used up.
      const excess = (s.buffered - s.pos) / s.rate - s.target;
      if (excess > COMPRESS_ABOVE_S) s.compressing = true;
      else if (excess < COMPRESS_UNTIL_S) s.compressing = false;
      const step = (s.rate / sampleRate) * (s.compressing ? SPEEDUP : 1);
      for (let i = 0; i < out.length; i++) {
        if (s.chunks.length === 0) {
          s.playing = false;
          s.underruns++;
          break;
        }
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
    if (++this.quanta % 100 === 0) {
      const underruns = [];
      for (const [id, s] of this.sources) if (s.underruns) underruns.push([id, s.underruns]);
      this.port.postMessage(underruns.length ? { type: 'rendered', samples: this.rendered, underruns } : { type: 'rendered', samples: this.rendered });
    }
    return true;
  }
}
registerProcessor('qm-mixer', QmMixer);
