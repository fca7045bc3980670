import { ChangeDetectionStrategy, Component, computed, inject, input, OnInit, output } from '@angular/core';
import { FormsModule } from '@angular/forms';
import { GuestInfo, Meeting } from '../../core/api/api.models';
import { AuthService } from '../../core/auth/auth.service';
import { PublishService } from '../../core/media/publish/publish.service';
import { SrcObjectDirective } from '../../core/media/src-object.directive';
import { initials } from '../../shared/initials';
import { Icon } from '../../shared/icon';

/** Camera preview, mic meter, device pickers and the Join button. */
@Component({
  selector: 'app-prejoin',
  imports: [FormsModule, SrcObjectDirective, Icon],
  changeDetection: ChangeDetectionStrategy.OnPush,
  template: `
    <main class="page prejoin">
      <section class="preview-col">
        <div class="preview" [class.off]="!media.hasCamera()">
          @if (media.hasCamera()) {
            <video class="mirror" [appSrcObject]="media.localStream()" autoplay playsinline muted aria-label="Your camera preview"></video>
          } @else {
            <div class="avatar" aria-hidden="true">{{ myInitials() }}</div>
            <p class="cam-off-text">Camera is off</p>
          }
          <div class="preview-controls">
            <button type="button" class="ctl" [class.off]="!media.micOn()" (click)="media.setMic(!media.micOn())"
              [attr.aria-pressed]="!media.micOn()" [attr.aria-label]="media.micOn() ? 'Turn off microphone' : 'Turn on microphone'"><app-icon [name]="media.micOn() ? 'mic' : 'micOff'" /></button>
            <button type="button" class="ctl" [class.off]="!media.camOn()" (click)="media.setCamera(!media.camOn())"
              [attr.aria-pressed]="!media.camOn()" [attr.aria-label]="media.camOn() ? 'Turn off camera' : 'Turn on camera'"><app-icon [name]="media.camOn() ? 'cam' : 'camOff'" /></button>
          </div>
        </div>
        <div class="meter" role="meter" aria-label="Microphone level" aria-valuemin="0" aria-valuemax="100" [attr.aria-valuenow]="meterPct()">
          <span [style.width.%]="meterPct()"></span>
        </div>
        <div class="row devices">
          <div class="field">
            <label for="mic">Microphone</label>
            <select id="mic" [ngModel]="media.audioDeviceId()" (ngModelChange)="media.selectAudioDevice($event)">
              @for (d of media.devices().audio; track d.deviceId) {
                <option [value]="d.deviceId">{{ d.label || 'Microphone' }}</option>
              }
            </select>
          </div>
          <div class="field">
            <label for="cam">Camera</label>
            <select id="cam" [ngModel]="media.videoDeviceId()" (ngModelChange)="media.selectVideoDevice($event)">
              @for (d of media.devices().video; track d.deviceId) {
                <option [value]="d.deviceId">{{ d.label || 'Camera' }}</option>
              }
            </select>
          </div>
        </div>
        @if (media.error()) {
          <p class="error" role="alert">{{ media.error() }}</p>
        }
      </section>

      <section class="join-col">
        <h1>{{ meeting()?.title || 'Ready to join?' }}</h1>
        @if (meeting(); as m) {
          <p class="muted">Hosted by {{ m.host_name }} · {{ code() }}</p>
        }
        @if (unsupported) {
          <p class="error" role="alert">{{ unsupported }}</p>
        }
        <form (ngSubmit)="submit()" #f="ngForm">
          @if (!auth.signedIn()) {
            <div class="field">
              <label for="gname">Your name</label>
              <input id="gname" name="gname" [(ngModel)]="guestName" required autocomplete="name" />
            </div>
            <div class="field">
              <label for="gemail">Your email</label>
              <input id="gemail" name="gemail" type="email" [(ngModel)]="guestEmail" required email autocomplete="email" />
            </div>
          } @else {
            <p>Joining as <strong>{{ auth.user()?.name }}</strong></p>
          }
          @if (error()) {
            <p class="error" role="alert">{{ error() }}</p>
          }
          @if (waiting()) {
            <p class="ok" role="status" data-testid="lobby">{{ lobbyMessage() || 'Asking to be let in…' }}<br />You'll join the call when someone lets you in.</p>
          } @else {
            <button class="btn btn-primary join-btn" type="submit" [disabled]="busy() || f.invalid || !meeting()">{{ busy() ? 'Joining…' : joinLabel() }}</button>
          }
        </form>
      </section>
    </main>
  `,
  styles: `
    .prejoin { display: flex; gap: 2.5rem; align-items: center; flex-wrap: wrap; min-height: 80vh; }
    .preview-col { flex: 2 1 420px; }
    .join-col { flex: 1 1 260px; text-align: center; }
    .preview { position: relative; aspect-ratio: 16 / 10; background: #202124; border-radius: var(--radius); overflow: hidden; display: flex; align-items: center; justify-content: center; flex-direction: column; color: #fff; }
    .preview video { width: 100%; height: 100%; object-fit: cover; }
    .preview video.mirror { transform: scaleX(-1); }
    .preview-controls { position: absolute; bottom: 1rem; left: 0; right: 0; display: flex; justify-content: center; gap: 1rem; }
    .meter { height: 6px; background: var(--bg-soft); border-radius: 3px; margin: .6rem 0 1rem; overflow: hidden; }
    .meter span { display: block; height: 100%; background: var(--green); transition: width .08s linear; }
    .join-btn { border-radius: 24px; padding: .75rem 1.6rem; font-size: 1rem; }
    .join-col .field { text-align: left; }
  `,
})
export class Prejoin implements OnInit {
  protected readonly media = inject(PublishService);
  protected readonly auth = inject(AuthService);
  readonly code = input.required<string>();
  readonly meeting = input<Meeting | null>(null);
  readonly busy = input(false);
  readonly waiting = input(false);
  readonly lobbyMessage = input<string | null>(null);
  readonly error = input<string | null>(null);
  readonly join = output<GuestInfo>();
  protected guestName = '';
  protected guestEmail = '';
  protected readonly unsupported = PublishService.supported();
  protected readonly meterPct = computed(() => Math.round(this.media.micLevel() * 100));
  protected readonly myInitials = computed(() => initials(this.auth.user()?.name ?? this.guestName));
  /** Private meetings ask the host unless we are the host or invited. */
  protected readonly joinLabel = computed(() => {
    const m = this.meeting();
    return m && m.type === 'private' && !m.role ? 'Ask to join' : 'Join now';
  });

  ngOnInit(): void {
    void this.media.startPreview();
  }

  submit(): void {
    this.join.emit(this.auth.signedIn() ? {} : { name: this.guestName.trim(), email: this.guestEmail.trim() });
  }
}
