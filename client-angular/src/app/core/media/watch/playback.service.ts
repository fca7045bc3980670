import { Injectable, OnDestroy } from '@angular/core';
import { MediaFrame, MediaKind } from '../../protocol/frame';
import { AudioMixer } from './audio-mixer';
import { RemoteVideo } from './remote-video';

export interface RemoteVideoStats {
  trackId: number;
  painted: number;
  decoded: number;
  latencyMs: number | null;
}

/**
 * What we receive: one decoder per remote video track painting into its tile's canvas, and every
 * remote Opus track decoded into one AudioWorklet mix. Provided by the meeting page, so its
 * decoders and audio context end with the meeting.
 */
@Injectable()
export class PlaybackService implements OnDestroy {
  private readonly remotes = new Map<number, RemoteVideo>();
  private readonly canvases = new Map<number, HTMLCanvasElement>();
  private readonly mixer = new AudioMixer();
  private keyframeRequester: (trackId: number) => void = () => undefined;
  private paintListener: (v: RemoteVideo) => void = () => undefined;

  ngOnDestroy(): void {
    this.closeRemotes();
  }

  /** Call from the Join click: browsers only start audio output after a user gesture. */
  startAudioOutput(): Promise<void> {
    return this.mixer.start();
  }

  onKeyframeNeeded(fn: (trackId: number) => void): void {
    this.keyframeRequester = fn;
  }

  onPaint(fn: (v: RemoteVideo) => void): void {
    this.paintListener = fn;
  }

  push(f: MediaFrame): void {
    if (f.kind === MediaKind.Audio) {
      this.mixer.push(f);
      return;
    }
    this.remote(f.trackId).push(f);
  }

  remote(trackId: number): RemoteVideo {
    let r = this.remotes.get(trackId);
    if (!r) {
      r = new RemoteVideo(trackId, (id) => this.keyframeRequester(id), (v) => this.paintListener(v));
      this.remotes.set(trackId, r);
      const c = this.canvases.get(trackId);
      if (c) r.attach(c);
    }
    return r;
  }

  attachCanvas(trackId: number, canvas: HTMLCanvasElement | null): void {
    if (canvas) this.canvases.set(trackId, canvas);
    else this.canvases.delete(trackId);
    this.remotes.get(trackId)?.attach(canvas);
  }

  loudness(trackId: number): number {
    return this.mixer.loudness(trackId);
  }

  audioFrames(trackId: number): number {
    return this.mixer.framesDecoded(trackId);
  }

  remove(trackId: number): void {
    this.remotes.get(trackId)?.close();
    this.remotes.delete(trackId);
    this.mixer.remove(trackId);
  }

  /** Drops every remote decoder but keeps audio output running (used on reconnect). */
  reset(): void {
    for (const id of [...this.remotes.keys()]) this.remove(id);
  }

  closeRemotes(): void {
    this.reset();
    this.mixer.close();
  }

  stats(): RemoteVideoStats[] {
    return [...this.remotes.values()].map((r) => ({ trackId: r.trackId, painted: r.framesPainted, decoded: r.framesDecoded, latencyMs: r.latencyMs }));
  }
}
