import { ChangeDetectionStrategy, Component, inject } from '@angular/core';
import { Router, RouterLink } from '@angular/router';
import { AuthService } from '../core/auth/auth.service';

@Component({
  selector: 'app-top-bar',
  imports: [RouterLink],
  changeDetection: ChangeDetectionStrategy.OnPush,
  template: `
    <header class="topbar">
      <a class="brand" routerLink="/"><span class="brand-mark" aria-hidden="true"></span> QuicMeet</a>
      <nav class="row" aria-label="Account">
        @if (auth.user(); as u) {
          <a class="btn btn-text" routerLink="/dashboard">Meetings</a>
          <span class="muted" style="align-self:center" data-testid="signed-in-as">{{ u.name }}</span>
          <button type="button" class="btn" (click)="logout()">Log out</button>
        } @else if (auth.checked()) {
          <a class="btn btn-text" routerLink="/login">Log in</a>
          <a class="btn btn-primary" routerLink="/signup">Sign up</a>
        }
      </nav>
    </header>
  `,
})
export class TopBar {
  protected readonly auth = inject(AuthService);
  private readonly router = inject(Router);

  constructor() {
    void this.auth.refresh();
  }

  async logout(): Promise<void> {
    await this.auth.logout().catch(() => undefined);
    await this.router.navigateByUrl('/');
  }
}
