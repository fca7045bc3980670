import { ChangeDetectionStrategy, Component, computed, inject, input, OnDestroy, OnInit, signal } from '@angular/core';
import { RouterLink } from '@angular/router';
import { GuestInfo, Meeting } from '../../core/api/api.models';
import { AuthService } from '../../core/auth/auth.service';
import { MeetingsService } from '../../core/meetings/meetings.service';
import { PublishService } from '../../core/media/publish/publish.service';
import { PlaybackService } from '../../core/media/watch/playback.service';
import { transportPreferenceFromUrl } from '../../core/transport/transport.service';
import { TopBar } from '../../shared/top-bar';
import { Prejoin } from '../prejoin/prejoin';
import { Room } from './room';
import { RoomService } from './room.service';

/** The meeting link /abc-defg-hij: pre-join, lobby, room, and the "you left" screen. */
@Component({
  selector: 'app-meeting-page',
  imports: [Prejoin, Room, RouterLink, TopBar],
  changeDetection: ChangeDetectionStrategy.OnPush,
  // One meeting's state: created with this page, destroyed with it.
  providers: [RoomService, PublishService, PlaybackService],
  template: `
    @switch (view()) {
      @case ('room') {
        <app-room />
      }
      @case ('gone') {
        <app-top-bar />
        <main class="page" style="text-align:center;margin-top:3rem">
          <h1 data-testid="left-title">{{ goneTitle() }}</h1>
          @if (room.error()) {
            <p class="muted">{{ room.error() }}</p>
          }
          <div class="row" style="justify-content:center;margin-top:1.5rem">
            @if (room.phase() === 'left') {
              <button type="button" class="btn" (click)="rejoin()">Rejoin</button>
            }
            <a class="btn btn-primary" routerLink="/">Return to home screen</a>
          </div>
        </main>
      }
      @default {
        <app-top-bar />
        @if (loadError()) {
          <main class="page"><p class="error" role="alert">{{ loadError() }}</p><a routerLink="/">Back to the home page</a></main>
        } @else {
          <app-prejoin [code]="code()" [meeting]="meeting()" [busy]="room.phase() === 'joining'" [waiting]="room.phase() === 'lobby'"
            [lobbyMessage]="room.lobbyMessage()" [error]="room.phase() === 'error' ? room.error() : null" (join)="join($event)" />
        }
      }
    }
  `,
})
export class MeetingPage implements OnInit, OnDestroy {
  protected readonly room = inject(RoomService);
  private readonly meetings = inject(MeetingsService);
  private readonly auth = inject(AuthService);
  private readonly media = inject(PublishService);
  /** Route parameter bound by the router (withComponentInputBinding). */
  readonly code = input.required<string>();
  protected readonly meeting = signal<Meeting | null>(null);
  protected readonly loadError = signal<string | null>(null);
  private lastGuest: GuestInfo = {};

  protected readonly view = computed(() => {
    const p = this.room.phase();
    if (p === 'in-room') return 'room';
    if (p === 'left' || p === 'ended' || p === 'denied' || p === 'removed') return 'gone';
    return 'prejoin';
  });
  protected readonly goneTitle = computed(() => {
    switch (this.room.phase()) {
      case 'ended':
        return 'The meeting has ended';
      case 'denied':
        return 'You were not let in';
      case 'removed':
        return 'You were removed from the meeting';
      default:
        return 'You left the meeting';
    }
  });

  async ngOnInit(): Promise<void> {
    this.room.phase.set('idle');
    this.room.error.set(null);
    void this.auth.refresh();
    try {
      const m = await this.meetings.get(this.code());
      this.meeting.set(m);
      if (m.cancelled) this.loadError.set('This meeting was cancelled by its host.');
    } catch (e) {
      this.loadError.set((e as Error).message);
    }
  }

  ngOnDestroy(): void {
    if (this.room.phase() === 'in-room' || this.room.phase() === 'lobby' || this.room.phase() === 'joining') this.room.leave();
    this.media.stopLocal();
    this.room.phase.set('idle');
  }

  protected join(guest: GuestInfo): void {
    this.lastGuest = guest;
    void this.room.join(this.code(), guest, transportPreferenceFromUrl(location.search));
  }

  protected async rejoin(): Promise<void> {
    this.room.phase.set('idle');
    await this.media.startPreview();
    this.join(this.lastGuest);
  }
}
