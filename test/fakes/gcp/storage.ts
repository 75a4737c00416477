import { randomUUID } from "node:crypto";
import { googleError, type FakeRequest, type FakeResponse, type GoogleApiFake } from "./fake";

/**
 * Cloud Storage state behind the fake: buckets, objects, and resumable upload sessions as GCS runs them
 * (https://cloud.google.com/storage/docs/performing-resumable-uploads): a POST with uploadType=resumable
 * opens a session and answers its URI in Location; PUTs with Content-Range append chunks (every chunk but
 * the last a multiple of 256 KiB), answered 308 with the persisted Range until the last one, answered 200
 * with the object; `Content-Range: bytes *\/TOTAL` with no body asks for the persisted offset.
 */
export const CHUNK_GRANULE = 256 * 1024;

export interface StoredObject {
  name: string;
  bucket: string;
  data: Buffer;
  contentType: string;
  generation: number;
}

interface Session {
  bucket: string;
  name: string;
  contentType: string;
  received: Buffer[];
  offset: number;
  total?: number;
}

export class StorageState {
  readonly buckets = new Map<string, Map<string, StoredObject>>();
  readonly sessions = new Map<string, Session>();
  private generation = 1_700_000_000_000_000;

  addBucket(name: string): this {
    this.buckets.set(name, new Map());
    return this;
  }

  objects(bucket: string): StoredObject[] {
    return [...(this.buckets.get(bucket)?.values() ?? [])];
  }

  /** `https://storage.googleapis.com/B/O` or `gs://B/O`, as Compute Engine takes them. */
  byUrl(url: string): StoredObject | undefined {
    const match = /^(?:https:\/\/storage\.googleapis\.com\/|gs:\/\/)([^/]+)\/(.+)$/.exec(url);
    return match ? this.buckets.get(match[1])?.get(match[2]) : undefined;
  }

  store(bucket: string, name: string, data: Buffer, contentType: string): StoredObject {
    const object = { name, bucket, data, contentType, generation: ++this.generation };
    this.buckets.get(bucket)!.set(name, object);
    return object;
  }
}

/** Registers the storage handlers on a fake serving storage.v1; returns the state tests look at. */
export function installStorage(fake: GoogleApiFake, state = new StorageState()): StorageState {
  const bucketOr404 = (request: FakeRequest) => state.buckets.get(request.params.bucket);
  fake.on("storage.buckets.get", (request) => {
    if (!bucketOr404(request)) return googleError(404, "The specified bucket does not exist.");
    return { json: { kind: "storage#bucket", id: request.params.bucket, name: request.params.bucket } };
  });
  fake.on("storage.objects.get", (request) => {
    const object = bucketOr404(request)?.get(request.params.object);
    if (!object) return googleError(404, `No such object: ${request.params.bucket}/${request.params.object}`);
    return request.query.get("alt") === "media" ? { body: object.data } : { json: resource(request, object) };
  });
  fake.on("storage.objects.delete", (request) => {
    const bucket = bucketOr404(request);
    if (!bucket?.delete(request.params.object))
      return googleError(404, `No such object: ${request.params.bucket}/${request.params.object}`);
    return { status: 204 };
  });
  fake.on("storage.objects.insert", (request) => insert(state, request));
  return state;
}

function insert(state: StorageState, request: FakeRequest): FakeResponse {
  if (request.session) return sessionRequest(state, request);
  const bucket = request.params.bucket;
  if (!state.buckets.has(bucket)) return googleError(404, "The specified bucket does not exist.");
  const metadata = (request.json ?? {}) as { name?: string; contentType?: string };
  const name = request.query.get("name") ?? metadata.name;
  if (!name)
    return googleError(400, "Required: object name (the name parameter or the metadata's name)", "required");
  const uploadType = request.query.get("uploadType");
  if (uploadType === "media" && request.upload) {
    const object = state.store(bucket, name, request.body, String(request.headers["content-type"] ?? ""));
    return { json: resource(request, object) };
  }
  if (uploadType !== "resumable")
    return googleError(400, `the fake supports uploadType media and resumable, not ${uploadType}`);
  const id = randomUUID().replace(/-/g, "");
  const total = request.headers["x-upload-content-length"];
  state.sessions.set(id, {
    bucket,
    name,
    contentType: String(
      request.headers["x-upload-content-type"] ?? metadata.contentType ?? "application/octet-stream",
    ),
    received: [],
    offset: 0,
    total: total === undefined ? undefined : Number(total),
  });
  const location = `${request.baseUrl}/upload/storage/v1/b/${encodeURIComponent(bucket)}/o?uploadType=resumable&upload_id=${id}`;
  return { status: 200, headers: { location } };
}

