import { createHash, randomBytes, randomUUID } from "node:crypto";
import { labelProblem, maskPaths, page } from "./common";
import { rpcError, type FakeRequest, type FakeResponse, type GoogleApiFake, type RawRequest } from "./fake";
import type { IamState } from "./iam";
import { applyMask, EMPTY, Operations, type OperationJson, type Outcome } from "./longrunning";
import { bindingChecker, getPolicy, IamPolicy, setPolicy } from "./project-iam";
import type { StorageState } from "./storage";

/**
 * Cloud Functions v2 (2nd gen) behind the fake. What it holds clients to, as GCP does:
 * - sources go up through generateUploadUrl: a signed URL on the fake's server (no bearer token) that takes
 *   ONE `PUT` of a zip with `content-type: application/zip`; anything else is refused (400);
 * - create (functionId `^[a-z](?:[-a-z0-9]{0,61}[a-z0-9])?$`, 409 ALREADY_EXISTS on a duplicate), patch
 *   and delete answer long-running operations (longrunning.ts): the function is DEPLOYING (or DELETING)
 *   until the operation is polled done, and another change meanwhile is 409 ABORTED, as GCP runs one
 *   operation per function;
 * - the build checks happen when the operation ends: the source was uploaded (a URL that was never PUT
 *   is not a source), a supported runtime, an entryPoint, service accounts that exist. A failed create
 *   leaves the function FAILED (GCP keeps it: delete it or patch it); a failed update keeps the revision
 *   that was serving. Either way the operation ends with `error: {code: 3}`;
 * - patch without updateMask replaces every field (the documented default); with one, only its paths
 *   change (snake or camel case), output-only paths are refused;
 * - each function has its own IAM policy (project-iam.ts).
 * 1st gen, repo sources, upgrades, filters and revisions are not modelled (501).
 */
export type FunctionState = "DEPLOYING" | "ACTIVE" | "FAILED" | "DELETING";
type Json = Record<string, any>;

export interface Upload {
  bucket: string;
  object: string;
  data?: Buffer;
  generation?: number;
}

export interface StoredFunction {
  name: string;
  project: string;
  location: string;
  id: string;
  /** The client's fields (no output-only ones) as last deployed, or being deployed by the create. */
  config: Json;
  state: FunctionState;
  stateMessages?: Json[];
  createTime: string;
  updateTime: string;
  /** The deployed source's bytes and generation; revisions counts successful deployments. */
  source?: Buffer;
  generation?: number;
  revisions: number;
  build?: string;
  trigger?: string;
  /** The operation under way on it, if any. */
  busy?: string;
  policy: IamPolicy;
}

export interface FunctionsOptions {
  iam?: IamState;
  /** Whether a service account exists (default: all do). */
  serviceAccountExists?: (email: string) => boolean;
  /** project id → number, for the default service account and build names. */
  projectNumbers?: Record<string, string>;
  /** Where sources in ordinary buckets are found (gs://B/O.zip rather than an upload URL). */
  storage?: StorageState;
}

const FUNCTION_TYPE = "type.googleapis.com/google.cloud.functions.v2.Function";
const FUNCTION_ID = /^[a-z](?:[-a-z0-9]{0,61}[a-z0-9])?$/;
const UPLOAD_PREFIX = "/__upload/";
const ZIP_MAGIC = Buffer.from("PK\x03\x04", "latin1");
const RESERVED_ENV = /^(?:PORT|K_SERVICE|K_REVISION|K_CONFIGURATION|X_GOOGLE_.*)$/;
/** Cloud Run's region codes in `*.a.run.app` hosts. */
const REGION_CODES: Record<string, string> = {
  "us-central1": "uc",
  "us-east1": "ue",
  "us-east4": "uk",
  "us-west1": "uw",
  "europe-west1": "ew",
  "europe-west2": "nw",
  "europe-west3": "ey",
  "europe-west4": "ez",
  "asia-east1": "de",
  "asia-northeast1": "an",
};
const TOP_FIELDS = ["description", "labels", "buildConfig", "serviceConfig", "eventTrigger", "kmsKeyName"];
const OUTPUT_ONLY = [
  "buildConfig.build",
  "buildConfig.sourceProvenance",
  "serviceConfig.service",
  "serviceConfig.uri",
  "serviceConfig.revision",
  "eventTrigger.trigger",
];

