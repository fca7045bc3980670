import { provideHttpClient } from '@angular/common/http';
import { HttpTestingController, provideHttpClientTesting } from '@angular/common/http/testing';
import { TestBed } from '@angular/core/testing';
import { provideRouter, Router } from '@angular/router';
import { Signup } from './signup';
import { Verify } from './verify';

const fill = (root: HTMLElement, sel: string, v: string) => {
  const el = root.querySelector<HTMLInputElement>(sel)!;
  el.value = v;
  el.dispatchEvent(new Event('input'));
};
const tick = () => new Promise((r) => setTimeout(r));

describe('Sign-up and verification pages', () => {
  let http: HttpTestingController;

  beforeEach(() => {
    TestBed.configureTestingModule({
      imports: [Signup, Verify],
      providers: [provideRouter([]), provideHttpClient(), provideHttpClientTesting()],
    });
    http = TestBed.inject(HttpTestingController);
  });

  it('signs up and sends the user to "check your email"', async () => {
    const fixture = TestBed.createComponent(Signup);
    await fixture.whenStable();
    http.match('/api/me').forEach((r) => r.flush(null, { status: 401, statusText: 'Unauthorized' }));
    const el: HTMLElement = fixture.nativeElement;
    fill(el, '#name', 'Ada Lovelace');
    fill(el, '#email', 'ada@example.com');
    fill(el, '#password', 'correct horse');
    await fixture.whenStable();
    const nav = vi.spyOn(TestBed.inject(Router), 'navigate').mockResolvedValue(true);
    el.querySelector('form')!.dispatchEvent(new Event('submit'));
    const req = http.expectOne('/api/auth/signup');
    expect(req.request.body).toEqual({ name: 'Ada Lovelace', email: 'ada@example.com', password: 'correct horse' });
    req.flush({ user: { id: 1, name: 'Ada Lovelace', email: 'ada@example.com', verified: false }, message: 'Check your email' }, { status: 201, statusText: 'Created' });
    await tick();
    expect(nav).toHaveBeenCalledWith(['/check-email'], { queryParams: { email: 'ada@example.com' } });
  });

  it('shows the error message of a refused sign-up', async () => {
    const fixture = TestBed.createComponent(Signup);
    await fixture.whenStable();
    const el: HTMLElement = fixture.nativeElement;
    fill(el, '#name', 'Ada');
    fill(el, '#email', 'ada@example.com');
    fill(el, '#password', 'correct horse');
    await fixture.whenStable();
    el.querySelector('form')!.dispatchEvent(new Event('submit'));
    http.expectOne('/api/auth/signup').flush({ error: { code: 'email_taken', message: 'An account with this email already exists.' } }, { status: 409, statusText: 'Conflict' });
    await tick();
    await fixture.whenStable();
    expect(el.querySelector('[role=alert]')?.textContent).toContain('An account with this email already exists.');
  });

  it('verifies the token from the link', async () => {
    const fixture = TestBed.createComponent(Verify);
    fixture.componentRef.setInput('token', 'tok123');
    await fixture.whenStable();
    const req = http.expectOne('/api/auth/verify');
    expect(req.request.body).toEqual({ token: 'tok123' });
    req.flush({ user: { id: 1, name: 'Ada', email: 'ada@example.com', verified: true } });
    await tick();
    await fixture.whenStable();
    expect(fixture.nativeElement.textContent).toContain('Your email is verified');
  });

  it('explains an expired token', async () => {
    const fixture = TestBed.createComponent(Verify);
    fixture.componentRef.setInput('token', 'old');
    await fixture.whenStable();
    http.expectOne('/api/auth/verify').flush({ error: { code: 'invalid_token', message: 'This link has expired.' } }, { status: 400, statusText: 'Bad Request' });
    await tick();
    await fixture.whenStable();
    expect(fixture.nativeElement.querySelector('[role=alert]')?.textContent).toContain('This link has expired.');
  });
});
