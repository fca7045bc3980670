import { describe, expect, it } from 'vitest';
import { PathGate } from './path-gate';

describe('PathGate', () => {
  it('plays the server path by default and lets direct frames fill in only while the server is silent', () => {
    const g = new PathGate(300);
    expect(g.accept('p2p', 0)).toBe(true);
    expect(g.accept('server', 10)).toBe(true);
    expect(g.accept('p2p', 20)).toBe(false);
    expect(g.accept('p2p', 311)).toBe(true);
  });

  it('switching to p2p keeps the server frames until direct frames arrive, then drops them', () => {
    const g = new PathGate(300);
    g.accept('server', 0);
    g.preferred = 'p2p';
    expect(g.accept('server', 33)).toBe(true);
    expect(g.accept('p2p', 40)).toBe(true);
    expect(g.accept('server', 66)).toBe(false);
  });

  it('switching back to the server keeps showing direct frames until the server delivers', () => {
    const g = new PathGate(300);
    g.preferred = 'p2p';
    g.accept('p2p', 0);
    g.preferred = 'server';
    expect(g.accept('p2p', 33)).toBe(true);
    expect(g.accept('server', 50)).toBe(true);
    expect(g.accept('p2p', 66)).toBe(false);
    expect(g.lastAt('server')).toBe(50);
  });
});
