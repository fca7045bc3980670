import { hexToBytes, websocketUrl, withToken } from './connection';
import { transportPreferenceFromUrl, webTransportCandidates } from './transport.service';

describe('transport helpers', () => {
  it('turns certificate hashes from hex into bytes', () => {
    expect(Array.from(hexToBytes('00ff10'))).toEqual([0, 255, 16]);
    expect(Array.from(hexToBytes('AB:CD'))).toEqual([0xab, 0xcd]);
  });

  it('adds the token to the media URL', () => {
    expect(withToken('https://127.0.0.1:4433/wt', 'a b')).toBe('https://127.0.0.1:4433/wt?token=a+b');
  });

  it("uses the server's websocket URL or the page origin", () => {
    const loc = { protocol: 'http:', host: 'localhost:8080' };
    expect(websocketUrl('ws://x:1/ws', loc)).toBe('ws://x:1/ws');
    expect(websocketUrl(undefined, loc)).toBe('ws://localhost:8080/ws');
    expect(websocketUrl('/ws', { protocol: 'https:', host: 'h' })).toBe('wss://h/ws');
  });

  it('reads ?transport= from the page URL', () => {
    expect(transportPreferenceFromUrl('?transport=ws')).toBe('ws');
    expect(transportPreferenceFromUrl('?transport=wt')).toBe('wt');
    expect(transportPreferenceFromUrl('?x=1')).toBe('auto');
  });

  it('tries 127.0.0.1 after localhost for WebTransport', () => {
    expect(webTransportCandidates('https://localhost:4433/wt')).toEqual(['https://localhost:4433/wt', 'https://127.0.0.1:4433/wt']);
    expect(webTransportCandidates('https://meet.example.org/wt')).toEqual(['https://meet.example.org/wt']);
  });
});
