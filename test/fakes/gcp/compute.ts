import { gunzipSync } from "node:zlib";
import { googleError, type FakeRequest, type FakeResponse, type GoogleApiFake } from "./fake";
import type { StorageState } from "./storage";

/**
 * Compute Engine images and operations (global and regional) behind the fake. images.insert answers a PENDING operation;
 * each operations.get or wait moves it one step (PENDING, RUNNING, DONE), so clients must poll as they do
 * against GCE. An image from rawDisk.source is checked the way GCE does when the operation runs: the
 * object must exist and be a gzip'd tar whose one file is `disk.raw` (GNU format); a failure ends the
 * operation DONE with `error.errors[]` and no image, as GCE reports it.
 */
export interface Image {
  kind: "compute#image";
  id: string;
  name: string;
  status: "PENDING" | "READY" | "FAILED";
  selfLink: string;
  creationTimestamp: string;
  [field: string]: unknown;
}

export interface Operation {
  kind: "compute#operation";
  id: string;
  name: string;
  operationType: string;
  status: "PENDING" | "RUNNING" | "DONE";
  progress: number;
  targetLink: string;
  targetId?: string;
  selfLink: string;
  /** A regional operation's region (URL); global operations have none. */
  region?: string;
  insertTime: string;
  error?: { errors: { code: string; message: string }[] };
  httpErrorStatusCode?: number;
  httpErrorMessage?: string;
}

export interface OperationFailure {
  code: string;
  message: string;
}

export class ComputeState {
  readonly images = new Map<string, Image>();
  readonly operations = new Map<string, Operation>();
  /** Work to do when an operation reaches DONE; a failure it returns ends the operation in error. */
  private readonly pending = new Map<string, () => OperationFailure | undefined>();
  private readonly injected: OperationFailure[] = [];
  private counter = 0;

  constructor(readonly storage?: StorageState) {}

  /** The next images.insert operation ends in this error (a quota, a bad archive, …). */
  failNextImageCreation(failure: OperationFailure): void {
    this.injected.push(failure);
  }

  takeInjectedFailure(): OperationFailure | undefined {
    return this.injected.shift();
  }

  nextId(): string {
    return String(4_000_000_000_000_000_000n + BigInt(++this.counter));
  }

  /** A global operation, or a regional one (answered by regionOperations) when `region` is given. */
  startOperation(
    request: FakeRequest,
    type: string,
    targetLink: string,
    work: () => OperationFailure | undefined,
    region?: string,
  ): Operation {
    const name = `operation-${Date.now()}-${this.nextId().slice(-6)}`;
    const project = `${request.baseUrl}/compute/v1/projects/${request.params.project}`;
    const operation: Operation = {
      kind: "compute#operation",
      id: this.nextId(),
      name,
      operationType: type,
      status: "PENDING",
      progress: 0,
      targetLink,
      selfLink: `${project}/${region ? `regions/${region}` : "global"}/operations/${name}`,
      ...(region ? { region: `${project}/regions/${region}` } : {}),
      insertTime: new Date().toISOString(),
    };
    this.operations.set(name, operation);
    this.pending.set(name, work);
    return operation;
  }

  /** One step of an operation's life; the work runs when it reaches DONE. */
  advance(operation: Operation): void {
    if (operation.status === "PENDING") {
      operation.status = "RUNNING";
      operation.progress = 50;
    } else if (operation.status === "RUNNING") {
      operation.status = "DONE";
      operation.progress = 100;
      const failure = this.pending.get(operation.name)?.();
      this.pending.delete(operation.name);
      if (failure) {
        operation.error = { errors: [failure] };
        operation.httpErrorStatusCode = 400;
        operation.httpErrorMessage = "BAD REQUEST";
      }
    }
  }
}

const NAME = /^[a-z](?:[-a-z0-9]{0,61}[a-z0-9])?$/;

export function installCompute(fake: GoogleApiFake, state = new ComputeState()): ComputeState {
  fake.on("compute.images.insert", (request) => insertImage(state, request));
  fake.on("compute.images.get", (request) => {
    const image = state.images.get(request.params.image);
    return image ? { json: image } : notFound(request, `images/${request.params.image}`);
  });
  fake.on("compute.images.list", (request) => {
    const keep = filterOf(request.query.get("filter"));
    const items = [...state.images.values()].filter(keep);
    return {
      json: {
        kind: "compute#imageList",
        id: `projects/${request.params.project}/global/images`,
        items,
        selfLink: `${request.baseUrl}/compute/v1/projects/${request.params.project}/global/images`,
      },
    };
  });
  fake.on("compute.globalOperations.get", (request) => answerOperation(state, request, false));
  fake.on("compute.globalOperations.wait", (request) => answerOperation(state, request, true));
  fake.on("compute.regionOperations.get", (request) => answerOperation(state, request, false));
  fake.on("compute.regionOperations.wait", (request) => answerOperation(state, request, true));
  return state;
}