export class FunctionsState {
  /** Functions by name (`projects/P/locations/L/functions/F`). */
  readonly functions = new Map<string, StoredFunction>();
  /** Upload URLs by their token. */
  readonly uploads = new Map<string, Upload>();
  readonly operations = new Operations("google.cloud.functions.v2.OperationMetadata");
  runtimes = ["nodejs20", "nodejs22"];
  /** Successful deployments (creates and updates). */
  deployments = 0;
  private generation = 1_700_000_000_000_000;

  constructor(readonly options: FunctionsOptions = {}) {
    options.iam?.onAccountDeleted((email, uid) => {
      for (const fn of this.functions.values())
        fn.policy.rewriteMember(`serviceAccount:${email}`, `deleted:serviceAccount:${email}?uid=${uid}`);
    });
  }

  /** The zip bytes of a function's deployed source. */
  source(name: string): Buffer | undefined {
    return this.functions.get(name)?.source;
  }

  projectNumber(project: string): string {
    return this.options.projectNumbers?.[project] ?? project;
  }

  /** A source object's bytes: an upload that was PUT, or an object of the storage model. */
  resolve(bucket: string, object: string): { data: Buffer; generation: number } | undefined {
    const upload = [...this.uploads.values()].find((u) => u.bucket === bucket && u.object === object);
    if (upload?.data) return { data: upload.data, generation: upload.generation! };
    return this.options.storage?.buckets.get(bucket)?.get(object);
  }

  nextGeneration(): number {
    return ++this.generation;
  }
}

