import { ControlStreamReader, encodeControlFrame, parseWsMessage, wsControl, WS_MEDIA } from './control';

describe('control framing', () => {
  it('prefixes JSON with a u32 big-endian length and the version', () => {
    const b = encodeControlFrame({ type: 'ping', t: 5 });
    const len = new DataView(b.buffer).getUint32(0);
    expect(len).toBe(b.byteLength - 4);
    expect(JSON.parse(new TextDecoder().decode(b.subarray(4)))).toEqual({ v: 1, type: 'ping', t: 5 });
  });

  it('splits messages arriving in pieces', () => {
    const a = encodeControlFrame({ type: 'chat', text: 'héllo' });
    const b = encodeControlFrame({ type: 'leave' });
    const both = new Uint8Array([...a, ...b]);
    const r = new ControlStreamReader();
    const got: string[] = [];
    for (const byte of both) got.push(...r.pushRaw(new Uint8Array([byte])));
    expect(got.map((j) => JSON.parse(j).type)).toEqual(['chat', 'leave']);
    expect(JSON.parse(got[0]).text).toBe('héllo');
  });

  it('refuses absurd lengths', () => {
    expect(() => new ControlStreamReader().pushRaw(new Uint8Array([0xff, 0xff, 0xff, 0xff]))).toThrow();
  });

  it('tags websocket messages with a type byte', () => {
    const m = wsControl({ type: 'leave' });
    expect(m[0]).toBe(1);
    const p = parseWsMessage(m);
    expect(p.kind === 'control' && JSON.parse(new TextDecoder().decode(p.body)).type).toBe('leave');
    const media = parseWsMessage(new Uint8Array([WS_MEDIA, 9, 9]));
    expect(media.kind === 'media' && media.bytes.byteLength).toBe(2);
    expect(() => parseWsMessage(new Uint8Array([7]))).toThrow();
  });
});
