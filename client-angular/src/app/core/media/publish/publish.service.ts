import { computed, Injectable, OnDestroy, signal } from '@angular/core';
import { MediaFrame, MediaKind } from '../../protocol/frame';
import { dbovToMeter, rms, rmsToDbov } from '../levels';
import { AudioPublisher } from './audio-publisher';
import { VideoPublisher } from './video-publisher';

export type FrameSink = (f: MediaFrame) => void;

export interface DeviceLists {
  audio: MediaDeviceInfo[];
  video: MediaDeviceInfo[];
}

const CAMERA = { width: 640, height: 480, bitrate: 800_000, framerate: 30 };
const SCREEN = { width: 1280, height: 720, bitrate: 1_200_000, framerate: 15 };
const KEYFRAME_MS = 2000;

/**
 * What we send: getUserMedia and getDisplayMedia capture, the preview and mic meter, and the
 * encoders for what we publish. Provided by the meeting page, so the devices stop with it.
 */
@Injectable()
export class PublishService implements OnDestroy {
  private readonly _camera = signal<MediaStreamTrack | null>(null);
  private readonly _mic = signal<MediaStreamTrack | null>(null);
  private readonly _screen = signal<MediaStreamTrack | null>(null);
  readonly micOn = signal(true);
  readonly camOn = signal(true);
  readonly micLevel = signal(0);
  readonly devices = signal<DeviceLists>({ audio: [], video: [] });
  readonly audioDeviceId = signal<string | null>(null);
  readonly videoDeviceId = signal<string | null>(null);
  readonly error = signal<string | null>(null);

  /** Camera + mic for the preview and self view. */
  readonly localStream = computed(() => {
    const tracks = [this._camera(), this._mic()].filter((t): t is MediaStreamTrack => !!t);
    return tracks.length ? new MediaStream(tracks) : null;
  });
  readonly hasCamera = computed(() => this._camera() !== null);
  readonly screenStream = computed(() => {
    const t = this._screen();
    return t ? new MediaStream([t]) : null;
  });
  readonly sharing = computed(() => this._screen() !== null);

  private meterReader: ReadableStreamDefaultReader<AudioData> | null = null;
  private meterTrack: MediaStreamTrack | null = null;

  private sink: FrameSink | null = null;
  private micTrackId = 0;
  private camTrackId = 0;
  private audioPub: AudioPublisher | null = null;
  private videoPub: VideoPublisher | null = null;
  private screenPub: VideoPublisher | null = null;

  ngOnDestroy(): void {
    this.stopLocal();
  }

  static supported(): string | null {
    if (!globalThis.isSecureContext) return 'This page is not a secure context (use https or localhost): camera and WebCodecs are unavailable.';
    if (typeof VideoEncoder !== 'function' || typeof AudioEncoder !== 'function') return 'This browser lacks WebCodecs; use a recent Chrome, Edge or Chromium.';
    return null;
  }

  // ---- local capture ----------------------------------------------------------------------

  async startPreview(): Promise<void> {
    this.error.set(null);
    if (!navigator.mediaDevices?.getUserMedia) {
      this.error.set('Camera and microphone are unavailable on this page (it must be served over https or from localhost).');
      return;
    }
    await Promise.all([this.camOn() ? this.openCamera() : Promise.resolve(), this.openMic()]);
    await this.refreshDevices();
  }

  async refreshDevices(): Promise<void> {
    try {
      const list = await navigator.mediaDevices.enumerateDevices();
      this.devices.set({ audio: list.filter((d) => d.kind === 'audioinput'), video: list.filter((d) => d.kind === 'videoinput') });
    } catch {
      /* keep the old list */
    }
  }

  async selectAudioDevice(id: string): Promise<void> {
    this.audioDeviceId.set(id || null);
    await this.openMic();
  }

  async selectVideoDevice(id: string): Promise<void> {
    this.videoDeviceId.set(id || null);
    if (this.camOn()) await this.openCamera();
  }

