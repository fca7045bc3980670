import { ChangeDetectionStrategy, Component, inject, output } from '@angular/core';
import { RoomService } from './room.service';
import { avatarColor, initials } from '../../shared/initials';
import { Icon } from '../../shared/icon';

@Component({
  selector: 'app-people-panel',
  imports: [Icon],
  changeDetection: ChangeDetectionStrategy.OnPush,
  styles: ':host { display: flex; }',
  template: `
    <aside class="side-panel" aria-labelledby="people-title">
      <header>
        <h2 id="people-title">People ({{ room.participants().length }})</h2>
        <button type="button" class="btn btn-text" (click)="closed.emit()" aria-label="Close people"><app-icon name="close" /></button>
      </header>
      <div class="body">
        @if (room.isHost() && room.knocks().length > 0) {
          <h3>Waiting to join</h3>
          <ul class="plist" data-testid="knocks">
            @for (k of room.knocks(); track k.participant_id) {
              <li>
                <span class="small-avatar" [style.background]="color(k.participant_id)" aria-hidden="true">{{ init(k.name) }}</span>
                <span class="pname">{{ k.name }} @if (k.email) {<span class="muted">{{ k.email }}</span>}</span>
                <button type="button" class="btn" (click)="room.admit(k)">Admit</button>
                <button type="button" class="btn btn-danger" (click)="room.deny(k)">Deny</button>
              </li>
            }
          </ul>
        }
        <h3>In the meeting</h3>
        <ul class="plist">
          @for (p of room.participants(); track p.id) {
            <li [attr.data-participant-id]="p.id">
              <span class="small-avatar" [style.background]="color(p.id)" aria-hidden="true">{{ init(p.name) }}</span>
              <span class="pname">{{ p.name }}{{ p.id === room.selfId() ? ' (You)' : '' }}
                @if (p.role === 'host') {<span class="muted"> · Meeting host</span>}
              </span>
              @if (p.hand_raised) {<span aria-label="Hand raised"><app-icon name="hand" [size]="18" /></span>}
              <span [attr.aria-label]="p.audio_muted ? 'Microphone off' : 'Microphone on'"><app-icon [name]="p.audio_muted ? 'micOff' : 'mic'" [size]="18" /></span>
              @if (room.isHost() && p.id !== room.selfId()) {
                <button type="button" class="btn" (click)="room.askToMute(p)" [disabled]="p.audio_muted">Ask to mute</button>
                <button type="button" class="btn btn-danger" (click)="room.remove(p)">Remove</button>
              }
            </li>
          }
        </ul>
        @if (room.isHost()) {
          <p><button type="button" class="btn btn-danger" (click)="end()">End meeting for all</button></p>
        }
      </div>
    </aside>
  `,
})
export class PeoplePanel {
  protected readonly room = inject(RoomService);
  readonly closed = output<void>();
  protected readonly init = initials;
  protected readonly color = avatarColor;

  end(): void {
    if (globalThis.confirm?.('End the meeting for everyone?') ?? true) this.room.endForAll();
  }
}