export function installFunctions(fake: GoogleApiFake, state = new FunctionsState()): FunctionsState {
  const m = "cloudfunctions.projects.locations.functions";
  const withFunction =
    (
      name: (request: FakeRequest) => string,
      then: (fn: StoredFunction, request: FakeRequest) => FakeResponse,
    ) =>
    (request: FakeRequest) => {
      const fn = state.functions.get(name(request));
      return fn ? then(fn, request) : notFound(name(request));
    };
  const changing = (then: (fn: StoredFunction, request: FakeRequest) => FakeResponse) =>
    withFunction(
      (request) => request.params.name,
      (fn, request) =>
        fn.busy
          ? rpcError(409, "ABORTED", `An operation on function ${fn.name} is already in progress.`)
          : then(fn, request),
    );

  fake.raw(UPLOAD_PREFIX, (request) => upload(state, request));
  fake.on(`${m}.generateUploadUrl`, (request) => {
    const [, project, , location] = request.params.parent.split("/");
    const token = randomBytes(16).toString("hex");
    const source = {
      bucket: `gcf-v2-uploads-${state.projectNumber(project)}-${location}`,
      object: `${randomUUID()}.zip`,
    };
    state.uploads.set(token, { ...source });
    return { json: { uploadUrl: `${request.baseUrl}${UPLOAD_PREFIX}${token}`, storageSource: source } };
  });
  fake.on(`${m}.create`, (request) => {
    const body = (request.json ?? {}) as Json;
    const id =
      request.query.get("functionId") ??
      String(body.name ?? "")
        .split("/")
        .pop();
    if (!id || !FUNCTION_ID.test(id))
      return invalid(`Invalid function id "${id ?? ""}": it must match ${FUNCTION_ID.source}`);
    const name = `${request.params.parent}/functions/${id}`;
    if (body.name !== undefined && body.name !== name)
      return invalid(`Function.name ${body.name} does not match ${name}`);
    const [, project, , location] = name.split("/");
    if (state.functions.has(name))
      return rpcError(
        409,
        "ALREADY_EXISTS",
        `Function ${id} in region ${location} in project ${project} already exists`,
      );
    const config = userFields(body);
    const problem = configProblem(body);
    if (problem) return problem;
    const now = new Date().toISOString();
    const fn: StoredFunction = {
      name,
      project,
      location,
      id,
      config,
      state: "DEPLOYING",
      createTime: now,
      updateTime: now,
      revisions: 0,
      policy: new IamPolicy(),
    };
    state.functions.set(name, fn);
    return { json: deploy(state, fn, config, "create") };
  });
  fake.on(
    `${m}.patch`,
    changing((fn, request) => {
      const body = (request.json ?? {}) as Json;
      if (body.name !== undefined && body.name !== fn.name)
        return invalid(`Function.name ${body.name} does not match ${fn.name}`);
      const paths = maskPaths(request.query.get("updateMask"));
      let config = userFields(body);
      if (paths.length) {
        config = structuredClone(fn.config);
        const updatable = (path: string) =>
          TOP_FIELDS.includes(path.split(".")[0]) &&
          !OUTPUT_ONLY.some((out) => path === out || path.startsWith(`${out}.`));
        const wrong = applyMask(config, userFields(body), paths, updatable);
        if (wrong) return invalid(wrong);
      }
      const problem = configProblem({ ...config, environment: body.environment });
      return problem ?? { json: deploy(state, fn, config, "update") };
    }),
  );
  fake.on(
    `${m}.delete`,
    changing((fn) => {
      fn.state = "DELETING";
      const op = state.operations.start(
        `projects/${fn.project}/locations/${fn.location}`,
        metadata(fn, "delete", "DELETE_FUNCTION"),
        () => {
          state.functions.delete(fn.name);
          return { response: EMPTY };
        },
      );
      fn.busy = op.name;
      return { json: op };
    }),
  );
  fake.on(
    `${m}.get`,
    withFunction(
      (request) => request.params.name,
      (fn, request) => {
        if (request.query.has("revision"))
          return rpcError(501, "UNIMPLEMENTED", "the fake does not model revisions");
        // Time passes while a client looks: a deployment whose answer it lost still finishes, as on GCP.
        if (fn.busy) state.operations.poll(fn.busy);
        return { json: functionJson(state, fn) };
      },
    ),
  );
  fake.on(`${m}.list`, (request) => {
    if (request.query.get("filter") || request.query.get("orderBy"))
      return rpcError(501, "UNIMPLEMENTED", "the fake does not model filter or orderBy");
    const [, project, , location] = request.params.parent.split("/");
    const all = [...state.functions.values()]
      .filter((fn) => fn.project === project && (location === "-" || fn.location === location))
      .sort((a, b) => a.name.localeCompare(b.name));
    const found = page(all, {
      pageSize: request.query.get("pageSize"),
      pageToken: request.query.get("pageToken"),
      tag: `functions:${request.params.parent}`,
      default: 1000,
      max: 1000,
    });
    if (!found) return invalid("Invalid page token");
    return {
      json: {
        ...(found.items.length ? { functions: found.items.map((fn) => functionJson(state, fn)) } : {}),
        ...(found.nextPageToken ? { nextPageToken: found.nextPageToken } : {}),
      },
    };
  });
  fake.on(
    `${m}.getIamPolicy`,
    withFunction(
      (request) => request.params.resource,
      (fn, request) => getPolicy(fn.policy, request.query.get("options.requestedPolicyVersion") ?? 0),
    ),
  );
  fake.on(
    `${m}.setIamPolicy`,
    withFunction(
      (request) => request.params.resource,
      (fn, request) => setPolicy(fn.policy, request.json, bindingChecker(state.options.iam, fn.project)),
    ),
  );
  fake.on("cloudfunctions.projects.locations.operations.get", (request) =>
    state.operations.poll(request.params.name),
  );
  return state;
}

const invalid = (message: string) => rpcError(400, "INVALID_ARGUMENT", message);
const notFound = (name: string) => rpcError(404, "NOT_FOUND", `Resource '${name}' was not found`);

/** The signed upload URL: one PUT of a zip, without credentials, as the documentation demands. */
function upload(state: FunctionsState, request: RawRequest): FakeResponse {
  const found = state.uploads.get(request.path.slice(UPLOAD_PREFIX.length));
  if (!found) return xmlError(404, "NoSuchUpload", "The upload URL is not one the fake minted.");
  if (request.httpMethod !== "PUT")
    return xmlError(405, "MethodNotAllowed", `The upload URL takes PUT, not ${request.httpMethod}.`);
  if (request.headers.authorization)
    return xmlError(400, "InvalidArgument", "A signed URL request must not carry an Authorization header.");
  if (request.headers["content-type"] !== "application/zip")
    return xmlError(
      400,
      "InvalidArgument",
      `The upload must be sent with content-type: application/zip, got ${request.headers["content-type"]}.`,
    );
  if (found.data) return xmlError(400, "InvalidArgument", "The upload URL was already used.");
  if (!request.body.subarray(0, 4).equals(ZIP_MAGIC))
    return xmlError(400, "InvalidArgument", "The body is not a zip archive.");
  found.data = request.body;
  found.generation = state.nextGeneration();
  return { status: 200, headers: { "x-goog-generation": String(found.generation) } };
}

