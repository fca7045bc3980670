import type { P2pService } from '../../core/p2p/p2p.service';
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
  p2p: P2pService;
}

/**
 * window.__quicmeet: read-only figures for the end-to-end tests and for debugging. Only the
 * development and e2e builds import this file (see src/environments); production has no hook.
 */
export function installTestHook({ room, transport, capture, publish, playback, p2p }: TestHookSources): void {
  (globalThis as unknown as { __quicmeet: unknown }).__quicmeet = {
    state: () => ({
      phase: room.phase(),
      transport: transport.kind(),
      transportState: transport.state(),
      transportError: transport.lastError(),
      error: room.error(),
      rttMs: transport.rttMs(),
      uplinkState: transport.uplink(),
      selfId: room.selfId(),
      welcomes: room.welcomes,
      participants: room.participants(),
      tracks: room.tracks(),
      firstFrameMs: room.firstFrameMs(),
      media: { encoded: publish.stats(), remotes: playback.stats(), decodeIn: playback.decodeIn, producedLayers: publish.producedLayers() },
      layerChanges: room.layerLog(),
      audio: room
        .tracks()
        .filter((t) => t.kind === 'audio' && t.participant_id !== room.selfId())
        .map((t) => ({ trackId: t.track_id, loudness: playback.loudness(t.track_id), frames: playback.audioFrames(t.track_id), played: playback.audioPlayed(t.track_id), buffer: playback.audioBuffer(t.track_id) })),
      audioOutput: playback.audioOutput(),
      levels: room.levels(),
      p2p: { path: p2p.path(), receivingDirect: p2p.receivingDirect(), switches: p2p.switches.map((s) => ({ ...s })), events: [...p2p.events], available: p2p.available() },
      quality: room.quality(),
      devices: { camera: capture.camera()?.label ?? null, mic: capture.mic()?.label ?? null, problems: capture.problems().map((p) => p.kind) },
    }),
    /** The live direct session's ICE state and whether a candidate pair succeeded (getStats). */
    p2pStats: () => p2p.stats(),
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
