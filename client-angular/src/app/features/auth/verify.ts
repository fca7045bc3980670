import { ChangeDetectionStrategy, Component, inject, input, OnInit, signal } from '@angular/core';
import { RouterLink } from '@angular/router';
import { AuthService } from '../../core/auth/auth.service';
import { TopBar } from '../../shared/top-bar';

@Component({
  selector: 'app-verify',
  imports: [RouterLink, TopBar],
  changeDetection: ChangeDetectionStrategy.OnPush,
  template: `
    <app-top-bar />
    <main class="card auth-card" aria-live="polite">
      @switch (state()) {
        @case ('working') {
          <h2>Verifying your email…</h2>
        }
        @case ('done') {
          <h2>Your email is verified</h2>
          <p class="ok" role="status">Thanks{{ name() ? ', ' + name() : '' }}! You can now log in.</p>
          <a class="btn btn-primary" routerLink="/login" [queryParams]="{ email: email() }">Log in</a>
        }
        @case ('failed') {
          <h2>We could not verify your email</h2>
          <p class="error" role="alert">{{ error() }}</p>
          <a routerLink="/signup">Sign up again</a> · <a routerLink="/login">Log in</a>
        }
      }
    </main>
  `,
})
export class Verify implements OnInit {
  private readonly auth = inject(AuthService);
  readonly token = input<string>('');
  protected readonly state = signal<'working' | 'done' | 'failed'>('working');
  protected readonly error = signal<string | null>(null);
  protected readonly name = signal('');
  protected readonly email = signal('');

  async ngOnInit(): Promise<void> {
    if (!this.token()) {
      this.state.set('failed');
      this.error.set('This verification link has no token. Open the link from the email again.');
      return;
    }
    try {
      const { user } = await this.auth.verify(this.token());
      this.name.set(user?.name ?? '');
      this.email.set(user?.email ?? '');
      this.state.set('done');
    } catch (e) {
      this.error.set((e as Error).message);
      this.state.set('failed');
    }
  }
}