/** Cloud Storage's XML error, as a signed URL answers. */
function xmlError(status: number, code: string, message: string): FakeResponse {
  return {
    status,
    headers: { "content-type": "application/xml; charset=UTF-8" },
    body: Buffer.from(
      `<?xml version='1.0' encoding='UTF-8'?><Error><Code>${code}</Code><Message>${message}</Message></Error>`,
    ),
  };
}

/** A Function body without its output-only fields, which GCP ignores in requests. */
function userFields(body: Json): Json {
  const config = Object.fromEntries(
    Object.entries(structuredClone(body)).filter(([key]) => TOP_FIELDS.includes(key)),
  );
  for (const path of OUTPUT_ONLY) {
    const [top, field] = path.split(".");
    delete config[top]?.[field];
  }
  return config;
}

/** What GCP refuses at once (400), before any build. */
function configProblem(body: Json): FakeResponse | undefined {
  if (body.environment !== undefined && body.environment !== "GEN_2")
    return rpcError(501, "UNIMPLEMENTED", `the fake models GEN_2 functions only, not ${body.environment}`);
  const labels = labelProblem(body.labels);
  if (labels) return invalid(labels);
  const source = body.buildConfig?.source ?? {};
  if (source.repoSource || source.gitUri)
    return rpcError(501, "UNIMPLEMENTED", "the fake models storage sources only");
  if (!source.storageSource?.bucket || !source.storageSource?.object)
    return invalid("buildConfig.source.storageSource needs a bucket and an object");
  const service = body.serviceConfig ?? {};
  if (
    service.availableMemory !== undefined &&
    !/^\d+(?:\.\d+)?(?:k|M|G|Mi|Gi)?$/.test(service.availableMemory)
  )
    return invalid(`Invalid availableMemory ${service.availableMemory}`);
  const maxTimeout = body.eventTrigger ? 540 : 3600;
  if (
    service.timeoutSeconds !== undefined &&
    !(service.timeoutSeconds >= 1 && service.timeoutSeconds <= maxTimeout)
  )
    return invalid(`timeoutSeconds must be within [1, ${maxTimeout}], got ${service.timeoutSeconds}`);
  if (Number(service.minInstanceCount ?? 0) > Number(service.maxInstanceCount ?? Infinity))
    return invalid("minInstanceCount cannot be greater than maxInstanceCount");
  const reserved = Object.keys({
    ...service.environmentVariables,
    ...body.buildConfig?.environmentVariables,
  }).find((key) => !key || RESERVED_ENV.test(key));
  if (reserved !== undefined) return invalid(`Environment variable name "${reserved}" is reserved`);
  if (body.eventTrigger && !body.eventTrigger.eventType) return invalid("eventTrigger.eventType is required");
  return undefined;
}

/** What the build checks when the operation ends: the problem, or the source to deploy. */
function build(
  state: FunctionsState,
  config: Json,
): { problem: string } | { data: Buffer; generation: number } {
  const { runtime, entryPoint, source } = config.buildConfig ?? {};
  if (!state.runtimes.includes(runtime))
    return { problem: `Invalid runtime "${runtime ?? ""}": supported are ${state.runtimes.join(", ")}` };
  if (!entryPoint) return { problem: "buildConfig.entryPoint is required" };
  const { bucket, object, generation } = source.storageSource;
  const found = state.resolve(bucket, object);
  // A generation of 0 is proto3's unset (what the official clients send back from generateUploadUrl).
  const pinned = generation !== undefined && String(generation) !== "0";
  if (!found || (pinned && String(generation) !== String(found.generation)))
    return {
      problem: `Storage object not found: gs://${bucket}/${object}${generation ? `#${generation}` : ""}`,
    };
  const exists = state.options.serviceAccountExists ?? (() => true);
  for (const email of [config.serviceConfig?.serviceAccountEmail, config.eventTrigger?.serviceAccountEmail])
    if (email && !exists(email)) return { problem: `Service account ${email} does not exist` };
  return found;
}

