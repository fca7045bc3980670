import { ChangeDetectionStrategy, Component, inject } from '@angular/core';
import { FormsModule } from '@angular/forms';
import { CaptureService } from '../../core/media/publish/capture.service';

/** Microphone and camera pickers: on the pre-join page and in the room's settings panel. */
@Component({
  selector: 'app-device-settings',
  imports: [FormsModule],
  changeDetection: ChangeDetectionStrategy.OnPush,
  template: `
    <div class="row devices">
      <div class="field">
        <label for="mic-select">Microphone</label>
        <select id="mic-select" data-testid="mic-select" [ngModel]="capture.audioDeviceId() ?? ''" (ngModelChange)="capture.selectAudioDevice($event)">
          @if (!capture.audioDeviceId()) {
            <option value="">Default</option>
          }
          @for (d of capture.devices().audio; track d.deviceId) {
            <option [value]="d.deviceId">{{ d.label || 'Microphone' }}</option>
          }
        </select>
      </div>
      <div class="field">
        <label for="cam-select">Camera</label>
        <select id="cam-select" data-testid="cam-select" [ngModel]="capture.videoDeviceId() ?? ''" (ngModelChange)="capture.selectVideoDevice($event)">
          @if (!capture.videoDeviceId()) {
            <option value="">Default</option>
          }
          @for (d of capture.devices().video; track d.deviceId) {
            <option [value]="d.deviceId">{{ d.label || 'Camera' }}</option>
          }
        </select>
      </div>
    </div>
  `,
})
export class DeviceSettings {
  protected readonly capture = inject(CaptureService);
}
