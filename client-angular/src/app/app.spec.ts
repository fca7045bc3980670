import { UrlSegment } from '@angular/router';
import { meetingCodeMatcher } from './app.routes';

describe('routes', () => {
  const seg = (...p: string[]) => p.map((x) => new UrlSegment(x, {}));
  it('treats /abc-defg-hij as a meeting link', () => {
    const m = meetingCodeMatcher(seg('abc-defg-hij'));
    expect(m?.posParams?.['code'].path).toBe('abc-defg-hij');
  });
  it('leaves other paths alone', () => {
    expect(meetingCodeMatcher(seg('dashboard'))).toBeNull();
    expect(meetingCodeMatcher(seg('abc-defg-hij', 'x'))).toBeNull();
  });
});
