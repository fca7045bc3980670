import { computed, inject, Injectable, signal } from '@angular/core';
import { ApiError, User } from '../api/api.models';
import { ApiService } from '../api/api.service';

/** Who is signed in. The session itself is the HttpOnly cookie; this mirrors /api/me. */
@Injectable({ providedIn: 'root' })
export class AuthService {
  private readonly api = inject(ApiService);
  private readonly _user = signal<User | null>(null);
  private readonly _checked = signal(false);
  private pending: Promise<User | null> | null = null;

  readonly user = this._user.asReadonly();
  readonly checked = this._checked.asReadonly();
  readonly signedIn = computed(() => this._user() !== null);

  /** Loads the current user once (or again with force). Never throws: unauthenticated is null. */
  refresh(force = false): Promise<User | null> {
    if (this._checked() && !force) return Promise.resolve(this._user());
    if (this.pending && !force) return this.pending;
    this.pending = this.api
      .me()
      .then((r) => r.user)
      .catch((e: unknown) => {
        if (e instanceof ApiError && (e.status === 401 || e.status === 403)) return null;
        return null;
      })
      .then((u) => {
        this._user.set(u);
        this._checked.set(true);
        this.pending = null;
        return u;
      });
    return this.pending;
  }

  async login(email: string, password: string): Promise<User> {
    const { user } = await this.api.login(email, password);
    this._user.set(user);
    this._checked.set(true);
    return user;
  }

  signup(name: string, email: string, password: string) {
    return this.api.signup({ name, email, password });
  }

  verify(token: string) {
    return this.api.verify(token);
  }

  resend(email: string) {
    return this.api.resend(email);
  }

  async logout(): Promise<void> {
    try {
      await this.api.logout();
    } finally {
      this._user.set(null);
      this._checked.set(true);
    }
  }
}
