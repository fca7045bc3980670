import { decodeFrame, encodeFrame, FrameStreamReader, MediaFrame, MediaKind, participantOfTrack, slotOfTrack, trackIdOf } from './frame';

const frame = (seq: number, size: number, keyframe = false): MediaFrame => ({
  kind: MediaKind.Video,
  layer: 0,
  keyframe,
  trackId: trackIdOf(3, 1),
  seq,
  captureTsUs: 1_000_000 + seq,
  payload: new Uint8Array(size).map((_, i) => (i * 7 + seq) & 0xff),
});

describe('frame codec', () => {
  it('maps track ids to participant and slot', () => {
    expect(trackIdOf(3, 1)).toBe(49);
    expect(participantOfTrack(49)).toBe(3);
    expect(slotOfTrack(49)).toBe(1);
  });

  it('asks for more bytes on a short header or payload', () => {
    const bytes = encodeFrame(frame(1, 10));
    expect(decodeFrame(bytes.subarray(0, 27))).toBeNull();
    expect(decodeFrame(bytes.subarray(0, 30))).toBeNull();
    expect(decodeFrame(bytes)?.consumed).toBe(38);
  });

  it('clamps the audio level into 0..127 and sets the flag', () => {
    const bytes = encodeFrame({ ...frame(1, 1), kind: MediaKind.Audio, audioLevel: 300 });
    expect(bytes[3] & 2).toBe(2);
    expect(bytes[20]).toBe(127);
  });

  it('reassembles back-to-back frames from arbitrary chunks', () => {
    const frames = [frame(1, 5000, true), frame(2, 0), frame(3, 333)];
    const all = new Uint8Array(frames.reduce((n, f) => n + 28 + f.payload.byteLength, 0));
    let off = 0;
    for (const f of frames) {
      const b = encodeFrame(f);
      all.set(b, off);
      off += b.byteLength;
    }
    const r = new FrameStreamReader();
    const out: MediaFrame[] = [];
    for (let i = 0; i < all.byteLength; i += 777) out.push(...r.push(all.subarray(i, i + 777)));
    expect(out.map((f) => f.seq)).toEqual([1, 2, 3]);
    expect(out[0].keyframe).toBe(true);
    expect(out[0].payload).toEqual(frames[0].payload);
    expect(r.pending).toBe(0);
  });
});
