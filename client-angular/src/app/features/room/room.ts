import { ChangeDetectionStrategy, Component, computed, DestroyRef, inject, signal } from '@angular/core';
import { MediaService } from '../../core/media/media.service';
import { SrcObjectDirective } from '../../core/media/src-object.directive';
import { Participant } from '../../core/protocol/control';
import { Slot, trackIdOf } from '../../core/protocol/frame';
import { TransportService } from '../../core/transport/transport.service';
import { avatarColor, initials } from '../../shared/initials';
import { Icon } from '../../shared/icon';
import { ChatPanel } from './chat-panel';
import { PeoplePanel } from './people-panel';
import { RoomService } from './room.service';
import { TrackCanvasDirective } from './track-canvas.directive';

type Panel = 'chat' | 'people' | 'info' | null;

const EMOJIS = ['👍', '❤️', '😂', '😮', '👏', '🎉'];

@Component({
  selector: 'app-room',
  imports: [ChatPanel, PeoplePanel, SrcObjectDirective, TrackCanvasDirective, Icon],
  changeDetection: ChangeDetectionStrategy.OnPush,
  host: { '(document:keydown)': 'onKey($event)' },
  template: `
    <div class="room" [attr.data-transport]="transport.kind()">
      <div class="sr-only" aria-live="polite">{{ room.announcement() }}</div>
      @if (room.notice(); as n) {
        <div class="toast" role="status">{{ n }} <button type="button" class="btn" (click)="room.dismissNotice()">OK</button></div>
      }
      @if (room.isHost() && room.knocks().length > 0 && panel() !== 'people') {
        <div class="toast knock-toast" role="alert" data-testid="knock-toast">
          @let k = room.knocks()[0];
          <span><strong>{{ k.name }}</strong> wants to join</span>
          <button type="button" class="btn" (click)="room.deny(k)">Deny</button>
          <button type="button" class="btn btn-primary" (click)="room.admit(k)">Admit</button>
        </div>
      }
      @if (transport.state() === 'reconnecting') {
        <div class="toast" role="status">Reconnecting…</div>
      }

      <div class="room-main">
        <div class="room-stage-area">
          @if (room.stage(); as st) {
            <div class="stage" data-testid="stage" [attr.data-track-id]="st.track_id">
              @if (st.participant_id === room.selfId()) {
                <video [appSrcObject]="media.screenStream()" autoplay playsinline muted aria-label="Your screen share"></video>
                <span class="stage-label">You are presenting</span>
              } @else {
                <canvas [appTrackCanvas]="st.track_id" [attr.aria-label]="nameOf(st.participant_id) + ' is presenting'"></canvas>
                <span class="stage-label">{{ nameOf(st.participant_id) }} is presenting</span>
              }
            </div>
          }
          <div class="grid" [class.with-stage]="!!room.stage()" role="list" aria-label="Participants">
            @for (p of room.participants(); track p.id) {
              @let self = p.id === room.selfId();
              @let camOn = hasCamera(p);
              <div class="tile" role="listitem" data-testid="tile"
                [class.speaking]="room.isSpeaking(p.id) || (!!room.activeSpeaker() && room.activeSpeaker() === p.id && !p.audio_muted)"
                [attr.data-participant-id]="p.id" [attr.data-self]="self"
                [attr.data-muted]="p.audio_muted" [attr.data-name]="p.name"
                [attr.data-audio-level]="self ? null : rxLevel(p.id)"
                [attr.aria-label]="p.name + (p.audio_muted ? ', muted' : '')">
                @if (camOn && self) {
                  <video class="mirror" [appSrcObject]="media.localStream()" autoplay playsinline muted></video>
                } @else if (camOn) {
                  <canvas [appTrackCanvas]="camTrack(p)"></canvas>
                } @else {
                  <div class="avatar" [style.background]="color(p.id)" aria-hidden="true">{{ init(p.name) }}</div>
                }
                @if (p.hand_raised) {
                  <span class="hand" aria-label="Hand raised"><app-icon name="hand" [size]="22" /></span>
                }
                @if (p.audio_muted) {
                  <span class="badge" data-testid="mute-badge" aria-label="Microphone off"><app-icon name="micOff" [size]="16" /></span>
                }
                <span class="tile-name">{{ self ? 'You' : p.name }}</span>
              </div>
            }
          </div>
        </div>
        @switch (panel()) {
          @case ('chat') {
            <app-chat-panel (closed)="setPanel(null)" />
          }
          @case ('people') {
            <app-people-panel (closed)="setPanel(null)" />
          }
          @case ('info') {
            <aside class="side-panel" aria-labelledby="info-title">
              <header>
                <h2 id="info-title">Meeting details</h2>
                <button type="button" class="btn btn-text" (click)="setPanel(null)" aria-label="Close details"><app-icon name="close" /></button>
              </header>
              <div class="body">
                @if (room.meetingInfo()?.title; as title) {
                  <p><strong>{{ title }}</strong>@if (room.meetingInfo()?.host_name; as h) {<span class="muted"> · hosted by {{ h }}</span>}</p>
                }
                <p>Joining info</p>
                <p data-testid="meeting-url"><strong>{{ link() }}</strong></p>
                <button type="button" class="btn" (click)="copyLink()">{{ copied() ? 'Copied' : 'Copy joining info' }}</button>
                <p class="muted">Connected over {{ transport.label() }}{{ transport.rttMs() !== null ? ', round trip ' + transport.rttMs() + ' ms' : '' }}.</p>
              </div>
            </aside>
          }
        }
      </div>

      <div class="reactions" aria-live="polite">
        @for (r of room.reactions(); track r.key) {
          <div class="reaction">{{ r.emoji }} {{ r.participant_id === room.selfId() ? 'You' : r.name }}</div>
        }
      </div>

      <footer class="controls">
        <div class="conn" data-testid="connection" [attr.title]="'Round trip: ' + (transport.rttMs() ?? '?') + ' ms'">
          <span class="dot" [class]="transport.quality()" aria-hidden="true"></span>
          <span>{{ clock() }} |</span>
          <span data-testid="transport-label">{{ transport.label() }}</span>
          @if (transport.rttMs() !== null) {
            <span>· {{ transport.rttMs() }} ms</span>
          }
          <span>· {{ room.code() }}</span>
        </div>
        <div class="center">
          <button type="button" class="ctl" [class.off]="!media.micOn()" (click)="room.toggleMic()" data-testid="mic"
            [attr.aria-pressed]="!media.micOn()" [attr.aria-label]="(media.micOn() ? 'Turn off microphone' : 'Turn on microphone') + ' (Ctrl+D)'"><app-icon [name]="media.micOn() ? 'mic' : 'micOff'" /></button>
          <button type="button" class="ctl" [class.off]="!media.camOn()" (click)="room.toggleCamera()" data-testid="camera"
            [attr.aria-pressed]="!media.camOn()" [attr.aria-label]="(media.camOn() ? 'Turn off camera' : 'Turn on camera') + ' (Ctrl+E)'"><app-icon [name]="media.camOn() ? 'cam' : 'camOff'" /></button>
          <button type="button" class="ctl" [class.on]="media.sharing()" (click)="room.toggleScreen()" data-testid="share"
            [attr.aria-pressed]="media.sharing()" [attr.aria-label]="media.sharing() ? 'Stop presenting' : 'Present your screen'"><app-icon name="screen" /></button>
          <button type="button" class="ctl" [class.on]="room.handRaised()" (click)="room.toggleHand()" data-testid="hand"
            [attr.aria-pressed]="room.handRaised()" [attr.aria-label]="room.handRaised() ? 'Lower hand' : 'Raise hand'"><app-icon name="hand" /></button>
          <span style="position:relative">
            <button type="button" class="ctl" (click)="emojiOpen.set(!emojiOpen())" aria-label="Send a reaction" [attr.aria-expanded]="emojiOpen()"><app-icon name="mood" /></button>
            @if (emojiOpen()) {
              <span class="emoji-pop" role="menu" style="position:absolute;bottom:56px;left:-80px;background:#3c4043;border-radius:24px;padding:.3rem;display:flex;gap:.2rem">
                @for (e of emojis; track e) {
                  <button type="button" role="menuitem" class="ctl" style="width:40px;height:40px" (click)="react(e)" [attr.aria-label]="'React ' + e">{{ e }}</button>
                }
              </span>
            }
          </span>
          <button type="button" class="ctl leave" (click)="room.leave()" data-testid="leave" aria-label="Leave call"><app-icon name="callEnd" /></button>
        </div>
        <div class="center">
          <button type="button" class="ctl" [class.on]="panel() === 'info'" (click)="toggle('info')" aria-label="Meeting details"><app-icon name="info" /></button>
          <button type="button" class="ctl" [class.on]="panel() === 'people'" (click)="toggle('people')" data-testid="people" aria-label="Show everyone">
            <app-icon name="people" /> @if (room.knocks().length && room.isHost()) {<span class="count">{{ room.knocks().length }}</span>}
          </button>
          <button type="button" class="ctl" [class.on]="panel() === 'chat'" (click)="toggle('chat')" data-testid="chat" aria-label="Chat with everyone">
            <app-icon name="chat" /> @if (room.unreadChat()) {<span class="count">{{ room.unreadChat() }}</span>}
          </button>
        </div>
      </footer>
    </div>
  `,
})
export class Room {
  protected readonly room = inject(RoomService);
  protected readonly media = inject(MediaService);
  protected readonly transport = inject(TransportService);
  protected readonly panel = signal<Panel>(null);
  protected readonly emojiOpen = signal(false);
  protected readonly copied = signal(false);
  protected readonly emojis = EMOJIS;
  protected readonly init = initials;
  protected readonly color = avatarColor;
  protected readonly link = computed(() => `${location.origin}/${this.room.code()}`);
  protected readonly clock = signal(formatClock(new Date()));

