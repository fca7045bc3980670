// Chromium's MediaStreamTrackProcessor (mediacapture-transform) is not in lib.dom yet.
declare class MediaStreamTrackProcessor<T = VideoFrame | AudioData> {
  constructor(init: { track: MediaStreamTrack; maxBufferSize?: number });
  readonly readable: ReadableStream<T>;
}
