// CPU figures for the benchmarks, from /proc (Linux): how busy the whole machine was, and how much
// CPU a process and its descendants (a browser and its renderers, the server) used, over a window.
import { readdirSync, readFileSync } from 'node:fs';

const TICK = 100; // USER_HZ, 100 on Linux

function machine() {
  const f = readFileSync('/proc/stat', 'utf8').split('\n')[0].trim().split(/\s+/).slice(1).map(Number);
  const idle = f[3] + (f[4] ?? 0);
  const total = f.reduce((a, b) => a + b, 0);
  return { idle, total };
}

function procs() {
  const out = new Map();
  for (const d of readdirSync('/proc')) {
    if (!/^\d+$/.test(d)) continue;
    try {
      const st = readFileSync(`/proc/${d}/stat`, 'utf8');
      const rest = st.slice(st.lastIndexOf(')') + 2).split(' ');
      out.set(Number(d), { ppid: Number(rest[1]), ticks: Number(rest[11]) + Number(rest[12]), name: st.slice(st.indexOf('(') + 1, st.lastIndexOf(')')) });
    } catch {
      /* gone */
    }
  }
  return out;
}

function treeTicks(all, root) {
  let sum = 0;
  const stack = Array.isArray(root) ? [...root] : [root];
  const seen = new Set();
  while (stack.length) {
    const pid = stack.pop();
    if (seen.has(pid)) continue;
    seen.add(pid);
    const p = all.get(pid);
    if (p) sum += p.ticks;
    for (const [c, q] of all) if (q.ppid === pid) stack.push(c);
  }
  return sum;
}

/** The direct children of `pid` except `except` (e.g. this script's browser, not its server). */
export function childrenOf(pid, except = []) {
  return [...procs()].filter(([c, p]) => p.ppid === pid && !except.includes(c)).map(([c]) => c);
}

/**
 * Starts a window; `end()` returns { cores, machineBusy (share of all cores, 0..1), trees: {name:
 * cores used on average} } for the named process trees (name → root pid, or a list of them).
 */
export function cpuWindow(roots) {
  const t0 = performance.now();
  const m0 = machine();
  const all0 = procs();
  const r0 = Object.fromEntries(Object.entries(roots).map(([k, pid]) => [k, treeTicks(all0, pid ?? [])]));
  return {
    end() {
      const secs = (performance.now() - t0) / 1000;
      const m1 = machine();
      const all1 = procs();
      const trees = Object.fromEntries(Object.entries(roots).map(([k, pid]) => [k, (treeTicks(all1, pid ?? []) - r0[k]) / TICK / secs]));
      const dt = m1.total - m0.total;
      return { machineBusy: dt > 0 ? 1 - (m1.idle - m0.idle) / dt : NaN, trees };
    },
  };
}
