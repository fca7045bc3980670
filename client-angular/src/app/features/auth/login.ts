import { ChangeDetectionStrategy, Component, inject, input, OnInit, signal } from '@angular/core';
import { FormsModule } from '@angular/forms';
import { Router, RouterLink } from '@angular/router';
import { ApiError } from '../../core/api/api.models';
import { AuthService } from '../../core/auth/auth.service';
import { TopBar } from '../../shared/top-bar';

@Component({
  selector: 'app-login',
  imports: [FormsModule, RouterLink, TopBar],
  changeDetection: ChangeDetectionStrategy.OnPush,
  template: `
    <app-top-bar />
    <main class="card auth-card">
      <h2>Log in</h2>
      <form (ngSubmit)="submit()" #f="ngForm">
        <div class="field">
          <label for="email">Email</label>
          <input id="email" name="email" type="email" [(ngModel)]="emailValue" required autocomplete="email" />
        </div>
        <div class="field">
          <label for="password">Password</label>
          <input id="password" name="password" type="password" [(ngModel)]="password" required autocomplete="current-password" />
        </div>
        @if (error()) {
          <p class="error" role="alert">{{ error() }}</p>
        }
        @if (unverified()) {
          <p><button type="button" class="btn" (click)="resend()">Send the verification link again</button></p>
        }
        @if (message()) {
          <p class="ok" role="status">{{ message() }}</p>
        }
        <div class="row" style="justify-content:space-between;align-items:center">
          <a routerLink="/signup">Create an account</a>
          <button class="btn btn-primary" type="submit" [disabled]="busy() || f.invalid">Log in</button>
        </div>
      </form>
    </main>
  `,
})
export class Login implements OnInit {
  private readonly auth = inject(AuthService);
  private readonly router = inject(Router);
  readonly email = input<string>('');
  readonly next = input<string>('');
  protected emailValue = '';
  protected password = '';
  protected readonly busy = signal(false);
  protected readonly error = signal<string | null>(null);
  protected readonly message = signal<string | null>(null);
  protected readonly unverified = signal(false);

  ngOnInit(): void {
    this.emailValue = this.email() ?? '';
  }

  async submit(): Promise<void> {
    this.error.set(null);
    this.message.set(null);
    this.unverified.set(false);
    this.busy.set(true);
    try {
      await this.auth.login(this.emailValue.trim(), this.password);
      const next = this.next();
      await this.router.navigateByUrl(next && next.startsWith('/') && !next.startsWith('//') ? next : '/dashboard');
    } catch (e) {
      this.error.set((e as Error).message);
      this.unverified.set(e instanceof ApiError && e.code === 'email_not_verified');
    } finally {
      this.busy.set(false);
    }
  }

  async resend(): Promise<void> {
    try {
      const r = await this.auth.resend(this.emailValue.trim());
      this.message.set(r.message ?? 'A new verification link is on its way.');
    } catch (e) {
      this.error.set((e as Error).message);
    }
  }
}
