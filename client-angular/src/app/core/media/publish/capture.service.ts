import { computed, Injectable, OnDestroy, signal } from '@angular/core';
import { dbovToMeter, rms, rmsToDbov } from '../levels';

export interface DeviceLists {
  audio: MediaDeviceInfo[];
  video: MediaDeviceInfo[];
}

export type DeviceKind = 'microphone' | 'camera';

/** A device the user switched on that does not work right now, with the reason. */
export interface DeviceProblem {
  kind: DeviceKind;
  /** "Your microphone isn't working": what the room and pre-join pages show. */
  title: string;
  detail: string;
}

export const CAMERA = { width: 640, height: 480, bitrate: 800_000, framerate: 30 };
export const SCREEN = { width: 1280, height: 720, bitrate: 1_200_000, framerate: 15 };

/**
 * The local devices: camera, microphone and screen capture, the user's on/off switches, the
 * chosen devices, the mic meter, and what is broken. A track that ends on its own (unplugged,
 * taken by another app) is reopened on the default device; when that fails too the device gets
 * a problem the user sees, with a retry. PublishService follows these signals.
 */
@Injectable()
export class CaptureService implements OnDestroy {
  readonly camera = signal<MediaStreamTrack | null>(null);
  readonly mic = signal<MediaStreamTrack | null>(null);
  readonly screen = signal<MediaStreamTrack | null>(null);
  /** Tab or system audio the browser offered with the screen share (slot 3). */
  readonly screenAudio = signal<MediaStreamTrack | null>(null);
  readonly micOn = signal(true);
  readonly camOn = signal(true);
  readonly micLevel = signal(0);
  readonly devices = signal<DeviceLists>({ audio: [], video: [] });
  readonly audioDeviceId = signal<string | null>(null);
  readonly videoDeviceId = signal<string | null>(null);
  /** Page-level problems (no media devices on this page at all, a refused screen share). */
  readonly error = signal<string | null>(null);
  private readonly _problems = signal<Partial<Record<DeviceKind, DeviceProblem>>>({});
  readonly problems = computed(() => Object.values(this._problems()).filter((p): p is DeviceProblem => !!p));

  /** Camera + mic for the preview and self view. */
  readonly localStream = computed(() => {
    const tracks = [this.camera(), this.mic()].filter((t): t is MediaStreamTrack => !!t);
    return tracks.length ? new MediaStream(tracks) : null;
  });
  readonly hasCamera = computed(() => this.camera() !== null);
  readonly screenStream = computed(() => {
    const t = this.screen();
    return t ? new MediaStream([t]) : null;
  });
  readonly sharing = computed(() => this.screen() !== null);

  private meterReader: ReadableStreamDefaultReader<AudioData> | null = null;
  private meterTrack: MediaStreamTrack | null = null;
  private stopped = false;
  private readonly opening: Partial<Record<DeviceKind, Promise<void>>> = {};
  private readonly onDeviceChange = () => void this.followDeviceList();

  constructor() {
    navigator.mediaDevices?.addEventListener?.('devicechange', this.onDeviceChange);
  }

  ngOnDestroy(): void {
    navigator.mediaDevices?.removeEventListener?.('devicechange', this.onDeviceChange);
    this.stopAll();
  }

