import { Routes, UrlMatchResult, UrlSegment } from '@angular/router';
import { authGuard } from './core/auth/auth.guard';
import { Landing } from './features/landing/landing';

const CODE = /^[a-z0-9]{3,4}-[a-z0-9]{3,4}-[a-z0-9]{3,4}$/i;

/** Matches a meeting link /abc-defg-hij and exposes the code as a route parameter. */
export function meetingCodeMatcher(segments: UrlSegment[]): UrlMatchResult | null {
  if (segments.length === 1 && CODE.test(segments[0].path)) {
    return { consumed: segments, posParams: { code: segments[0] } };
  }
  return null;
}

export const routes: Routes = [
  { path: '', component: Landing, title: 'QuicMeet' },
  { path: 'signup', loadComponent: () => import('./features/auth/signup').then((m) => m.Signup), title: 'Sign up · QuicMeet' },
  { path: 'check-email', loadComponent: () => import('./features/auth/check-email').then((m) => m.CheckEmail), title: 'Check your email · QuicMeet' },
  { path: 'verify', loadComponent: () => import('./features/auth/verify').then((m) => m.Verify), title: 'Verify · QuicMeet' },
  { path: 'login', loadComponent: () => import('./features/auth/login').then((m) => m.Login), title: 'Log in · QuicMeet' },
  {
    path: 'dashboard',
    canActivate: [authGuard],
    loadComponent: () => import('./features/dashboard/dashboard').then((m) => m.Dashboard),
    title: 'Meetings · QuicMeet',
  },
  { matcher: meetingCodeMatcher, loadComponent: () => import('./features/room/meeting-page').then((m) => m.MeetingPage), title: 'Meeting · QuicMeet' },
  { path: '**', redirectTo: '' },
];
