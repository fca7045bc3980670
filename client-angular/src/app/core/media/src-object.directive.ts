import { Directive, effect, ElementRef, inject, input } from '@angular/core';

/** Binds a MediaStream to a <video>: `<video [appSrcObject]="stream">`. */
@Directive({ selector: 'video[appSrcObject]' })
export class SrcObjectDirective {
  readonly appSrcObject = input<MediaStream | null>(null);
  private readonly el = inject<ElementRef<HTMLVideoElement>>(ElementRef);

  constructor() {
    effect(() => {
      const v = this.el.nativeElement;
      const s = this.appSrcObject();
      if (v.srcObject !== s) {
        v.srcObject = s;
        if (s) void v.play().catch(() => undefined);
      }
    });
  }
}
