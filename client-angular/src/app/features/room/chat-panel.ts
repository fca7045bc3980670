import { ChangeDetectionStrategy, Component, ElementRef, effect, inject, output, viewChild } from '@angular/core';
import { DatePipe } from '@angular/common';
import { FormsModule } from '@angular/forms';
import { RoomService } from './room.service';
import { Icon } from '../../shared/icon';

@Component({
  selector: 'app-chat-panel',
  imports: [FormsModule, DatePipe, Icon],
  styles: ':host { display: flex; }',
  changeDetection: ChangeDetectionStrategy.OnPush,
  template: `
    <aside class="side-panel" aria-labelledby="chat-title">
      <header>
        <h2 id="chat-title">In-call messages</h2>
        <button type="button" class="btn btn-text" (click)="closed.emit()" aria-label="Close chat"><app-icon name="close" /></button>
      </header>
      <div class="body" #scroller aria-live="polite" data-testid="chat-log">
        @if (room.chat().length === 0) {
          <p class="muted">Messages can be seen only by people in the call and are deleted when the call ends.</p>
        }
        @for (c of room.chat(); track c.id) {
          <div class="chat-line" [class.self]="c.self">
            <div><span class="who">{{ c.self ? 'You' : c.name }}</span><span class="when">{{ c.ts_ms | date: 'HH:mm' }}</span></div>
            <div class="text">{{ c.text }}</div>
          </div>
        }
      </div>
      <form class="chat-form" (ngSubmit)="send()">
        <label class="sr-only" for="chat-input">Send a message to everyone</label>
        <input id="chat-input" name="text" [(ngModel)]="text" placeholder="Send a message" autocomplete="off" maxlength="2000" />
        <button type="submit" class="btn btn-text" [disabled]="!text.trim()" aria-label="Send message"><app-icon name="send" /></button>
      </form>
    </aside>
  `,
})
export class ChatPanel {
  protected readonly room = inject(RoomService);
  readonly closed = output<void>();
  protected text = '';
  private readonly scroller = viewChild<ElementRef<HTMLElement>>('scroller');

  constructor() {
    effect(() => {
      this.room.chat();
      const el = this.scroller()?.nativeElement;
      if (el) queueMicrotask(() => (el.scrollTop = el.scrollHeight));
    });
  }

  send(): void {
    this.room.sendChat(this.text);
    this.text = '';
  }
}