  setMic(on: boolean): void {
    this.micOn.set(on);
    const t = this._mic();
    if (t) t.enabled = on;
    if (this.audioPub) this.audioPub.paused = !on;
    if (!on) this.micLevel.set(0);
  }

  /** Camera off stops the track, so the camera light goes off. */
  async setCamera(on: boolean): Promise<void> {
    this.camOn.set(on);
    if (on) {
      await this.openCamera();
    } else {
      this.videoPub?.stop();
      this.videoPub = null;
      this._camera()?.stop();
      this._camera.set(null);
    }
  }

  private async openCamera(): Promise<void> {
    const id = this.videoDeviceId();
    try {
      const s = await navigator.mediaDevices.getUserMedia({
        video: { deviceId: id ? { exact: id } : undefined, width: { ideal: CAMERA.width }, height: { ideal: CAMERA.height } },
      });
      const track = s.getVideoTracks()[0];
      this._camera()?.stop();
      this._camera.set(track);
      if (!this.videoDeviceId()) this.videoDeviceId.set(track.getSettings().deviceId ?? null);
      if (this.sink && this.camTrackId) this.startCameraPublisher();
    } catch (e) {
      this.camOn.set(false);
      this.error.set(describeMediaError(e, 'camera'));
    }
  }

  private async openMic(): Promise<void> {
    const id = this.audioDeviceId();
    try {
      const s = await navigator.mediaDevices.getUserMedia({
        audio: { deviceId: id ? { exact: id } : undefined, channelCount: 1, echoCancellation: true, noiseSuppression: true, autoGainControl: true },
      });
      const track = s.getAudioTracks()[0];
      track.enabled = this.micOn();
      this._mic()?.stop();
      this._mic.set(track);
      if (!this.audioDeviceId()) this.audioDeviceId.set(track.getSettings().deviceId ?? null);
      this.startMeter(track);
      if (this.sink && this.micTrackId) this.startMicPublisher();
    } catch (e) {
      this.error.set(describeMediaError(e, 'microphone'));
    }
  }

  private startMeter(track: MediaStreamTrack): void {
    this.meterReader?.cancel().catch(() => undefined);
    this.meterTrack?.stop();
    if (typeof MediaStreamTrackProcessor !== 'function') return;
    const clone = track.clone();
    this.meterTrack = clone;
    const reader = new MediaStreamTrackProcessor<AudioData>({ track: clone }).readable.getReader();
    this.meterReader = reader;
    let last = 0;
    const loop = async () => {
      try {
        for (;;) {
          const { value, done } = await reader.read();
          if (done || !value) return;
          const now = performance.now();
          if (now - last > 80) {
            last = now;
            const buf = new Float32Array(value.numberOfFrames);
            value.copyTo(buf, { planeIndex: 0, format: 'f32-planar' });
            this.micLevel.set(this.micOn() ? dbovToMeter(rmsToDbov(rms(buf))) : 0);
          }
          value.close();
        }
      } catch {
        /* stopped */
      }
    };
    void loop();
  }

  // ---- publishing -------------------------------------------------------------------------

  /** Starts encoding the mic and camera (when on) into `sink` with the given track ids. */
  startPublishing(micTrackId: number, camTrackId: number, sink: FrameSink): { mic: boolean; camera: boolean } {
    this.stopPublishing();
    // A screen share belonged to the previous connection's participant id: end it.
    this.stopScreenShare();
    this.sink = sink;
    this.micTrackId = micTrackId;
    this.camTrackId = camTrackId;
    if (this._mic()) this.startMicPublisher();
    if (this._camera()) this.startCameraPublisher();
    return { mic: this._mic() !== null, camera: this._camera() !== null };
  }

  stopPublishing(): void {
    this.audioPub?.stop();
    this.videoPub?.stop();
    this.screenPub?.stop();
    this.audioPub = this.videoPub = this.screenPub = null;
    this.sink = null;
  }

  cameraSize(): { width: number; height: number } {
    const s = this._camera()?.getSettings();
    return { width: s?.width ?? CAMERA.width, height: s?.height ?? CAMERA.height };
  }

