/**
 * Whether media work runs in workers: `?workers=on` on the page URL moves Opus encode and decode
 * there (video decode has its own `?decode=worker`). Off by default: on headless Chromium without
 * a GPU on two loaded cores the worker builds made the page's main thread busier, not idler, and
 * the in-test-SFU browser suite timed out with them while it passed without (BENCHMARKS.md §3).
 */
export function mediaWorkersOn(): boolean {
  return typeof location !== 'undefined' && typeof Worker === 'function' && new URLSearchParams(location.search).get('workers') === 'on';
}
