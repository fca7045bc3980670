import { ChangeDetectionStrategy, Component, inject, input, signal } from '@angular/core';
import { RouterLink } from '@angular/router';
import { AuthService } from '../../core/auth/auth.service';
import { TopBar } from '../../shared/top-bar';

@Component({
  selector: 'app-check-email',
  imports: [RouterLink, TopBar],
  changeDetection: ChangeDetectionStrategy.OnPush,
  template: `
    <app-top-bar />
    <main class="card auth-card">
      <h2>Check your email</h2>
      <p>
        We sent a verification link to <strong>{{ email() || 'your email address' }}</strong>. Open it to activate your
        account, then log in.
      </p>
      @if (message()) {
        <p class="ok" role="status">{{ message() }}</p>
      }
      @if (error()) {
        <p class="error" role="alert">{{ error() }}</p>
      }
      <div class="row" style="justify-content:space-between;align-items:center">
        <button type="button" class="btn" (click)="resend()" [disabled]="busy() || !email()">Resend the link</button>
        <a routerLink="/login" [queryParams]="{ email: email() }">Go to log in</a>
      </div>
    </main>
  `,
})
export class CheckEmail {
  private readonly auth = inject(AuthService);
  /** From the query string (?email=…), bound by the router. */
  readonly email = input<string>('');
  protected readonly busy = signal(false);
  protected readonly message = signal<string | null>(null);
  protected readonly error = signal<string | null>(null);

  async resend(): Promise<void> {
    this.busy.set(true);
    this.error.set(null);
    try {
      const r = await this.auth.resend(this.email());
      this.message.set(r.message ?? 'If that address has an account, a new link is on its way.');
    } catch (e) {
      this.error.set((e as Error).message);
    } finally {
      this.busy.set(false);
    }
  }
}
