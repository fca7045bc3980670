import { TestBed } from '@angular/core/testing';
import { demandStep, SlotEncoder } from './publish.service';
import { fakeCapture, fakeTrack, publishTestBed } from './publish.testing';
import { LADDER, UplinkStep } from './uplink';

class FakeEncoder implements SlotEncoder {
  framesEncoded = 0;
  steps: UplinkStep[] = [];
  started = false;
  stopped = false;
  paused?: boolean;
  constructor(
    readonly slot: number,
    readonly track: MediaStreamTrack,
    readonly onError: (m: string) => void,
  ) {
    this.paused = false;
  }
  start(): void {
    this.started = true;
  }
  stop(): void {
    this.stopped = true;
  }
  adapt(step: UplinkStep): void {
    this.steps.push(step);
  }
}

function setup() {
  const capture = fakeCapture();
  const encoders: FakeEncoder[] = [];
  const { publish, sent, session, uplink } = publishTestBed({
    capture,
    encoders: (slot, track, _id, _sink, onError) => {
      const e = new FakeEncoder(slot, track, onError);
      encoders.push(e);
      return e;
    },
  });
  /** Lets the effect see signal changes and the scheduled reconcile run. */
  const settle = async () => {
    TestBed.tick();
    await Promise.resolve();
    await Promise.resolve();
  };
  const running = (slot: number) => encoders.filter((e) => e.slot === slot && e.started && !e.stopped);
  return { publish, capture, encoders, sent, session, settle, running, uplink };
}

describe('PublishService and track_demand', () => {
  it('lowers the bitrate of a camera only lower layers are watched, keeps its size, and goes back to full quality', () => {
    const { publish, capture, session, running } = setup();
    capture.camera.set(fakeTrack('cam', 'video'));
    capture.mic.set(fakeTrack('mic', 'audio'));
    publish.bind(session(2));
    const cam = running(1)[0];
    publish.onDemand(33, 1, 2);
    const low = cam.steps.at(-1)!;
    expect(low.bitrate).toBeLessThan(1);
    expect(low.scale).toBe(1);
    expect(low.framerate).toBe(LADDER[0].framerate);
    publish.onDemand(33, 0, 0);
    const idle = cam.steps.at(-1)!;
    expect(idle.framerate).toBeLessThan(LADDER[0].framerate);
    expect(idle.scale).toBe(1);
    publish.onDemand(33, 0, 1);
    expect(cam.steps.at(-1)).toEqual(LADDER[0]);
    // Another track's demand leaves the camera alone.
    const n = cam.steps.length;
    publish.onDemand(34, 1, 1);
    expect(cam.steps.length).toBe(n);
  });

  it('maps demand to the uplink ladder: full, lower bitrate, lower frame rate, never a smaller size', () => {
    expect(demandStep(0, 3)).toBe(0);
    for (const [layer, viewers] of [[1, 2], [2, 1], [0, 0]]) {
      const i = demandStep(layer, viewers);
      expect(i).toBeGreaterThan(0);
      expect(LADDER[i].scale).toBe(1);
    }
    expect(demandStep(0, 0)).toBeGreaterThan(demandStep(1, 2));
  });
});

