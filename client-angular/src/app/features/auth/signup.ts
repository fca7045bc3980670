import { ChangeDetectionStrategy, Component, inject, signal } from '@angular/core';
import { FormsModule } from '@angular/forms';
import { Router, RouterLink } from '@angular/router';
import { AuthService } from '../../core/auth/auth.service';
import { TopBar } from '../../shared/top-bar';

@Component({
  selector: 'app-signup',
  imports: [FormsModule, RouterLink, TopBar],
  changeDetection: ChangeDetectionStrategy.OnPush,
  template: `
    <app-top-bar />
    <main class="card auth-card">
      <h2>Create your account</h2>
      <form (ngSubmit)="submit()" #f="ngForm">
        <div class="field">
          <label for="name">Name</label>
          <input id="name" name="name" [(ngModel)]="name" required autocomplete="name" />
        </div>
        <div class="field">
          <label for="email">Email</label>
          <input id="email" name="email" type="email" [(ngModel)]="email" required email autocomplete="email" />
        </div>
        <div class="field">
          <label for="password">Password</label>
          <input id="password" name="password" type="password" [(ngModel)]="password" required minlength="8" autocomplete="new-password" />
          <span class="muted" style="font-size:.8rem">At least 8 characters.</span>
        </div>
        @if (error()) {
          <p class="error" role="alert">{{ error() }}</p>
        }
        <div class="row" style="justify-content:space-between;align-items:center">
          <a routerLink="/login">Log in instead</a>
          <button class="btn btn-primary" type="submit" [disabled]="busy() || f.invalid">Create account</button>
        </div>
      </form>
    </main>
  `,
})
export class Signup {
  private readonly auth = inject(AuthService);
  private readonly router = inject(Router);
  protected name = '';
  protected email = '';
  protected password = '';
  protected readonly busy = signal(false);
  protected readonly error = signal<string | null>(null);

  async submit(): Promise<void> {
    this.error.set(null);
    this.busy.set(true);
    try {
      await this.auth.signup(this.name.trim(), this.email.trim(), this.password);
      await this.router.navigate(['/check-email'], { queryParams: { email: this.email.trim() } });
    } catch (e) {
      this.error.set((e as Error).message);
    } finally {
      this.busy.set(false);
    }
  }
}
