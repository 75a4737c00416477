import { open } from "node:fs/promises";
import { ExitCode, KubebakeError } from "../../errors";

/**
 * The three Cloud Storage JSON API calls a publish needs, over fetch: a bucket check, a resumable upload
 * (https://cloud.google.com/storage/docs/performing-resumable-uploads) and a delete. A small client rather
 * than @google-cloud/storage: the upload's chunking and its recovery (ask the session for the bytes it
 * has, resend from there) are what the tests exercise, and they stay visible here instead of behind the
 * library's retry layer and a second authentication stack.
 */
export interface StorageClient {
  /** https://storage.googleapis.com, or a fake's base URL. */
  baseUrl: string;
  headers(): Promise<Headers>;
  signal?: AbortSignal;
}

/** Every chunk but the last must be a multiple of 256 KiB. */
export const CHUNK_GRANULE = 256 * 1024;
export const DEFAULT_CHUNK = 64 * CHUNK_GRANULE; // 16 MiB

export interface UploadOptions {
  bucket: string;
  object: string;
  file: string;
  contentType: string;
  chunkSize?: number;
  /** Attempts to get one chunk through before giving up. */
  attempts?: number;
  /** Wait before attempt n (ms), n from 1. */
  backoff?: (attempt: number) => number;
  onProgress?: (sent: number, total: number) => void;
}

const enc = encodeURIComponent;

export async function checkBucket(client: StorageClient, bucket: string): Promise<void> {
  const res = await call(client, `${client.baseUrl}/storage/v1/b/${enc(bucket)}?fields=name`, {
    method: "GET",
  });
  if (res.ok) return;
  throw cloudError(`storage.buckets.get ${bucket}`, res.status, await messageOf(res));
}

export async function deleteObject(client: StorageClient, bucket: string, object: string): Promise<void> {
  const url = `${client.baseUrl}/storage/v1/b/${enc(bucket)}/o/${enc(object)}`;
  const res = await call(client, url, { method: "DELETE" });
  if (res.ok || res.status === 404) return;
  throw cloudError(`storage.objects.delete gs://${bucket}/${object}`, res.status, await messageOf(res));
}

/** Uploads `file` in chunks; after a chunk whose answer is lost, asks the session where to go on from. */
export async function uploadResumable(client: StorageClient, options: UploadOptions): Promise<void> {
  const chunkSize = options.chunkSize ?? DEFAULT_CHUNK;
  if (chunkSize % CHUNK_GRANULE !== 0)
    throw new Error(`chunk size ${chunkSize} is not a multiple of 256 KiB`);
  const what = `storage.objects.insert gs://${options.bucket}/${options.object}`;
  const handle = await open(options.file, "r");
  try {
    const total = (await handle.stat()).size;
    const session = await openSession(client, options, total, what);
    let offset = 0;
    let failures = 0;
    while (offset < total) {
      const length = Math.min(chunkSize, total - offset);
      const chunk = Buffer.alloc(length);
      await handle.read(chunk, 0, length, offset);
      let answer = await put(client, session, `bytes ${offset}-${offset + length - 1}/${total}`, chunk);
      if (answer === "lost") {
        // The chunk may or may not have arrived: the session knows how many bytes it holds.
        failures += 1;
        if (failures >= (options.attempts ?? 6))
          throw cloudError(what, 0, "the upload kept failing; rerun to start over");
        await delay(options.backoff?.(failures) ?? 2 ** failures * 250, client.signal);
        answer = await put(client, session, `bytes */${total}`, Buffer.alloc(0));
        if (answer === "lost") continue;
      } else failures = 0;
      if (answer.status === 200 || answer.status === 201) {
        options.onProgress?.(total, total);
        return;
      }
      if (answer.status !== 308) throw cloudError(what, answer.status, await messageOf(answer));
      offset = persistedOffset(answer.headers.get("range"));
      options.onProgress?.(offset, total);
    }
    throw cloudError(what, 308, "the session holds every byte but did not create the object");
  } finally {
    await handle.close();
  }
}

async function openSession(
  client: StorageClient,
  options: UploadOptions,
  total: number,
  what: string,
): Promise<string> {
  const url = `${client.baseUrl}/upload/storage/v1/b/${enc(options.bucket)}/o?uploadType=resumable&name=${enc(options.object)}`;
  const headers = await client.headers();
  headers.set("content-type", "application/json; charset=UTF-8");
  headers.set("x-upload-content-type", options.contentType);
  headers.set("x-upload-content-length", String(total));
  const res = await call(client, url, {
    method: "POST",
    headers,
    body: JSON.stringify({ name: options.object, contentType: options.contentType }),
  });
  const session = res.headers.get("location");
  if (!res.ok || !session) throw cloudError(what, res.status, await messageOf(res));
  return session;
}

/** One PUT to the session; "lost" when no answer came back, or one that says to try again. */
async function put(
  client: StorageClient,
  session: string,
  range: string,
  body: Buffer,
): Promise<Response | "lost"> {
  try {
    // The session URI is the upload's credential: no Authorization header is needed or sent.
    const res = await fetch(session, {
      method: "PUT",
      headers: { "content-range": range },
      body: body.length > 0 ? body : undefined,
      signal: client.signal,
    });
    if (res.status >= 500 || res.status === 429 || res.status === 408) return "lost";
    return res;
  } catch (error) {
    if (client.signal?.aborted) throw error;
    return "lost";
  }
}

/** `Range: bytes=0-N` means N+1 bytes are kept; no Range header, none. */
export function persistedOffset(range: string | null): number {
  const match = /^bytes=0-(\d+)$/.exec(range ?? "");
  return match ? Number(match[1]) + 1 : 0;
}

async function call(client: StorageClient, url: string, init: RequestInit): Promise<Response> {
  const headers = init.headers instanceof Headers ? init.headers : await client.headers();
  try {
    return await fetch(url, { ...init, headers, signal: client.signal });
  } catch (error) {
    if (client.signal?.aborted) throw error;
    throw new KubebakeError(
      `${init.method} ${url} failed: ${(error as Error).message}`,
      ExitCode.cloudFailed,
    );
  }
}

async function messageOf(res: Response): Promise<string> {
  const text = await res.text().catch(() => "");
  try {
    return (JSON.parse(text) as { error: { message: string } }).error.message;
  } catch {
    return text.slice(0, 200) || `HTTP ${res.status}`;
  }
}

function cloudError(call: string, status: number, message: string): KubebakeError {
  const hint = status === 401 || status === 403 ? " (check the credentials' permissions)" : "";
  return new KubebakeError(`Cloud Storage ${call} failed: ${message}${hint}`, ExitCode.cloudFailed);
}

const delay = (ms: number, signal?: AbortSignal) =>
  new Promise<void>((resolve, reject) => {
    if (ms <= 0) return resolve();
    const timer = setTimeout(resolve, ms);
    signal?.addEventListener("abort", () => {
      clearTimeout(timer);
      reject(signal.reason);
    });
  });
