import WORKLET_SOURCE from './audio-mixer.worklet.js' with { loader: 'text' };

interface Port {
  onmessage: ((e: { data: unknown }) => void) | null;
  sent: unknown[];
  postMessage(m: unknown): void;
}
interface Processor {
  port: Port;
  process(inputs: Float32Array[][], outputs: Float32Array[][]): boolean;
}

/** Runs the worklet source with stand-ins for the AudioWorkletGlobalScope. */
function loadMixer(contextRate: number): Processor {
  let ctor: (new () => Processor) | null = null;
  class Base {
    port: Port = {
      onmessage: null,
      sent: [],
      postMessage(m: unknown) {
        this.sent.push(m);
      },
    };
  }
  new Function('AudioWorkletProcessor', 'registerProcessor', 'sampleRate', WORKLET_SOURCE)(
    Base,
    (_name: string, c: new () => Processor) => (ctor = c),
    contextRate,
  );
  if (!ctor) throw new Error('registerProcessor was not called');
  return new (ctor as new () => Processor)();
}

function render(p: Processor, quanta: number): Float32Array {
  const out = new Float32Array(128 * quanta);
  for (let q = 0; q < quanta; q++) {
    const outputs = [[new Float32Array(128), new Float32Array(128)]];
    p.process([], outputs);
    out.set(outputs[0][0], q * 128);
    expect(outputs[0][1]).toEqual(outputs[0][0]);
  }
  return out;
}

const tone = (n: number, value: number) => new Float32Array(n).fill(value);

describe('audio mixer worklet', () => {
  it('stays silent until 40 ms are buffered, then plays', () => {
    const p = loadMixer(44100);
    p.port.onmessage!({ data: { type: 'pcm', id: 16, rate: 48000, samples: tone(960, 0.5) } });
    expect(Math.max(...render(p, 2))).toBe(0);
    p.port.onmessage!({ data: { type: 'pcm', id: 16, rate: 48000, samples: tone(960, 0.5) } });
    const out = render(p, 2);
    expect(out[0]).toBeCloseTo(0.5);
    expect(out[255]).toBeCloseTo(0.5);
  });

  it('resamples 48 kHz to the context rate: 40 ms in gives ~40 ms out', () => {
    const p = loadMixer(44100);
    p.port.onmessage!({ data: { type: 'pcm', id: 16, rate: 48000, samples: tone(1920, 0.25) } });
    const out = render(p, 20);
    const played = out.filter((x) => x !== 0).length;
    expect(Math.abs(played - 1764)).toBeLessThanOrEqual(2);
  });

  it('mixes speakers and clamps the sum', () => {
    const p = loadMixer(48000);
    for (const id of [16, 32, 48]) p.port.onmessage!({ data: { type: 'pcm', id, rate: 48000, samples: tone(1920, 0.5) } });
    const out = render(p, 1);
    expect(out[10]).toBe(1);
    p.port.onmessage!({ data: { type: 'remove', id: 32 } });
    p.port.onmessage!({ data: { type: 'remove', id: 48 } });
    expect(render(p, 1)[10]).toBeCloseTo(0.5);
  });

  it('drops the oldest audio more than 80 ms above its target', () => {
    const p = loadMixer(48000);
    for (let i = 0; i < 20; i++) p.port.onmessage!({ data: { type: 'pcm', id: 16, rate: 48000, samples: tone(960, i < 10 ? 0.1 : 0.9) } });
    // 400 ms sent, at most 40 + 80 ms kept: what plays first is from the newer half.
    expect(render(p, 1)[0]).toBeCloseTo(0.9);
  });

  it('starts at the target the page sets, and waits for it again after running dry', () => {
    const p = loadMixer(48000);
    p.port.onmessage!({ data: { type: 'target', id: 16, ms: 60 } });
    for (let i = 0; i < 2; i++) p.port.onmessage!({ data: { type: 'pcm', id: 16, rate: 48000, samples: tone(960, 0.5) } });
    expect(Math.max(...render(p, 2))).toBe(0); // 40 ms buffered, 60 wanted
    p.port.onmessage!({ data: { type: 'pcm', id: 16, rate: 48000, samples: tone(960, 0.5) } });
    expect(render(p, 1)[0]).toBeCloseTo(0.5);
    // 60 ms = 22.5 quanta: it runs dry, then waits for a full target again.
    render(p, 25);
    p.port.onmessage!({ data: { type: 'pcm', id: 16, rate: 48000, samples: tone(960, 0.5) } });
    expect(Math.max(...render(p, 2))).toBe(0);
  });

  it('plays an excess above the target slightly faster, so latency comes down without a gap', () => {
    const p = loadMixer(48000);
    p.port.onmessage!({ data: { type: 'target', id: 16, ms: 20 } });
    // 100 ms arrive at once (a burst after a stall): 80 ms above the target.
    for (let i = 0; i < 5; i++) p.port.onmessage!({ data: { type: 'pcm', id: 16, rate: 48000, samples: tone(960, 0.5) } });
    const out = render(p, 40); // 40 quanta = 5120 samples of output time
    const played = out.filter((x) => x !== 0).length;
    // At normal speed 4800 input samples last 4800 output samples; compressed they end sooner,
    // with no gap before the end.
    expect(played).toBeLessThan(4800);
    expect(played).toBeGreaterThan(4500);
    expect(out.slice(0, played).every((x) => x !== 0)).toBe(true);
  });

  it('reports how many samples of remote audio it played, and how often a speaker ran dry', () => {
    const p = loadMixer(48000);
    p.port.onmessage!({ data: { type: 'pcm', id: 16, rate: 48000, samples: tone(1920, 0.5) } });
    render(p, 100);
    // 40 ms at 48 kHz were played in the first 100 quanta, then the speaker ran dry once.
    expect(p.port.sent).toEqual([{ type: 'rendered', samples: 1920, underruns: [[16, 1]] }]);
  });
});
