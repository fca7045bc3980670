import { ChangeDetectionStrategy, Component, inject, OnInit, signal } from '@angular/core';
import { DatePipe } from '@angular/common';
import { FormsModule } from '@angular/forms';
import { RouterLink } from '@angular/router';
import { Meeting } from '../../core/api/api.models';
import { MeetingsService } from '../../core/meetings/meetings.service';
import { TopBar } from '../../shared/top-bar';
import { emptyForm, formFromMeeting, MeetingFormValue, toMeetingInput } from './meeting-form';

@Component({
  selector: 'app-dashboard',
  imports: [FormsModule, RouterLink, DatePipe, TopBar],
  changeDetection: ChangeDetectionStrategy.OnPush,
  templateUrl: './dashboard.html',
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
  protected readonly meetingsService = inject(MeetingsService);
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
      this.meetings.set(await this.meetingsService.list());
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
      const m = ed ? await this.meetingsService.update(ed.code, body) : await this.meetingsService.create(body);
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
      await this.meetingsService.cancel(m.code);
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