function sessionRequest(state: StorageState, request: FakeRequest): FakeResponse {
  const session = state.sessions.get(request.session!);
  if (!session) return googleError(404, "No such upload session", "notFound");
  if (request.httpMethod === "DELETE") {
    state.sessions.delete(request.session!);
    return { status: 499 };
  }
  const range = parseContentRange(String(request.headers["content-range"] ?? ""));
  if (!range) return googleError(400, `Invalid Content-Range: ${request.headers["content-range"]}`);
  if (range.total !== undefined) {
    if (session.total !== undefined && session.total !== range.total)
      return googleError(
        400,
        `the upload's size was ${session.total}, the Content-Range says ${range.total}`,
      );
    session.total = range.total;
  }
  if (range.start !== undefined) {
    const length = range.end! - range.start + 1;
    if (request.body.length !== length)
      return googleError(400, `Content-Range has ${length} bytes, the body ${request.body.length}`);
    if (range.start > session.offset)
      return googleError(400, `the chunk starts at ${range.start}, the session has ${session.offset} bytes`);
    const last = session.total !== undefined && range.end! + 1 === session.total;
    if (!last && length % CHUNK_GRANULE !== 0)
      return googleError(
        400,
        `a chunk that is not the last must be a multiple of 256 KiB, got ${length} bytes`,
      );
    // Bytes the session already has (a resent chunk whose answer was lost) are skipped, as GCS does.
    const fresh = request.body.subarray(session.offset - range.start);
    session.received.push(fresh);
    session.offset += fresh.length;
  }
  if (session.total !== undefined && session.offset === session.total) {
    state.sessions.delete(request.session!);
    const object = state.store(
      session.bucket,
      session.name,
      Buffer.concat(session.received),
      session.contentType,
    );
    return { status: 200, json: resource(request, object) };
  }
  const persisted = session.offset > 0 ? { range: `bytes=0-${session.offset - 1}` } : undefined;
  return { status: 308, headers: { ...persisted } };
}

/** `bytes 0-99/1000`, `bytes 0-99/*` (size not known yet), `bytes *\/1000` (a status query). */
export function parseContentRange(
  header: string,
): { start?: number; end?: number; total?: number } | undefined {
  const match = /^bytes (?:(\d+)-(\d+)|\*)\/(\d+|\*)$/.exec(header.trim());
  if (!match) return undefined;
  const total = match[3] === "*" ? undefined : Number(match[3]);
  if (match[1] === undefined) return { total };
  const start = Number(match[1]);
  const end = Number(match[2]);
  if (end < start || (total !== undefined && end >= total)) return undefined;
  return { start, end, total };
}

function resource(request: FakeRequest, object: StoredObject) {
  const path = `b/${encodeURIComponent(object.bucket)}/o/${encodeURIComponent(object.name)}`;
  return {
    kind: "storage#object",
    id: `${object.bucket}/${object.name}/${object.generation}`,
    name: object.name,
    bucket: object.bucket,
    generation: String(object.generation),
    metageneration: "1",
    contentType: object.contentType,
    size: String(object.data.length),
    selfLink: `${request.baseUrl}/storage/v1/${path}`,
    mediaLink: `${request.baseUrl}/download/storage/v1/${path}?generation=${object.generation}&alt=media`,
  };
}
