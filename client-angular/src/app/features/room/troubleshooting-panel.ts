import { ChangeDetectionStrategy, Component, DestroyRef, inject, output, signal } from '@angular/core';
import { DatePipe } from '@angular/common';
import { PublishService, PublishStats } from '../../core/media/publish/publish.service';
import { PlaybackService, RemoteVideoStats } from '../../core/media/watch/playback.service';
import { participantOfTrack } from '../../core/protocol/frame';
import { TransportService } from '../../core/transport/transport.service';
import { Icon } from '../../shared/icon';
import { RoomService } from './room.service';

interface TileRow extends RemoteVideoStats {
  name: string;
  fps: number;
}

/**
 * "Troubleshooting": the transport, round trip, bitrate in and out, each tile's layer,
 * resolution, frame rate and dropped frames, what we send, and the server's `layer_changed`.
 * Refreshed every second while open.
 */
@Component({
  selector: 'app-troubleshooting-panel',
  imports: [Icon, DatePipe],
  changeDetection: ChangeDetectionStrategy.OnPush,
  styles: `
    :host { display: flex; }
    table { width: 100%; border-collapse: collapse; font-size: .85rem; }
    th, td { text-align: left; padding: .2rem .3rem; border-bottom: 1px solid #5f6368; }
    dl { display: grid; grid-template-columns: auto 1fr; gap: .2rem .8rem; font-size: .9rem; }
    dt { color: #bdc1c6; }
  `,
  template: `
    <aside class="side-panel" aria-labelledby="ts-title" data-testid="troubleshooting">
      <header>
        <h2 id="ts-title">Troubleshooting</h2>
        <button type="button" class="btn btn-text" (click)="closed.emit()" aria-label="Close troubleshooting"><app-icon name="close" /></button>
      </header>
      <div class="body">
        <dl>
          <dt>Transport</dt><dd data-testid="ts-transport">{{ transport.label() }}</dd>
          <dt>Round trip</dt><dd data-testid="ts-rtt">{{ transport.rttMs() ?? '–' }} ms</dd>
          <dt>Bitrate in</dt><dd data-testid="ts-in">{{ transport.bitrateKbps().in }} kbit/s</dd>
          <dt>Bitrate out</dt><dd data-testid="ts-out">{{ transport.bitrateKbps().out }} kbit/s</dd>
          @if (sent(); as s) {
            <dt>Sending</dt><dd>camera {{ s.video }} frames ({{ s.videoMode || 'off' }}), mic {{ s.audio }}, screen {{ s.screen }}, dropped {{ s.droppedFrames }}</dd>
            <dt>Camera</dt><dd data-testid="ts-camera">{{ s.camera.width }}×{{ s.camera.height }}, encode {{ s.camera.encodeMs }} ms/frame{{ s.camera.cpuScale < 1 ? ', reduced to ' + s.camera.cpuScale * 100 + ' % for the CPU' : '' }}</dd>
            <dt>Camera sent at</dt><dd data-testid="ts-camera-rate">{{ s.camera.bitrate / 1000 }} kbit/s{{ s.camera.demandStep > 0 ? (s.camera.demandStep === s.camera.step ? ': nobody needs the full picture' : '') : '' }}</dd>
            <dt>CPU</dt><dd data-testid="ts-pressure">{{ s.pressure.state }}{{ s.pressure.step > 0 ? ': video held to step ' + s.pressure.step : '' }}</dd>
            <dt>Uplink</dt><dd data-testid="ts-uplink">{{ s.uplink.step === 0 ? 'full quality' : 'step ' + s.uplink.step }}: {{ s.uplink.bitrate / 1000 }} kbit/s, {{ s.uplink.framerate }} fps, {{ s.uplink.scale === 1 ? 'full size' : 'half size' }}</dd>
          }
        </dl>
        <h3>Tiles</h3>
        <table data-testid="ts-tiles">
          <thead><tr><th>Who</th><th>Layer</th><th>Resolution</th><th>fps</th><th>Dropped</th></tr></thead>
          <tbody>
            @for (t of tiles(); track t.trackId) {
              <tr [attr.data-track-id]="t.trackId">
                <td>{{ t.name }}</td>
                <td data-testid="ts-layer">{{ t.layer < 0 ? '–' : t.layer }}</td>
                <td data-testid="ts-resolution">{{ t.width }}×{{ t.height }}</td>
                <td>{{ t.fps }}</td>
                <td data-testid="ts-dropped">{{ t.dropped }}</td>
              </tr>
            } @empty {
              <tr><td colspan="5" class="muted">No video yet</td></tr>
            }
          </tbody>
        </table>
        <h3>Layer changes</h3>
        <ul data-testid="ts-layer-log">
          @for (e of room.layerLog(); track $index) {
            <li>{{ e.at | date: 'HH:mm:ss' }} · {{ nameOf(e.trackId) }}: layer {{ e.layer }} ({{ e.width }}×{{ e.height }})</li>
          } @empty {
            <li class="muted">None</li>
          }
        </ul>
      </div>
    </aside>
  `,
})
export class TroubleshootingPanel {
  readonly closed = output<void>();
  protected readonly room = inject(RoomService);
  protected readonly transport = inject(TransportService);
  private readonly playback = inject(PlaybackService);
  private readonly publish = inject(PublishService);
  protected readonly tiles = signal<TileRow[]>([]);
  protected readonly sent = signal<PublishStats | null>(null);
  private readonly lastPainted = new Map<number, { painted: number; at: number }>();

  constructor() {
    this.refresh();
    const t = setInterval(() => this.refresh(), 1000);
    inject(DestroyRef).onDestroy(() => clearInterval(t));
  }

  protected nameOf(trackId: number): string {
    const pid = participantOfTrack(trackId);
    return this.room.participants().find((p) => p.id === pid)?.name ?? `#${pid}`;
  }

  private refresh(): void {
    const now = performance.now();
    this.sent.set(this.publish.stats());
    this.tiles.set(
      this.playback.stats().map((v) => {
        const prev = this.lastPainted.get(v.trackId);
        this.lastPainted.set(v.trackId, { painted: v.painted, at: now });
        const fps = prev && now > prev.at ? Math.round(((v.painted - prev.painted) * 1000) / (now - prev.at)) : 0;
        return { ...v, name: this.nameOf(v.trackId), fps };
      }),
    );
  }
}
