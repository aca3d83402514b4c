/**
 * Runs `fn` over `items` with at most `limit` calls in flight. Decoding images one by one leaves
 * cores idle, all at once reads every file into memory: a small pool keeps both in check.
 * Rejects with the first failure; calls not yet started are skipped.
 */
export async function forEachConcurrent<T>(items: readonly T[], limit: number, fn: (item: T, index: number) => Promise<void>): Promise<void> {
  let next = 0;
  let failed = false;
  const runner = async () => {
    while (!failed && next < items.length) {
      const i = next++;
      try {
        await fn(items[i], i);
      } catch (err) {
        failed = true;
        throw err;
      }
    }
  };
  await Promise.all(Array.from({ length: Math.max(1, Math.min(limit, items.length)) }, runner));
}
