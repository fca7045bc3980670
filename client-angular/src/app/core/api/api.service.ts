import { HttpClient, HttpErrorResponse } from '@angular/common/http';
import { inject, Injectable } from '@angular/core';
import { firstValueFrom, Observable } from 'rxjs';
import { ApiError, GuestInfo, JoinAnswer, Meeting, MeetingInput, User } from './api.models';

/** Thin typed client for the REST API. Every failure becomes an ApiError with the server's message. */
@Injectable({ providedIn: 'root' })
export class ApiService {
  private readonly http = inject(HttpClient);

  signup(body: { name: string; email: string; password: string }): Promise<{ user: User; message?: string }> {
    return this.call(this.http.post<{ user: User; message?: string }>('/api/auth/signup', body));
  }
  verify(token: string): Promise<{ user: User }> {
    return this.call(this.http.post<{ user: User }>('/api/auth/verify', { token }));
  }
  resend(email: string): Promise<{ message?: string }> {
    return this.call(this.http.post<{ message?: string }>('/api/auth/resend', { email }));
  }
  login(email: string, password: string): Promise<{ user: User }> {
    return this.call(this.http.post<{ user: User }>('/api/auth/login', { email, password }));
  }
  logout(): Promise<unknown> {
    return this.call(this.http.post('/api/auth/logout', null));
  }
  me(): Promise<{ user: User }> {
    return this.call(this.http.get<{ user: User }>('/api/me'));
  }

  createMeeting(input: MeetingInput): Promise<Meeting> {
    return this.call(this.http.post<{ meeting: Meeting }>('/api/meetings', input)).then((r) => r.meeting);
  }
  listMeetings(): Promise<Meeting[]> {
    return this.call(this.http.get<{ meetings: Meeting[] }>('/api/meetings')).then((r) => r.meetings ?? []);
  }
  getMeeting(code: string): Promise<Meeting> {
    return this.call(this.http.get<{ meeting: Meeting }>(`/api/meetings/${encodeURIComponent(code)}`)).then((r) => r.meeting);
  }
  updateMeeting(code: string, patch: Partial<MeetingInput>): Promise<Meeting> {
    return this.call(this.http.patch<{ meeting: Meeting }>(`/api/meetings/${encodeURIComponent(code)}`, patch)).then(
      (r) => r.meeting,
    );
  }
  /** Host: allow or forbid peer-to-peer calls in a meeting. */
  setMeetingP2p(code: string, enabled: boolean): Promise<Meeting> {
    return this.call(this.http.put<{ meeting: Meeting }>(`/api/meetings/${encodeURIComponent(code)}/p2p`, { enabled })).then((r) => r.meeting);
  }
  cancelMeeting(code: string): Promise<unknown> {
    return this.call(this.http.delete(`/api/meetings/${encodeURIComponent(code)}`));
  }
  icsUrl(code: string): string {
    return `/api/meetings/${encodeURIComponent(code)}/ics`;
  }
  join(code: string, guest: GuestInfo = {}): Promise<JoinAnswer> {
    return this.call(this.http.post<JoinAnswer>(`/api/meetings/${encodeURIComponent(code)}/join`, guest));
  }

  private async call<T>(obs: Observable<T>): Promise<T> {
    try {
      return await firstValueFrom(obs);
    } catch (e) {
      throw toApiError(e);
    }
  }
}

export function toApiError(e: unknown): ApiError {
  if (e instanceof ApiError) return e;
  if (e instanceof HttpErrorResponse) {
    const body = e.error as { error?: { code?: string; message?: string } } | string | null;
    if (body && typeof body === 'object' && body.error && typeof body.error.message === 'string') {
      return new ApiError(e.status, body.error.code ?? 'error', body.error.message);
    }
    if (e.status === 0) return new ApiError(0, 'network', 'Cannot reach the server. Check your connection and try again.');
    return new ApiError(e.status, 'http_' + e.status, `The server answered ${e.status} ${e.statusText || ''}`.trim());
  }
  return new ApiError(0, 'unknown', e instanceof Error ? e.message : String(e));
}
