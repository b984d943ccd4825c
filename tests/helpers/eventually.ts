/** Polls `fn` until it returns a truthy value or the time runs out: for a condition nothing signals. */
export async function eventually<T>(fn: () => T | Promise<T>, timeoutMs = 5_000, everyMs = 25): Promise<NonNullable<T>> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  while (Date.now() < deadline) {
    try {
      const value = await fn();
      if (value) return value as NonNullable<T>;
    } catch (err) {
      last = err;
    }
    await Bun.sleep(everyMs);
  }
  throw new Error(`condition not met within ${timeoutMs} ms${last ? `: ${last}` : ""}`);
}