  async startPreview(): Promise<void> {
    this.stopped = false;
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

  /** Tries a broken device again (the "Retry" button). */
  async retry(kind: DeviceKind): Promise<void> {
    this.stopped = false;
    if (kind === 'microphone') await this.openMic();
    else {
      this.camOn.set(true);
      await this.openCamera();
    }
    await this.refreshDevices();
  }

  /** The publisher could not use a track that looked live: show it and let the user retry. */
  reportBroken(kind: DeviceKind, detail: string): void {
    this.setProblem(kind, detail);
  }

  setMic(on: boolean): void {
    this.micOn.set(on);
    const t = this.mic();
    if (t) t.enabled = on;
    if (!on) this.micLevel.set(0);
  }

  /** Camera off stops the track, so the camera light goes off. */
  async setCamera(on: boolean): Promise<void> {
    this.camOn.set(on);
    if (on) {
      await this.openCamera();
    } else {
      this.setProblem('camera', null);
      this.camera()?.stop();
      this.camera.set(null);
    }
  }

  /** getDisplayMedia, with tab/system audio when the browser offers it. False when refused. */
  async startScreenShare(): Promise<boolean> {
    let stream: MediaStream;
    try {
      stream = await navigator.mediaDevices.getDisplayMedia({ video: { frameRate: SCREEN.framerate }, audio: true });
    } catch (e) {
      this.error.set(describeMediaError(e, 'screen'));
      return false;
    }
    this.stopScreenShare();
    const video = stream.getVideoTracks()[0];
    const audio = stream.getAudioTracks()[0] ?? null;
    if (!video) {
      for (const t of stream.getTracks()) t.stop();
      return false;
    }
    // The browser's own "Stop sharing" ends the video track: the share is over, audio too.
    video.addEventListener('ended', () => {
      if (this.screen() === video) this.stopScreenShare();
    });
    audio?.addEventListener('ended', () => {
      if (this.screenAudio() === audio) this.screenAudio.set(null);
    });
    this.screen.set(video);
    this.screenAudio.set(audio);
    return true;
  }

  stopScreenShare(): void {
    this.screen()?.stop();
    this.screenAudio()?.stop();
    this.screen.set(null);
    this.screenAudio.set(null);
  }

  /** Stops every local device: leaving the meeting turns the camera light off. */
  stopAll(): void {
    this.stopped = true;
    this.stopScreenShare();
    this.meterReader?.cancel().catch(() => undefined);
    this.meterTrack?.stop();
    this.meterTrack = null;
    this.camera()?.stop();
    this.mic()?.stop();
    this.camera.set(null);
    this.mic.set(null);
    this._problems.set({});
  }

  // ---- opening devices -------------------------------------------------------------------

  private openCamera(): Promise<void> {
    return this.once('camera', async () => {
      const id = this.videoDeviceId();
      try {
        const track = await this.getTrack('video', id);
        if (this.stopped || !this.camOn()) {
          track.stop();
          return;
        }
        this.camera()?.stop();
        this.watchEnded(track, 'camera');
        this.camera.set(track);
        this.setProblem('camera', null);
        if (!this.videoDeviceId()) this.videoDeviceId.set(track.getSettings().deviceId ?? null);
      } catch (e) {
        this.setProblem('camera', describeMediaError(e, 'camera'));
      }
    });
  }

  private openMic(): Promise<void> {
    return this.once('microphone', async () => {
      const id = this.audioDeviceId();
      try {
        const track = await this.getTrack('audio', id);
        if (this.stopped) {
          track.stop();
          return;
        }
        track.enabled = this.micOn();
        this.mic()?.stop();
        this.watchEnded(track, 'microphone');
        this.mic.set(track);
        this.setProblem('microphone', null);
        if (!this.audioDeviceId()) this.audioDeviceId.set(track.getSettings().deviceId ?? null);
        this.startMeter(track);
      } catch (e) {
        this.setProblem('microphone', describeMediaError(e, 'microphone'));
      }
    });
  }

  /** One open at a time per device; a request during an open waits for it and opens again. */
  private once(kind: DeviceKind, open: () => Promise<void>): Promise<void> {
    const prev = this.opening[kind] ?? Promise.resolve();
    const next = prev.then(open, open);
    this.opening[kind] = next;
    return next;
  }

  /** The chosen device, or the default when it is gone (unplugged since it was chosen). */
  private async getTrack(kind: 'audio' | 'video', deviceId: string | null): Promise<MediaStreamTrack> {
    const constraints = (id: string | null): MediaStreamConstraints =>
      kind === 'audio'
        ? { audio: { deviceId: id ? { exact: id } : undefined, channelCount: 1, echoCancellation: true, noiseSuppression: true, autoGainControl: true } }
        : { video: { deviceId: id ? { exact: id } : undefined, width: { ideal: CAMERA.width }, height: { ideal: CAMERA.height } } };
    let stream: MediaStream;
    try {
      stream = await navigator.mediaDevices.getUserMedia(constraints(deviceId));
    } catch (e) {
      const name = (e as { name?: string })?.name;
      if (!deviceId || (name !== 'OverconstrainedError' && name !== 'NotFoundError' && name !== 'NotReadableError')) throw e;
      stream = await navigator.mediaDevices.getUserMedia(constraints(null));
      if (kind === 'audio') this.audioDeviceId.set(null);
      else this.videoDeviceId.set(null);
    }
    const track = kind === 'audio' ? stream.getAudioTracks()[0] : stream.getVideoTracks()[0];
    if (!track) throw new DOMException(`no ${kind} track`, 'NotFoundError');
    return track;
  }

  /** A track that ends without us stopping it (unplugged): fall back to the default device. */
  private watchEnded(track: MediaStreamTrack, kind: DeviceKind): void {
    track.addEventListener('ended', () => {
      const current = kind === 'camera' ? this.camera : this.mic;
      if (current() !== track || this.stopped) return;
      current.set(null);
      if (kind === 'camera') this.videoDeviceId.set(null);
      else this.audioDeviceId.set(null);
      if (kind === 'camera' && !this.camOn()) return;
      void (kind === 'camera' ? this.openCamera() : this.openMic()).then(() => this.refreshDevices());
    });
  }

  /** The device list changed: a chosen device that disappeared falls back to the default. */
  private async followDeviceList(): Promise<void> {
    await this.refreshDevices();
    const { audio, video } = this.devices();
    const mic = this.mic()?.getSettings().deviceId;
    if (mic && audio.length && !audio.some((d) => d.deviceId === mic)) await this.selectAudioDevice('');
    const cam = this.camera()?.getSettings().deviceId;
    if (cam && video.length && !video.some((d) => d.deviceId === cam)) await this.selectVideoDevice('');
  }

  private setProblem(kind: DeviceKind, detail: string | null): void {
    this._problems.update((p) => {
      const next = { ...p };
      if (detail === null) delete next[kind];
      else next[kind] = { kind, title: `Your ${kind} isn't working`, detail };
      return next;
    });
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
}

export function describeMediaError(e: unknown, what: 'camera' | 'microphone' | 'screen'): string {
  const name = (e as { name?: string })?.name ?? '';
  if (name === 'NotAllowedError') return what === 'screen' ? 'Screen sharing was not allowed.' : `Permission to use the ${what} was denied. Allow it in the browser's site settings.`;
  if (name === 'NotFoundError') return `No ${what} was found.`;
  if (name === 'NotReadableError') return `The ${what} is in use by another application.`;
  if (name === 'OverconstrainedError') return `The selected ${what} is not available.`;
  return `Could not start the ${what}: ${(e as Error)?.message ?? e}`;
}

/** Whether the publisher should be reading from this track. */
export function isLive(t: MediaStreamTrack | null): t is MediaStreamTrack {
  return !!t && t.readyState === 'live';
}
