import { MeetingInput, MeetingType, Meeting } from '../../core/api/api.models';

/** The dashboard form's fields, as the inputs hold them (local date and time). */
export interface MeetingFormValue {
  title: string;
  date: string;
  time: string;
  duration: number;
  type: MeetingType;
  invitees: string;
}

const pad = (n: number) => String(n).padStart(2, '0');

export function emptyForm(now = new Date()): MeetingFormValue {
  const start = new Date(now.getTime() + 30 * 60_000);
  start.setMinutes(start.getMinutes() < 30 ? 30 : 60, 0, 0);
  return { title: '', date: localDate(start), time: localTime(start), duration: 30, type: 'private', invitees: '' };
}

export function formFromMeeting(m: Meeting): MeetingFormValue {
  const d = new Date(m.start);
  return { title: m.title, date: localDate(d), time: localTime(d), duration: m.duration_minutes, type: m.type, invitees: (m.invitees ?? []).join(', ') };
}

export function localDate(d: Date): string {
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())}`;
}
export function localTime(d: Date): string {
  return `${pad(d.getHours())}:${pad(d.getMinutes())}`;
}

/** Turns the form into the API body; returns an error message instead when it is not valid. */
export function toMeetingInput(v: MeetingFormValue): MeetingInput | string {
  const title = v.title.trim();
  if (!title) return 'Give the meeting a title.';
  const start = new Date(`${v.date}T${v.time}`);
  if (!v.date || !v.time || isNaN(start.getTime())) return 'Pick a valid date and time.';
  const duration = Math.round(Number(v.duration));
  if (!(duration >= 5 && duration <= 24 * 60)) return 'Duration must be between 5 minutes and 24 hours.';
  const invitees = v.invitees
    .split(/[\s,;]+/)
    .map((s) => s.trim())
    .filter(Boolean);
  const bad = invitees.find((e) => !/^[^@\s]+@[^@\s]+\.[^@\s]+$/.test(e));
  if (bad) return `"${bad}" is not an email address.`;
  return { title, start: start.toISOString(), duration_minutes: duration, type: v.type, invitees };
}
