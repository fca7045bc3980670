import { Injectable, OnDestroy } from '@angular/core';
import { MediaFrame, MediaKind } from '../../protocol/frame';
import { AudioMixer } from './audio-mixer';
import { MediaPath } from './path-gate';
import { FrameTiming } from './remote-video';
import { RemoteVideoStats } from './video-decode-messages';
import { videoPlayback } from './video-playback';

export type { RemoteVideoStats } from './video-decode-messages';

/**
 * What we receive: every remote video track decoded and painted into its tile's canvas (in a
 * worker with OffscreenCanvas where the browser can), and every remote Opus track decoded into
 * one AudioWorklet mix. Provided by the meeting page, so its decoders and audio context end with
 * the meeting.
 */
@Injectable()
export class PlaybackService implements OnDestroy {
  private readonly video = videoPlayback({
    keyframeNeeded: (id) => this.keyframeRequester(id),
    firstPaint: (id) => this.paintListener(id),
  });
  private readonly mixer = new AudioMixer();
  private readonly tracks = new Set<number>();
  private keyframeRequester: (trackId: number) => void = () => undefined;
  private paintListener: (trackId: number) => void = () => undefined;

  /** 'worker' or 'main': where video is decoded (diagnostics and tests). */
  readonly decodeIn = { video: this.video.where, audio: this.mixer.decodeIn };

  ngOnDestroy(): void {
    this.reset();
    this.mixer.destroy();
    this.video.close();
  }

  /** Call from the Join click: browsers only start audio output after a user gesture. */
  startAudioOutput(): Promise<void> {
    return this.mixer.start();
  }

  /** Whether the audio output (the mixer's AudioWorklet) runs, and how much remote speech it played. */
  audioOutput(): { state: 'off' | 'running' | 'failed'; samplesRendered: number } {
    return { state: this.mixer.output, samplesRendered: this.mixer.samplesRendered };
  }

  onKeyframeNeeded(fn: (trackId: number) => void): void {
    this.keyframeRequester = fn;
  }

  /** `fn` runs when a remote video track's first frame is painted. */
  onPaint(fn: (trackId: number) => void): void {
    this.paintListener = fn;
  }

  push(f: MediaFrame): void {
    this.tracks.add(f.trackId);
    if (f.kind === MediaKind.Audio) {
      this.mixer.push(f);
      return;
    }
    this.video.push(f);
  }

  attachCanvas(trackId: number, canvas: HTMLCanvasElement | null): void {
    this.video.attach(trackId, canvas);
  }

  loudness(trackId: number): number {
    return this.mixer.loudness(trackId);
  }

  audioFrames(trackId: number): number {
    return this.mixer.framesDecoded(trackId);
  }

  /** Audio frames played for a track from either path (server or direct). */
  audioPlayed(trackId: number): number {
    return this.mixer.framesPlayed(trackId);
  }

  /** A remote track's audio jitter buffer: its target (ms) and how often it ran dry. */
  audioBuffer(trackId: number): { targetMs: number | null; underruns: number } {
    return { targetMs: this.mixer.bufferTargetMs(trackId), underruns: this.mixer.underruns(trackId) };
  }

  /** A frame of a direct (peer-to-peer) video track: into the same tile as the server's. */
  pushDirectVideo(trackId: number, frame: VideoFrame): void {
    this.tracks.add(trackId);
    this.video.pushDirect(trackId, frame);
  }

  /** Decoded audio of a direct (peer-to-peer) track: into the same mix as the server's. */
  pushDirectAudio(trackId: number, data: AudioData): void {
    this.tracks.add(trackId);
    this.mixer.pushDirect(trackId, data);
  }

  /** Which path these tracks play from; the other fills in until the chosen one delivers. */
  prefer(trackIds: readonly number[], path: MediaPath): void {
    for (const id of trackIds) {
      this.video.prefer(id, path);
      this.mixer.prefer(id, path);
    }
  }

  /** When a track's video last came over `path` (performance.now() ms; -Infinity if never). */
  lastVideoAt(trackId: number, path: MediaPath): number {
    return this.video.lastAt(trackId, path);
  }

  remove(trackId: number): void {
    this.tracks.delete(trackId);
    this.video.remove(trackId);
    this.mixer.remove(trackId);
  }

  /** Drops every remote decoder but keeps audio output running (used on reconnect). */
  reset(): void {
    for (const id of [...this.tracks]) this.remove(id);
  }

  closeRemotes(): void {
    this.reset();
    this.mixer.close();
  }

  stats(): RemoteVideoStats[] {
    return this.video.stats();
  }

  /** Per-frame timings of every remote video track (the latency benchmark reads them). */
  timings(): Promise<Record<number, FrameTiming[]>> {
    return this.video.timings();
  }
}
