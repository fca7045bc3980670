import { ChangeDetectionStrategy, Component, inject, OnInit, signal } from '@angular/core';
import { DatePipe } from '@angular/common';
import { FormsModule } from '@angular/forms';
import { RouterLink } from '@angular/router';
import { Meeting } from '../../core/api/api.models';
import { ApiService } from '../../core/api/api.service';
import { TopBar } from '../../shared/top-bar';
import { emptyForm, formFromMeeting, MeetingFormValue, toMeetingInput } from './meeting-form';

@Component({
  selector: 'app-dashboard',
  imports: [FormsModule, RouterLink, DatePipe, TopBar],
  changeDetection: ChangeDetectionStrategy.OnPush,
  template: `
    <app-top-bar />
    <main class="page dash">
      <section class="card" aria-labelledby="form-title">
        <h2 id="form-title">{{ editing() ? 'Edit meeting' : 'Schedule a meeting' }}</h2>
        <form (ngSubmit)="save()">
          <div class="field">
            <label for="title">Title</label>
            <input id="title" name="title" [(ngModel)]="form.title" required />
          </div>
          <div class="row">
            <div class="field">
              <label for="date">Date</label>
              <input id="date" name="date" type="date" [(ngModel)]="form.date" required />
            </div>
            <div class="field">
              <label for="time">Time</label>
              <input id="time" name="time" type="time" [(ngModel)]="form.time" required />
            </div>
            <div class="field">
              <label for="duration">Duration (minutes)</label>
              <input id="duration" name="duration" type="number" min="5" max="1440" step="5" [(ngModel)]="form.duration" required />
            </div>
            <div class="field">
              <label for="type">Who can join</label>
              <select id="type" name="type" [(ngModel)]="form.type">
                <option value="public">Public — anyone with the link</option>
                <option value="private">Private — invitees; others ask to join</option>
                <option value="team">Team — members of my team</option>
              </select>
            </div>
          </div>
          <div class="field">
            <label for="invitees">Invitees (emails, separated by commas or new lines)</label>
            <textarea id="invitees" name="invitees" rows="2" [(ngModel)]="form.invitees"></textarea>
          </div>
          @if (formError()) {
            <p class="error" role="alert">{{ formError() }}</p>
          }
          <div class="row">
            <button class="btn btn-primary" type="submit" [disabled]="busy()">{{ editing() ? 'Save changes' : 'Create meeting' }}</button>
            @if (editing()) {
              <button class="btn" type="button" (click)="cancelEdit()">Discard</button>
            }
          </div>
        </form>
        @if (created(); as m) {
          <div class="ok created" role="status">
            <span>Your meeting is ready: <a [routerLink]="['/', m.code]" data-testid="meeting-link">{{ m.link }}</a></span>
            <button type="button" class="btn" (click)="copy(m)">{{ copied() === m.code ? 'Copied' : 'Copy link' }}</button>
          </div>
        }
      </section>

      <section aria-labelledby="list-title" class="list">
        <h2 id="list-title">Upcoming meetings</h2>
        @if (listError()) {
          <p class="error" role="alert">{{ listError() }}</p>
        }
        @if (meetings().length === 0 && !loading()) {
          <p class="muted">No upcoming meetings.</p>
        }
        <ul class="meetings">
          @for (m of meetings(); track m.code) {
            <li class="card meeting" [class.cancelled]="m.cancelled" [attr.data-code]="m.code">
              <div class="mtitle">
                <strong>{{ m.title }}</strong>
                @if (m.cancelled) {
                  <span class="tag">Cancelled</span>
                }
                <span class="tag">{{ m.type }}</span>
                @if (m.role === 'invitee') {
                  <span class="tag">Invited by {{ m.host_name }}</span>
                }
              </div>
              <div class="muted">{{ m.start | date: 'EEE d MMM y, HH:mm' }} · {{ m.duration_minutes }} min · {{ m.code }}</div>
              <div class="row mactions">
                @if (!m.cancelled) {
                  <a class="btn btn-primary" [routerLink]="['/', m.code]">Join</a>
                }
                <button type="button" class="btn" (click)="copy(m)">{{ copied() === m.code ? 'Copied' : 'Copy link' }}</button>
                <a class="btn" [href]="api.icsUrl(m.code)" download>Download .ics</a>
                @if (m.role === 'host' && !m.cancelled) {
                  <button type="button" class="btn" (click)="edit(m)">Edit</button>
                  <button type="button" class="btn btn-danger" (click)="cancel(m)">Cancel meeting</button>
                }
              </div>
            </li>
          }
        </ul>
      </section>
    </main>
  `,
  styles: `
    .dash { display: grid; gap: 2rem; }
    .created { display: flex; gap: 1rem; align-items: center; justify-content: space-between; flex-wrap: wrap; margin-top: 1rem; }
    .meetings { list-style: none; padding: 0; display: grid; gap: .75rem; }
    .meeting.cancelled { opacity: .6; }
    .mtitle { display: flex; gap: .5rem; align-items: center; flex-wrap: wrap; margin-bottom: .3rem; }
    .tag { font-size: .75rem; background: var(--bg-soft); border-radius: 10px; padding: .1rem .5rem; color: var(--muted); }
    .mactions { margin-top: .75rem; }
  `,
})
export class Dashboard implements OnInit {
  protected readonly api = inject(ApiService);
  protected form: MeetingFormValue = emptyForm();
  protected readonly meetings = signal<Meeting[]>([]);
  protected readonly loading = signal(true);
  protected readonly busy = signal(false);
  protected readonly formError = signal<string | null>(null);
  protected readonly listError = signal<string | null>(null);
  protected readonly created = signal<Meeting | null>(null);
  protected readonly editing = signal<Meeting | null>(null);
  protected readonly copied = signal<string | null>(null);

  ngOnInit(): void {
    void this.load();
  }

  async load(): Promise<void> {
    this.loading.set(true);
    try {
      this.meetings.set(await this.api.listMeetings());
      this.listError.set(null);
    } catch (e) {
      this.listError.set((e as Error).message);
    } finally {
      this.loading.set(false);
    }
  }

  async save(): Promise<void> {
    this.formError.set(null);
    const body = toMeetingInput(this.form);
    if (typeof body === 'string') {
      this.formError.set(body);
      return;
    }
    this.busy.set(true);
    try {
      const ed = this.editing();
      const m = ed ? await this.api.updateMeeting(ed.code, body) : await this.api.createMeeting(body);
      this.created.set(m);
      this.editing.set(null);
      this.form = emptyForm();
      await this.load();
    } catch (e) {
      this.formError.set((e as Error).message);
    } finally {
      this.busy.set(false);
    }
  }

  edit(m: Meeting): void {
    this.editing.set(m);
    this.created.set(null);
    this.form = formFromMeeting(m);
    globalThis.scrollTo?.({ top: 0, behavior: 'smooth' });
  }

  cancelEdit(): void {
    this.editing.set(null);
    this.form = emptyForm();
  }

  async cancel(m: Meeting): Promise<void> {
    if (!globalThis.confirm?.(`Cancel "${m.title}"? Invitees will no longer be able to join.`)) return;
    try {
      await this.api.cancelMeeting(m.code);
      await this.load();
    } catch (e) {
      this.listError.set((e as Error).message);
    }
  }

  async copy(m: Meeting): Promise<void> {
    const link = m.link || `${location.origin}/${m.code}`;
    try {
      await navigator.clipboard.writeText(link);
    } catch {
      /* clipboard blocked: the link is still visible to copy by hand */
    }
    this.copied.set(m.code);
    setTimeout(() => this.copied.set(null), 2000);
  }
}
