import { provideHttpClient } from '@angular/common/http';
import { HttpTestingController, provideHttpClientTesting } from '@angular/common/http/testing';
import { TestBed } from '@angular/core/testing';
import { provideRouter, Router } from '@angular/router';
import { Login } from './login';

async function typeInto(el: HTMLInputElement, value: string) {
  el.value = value;
  el.dispatchEvent(new Event('input'));
}

describe('Login page', () => {
  let http: HttpTestingController;

  beforeEach(() => {
    TestBed.configureTestingModule({
      imports: [Login],
      providers: [provideRouter([]), provideHttpClient(), provideHttpClientTesting()],
    });
    http = TestBed.inject(HttpTestingController);
  });

  async function render() {
    const fixture = TestBed.createComponent(Login);
    fixture.componentRef.setInput('next', '/abc-defg-hij');
    fixture.componentRef.setInput('email', 'ada@example.com');
    await fixture.whenStable();
    http.match('/api/me').forEach((r) => r.flush({ error: { code: 'unauthenticated', message: 'x' } }, { status: 401, statusText: 'Unauthorized' }));
    await fixture.whenStable();
    return fixture;
  }

  it('prefills the email, logs in and goes to ?next', async () => {
    const fixture = await render();
    const el: HTMLElement = fixture.nativeElement;
    const email = el.querySelector<HTMLInputElement>('#email')!;
    expect(email.value).toBe('ada@example.com');
    await typeInto(el.querySelector<HTMLInputElement>('#password')!, 'secret123');
    await fixture.whenStable();
    const nav = vi.spyOn(TestBed.inject(Router), 'navigateByUrl').mockResolvedValue(true);
    el.querySelector('form')!.dispatchEvent(new Event('submit'));
    const req = http.expectOne('/api/auth/login');
    expect(req.request.body).toEqual({ email: 'ada@example.com', password: 'secret123' });
    req.flush({ user: { id: 1, name: 'Ada', email: 'ada@example.com', verified: true, team: null } });
    await fixture.whenStable();
    await new Promise((r) => setTimeout(r));
    expect(nav).toHaveBeenCalledWith('/abc-defg-hij');
  });

  it("shows the API's message and offers a new link when the email is not verified", async () => {
    const fixture = await render();
    const el: HTMLElement = fixture.nativeElement;
    await typeInto(el.querySelector<HTMLInputElement>('#password')!, 'secret123');
    await fixture.whenStable();
    el.querySelector('form')!.dispatchEvent(new Event('submit'));
    http
      .expectOne('/api/auth/login')
      .flush({ error: { code: 'email_not_verified', message: 'Verify your email address first.' } }, { status: 403, statusText: 'Forbidden' });
    await new Promise((r) => setTimeout(r));
    await fixture.whenStable();
    expect(el.querySelector('[role=alert]')?.textContent).toContain('Verify your email address first.');
    const resend = [...el.querySelectorAll('button')].find((b) => b.textContent?.includes('verification link'));
    expect(resend).toBeTruthy();
    resend!.click();
    const r = http.expectOne('/api/auth/resend');
    expect(r.request.body).toEqual({ email: 'ada@example.com' });
    r.flush({ message: 'If that address has an account, we sent a new link.' }, { status: 202, statusText: 'Accepted' });
    await new Promise((res) => setTimeout(res));
    await fixture.whenStable();
    expect(el.querySelector('[role=status]')?.textContent).toContain('we sent a new link');
  });
});