function metadata(fn: StoredFunction, verb: string, operationType: string, config?: Json): Json {
  return {
    target: fn.name,
    verb,
    cancelRequested: false,
    apiVersion: "v2",
    operationType,
    ...(config ? { requestResource: { "@type": FUNCTION_TYPE, name: fn.name, ...config } } : {}),
  };
}

/** Starts the operation building and serving `config`; its end commits it or fails it. */
function deploy(
  state: FunctionsState,
  fn: StoredFunction,
  config: Json,
  verb: "create" | "update",
): OperationJson {
  const before = fn.state;
  fn.state = "DEPLOYING";
  const finish = (): Outcome => {
    fn.busy = undefined;
    const built = build(state, config);
    const number = state.projectNumber(fn.project);
    if ("problem" in built) {
      // A failed first deployment leaves a FAILED function; a failed update keeps the serving revision.
      fn.state = verb === "create" ? "FAILED" : before;
      fn.stateMessages = [{ severity: "ERROR", type: "BuildFailed", message: built.problem }];
      return { error: { code: 3, message: `Build failed: ${built.problem}` } };
    }
    Object.assign(fn, {
      config,
      source: built.data,
      generation: built.generation,
      state: "ACTIVE",
      stateMessages: undefined,
      updateTime: new Date().toISOString(),
      build: `projects/${number}/locations/${fn.location}/builds/${randomUUID()}`,
    });
    fn.revisions++;
    if (config.eventTrigger)
      fn.trigger ??= `${parent(fn)}/triggers/${fn.id}-${randomBytes(3).toString("hex")}`;
    state.deployments++;
    return { response: { "@type": FUNCTION_TYPE, ...functionJson(state, fn) } };
  };
  const type = verb === "create" ? "CREATE_FUNCTION" : "UPDATE_FUNCTION";
  const op = state.operations.start(parent(fn), metadata(fn, verb, type, config), finish);
  fn.busy = op.name;
  return op;
}

const parent = (fn: StoredFunction) => `projects/${fn.project}/locations/${fn.location}`;

/** A function as GCP answers it: the client's fields, GCP's defaults, and what the deployment made. */
function functionJson(state: FunctionsState, fn: StoredFunction): Json {
  const { buildConfig, serviceConfig, eventTrigger, ...rest } = structuredClone(fn.config);
  const deployed = fn.revisions > 0;
  const hash = createHash("sha256").update(`${fn.project}/${fn.location}`).digest("hex").slice(0, 10);
  const code = REGION_CODES[fn.location] ?? fn.location.replace(/^(.)[^-]*-(.).*$/, "$1$2");
  const url = `https://${fn.id}-${hash}-${code}.a.run.app`;
  const account = `${state.projectNumber(fn.project)}-compute@developer.gserviceaccount.com`;
  return {
    name: fn.name,
    ...rest,
    buildConfig: {
      dockerRepository: `${parent(fn)}/repositories/gcf-artifacts`,
      ...buildConfig,
      ...(fn.build ? { build: fn.build } : {}),
      ...(deployed
        ? {
            sourceProvenance: {
              resolvedStorageSource: {
                ...buildConfig.source.storageSource,
                generation: String(fn.generation),
              },
            },
          }
        : {}),
    },
    serviceConfig: {
      availableMemory: "256M",
      availableCpu: "0.1666",
      timeoutSeconds: 60,
      maxInstanceCount: 100,
      maxInstanceRequestConcurrency: 1,
      ingressSettings: "ALLOW_ALL",
      allTrafficOnLatestRevision: true,
      serviceAccountEmail: account,
      ...serviceConfig,
      ...(deployed
        ? {
            service: `${parent(fn)}/services/${fn.id}`,
            uri: url,
            revision: `${fn.id}-${String(fn.revisions).padStart(5, "0")}-${hash.slice(0, 3)}`,
          }
        : {}),
    },
    ...(eventTrigger
      ? {
          eventTrigger: {
            triggerRegion: fn.location,
            retryPolicy: "RETRY_POLICY_DO_NOT_RETRY",
            serviceAccountEmail: account,
            ...eventTrigger,
            ...(fn.trigger ? { trigger: fn.trigger } : {}),
          },
        }
      : {}),
    environment: "GEN_2",
    state: fn.state,
    ...(fn.stateMessages ? { stateMessages: fn.stateMessages } : {}),
    createTime: fn.createTime,
    updateTime: fn.updateTime,
    ...(deployed ? { url } : {}),
  };
}