  constructor() {
    const t = setInterval(() => this.clock.set(formatClock(new Date())), 10_000);
    inject(DestroyRef).onDestroy(() => clearInterval(t));
  }

  /** Meet's shortcuts: Ctrl/⌘+D microphone, Ctrl/⌘+E camera. */
  protected onKey(e: KeyboardEvent): void {
    if (!(e.ctrlKey || e.metaKey) || e.altKey || e.shiftKey) return;
    const k = e.key.toLowerCase();
    if (k === 'd') {
      e.preventDefault();
      this.room.toggleMic();
    } else if (k === 'e') {
      e.preventDefault();
      void this.room.toggleCamera();
    }
  }

  protected camTrack(p: Participant): number {
    return trackIdOf(p.id, Slot.Camera);
  }

  protected hasCamera(p: Participant): boolean {
    if (p.video_muted) return false;
    if (p.id === this.room.selfId()) return this.media.hasCamera();
    const id = this.camTrack(p);
    return this.room.tracks().some((t) => t.track_id === id);
  }

  protected rxLevel(pid: number): number {
    return Math.round((this.room.rxLoudness()[pid] ?? 0) * 1000);
  }

  protected nameOf(pid: number): string {
    return this.room.participants().find((p) => p.id === pid)?.name ?? 'Someone';
  }

  protected toggle(p: Exclude<Panel, null>): void {
    this.setPanel(this.panel() === p ? null : p);
  }

  protected setPanel(p: Panel): void {
    this.panel.set(p);
    this.room.setChatOpen(p === 'chat');
  }

  protected react(e: string): void {
    this.room.react(e);
    this.emojiOpen.set(false);
  }

  protected async copyLink(): Promise<void> {
    try {
      await navigator.clipboard.writeText(this.link());
    } catch {
      /* visible anyway */
    }
    this.copied.set(true);
    setTimeout(() => this.copied.set(false), 2000);
  }
}

function formatClock(d: Date): string {
  return `${String(d.getHours()).padStart(2, '0')}:${String(d.getMinutes()).padStart(2, '0')}`;
}
