import { ChangeDetectionStrategy, Component, inject } from '@angular/core';
import { CaptureService } from '../../core/media/publish/capture.service';

/** "Your microphone isn't working", with the reason and a Retry button, per broken device. */
@Component({
  selector: 'app-device-problems',
  changeDetection: ChangeDetectionStrategy.OnPush,
  template: `
    @for (p of capture.problems(); track p.kind) {
      <div class="device-problem" role="alert" [attr.data-testid]="'device-problem-' + p.kind">
        <strong>{{ p.title }}</strong>
        <span>{{ p.detail }}</span>
        <button type="button" class="btn" (click)="capture.retry(p.kind)">Retry</button>
      </div>
    }
  `,
  styles: `
    :host { display: flex; flex-direction: column; gap: .5rem; }
    .device-problem { display: flex; gap: .75rem; align-items: center; flex-wrap: wrap; background: #fce8e6; color: #a50e0e; border-radius: 8px; padding: .5rem .75rem; }
  `,
})
export class DeviceProblems {
  protected readonly capture = inject(CaptureService);
}
