import type { CaptureService } from '../../core/media/publish/capture.service';
import type { PublishService } from '../../core/media/publish/publish.service';
import type { PlaybackService } from '../../core/media/watch/playback.service';
import type { TransportService } from '../../core/transport/transport.service';
import type { RoomService } from './room.service';

export interface TestHookSources {
  room: RoomService;
  transport: TransportService;
  capture: CaptureService;
  publish: PublishService;
  playback: PlaybackService;
}

/**
 * window.__quicmeet: read-only figures for the end-to-end tests and for debugging. Only the
 * development and e2e builds import this file (see src/environments); production has no hook.
 */
export function installTestHook({ room, transport, capture, publish, playback }: TestHookSources): void {
  (globalThis as unknown as { __quicmeet: unknown }).__quicmeet = {
    state: () => ({
      phase: room.phase(),
      transport: transport.kind(),
      transportState: transport.state(),
      transportError: transport.lastError(),
      error: room.error(),
      rttMs: transport.rttMs(),
      selfId: room.selfId(),
      welcomes: room.welcomes,
      participants: room.participants(),
      tracks: room.tracks(),
      firstFrameMs: room.firstFrameMs(),
      media: { encoded: publish.stats(), remotes: playback.stats(), decodeIn: playback.decodeIn },
      audio: room
        .tracks()
        .filter((t) => t.kind === 'audio' && t.participant_id !== room.selfId())
        .map((t) => ({ trackId: t.track_id, loudness: playback.loudness(t.track_id), frames: playback.audioFrames(t.track_id) })),
      levels: room.levels(),
      quality: room.quality(),
      devices: { camera: capture.camera()?.label ?? null, mic: capture.mic()?.label ?? null, problems: capture.problems().map((p) => p.kind) },
    }),
    /** What unplugging does to a track: it ends without the page stopping it. */
    unplug(kind: 'camera' | 'microphone'): boolean {
      const t = kind === 'camera' ? capture.camera() : capture.mic();
      if (!t) return false;
      t.stop();
      t.dispatchEvent(new Event('ended'));
      return true;
    },
    /** Per-frame timings for the latency benchmark: what we sent, and what we received per track. */
    timings: async () => ({ sent: publish.sentTimings(), received: await playback.timings() }),
  };
}
