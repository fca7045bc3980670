import { provideHttpClient } from '@angular/common/http';
import { HttpTestingController, provideHttpClientTesting } from '@angular/common/http/testing';
import { TestBed } from '@angular/core/testing';
import { AuthService } from './auth.service';

describe('AuthService', () => {
  let auth: AuthService;
  let http: HttpTestingController;
  const user = { id: 1, name: 'Ada', email: 'ada@example.com', verified: true, team: null };

  beforeEach(() => {
    TestBed.configureTestingModule({ providers: [provideHttpClient(), provideHttpClientTesting()] });
    auth = TestBed.inject(AuthService);
    http = TestBed.inject(HttpTestingController);
  });

  it('treats 401 from /api/me as signed out', async () => {
    const p = auth.refresh();
    http.expectOne('/api/me').flush({ error: { code: 'unauthenticated', message: 'Sign in first.' } }, { status: 401, statusText: 'Unauthorized' });
    expect(await p).toBeNull();
    expect(auth.signedIn()).toBe(false);
    expect(auth.checked()).toBe(true);
  });

  it('remembers the user after login and forgets it after logout', async () => {
    const p = auth.login('ada@example.com', 'secret123');
    http.expectOne('/api/auth/login').flush({ user });
    await p;
    expect(auth.user()?.name).toBe('Ada');
    expect(await auth.refresh()).toEqual(user);
    http.expectNone('/api/me');

    const out = auth.logout();
    http.expectOne('/api/auth/logout').flush(null, { status: 204, statusText: 'No Content' });
    await out;
    expect(auth.signedIn()).toBe(false);
  });

  it('shares one /api/me request between concurrent callers', async () => {
    const a = auth.refresh();
    const b = auth.refresh();
    http.expectOne('/api/me').flush({ user });
    expect(await a).toEqual(user);
    expect(await b).toEqual(user);
  });
});
