import { provideHttpClient } from '@angular/common/http';
import { HttpTestingController, provideHttpClientTesting } from '@angular/common/http/testing';
import { TestBed } from '@angular/core/testing';
import { ApiError } from './api.models';
import { ApiService } from './api.service';

describe('ApiService', () => {
  let api: ApiService;
  let http: HttpTestingController;

  beforeEach(() => {
    TestBed.configureTestingModule({ providers: [provideHttpClient(), provideHttpClientTesting()] });
    api = TestBed.inject(ApiService);
    http = TestBed.inject(HttpTestingController);
  });
  afterEach(() => http.verify());

  it('logs in with email and password', async () => {
    const p = api.login('a@b.c', 'pw');
    const req = http.expectOne('/api/auth/login');
    expect(req.request.method).toBe('POST');
    expect(req.request.body).toEqual({ email: 'a@b.c', password: 'pw' });
    req.flush({ user: { id: 1, name: 'A', email: 'a@b.c', verified: true, team: null } });
    expect((await p).user.name).toBe('A');
  });

  it("turns the API's error body into an ApiError with its message", async () => {
    const p = api.login('a@b.c', 'bad');
    http
      .expectOne('/api/auth/login')
      .flush({ error: { code: 'invalid_credentials', message: 'Wrong email or password.' } }, { status: 401, statusText: 'Unauthorized' });
    await expect(p).rejects.toEqual(new ApiError(401, 'invalid_credentials', 'Wrong email or password.'));
    await p.catch((e: ApiError) => {
      expect(e.code).toBe('invalid_credentials');
      expect(e.status).toBe(401);
    });
  });

  it('gives a readable error when the body is not the API shape', async () => {
    const p = api.me();
    http.expectOne('/api/me').flush('oops', { status: 502, statusText: 'Bad Gateway' });
    await expect(p).rejects.toThrow(/502/);
  });

  it('creates a meeting and unwraps it', async () => {
    const input = { title: 'T', start: '2030-01-01T10:00:00Z', duration_minutes: 30, type: 'private' as const, invitees: ['x@y.z'] };
    const p = api.createMeeting(input);
    const req = http.expectOne('/api/meetings');
    expect(req.request.body).toEqual(input);
    req.flush({ meeting: { code: 'abc-defg-hij', title: 'T' } }, { status: 201, statusText: 'Created' });
    expect((await p).code).toBe('abc-defg-hij');
  });

  it('lists, patches, cancels and joins by code', async () => {
    const l = api.listMeetings();
    http.expectOne('/api/meetings').flush({ meetings: [{ code: 'a' }] });
    expect((await l).length).toBe(1);

    const u = api.updateMeeting('abc-defg-hij', { title: 'New' });
    const ureq = http.expectOne('/api/meetings/abc-defg-hij');
    expect(ureq.request.method).toBe('PATCH');
    ureq.flush({ meeting: { code: 'abc-defg-hij', title: 'New' } });
    expect((await u).title).toBe('New');

    const d = api.cancelMeeting('abc-defg-hij');
    const dreq = http.expectOne('/api/meetings/abc-defg-hij');
    expect(dreq.request.method).toBe('DELETE');
    dreq.flush(null, { status: 204, statusText: 'No Content' });
    await d;

    const j = api.join('abc-defg-hij', { name: 'G', email: 'g@h.i' });
    const jreq = http.expectOne('/api/meetings/abc-defg-hij/join');
    expect(jreq.request.body).toEqual({ name: 'G', email: 'g@h.i' });
    jreq.flush({ status: 'waiting', token: 't', expires_in_secs: 60, participant: { name: 'G', role: 'guest' }, media: {} }, { status: 202, statusText: 'Accepted' });
    expect((await j).status).toBe('waiting');
    expect(api.icsUrl('abc-defg-hij')).toBe('/api/meetings/abc-defg-hij/ics');
  });
});
