import { inject, Injectable } from '@angular/core';
import { Meeting, MeetingInput } from '../api/api.models';
import { ApiService } from '../api/api.service';

/**
 * Meetings as the pages use them: list, schedule, change, cancel, start one now. The REST calls
 * stay in ApiService; this is the one place that knows what a meeting request looks like.
 */
@Injectable({ providedIn: 'root' })
export class MeetingsService {
  private readonly api = inject(ApiService);

  list(): Promise<Meeting[]> {
    return this.api.listMeetings();
  }

  get(code: string): Promise<Meeting> {
    return this.api.getMeeting(code);
  }

  create(input: MeetingInput): Promise<Meeting> {
    return this.api.createMeeting(input);
  }

  update(code: string, patch: Partial<MeetingInput>): Promise<Meeting> {
    return this.api.updateMeeting(code, patch);
  }

  cancel(code: string): Promise<unknown> {
    return this.api.cancelMeeting(code);
  }

  icsUrl(code: string): string {
    return this.api.icsUrl(code);
  }

  /** "New meeting" on the landing page: a public hour-long meeting starting now, named after its host. */
  startNow(hostName: string): Promise<Meeting> {
    return this.api.createMeeting({ title: `${hostName}'s meeting`, start: new Date().toISOString(), duration_minutes: 60, type: 'public', invitees: [] });
  }
}
