import { open, rm } from "node:fs/promises";
import { createHash } from "node:crypto";
import { KubebakeError, ExitCode } from "../errors";

export interface DownloadOptions {
  /** Abort an attempt when no byte arrives for this long. */
  idleTimeoutMs: number;
  /** Attempts in all, the first included. */
  attempts: number;
  /** First backoff; doubled after each failed attempt, with jitter. */
  backoffMs: number;
  /** Request headers (a registry's bearer token); fetch drops Authorization on a redirect to another origin. */
  headers?: Record<string, string>;
  onRetry?: (attempt: number, reason: string, delayMs: number) => void;
}

export const defaultDownloadOptions: DownloadOptions = {
  idleTimeoutMs: 30_000,
  attempts: 5,
  backoffMs: 1_000,
};

/** A failure worth another attempt: a 5xx, a reset, a timeout. A 4xx is final. */
class RetryableError extends Error {}

/**
 * Downloads url into dest, following redirects, retrying transient failures with backoff,
 * and returns the SHA-256 of what was written. Checking it against a pin is the caller's job.
 */
export async function download(url: string, dest: string, options: DownloadOptions): Promise<string> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await downloadOnce(url, dest, options.idleTimeoutMs, options.headers);
    } catch (error) {
      await rm(dest, { force: true });
      if (!(error instanceof RetryableError)) throw error;
      if (attempt >= options.attempts) {
        throw new KubebakeError(
          `download of ${url} failed after ${attempt} attempts: ${error.message}`,
          ExitCode.downloadFailed,
        );
      }
      const delay = Math.round(options.backoffMs * 2 ** (attempt - 1) * (0.5 + Math.random() / 2));
      options.onRetry?.(attempt, error.message, delay);
      await new Promise((resolve) => setTimeout(resolve, delay));
    }
  }
}

async function downloadOnce(
  url: string,
  dest: string,
  idleTimeoutMs: number,
  headers: Record<string, string> = {},
): Promise<string> {
  const abort = new AbortController();
  let timer: NodeJS.Timeout | undefined;
  const armIdleTimer = () => {
    clearTimeout(timer);
    timer = setTimeout(
      () => abort.abort(new RetryableError(`no data for ${idleTimeoutMs} ms`)),
      idleTimeoutMs,
    );
  };
  armIdleTimer();
  try {
    let response: Response;
    try {
      // Identity: the pin is over the file as stored, and a Content-Length over compressed bytes
      // would not match what fetch() hands us after decoding.
      response = await fetch(url, {
        redirect: "follow",
        signal: abort.signal,
        headers: { ...headers, "accept-encoding": "identity" },
      });
    } catch (error) {
      throw asRetryable(error, abort, url);
    }
    if (response.status >= 500 || response.status === 429) {
      throw new RetryableError(`HTTP ${response.status} ${response.statusText}`.trim());
    }
    if (!response.ok || !response.body) {
      throw new KubebakeError(
        `download of ${url} failed: HTTP ${response.status} ${response.statusText}`.trim(),
        ExitCode.downloadFailed,
      );
    }
    const expectedLength = Number(response.headers.get("content-length") ?? NaN);
    const hash = createHash("sha256");
    // A file that cannot be written (a full disk, a read-only cache) is final, and not a network error.
    const cannotWrite = (error: NodeJS.ErrnoException) =>
      new KubebakeError(
        `download of ${url} failed: cannot write ${dest} (${error.code})`,
        ExitCode.downloadFailed,
      );
    const out = await open(dest, "w", 0o644).catch((error) => {
      throw cannotWrite(error);
    });
    let received = 0;
    try {
      for await (const chunk of response.body as unknown as AsyncIterable<Uint8Array>) {
        armIdleTimer();
        hash.update(chunk);
        received += chunk.length;
        await out.write(chunk).catch((error) => {
          throw cannotWrite(error);
        });
      }
    } catch (error) {
      throw asRetryable(error, abort, url);
    } finally {
      await out.close();
    }
    if (Number.isFinite(expectedLength) && received !== expectedLength) {
      throw new RetryableError(`connection closed after ${received} of ${expectedLength} bytes`);
    }
    return hash.digest("hex");
  } finally {
    clearTimeout(timer);
  }
}

function asRetryable(error: unknown, abort: AbortController, url: string): Error {
  // Only the idle timer aborts, always with a RetryableError.
  if (abort.signal.reason instanceof RetryableError) return abort.signal.reason;
  if (error instanceof KubebakeError) return error;
  const cause = (error as { cause?: { code?: string; message?: string; hostname?: string } }).cause;
  if (cause?.code !== undefined && UNRESOLVABLE.has(cause.code)) {
    return unreachable(cause.hostname ?? new URL(url).hostname, url, cause.code);
  }
  const reason = cause?.code ?? cause?.message ?? (error as Error).message;
  return new RetryableError(`network error: ${reason}`);
}

/**
 * A name that does not resolve means no network or no DNS here: waiting and asking again (with backoff,
 * for minutes) would only delay the one useful answer, which is to bake from a mirror.
 */
export const UNRESOLVABLE = new Set(["ENOTFOUND", "EAI_AGAIN"]);

export function unreachable(host: string, url: string, code: string): KubebakeError {
  return new KubebakeError(
    `cannot reach ${host} (${code}: the name does not resolve; no network or no DNS?) for ${url}; ` +
      "bake from a mirror with --mirror DIR|URL, or for a first try without network: " +
      "node test/fixtures/build-mirror.mjs, then --spec test/fixtures/image.yaml --mirror test/fixtures/mirror",
    ExitCode.downloadFailed,
  );
}
