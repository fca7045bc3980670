import { ChangeDetectionStrategy, Component, inject, signal } from '@angular/core';
import { FormsModule } from '@angular/forms';
import { Router } from '@angular/router';
import { MeetingsService } from '../../core/meetings/meetings.service';
import { AuthService } from '../../core/auth/auth.service';
import { parseMeetingCode } from '../../shared/initials';
import { TopBar } from '../../shared/top-bar';
import { Icon } from '../../shared/icon';

@Component({
  selector: 'app-landing',
  imports: [FormsModule, TopBar, Icon],
  changeDetection: ChangeDetectionStrategy.OnPush,
  template: `
    <app-top-bar />
    <main class="page landing">
      <section class="hero">
        <h1>Video calls and meetings for everyone</h1>
        <p class="muted">Connect, collaborate and celebrate from anywhere with QuicMeet — media over QUIC, right in your browser.</p>
        <div class="row actions">
          <button type="button" class="btn btn-primary" (click)="newMeeting()" [disabled]="busy()"><app-icon name="add" /> New meeting</button>
          <form class="row join" (ngSubmit)="join()">
            <label class="sr-only" for="code">Join with a code or link</label>
            <input id="code" name="code" [(ngModel)]="code" placeholder="Join with a code or link" autocomplete="off" />
            <button type="submit" class="btn btn-text" [disabled]="!code.trim()">Join</button>
          </form>
        </div>
        @if (error()) {
          <p class="error" role="alert">{{ error() }}</p>
        }
      </section>
    </main>
  `,
  styles: `
    .hero { max-width: 560px; margin-top: 4rem; }
    .hero h1 { font-size: 2.6rem; line-height: 1.2; }
    .actions { margin-top: 2rem; align-items: center; }
    .join input { font: inherit; padding: .6rem .8rem; border: 1px solid var(--line); border-radius: 4px; min-width: 16rem; }
  `,
})
export class Landing {
  private readonly meetings = inject(MeetingsService);
  private readonly auth = inject(AuthService);
  private readonly router = inject(Router);
  protected code = '';
  protected readonly busy = signal(false);
  protected readonly error = signal<string | null>(null);

  async newMeeting(): Promise<void> {
    this.error.set(null);
    const user = await this.auth.refresh();
    if (!user) {
      await this.router.navigate(['/login'], { queryParams: { next: '/dashboard' } });
      return;
    }
    this.busy.set(true);
    try {
      const m = await this.meetings.startNow(user.name);
      await this.router.navigate(['/', m.code]);
    } catch (e) {
      this.error.set((e as Error).message);
    } finally {
      this.busy.set(false);
    }
  }

  async join(): Promise<void> {
    const code = parseMeetingCode(this.code);
    if (!code) {
      this.error.set('That does not look like a meeting code or link (it looks like abc-defg-hij).');
      return;
    }
    await this.router.navigate(['/', code]);
  }
}
