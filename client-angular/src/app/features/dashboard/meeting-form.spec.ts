import { emptyForm, toMeetingInput } from './meeting-form';

describe('meeting form', () => {
  it('builds the API body from local date and time', () => {
    const r = toMeetingInput({ title: ' Standup ', date: '2030-05-06', time: '09:30', duration: 15, type: 'team', invitees: 'a@x.io, b@y.io\nc@z.io' });
    expect(typeof r).toBe('object');
    if (typeof r === 'object') {
      expect(r.title).toBe('Standup');
      expect(new Date(r.start).getTime()).toBe(new Date('2030-05-06T09:30').getTime());
      expect(r.duration_minutes).toBe(15);
      expect(r.invitees).toEqual(['a@x.io', 'b@y.io', 'c@z.io']);
    }
  });
  it('explains what is wrong', () => {
    const base = emptyForm(new Date('2030-01-01T10:10:00'));
    expect(base.time).toBe('11:00');
    expect(toMeetingInput({ ...base, title: '' })).toMatch(/title/);
    expect(toMeetingInput({ ...base, title: 'x', invitees: 'nope' })).toMatch(/not an email/);
    expect(toMeetingInput({ ...base, title: 'x', duration: 1 })).toMatch(/Duration/);
  });
});
