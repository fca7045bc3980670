/**
 * Reads a capture stream until it ends, handing every frame or sample block to `push`, which
 * owns (and closes) it. A read that fails means the capture stopped: `failed` hears why, unless
 * `stopped()` says we stopped it ourselves. Shared by the encode workers and their page fallbacks.
 */
export async function pump<T>(reader: ReadableStreamDefaultReader<T>, push: (v: T) => void, failed: (message: string) => void, stopped: () => boolean = () => false): Promise<void> {
  try {
    while (!stopped()) {
      const { value, done } = await reader.read();
      if (done || !value) return;
      push(value);
    }
  } catch (e) {
    if (!stopped()) failed(`capture stopped: ${(e as Error).message}`);
  }
}
