import { TestBed } from '@angular/core/testing';
import { ApiService } from '../api/api.service';
import { MeetingsService } from './meetings.service';

describe('MeetingsService', () => {
  it('"Create meeting" on the landing page starts a public hour-long meeting now, named after its host', async () => {
    const createMeeting = vi.fn(async () => ({ code: 'abc-defg-hij' }));
    TestBed.configureTestingModule({ providers: [{ provide: ApiService, useValue: { createMeeting } }] });
    const before = Date.now();
    const m = await TestBed.inject(MeetingsService).startNow('Ada');
    expect(m.code).toBe('abc-defg-hij');
    const [input] = createMeeting.mock.calls[0] as unknown as [{ title: string; start: string; duration_minutes: number; type: string; invitees: string[] }];
    expect(input).toMatchObject({ title: "Ada's meeting", duration_minutes: 60, type: 'public', invitees: [] });
    expect(Date.parse(input.start)).toBeGreaterThanOrEqual(before - 1000);
  });
});
