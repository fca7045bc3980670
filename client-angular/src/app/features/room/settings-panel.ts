import { ChangeDetectionStrategy, Component, output } from '@angular/core';
import { Icon } from '../../shared/icon';
import { DeviceProblems } from '../devices/device-problems';
import { DeviceSettings } from '../devices/device-settings';

/** Switch microphone or camera mid-call. */
@Component({
  selector: 'app-settings-panel',
  imports: [Icon, DeviceSettings, DeviceProblems],
  changeDetection: ChangeDetectionStrategy.OnPush,
  styles: ':host { display: flex; } app-device-settings ::ng-deep .devices { flex-direction: column; }',
  template: `
    <aside class="side-panel" aria-labelledby="settings-title" data-testid="settings-panel">
      <header>
        <h2 id="settings-title">Settings</h2>
        <button type="button" class="btn btn-text" (click)="closed.emit()" aria-label="Close settings"><app-icon name="close" /></button>
      </header>
      <div class="body">
        <app-device-settings />
        <app-device-problems />
      </div>
    </aside>
  `,
})
export class SettingsPanel {
  readonly closed = output<void>();
}
