/** Waiting for a cloud to get somewhere, on every cloud. */

/** Polls until `done` or the timeout; the message says what was awaited. */
export async function waitFor(
  ctx: { pollMs: number; sleep(ms: number): Promise<void> },
  what: string,
  timeoutMs: number,
  done: () => Promise<boolean>,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await done())) {
    if (Date.now() > deadline)
      throw new Error(`timed out after ${Math.round(timeoutMs / 1000)} s waiting for ${what}`);
    await ctx.sleep(ctx.pollMs);
  }
}
