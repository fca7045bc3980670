import { signal } from '@angular/core';
import { TestBed } from '@angular/core/testing';
import type { ClientMessage } from '../../protocol/control';
import type { MediaFrame } from '../../protocol/frame';
import type { UplinkState } from '../../transport/connection';
import { CaptureService } from './capture.service';
import type { LayerEncoderFactory } from './layer-encoders';
import { EncoderFactory, ENCODERS, LAYER_ENCODERS, PublishService, PublishSession } from './publish.service';

/**
 * Test support shared by the publish specs (not part of the app build): a MediaStreamTrack and a
 * CaptureService as far as PublishService looks at them, and a TestBed with fake encoders.
 */

/** A MediaStreamTrack as far as PublishService looks at one. */
export function fakeTrack(id: string, kind: 'audio' | 'video'): MediaStreamTrack {
  return { id, kind, readyState: 'live', getSettings: () => (kind === 'video' ? { width: 640, height: 480 } : {}) } as unknown as MediaStreamTrack;
}

/** CaptureService's signals, set by the test instead of by devices. */
export function fakeCapture(camera: MediaStreamTrack | null = null) {
  return {
    camera: signal<MediaStreamTrack | null>(camera),
    mic: signal<MediaStreamTrack | null>(null),
    screen: signal<MediaStreamTrack | null>(null),
    screenAudio: signal<MediaStreamTrack | null>(null),
    camOn: signal(true),
    micOn: signal(true),
    reportBroken: vi.fn(),
  };
}

/**
 * A PublishService over `capture`, with `encoders` (and `layerEncoders` when given) in place of
 * WebCodecs, and a session factory that records what it is sent.
 */
export function publishTestBed(opts: { capture: ReturnType<typeof fakeCapture>; encoders: EncoderFactory; layerEncoders?: LayerEncoderFactory }) {
  TestBed.configureTestingModule({
    providers: [
      PublishService,
      { provide: CaptureService, useValue: opts.capture },
      { provide: ENCODERS, useValue: opts.encoders },
      ...(opts.layerEncoders ? [{ provide: LAYER_ENCODERS, useValue: opts.layerEncoders }] : []),
    ],
  });
  const publish = TestBed.inject(PublishService);
  const sent: ClientMessage[] = [];
  const frames: MediaFrame[] = [];
  const uplink: UplinkState = { backlogBytes: 0, drops: 0 };
  const session = (selfId: number): PublishSession => ({
    selfId,
    control: (m) => sent.push(m),
    frame: (f) => frames.push(f),
    announced: () => undefined,
    retracted: () => undefined,
    uplink: () => uplink,
  });
  return { publish, sent, frames, uplink, session };
}
