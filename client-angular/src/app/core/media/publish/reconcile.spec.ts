import { Slot } from '../../protocol/frame';
import { applySteps, Current, IDLE, PublishSlot, reconcile, Wanted } from './reconcile';

const mic = (id = 'm1'): Wanted => ({ kind: 'audio', sourceId: id });
const cam = (id = 'c1'): Wanted => ({ kind: 'video', sourceId: id, width: 640, height: 480 });
const wanted = (m: Partial<Record<PublishSlot, Wanted | null>>) => new Map(Object.entries(m).map(([k, v]) => [Number(k) as PublishSlot, v]));
const none = new Map<PublishSlot, Current>();

describe('reconcile', () => {
  it('publishes nothing before the room knows who we are', () => {
    expect(reconcile(null, wanted({ [Slot.Microphone]: mic() }), none)).toEqual([]);
  });

  it('announces a track before starting its encoder, with the size for video', () => {
    expect(reconcile(2, wanted({ [Slot.Microphone]: mic(), [Slot.Camera]: cam() }), none)).toEqual([
      { type: 'publish', slot: Slot.Microphone, trackId: 32, kind: 'audio', width: undefined, height: undefined },
      { type: 'start-encoder', slot: Slot.Microphone, trackId: 32, sourceId: 'm1' },
      { type: 'publish', slot: Slot.Camera, trackId: 33, kind: 'video', width: 640, height: 480 },
      { type: 'start-encoder', slot: Slot.Camera, trackId: 33, sourceId: 'c1' },
    ]);
  });

  it('publishes a device that starts after the welcome (the race this fixes)', () => {
    let cur = applySteps(none, reconcile(2, wanted({ [Slot.Camera]: cam() }), none));
    expect(cur.get(Slot.Microphone)).toBeUndefined();
    const late = reconcile(2, wanted({ [Slot.Camera]: cam(), [Slot.Microphone]: mic() }), cur);
    expect(late.map((s) => s.type)).toEqual(['publish', 'start-encoder']);
    cur = applySteps(cur, late);
    expect(reconcile(2, wanted({ [Slot.Camera]: cam(), [Slot.Microphone]: mic() }), cur)).toEqual([]);
  });

  it('restarts the encoder on a device switch without announcing the track again', () => {
    const cur = applySteps(none, reconcile(2, wanted({ [Slot.Microphone]: mic('m1') }), none));
    expect(reconcile(2, wanted({ [Slot.Microphone]: mic('m2') }), cur)).toEqual([
      { type: 'stop-encoder', slot: Slot.Microphone },
      { type: 'start-encoder', slot: Slot.Microphone, trackId: 32, sourceId: 'm2' },
    ]);
  });

  it('restarts an unhealthy encoder on the same source', () => {
    const cur = new Map<PublishSlot, Current>([[Slot.Camera, { announced: 'video', encoderSource: 'c1', encoderHealthy: false }]]);
    expect(reconcile(2, wanted({ [Slot.Camera]: cam() }), cur).map((s) => s.type)).toEqual(['stop-encoder', 'start-encoder']);
  });

  it('unpublishes what the user switched off or what ended, and stops its encoder first', () => {
    const cur = applySteps(none, reconcile(2, wanted({ [Slot.Camera]: cam(), [Slot.Microphone]: mic() }), none));
    expect(reconcile(2, wanted({ [Slot.Microphone]: mic() }), cur)).toEqual([
      { type: 'stop-encoder', slot: Slot.Camera },
      { type: 'unpublish', slot: Slot.Camera, trackId: 33 },
    ]);
  });

  it('a new connection (nothing announced) announces everything again with the new id', () => {
    const cur = new Map<PublishSlot, Current>([[Slot.Microphone, { ...IDLE }]]);
    const steps = reconcile(7, wanted({ [Slot.Microphone]: mic(), [Slot.ScreenVideo]: { kind: 'screen', sourceId: 's', width: 1280, height: 720 }, [Slot.ScreenAudio]: { kind: 'audio', sourceId: 'sa' } }), cur);
    expect(steps.filter((s) => s.type === 'publish').map((s) => s.trackId)).toEqual([112, 114, 115]);
  });

  it('re-announces a slot whose kind changed', () => {
    const cur = new Map<PublishSlot, Current>([[Slot.Camera, { announced: 'screen', encoderSource: 'x', encoderHealthy: true }]]);
    expect(reconcile(1, wanted({ [Slot.Camera]: cam() }), cur).map((s) => s.type)).toEqual(['stop-encoder', 'unpublish', 'publish', 'start-encoder']);
  });
});