  private startMicPublisher(): void {
    const t = this._mic();
    if (!t || !this.sink) return;
    this.audioPub?.stop();
    const sink = this.sink;
    this.audioPub = new AudioPublisher(t, this.micTrackId, (f) => sink(f), (m) => this.error.set(m));
    this.audioPub.paused = !this.micOn();
    this.audioPub.start();
  }

  private startCameraPublisher(): void {
    const t = this._camera();
    if (!t || !this.sink) return;
    this.videoPub?.stop();
    const sink = this.sink;
    this.videoPub = new VideoPublisher(
      t,
      { trackId: this.camTrackId, kind: MediaKind.Video, bitrate: CAMERA.bitrate, maxWidth: CAMERA.width, maxHeight: CAMERA.height, framerate: CAMERA.framerate, keyframeIntervalMs: KEYFRAME_MS },
      (f) => sink(f),
      (m) => console.warn(m),
    );
    this.videoPub.start();
  }

  /** Asks getDisplayMedia for a screen and publishes it; `ended` fires when the user stops it. */
  async startScreenShare(trackId: number, ended: () => void): Promise<{ width: number; height: number } | null> {
    if (!this.sink) return null;
    let stream: MediaStream;
    try {
      stream = await navigator.mediaDevices.getDisplayMedia({ video: { frameRate: SCREEN.framerate }, audio: false });
    } catch (e) {
      this.error.set(describeMediaError(e, 'screen'));
      return null;
    }
    const track = stream.getVideoTracks()[0];
    this._screen.set(track);
    track.addEventListener('ended', () => {
      this.stopScreenShare();
      ended();
    });
    const sink = this.sink;
    this.screenPub = new VideoPublisher(
      track,
      { trackId, kind: MediaKind.Screen, bitrate: SCREEN.bitrate, maxWidth: SCREEN.width, maxHeight: SCREEN.height, framerate: SCREEN.framerate, keyframeIntervalMs: KEYFRAME_MS },
      (f) => sink(f),
      (m) => console.warn(m),
    );
    this.screenPub.start();
    const s = track.getSettings();
    return { width: s.width ?? SCREEN.width, height: s.height ?? SCREEN.height };
  }

  stopScreenShare(): void {
    this.screenPub?.stop();
    this.screenPub = null;
    this._screen()?.stop();
    this._screen.set(null);
  }

  /** The server (or a subscriber) needs a fresh keyframe on one of our tracks. */
  requestLocalKeyframe(trackId: number): void {
    for (const p of [this.videoPub, this.screenPub]) if (p && p.trackId === trackId) p.requestKeyframe();
  }

  /** Stops every local device: leaving the meeting turns the camera light off. */
  stopLocal(): void {
    this.stopPublishing();
    this.stopScreenShare();
    this.meterReader?.cancel().catch(() => undefined);
    this.meterTrack?.stop();
    this.meterTrack = null;
    this._camera()?.stop();
    this._mic()?.stop();
    this._camera.set(null);
    this._mic.set(null);
  }

  stats(): { audio: number; video: number; screen: number; videoMode: string } {
    return {
      audio: this.audioPub?.framesEncoded ?? 0,
      video: this.videoPub?.framesEncoded ?? 0,
      screen: this.screenPub?.framesEncoded ?? 0,
      videoMode: this.videoPub?.mode ?? '',
    };
  }
}

export function describeMediaError(e: unknown, what: 'camera' | 'microphone' | 'screen'): string {
  const name = (e as { name?: string })?.name ?? '';
  if (name === 'NotAllowedError') return what === 'screen' ? 'Screen sharing was not allowed.' : `Permission to use the ${what} was denied. Allow it in the browser's site settings.`;
  if (name === 'NotFoundError') return `No ${what} was found.`;
  if (name === 'NotReadableError') return `The ${what} is in use by another application.`;
  if (name === 'OverconstrainedError') return `The selected ${what} is not available.`;
  return `Could not start the ${what}: ${(e as Error)?.message ?? e}`;
}