describe('PublishService reconciliation', () => {
  afterEach(() => vi.useRealTimers());

  it('publishes a microphone that starts after the welcome', async () => {
    const { publish, capture, sent, session, settle, running } = setup();
    capture.camera.set(fakeTrack('cam', 'video'));
    publish.bind(session(2));
    expect(sent).toEqual([{ type: 'publish', track_id: 33, kind: 'video', codec: 'vp8', width: 640, height: 480 }]);
    capture.mic.set(fakeTrack('mic', 'audio'));
    await settle();
    expect(sent).toContainEqual({ type: 'publish', track_id: 32, kind: 'audio', codec: 'opus' });
    expect(running(0).length).toBe(1);
    expect(running(1).length).toBe(1);
  });

  it('switches devices by restarting the encoder on the new track, without a second publish', async () => {
    const { publish, capture, sent, session, settle, running } = setup();
    capture.mic.set(fakeTrack('mic-a', 'audio'));
    publish.bind(session(2));
    capture.mic.set(fakeTrack('mic-b', 'audio'));
    await settle();
    expect(sent.filter((m) => m.type === 'publish').length).toBe(1);
    expect(running(0).map((e) => e.track.id)).toEqual(['mic-b']);
  });

  it('unpublishes the camera when it is switched off and publishes it again when on', async () => {
    const { publish, capture, sent, session, settle, running } = setup();
    capture.camera.set(fakeTrack('cam', 'video'));
    publish.bind(session(3));
    capture.camOn.set(false);
    capture.camera.set(null);
    await settle();
    expect(sent.at(-1)).toEqual({ type: 'unpublish', track_id: 49 });
    expect(running(1).length).toBe(0);
    capture.camOn.set(true);
    capture.camera.set(fakeTrack('cam2', 'video'));
    await settle();
    expect(sent.at(-1)).toMatchObject({ type: 'publish', track_id: 49, kind: 'video' });
    expect(running(1).length).toBe(1);
  });

  it('announces everything again on a new connection, under the new participant id', async () => {
    const { publish, capture, sent, session } = setup();
    capture.mic.set(fakeTrack('mic', 'audio'));
    capture.camera.set(fakeTrack('cam', 'video'));
    publish.bind(session(2));
    sent.length = 0;
    publish.bind(session(5));
    expect(sent.map((m) => (m.type === 'publish' ? m.track_id : m.type))).toEqual([80, 81]);
  });

  it('publishes the screen and the tab audio the browser offered, and retracts both when sharing stops', async () => {
    const { publish, capture, sent, session, settle } = setup();
    publish.bind(session(1));
    capture.screen.set(fakeTrack('scr', 'video'));
    capture.screenAudio.set(fakeTrack('tab', 'audio'));
    await settle();
    expect(sent).toContainEqual({ type: 'publish', track_id: 18, kind: 'screen', codec: 'vp8', width: 640, height: 480 });
    expect(sent).toContainEqual({ type: 'publish', track_id: 19, kind: 'audio', codec: 'opus' });
    capture.screen.set(null);
    capture.screenAudio.set(null);
    await settle();
    expect(sent.slice(-2)).toEqual([
      { type: 'unpublish', track_id: 18 },
      { type: 'unpublish', track_id: 19 },
    ]);
  });

  it('restarts an encoder that failed, then one that stalls, and reports the device after repeated restarts', async () => {
    vi.useFakeTimers({ toFake: ['setInterval', 'clearInterval', 'setTimeout', 'clearTimeout', 'performance', 'Date'] });
    const { publish, capture, encoders, session, running } = setup();
    capture.mic.set(fakeTrack('mic', 'audio'));
    publish.bind(session(2));
    running(0)[0].onError('encoder broke');
    vi.advanceTimersByTime(1000);
    expect(running(0).length).toBe(1);
    expect(encoders.filter((e) => e.slot === 0).length).toBe(2);
    // Frames flow: healthy. Then nothing for a while: restarted, up to three times, then reported.
    running(0)[0].framesEncoded = 10;
    vi.advanceTimersByTime(1000);
    vi.advanceTimersByTime(30_000);
    expect(capture.reportBroken).toHaveBeenCalledWith('microphone', expect.stringContaining('restarts'));
    const made = encoders.filter((e) => e.slot === 0).length;
    vi.advanceTimersByTime(30_000);
    expect(encoders.filter((e) => e.slot === 0).length).toBe(made);
    expect(publish.stats().starts[0]).toBe(made);
  });

  it('a muted microphone is not a stalled one', () => {
    vi.useFakeTimers({ toFake: ['setInterval', 'clearInterval', 'setTimeout', 'clearTimeout', 'performance', 'Date'] });
    const { publish, capture, encoders, session } = setup();
    capture.mic.set(fakeTrack('mic', 'audio'));
    capture.micOn.set(false);
    publish.bind(session(2));
    expect(encoders[0].paused).toBe(true);
    vi.advanceTimersByTime(20_000);
    expect(encoders.length).toBe(1);
    expect(capture.reportBroken).not.toHaveBeenCalled();
  });

  it('suspended (a direct call carries our media): encoders pause, tracks stay published, and resume as they were', async () => {
    const { publish, capture, encoders, sent, session, settle } = setup();
    capture.mic.set(fakeTrack('mic', 'audio'));
    capture.camera.set(fakeTrack('cam', 'video'));
    publish.bind(session(2));
    await settle();
    capture.micOn.set(false);
    await settle();
    publish.suspend(true);
    expect(encoders.map((e) => e.paused)).toEqual([true, true]);
    // A screen share during the direct call is announced but its encoder starts paused.
    capture.screen.set(fakeTrack('screen', 'video'));
    await settle();
    expect(sent.filter((m) => m.type === 'publish').map((m) => (m as { track_id: number }).track_id)).toEqual([32, 33, 34]);
    expect(sent.some((m) => m.type === 'unpublish')).toBe(false);
    expect(encoders.at(-1)!.paused).toBe(true);
    publish.suspend(false);
    // The muted microphone stays paused; camera and screen resume.
    expect(encoders.map((e) => e.paused)).toEqual([true, false, false]);
    expect(encoders.every((e) => !e.stopped)).toBe(true);
  });

  it('follows the uplink: a send backlog lowers the camera bitrate, and a new camera starts at that step', () => {
    vi.useFakeTimers({ toFake: ['setInterval', 'clearInterval', 'setTimeout', 'clearTimeout', 'performance', 'Date'] });
    const { publish, capture, encoders, session, uplink } = setup();
    capture.camera.set(fakeTrack('cam', 'video'));
    publish.bind(session(2));
    const cam = encoders[0];
    uplink.backlogBytes = 200_000; // 2 s of 800 kbit/s waiting to be sent
    vi.advanceTimersByTime(1000);
    expect(cam.steps.at(-1)).toEqual({ bitrate: 0.7, framerate: 30, scale: 1 });
    expect(publish.stats().uplink.step).toBe(1);
    uplink.backlogBytes = 0;
    capture.camera.set(fakeTrack('cam2', 'video'));
    TestBed.tick();
    return Promise.resolve().then(() => {
      const next = encoders.at(-1)!;
      expect(next.track.id).toBe('cam2');
      expect(next.steps[0]).toEqual({ bitrate: 0.7, framerate: 30, scale: 1 });
    });
  });
});
