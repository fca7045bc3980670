import { initials, parseMeetingCode } from './initials';

describe('initials and codes', () => {
  it('makes initials', () => {
    expect(initials('Ada Lovelace')).toBe('AL');
    expect(initials('  grace ')).toBe('G');
    expect(initials('')).toBe('?');
  });
  it('extracts a meeting code from a code or a link', () => {
    expect(parseMeetingCode('abc-defg-hij')).toBe('abc-defg-hij');
    expect(parseMeetingCode('http://localhost:8080/abc-defg-hij?transport=ws')).toBe('abc-defg-hij');
    expect(parseMeetingCode(' ABC-DEFG-HIJ ')).toBe('abc-defg-hij');
    expect(parseMeetingCode('hello')).toBeNull();
  });
});
