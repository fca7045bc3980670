/**
 * audio-mixer.worklet.js is imported with a loader attribute: `file` gives its URL in the built
 * app (audio-mixer.ts), `text` its source (the unit spec). Either way a string.
 */
declare const worklet: string;
export default worklet;
