import type { PublishService } from '../../core/media/publish/publish.service';
import type { PlaybackService } from '../../core/media/watch/playback.service';
import type { TransportService } from '../../core/transport/transport.service';
import type { RoomService } from './room.service';

export interface TestHookSources {
  room: RoomService;
  transport: TransportService;
  publish: PublishService;
  playback: PlaybackService;
}

/**
 * window.__quicmeet: read-only figures for the end-to-end tests and for debugging. Only the
 * development and e2e builds import this file (see src/environments); production has no hook.
 */
export function installTestHook({ room, transport, publish, playback }: TestHookSources): void {
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
      media: { encoded: publish.stats(), remotes: playback.stats() },
      audio: room
        .tracks()
        .filter((t) => t.kind === 'audio' && t.participant_id !== room.selfId())
        .map((t) => ({ trackId: t.track_id, loudness: playback.loudness(t.track_id), frames: playback.audioFrames(t.track_id) })),
      levels: room.levels(),
    }),
  };
}
