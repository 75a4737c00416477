import { randomBytes } from "node:crypto";
import { rpcError, type FakeResponse } from "./fake";

/**
 * Long-running operations (google.longrunning.Operation) as the One Platform APIs answer them (Cloud
 * Functions v2, Eventarc), and the update-mask rules their patches share. An operation stays running for
 * `runningPolls` operations.get answers, so a client that reads the result without polling until
 * `done` fails; its effect (`finish`) happens when it completes, as GCP's would.
 */
export interface StatusJson {
  code: number;
  message: string;
}

export interface OperationJson {
  name: string;
  metadata: Record<string, unknown>;
  done: boolean;
  response?: unknown;
  error?: StatusJson;
}

/** What an operation ends with: a response (an `@type`d message) or an error (a google.rpc.Status). */
export type Outcome = { response: unknown } | { error: StatusJson };

interface Running {
  json: OperationJson;
  left: number;
  finish: () => Outcome;
}

export class Operations {
  readonly all = new Map<string, Running>();
  /** How many operations.get answers a new operation is still running for. */
  runningPolls = 1;

  /** `metadataType`: the metadata message's full name (`google.cloud.eventarc.v1.OperationMetadata`). */
  constructor(private readonly metadataType: string) {}

  /** Starts an operation under `projects/P/locations/L`; answers it as the method that started it does. */
  start(parent: string, metadata: Record<string, unknown>, finish: () => Outcome): OperationJson {
    const name = `${parent}/operations/operation-${Date.now()}-${randomBytes(12).toString("hex")}`;
    const json: OperationJson = {
      name,
      metadata: {
        "@type": `type.googleapis.com/${this.metadataType}`,
        createTime: new Date().toISOString(),
        ...metadata,
      },
      done: false,
    };
    this.all.set(name, { json, left: this.runningPolls, finish });
    return structuredClone(json);
  }

  /** operations.get: one poll more; the operation completes once its running polls are used up. */
  poll(name: string): FakeResponse {
    const running = this.all.get(name);
    if (!running) return rpcError(404, "NOT_FOUND", `Operation ${name} not found.`);
    if (running.left-- <= 0) this.complete(running);
    return { json: structuredClone(running.json) };
  }

  /** An operation done as soon as it is answered (validateOnly, a delete of nothing with allowMissing). */
  finished(parent: string, metadata: Record<string, unknown>, outcome: Outcome): OperationJson {
    const { name } = this.start(parent, metadata, () => outcome);
    this.complete(this.all.get(name)!);
    return structuredClone(this.all.get(name)!.json);
  }

  /** Completes every running operation now (for tests driving a client that does not poll). */
  settle(): void {
    for (const running of this.all.values()) this.complete(running);
  }

  private complete(running: Running): void {
    if (running.json.done) return;
    Object.assign(running.json, { done: true }, running.finish());
    running.json.metadata.endTime = new Date().toISOString();
  }
}

/** `google.protobuf.Empty` as an operation's response. */
export const EMPTY = { "@type": "type.googleapis.com/google.protobuf.Empty" };

/** A mask path in the JSON form (`build_config.entry_point` → `buildConfig.entryPoint`); GCP takes both. */
export const camelPath = (path: string) => path.replace(/_([a-z])/g, (_all, c: string) => c.toUpperCase());

/**
 * Applies an update mask: each path's value is copied from `patch` into `target` (deleted when `patch`
 * has none), the rest of `target` stays. Answers the first path `updatable` refuses.
 */
export function applyMask(
  target: Record<string, unknown>,
  patch: Record<string, unknown>,
  paths: string[],
  updatable: (path: string) => boolean,
): string | undefined {
  const wrong = paths.map(camelPath).find((path) => !updatable(path));
  if (wrong) return `Invalid field mask path: ${wrong}`;
  for (const path of paths.map(camelPath)) {
    const keys = path.split(".");
    const last = keys.pop()!;
    const value = keys.reduce<unknown>((at, key) => (at as Record<string, unknown>)?.[key], patch);
    const from = value as Record<string, unknown> | undefined;
    let into = target;
    for (const key of keys) into = (into[key] ??= {}) as Record<string, unknown>;
    if (from?.[last] === undefined) delete into[last];
    else into[last] = structuredClone(from[last]);
  }
  return undefined;
}
