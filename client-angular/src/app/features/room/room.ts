import { ChangeDetectionStrategy, Component, computed, DestroyRef, inject, signal } from '@angular/core';
import { PublishService } from '../../core/media/publish/publish.service';
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
  templateUrl: './room.html',
})
export class Room {
  protected readonly room = inject(RoomService);
  protected readonly media = inject(PublishService);
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