/**
 * operations.get/wait, global or regional (by the path's `region`): an operation is found only in its own
 * scope, as on GCE. undefined when this state does not hold it (another state's handler may).
 */
export function findOperation(state: ComputeState, request: FakeRequest): Operation | undefined {
  const found = state.operations.get(request.params.operation!);
  const region = request.params.region;
  const inScope = region ? found?.region?.endsWith(`/regions/${region}`) : !found?.region;
  return inScope ? found : undefined;
}

export function answerOperation(state: ComputeState, request: FakeRequest, wait: boolean): FakeResponse {
  const found = findOperation(state, request);
  const scope = request.params.region ? `regions/${request.params.region}` : "global";
  if (!found)
    return googleError(
      404,
      `The resource 'projects/${request.params.project}/${scope}/operations/${request.params.operation}' was not found`,
      "notFound",
    );
  state.advance(found);
  if (wait) state.advance(found); // wait returns as soon as it can: here, one more step
  return { json: found };
}

function notFound(request: FakeRequest, what: string): FakeResponse {
  return googleError(
    404,
    `The resource 'projects/${request.params.project}/global/${what}' was not found`,
    "notFound",
  );
}

function insertImage(state: ComputeState, request: FakeRequest): FakeResponse {
  const body = request.json as Record<string, unknown> & { name?: string; rawDisk?: { source?: string } };
  if (!body?.name || !NAME.test(body.name))
    return googleError(
      400,
      `Invalid value for field 'resource.name': '${body?.name ?? ""}'. Must be a match of regex '${NAME.source}'`,
    );
  if (state.images.has(body.name))
    return googleError(
      409,
      `The resource 'projects/${request.params.project}/global/images/${body.name}' already exists`,
      "alreadyExists",
    );
  for (const [key, value] of Object.entries((body.labels ?? {}) as Record<string, string>))
    if (!/^[a-z][-_a-z0-9]{0,62}$/.test(key) || !/^[-_a-z0-9]{0,63}$/.test(value))
      return googleError(400, `Invalid value for field 'resource.labels': '${key}=${value}'`);
  const selfLink = `${request.baseUrl}/compute/v1/projects/${request.params.project}/global/images/${body.name}`;
  const image: Image = {
    ...body,
    kind: "compute#image",
    id: state.nextId(),
    name: body.name,
    status: "PENDING",
    selfLink,
    creationTimestamp: new Date().toISOString(),
    sourceType: "RAW",
  };
  state.images.set(body.name, image);
  const injected = state.takeInjectedFailure();
  const operation = state.startOperation(request, "insert", selfLink, () => {
    const failure = injected ?? rawDiskProblem(state, body.rawDisk?.source);
    if (failure) state.images.delete(image.name);
    else {
      image.status = "READY";
      image.archiveSizeBytes = String(state.storage?.byUrl(body.rawDisk!.source!)?.data.length ?? 0);
    }
    return failure;
  });
  return { json: operation };
}

function rawDiskProblem(state: ComputeState, source: string | undefined): OperationFailure | undefined {
  if (!source || !state.storage) return undefined; // an image from another image or disk: nothing to read
  const object = state.storage.byUrl(source);
  if (!object) return { code: "RESOURCE_NOT_FOUND", message: `The resource '${source}' was not found` };
  let header: Buffer;
  try {
    header = gunzipSync(object.data).subarray(0, 512);
  } catch {
    return { code: "INVALID_IMAGE_FILE", message: `${source} is not a gzip file` };
  }
  const name = header.subarray(0, 100).toString("latin1").replace(/\0.*$/s, "");
  const magic = header.subarray(257, 265).toString("latin1");
  if (name !== "disk.raw" || magic !== "ustar  \0")
    return {
      code: "INVALID_IMAGE_FILE",
      message: `${source}: the archive's first file must be disk.raw in GNU tar format`,
    };
  return undefined;
}

/** The list filters the fake understands: `labels.KEY = "VALUE"` and `name = "NAME"`, joined by AND. */
function filterOf(filter: string | null): (image: Image) => boolean {
  if (!filter) return () => true;
  const terms = filter.split(/\s+AND\s+/).map((term) => {
    const match = /^\(?\s*(labels\.[a-z][-_a-z0-9]*|name)\s*=\s*"?([^"]*?)"?\s*\)?$/.exec(term.trim());
    if (!match) throw new Error(`the fake does not understand the filter ${term}`);
    return { field: match[1], value: match[2] };
  });
  return (image) =>
    terms.every(({ field, value }) =>
      field === "name"
        ? image.name === value
        : (image.labels as Record<string, string> | undefined)?.[field.slice(7)] === value,
    );
}
