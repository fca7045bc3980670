import { Directive, effect, ElementRef, inject, input, OnDestroy } from '@angular/core';
import { PlaybackService } from '../../core/media/watch/playback.service';
import { RoomService } from './room.service';

/** Paints a remote video track into this canvas and reports the canvas size for subscriptions. */
@Directive({ selector: 'canvas[appTrackCanvas]' })
export class TrackCanvasDirective implements OnDestroy {
  readonly appTrackCanvas = input.required<number>();
  private readonly el = inject<ElementRef<HTMLCanvasElement>>(ElementRef);
  private readonly media = inject(PlaybackService);
  private readonly room = inject(RoomService);
  private attached: number | null = null;
  private readonly resize = typeof ResizeObserver === 'function'
    ? new ResizeObserver((entries) => {
        const r = entries[0]?.contentRect;
        if (r && this.attached !== null) this.room.setTileSize(this.attached, r.width, r.height);
      })
    : null;

  constructor() {
    effect(() => {
      const id = this.appTrackCanvas();
      if (this.attached !== null && this.attached !== id) this.media.attachCanvas(this.attached, null);
      this.attached = id;
      this.media.attachCanvas(id, this.el.nativeElement);
    });
    this.resize?.observe(this.el.nativeElement);
  }

  ngOnDestroy(): void {
    this.resize?.disconnect();
    if (this.attached !== null) this.media.attachCanvas(this.attached, null);
  }
}
