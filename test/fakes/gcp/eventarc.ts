import { createHash, randomInt, randomUUID } from "node:crypto";
import { labelProblem, maskPaths, page } from "./common";
import { rpcError, type FakeRequest, type FakeResponse, type GoogleApiFake } from "./fake";
import { applyMask, camelPath, Operations, type OperationJson } from "./longrunning";

/**
 * Eventarc v1 triggers behind the fake. What it holds clients to, as GCP does:
 * - create needs a triggerId (`^[a-z](?:[a-z0-9-]{0,61}[a-z0-9])?$`); create, patch and delete answer
 *   long-running operations (longrunning.ts) whose effect lands when they are polled done; the id is taken
 *   from the create on (409 ALREADY_EXISTS), a missing trigger is 404 NOT_FOUND;
 * - eventFilters need a `type` filter, distinct attributes, operator `match-path-pattern` if any; audit
 *   log triggers (`google.cloud.audit.log.v1.written`) also need serviceName and methodName filters;
 * - the destination is a Cloud Run service (service and region) which `runServiceExists` must know;
 *   `cloudFunction` is output-only (GCP refuses it: Cloud Functions makes those triggers itself);
 * - patch: no mask updates the fields sent, `*` all of them, paths only theirs; allowMissing creates;
 *   delete takes allowMissing and an etag (a stale one is 409 ABORTED); validateOnly changes nothing;
 * - answers carry uid, createTime, updateTime, an etag that changes on every update, the Pub/Sub transport.
 * Channels, GKE, Workflows and HTTP endpoint destinations, filters and IAM are not modelled (501).
 */
type Json = Record<string, any>;

export interface StoredTrigger {
  name: string;
  /** The client's fields. */
  config: Json;
  uid: string;
  createTime: string;
  updateTime: string;
  etag: string;
  transport: Json;
}

export interface EventarcOptions {
  /** Whether the trigger's service account exists (default: all do). */
  serviceAccountExists?: (email: string) => boolean;
  /** Whether a Cloud Run service exists (`projects/P/locations/REGION/services/S`); default: all do. */
  runServiceExists?: (service: string) => boolean;
}

const TRIGGER_TYPE = "type.googleapis.com/google.cloud.eventarc.v1.Trigger";
const TRIGGER_ID = /^[a-z](?:[a-z0-9-]{0,61}[a-z0-9])?$/;
const AUDIT_LOG = "google.cloud.audit.log.v1.written";
const FIELDS = ["eventFilters", "serviceAccount", "destination", "labels", "eventDataContentType", "channel"];

export class EventarcState {
  /** Triggers by name, once their create operation is done. */
  readonly triggers = new Map<string, StoredTrigger>();
  /** Names whose create is under way: taken already. */
  readonly creating = new Set<string>();
  /** The create operation of each trigger being created, by trigger name. */
  readonly creations = new Map<string, string>();
  readonly operations = new Operations("google.cloud.eventarc.v1.OperationMetadata");
  private etags = 0;

  constructor(readonly options: EventarcOptions = {}) {}

  etag(config: Json): string {
    return createHash("sha256")
      .update(`${JSON.stringify(config)}/${++this.etags}`)
      .digest("base64url")
      .slice(0, 27);
  }
}

export function installEventarc(fake: GoogleApiFake, state = new EventarcState()): EventarcState {
  const m = "eventarc.projects.locations.triggers";
  const start = (name: string, verb: string, finish: () => Json): OperationJson =>
    state.operations.start(parentOf(name), { target: name, verb, apiVersion: "v1" }, () => ({
      response: { "@type": TRIGGER_TYPE, ...finish() },
    }));
  const preview = (name: string, verb: string, trigger: Json): FakeResponse => ({
    json: state.operations.finished(
      parentOf(name),
      { target: name, verb, apiVersion: "v1" },
      { response: { "@type": TRIGGER_TYPE, ...trigger } },
    ),
  });
  /** A create (by create, or patch with allowMissing): checks, then makes the trigger at the end. */
  const create = (name: string, body: Json, request: FakeRequest): FakeResponse => {
    if (body.name !== undefined && body.name !== name)
      return invalid(`Trigger.name ${body.name} is not ${name}`);
    if (state.triggers.has(name) || state.creating.has(name))
      return rpcError(409, "ALREADY_EXISTS", `Resource '${name}' already exists`);
    const config = userFields(body);
    const problem = triggerProblem(name, config, state);
    if (problem) return problem;
    const now = new Date().toISOString();
    const [, project, , location, , id] = name.split("/");
    // Eventarc names its transport after the trigger, with a random number.
    const suffix = randomInt(100, 1000);
    const topic =
      body.transport?.pubsub?.topic ?? `projects/${project}/topics/eventarc-${location}-${id}-${suffix}`;
    const trigger: StoredTrigger = {
      name,
      config,
      uid: randomUUID(),
      createTime: now,
      updateTime: now,
      etag: state.etag(config),
      transport: {
        pubsub: {
          topic,
          subscription: `projects/${project}/subscriptions/eventarc-${location}-${id}-sub-${suffix}`,
        },
      },
    };
    if (request.query.get("validateOnly") === "true") return preview(name, "create", triggerJson(trigger));
    state.creating.add(name);
    const operation = start(name, "create", () => {
      state.creating.delete(name);
      state.creations.delete(name);
      state.triggers.set(name, trigger);
      return triggerJson(trigger);
    });
    state.creations.set(name, (operation as { name: string }).name);
    return { json: operation };
  };

  fake.on(`${m}.create`, (request) => {
    const id = request.query.get("triggerId");
    if (!id || !TRIGGER_ID.test(id))
      return invalid(`triggerId is required and must match ${TRIGGER_ID.source}, got "${id ?? ""}"`);
    return create(`${request.params.parent}/triggers/${id}`, (request.json ?? {}) as Json, request);
  });
  fake.on(`${m}.get`, (request) => {
    // Time passes while a client looks: a create whose answer it lost still finishes, as on GCP.
    const creation = state.creations.get(request.params.name);
    if (creation) state.operations.poll(creation);
    const trigger = state.triggers.get(request.params.name);
    return trigger ? { json: triggerJson(trigger) } : notFound(request.params.name);
  });
  fake.on(`${m}.list`, (request) => {
    if (request.query.get("filter") || request.query.get("orderBy"))
      return rpcError(501, "UNIMPLEMENTED", "the fake does not model filter or orderBy");
    const all = [...state.triggers.values()]
      .filter((trigger) => parentOf(trigger.name) === request.params.parent)
      .sort((a, b) => a.name.localeCompare(b.name));
    const found = page(all, {
      pageSize: request.query.get("pageSize"),
      pageToken: request.query.get("pageToken"),
      tag: `triggers:${request.params.parent}`,
      default: 500,
      max: 500,
    });
    if (!found) return invalid("Invalid page token");
    return {
      json: {
        ...(found.items.length ? { triggers: found.items.map(triggerJson) } : {}),
        ...(found.nextPageToken ? { nextPageToken: found.nextPageToken } : {}),
      },
    };
  });
  fake.on(`${m}.patch`, (request) => {
    const name = request.params.name;
    const body = (request.json ?? {}) as Json;
    const trigger = state.triggers.get(name);
    if (!trigger)
      return request.query.get("allowMissing") === "true" ? create(name, body, request) : notFound(name);
    if (body.name !== undefined && body.name !== name)
      return invalid(`Trigger.name ${body.name} is not ${name}`);
    const sent = userFields(body);
    const paths = maskPaths(request.query.get("updateMask"));
    let config = { ...trigger.config, ...sent };
    if (paths.includes("*")) config = sent;
    else if (paths.length) {
      config = structuredClone(trigger.config);
      const wrong = applyMask(config, sent, paths, (path) => FIELDS.includes(path.split(".")[0]));
      if (wrong) return invalid(wrong);
    }
    const problem = triggerProblem(name, config, state);
    if (problem) return problem;
    const updated = () => ({
      ...trigger,
      config,
      updateTime: new Date().toISOString(),
      etag: state.etag(config),
    });
    if (request.query.get("validateOnly") === "true") return preview(name, "update", triggerJson(updated()));
    return {
      json: start(name, "update", () => {
        const now = state.triggers.get(name);
        if (now) Object.assign(now, updated());
        return triggerJson(now ?? updated());
      }),
    };
  });
  fake.on(`${m}.delete`, (request) => {
    const name = request.params.name;
    const trigger = state.triggers.get(name);
    if (!trigger) {
      if (request.query.get("allowMissing") !== "true") return notFound(name);
      return preview(name, "delete", { name });
    }
    const etag = request.query.get("etag");
    if (etag && etag !== trigger.etag)
      return rpcError(409, "ABORTED", `The etag ${etag} does not match the trigger's current etag.`);
    if (request.query.get("validateOnly") === "true") return preview(name, "delete", triggerJson(trigger));
    return {
      json: start(name, "delete", () => {
        state.triggers.delete(name);
        return triggerJson(trigger);
      }),
    };
  });
  fake.on("eventarc.projects.locations.operations.get", (request) =>
    state.operations.poll(request.params.name),
  );
  return state;
}

const invalid = (message: string) => rpcError(400, "INVALID_ARGUMENT", message);
const notFound = (name: string) => rpcError(404, "NOT_FOUND", `Resource '${name}' was not found`);
const parentOf = (name: string) => name.split("/").slice(0, 4).join("/");

const userFields = (body: Json): Json =>
  Object.fromEntries(
    Object.entries(structuredClone(body)).filter(([key]) => FIELDS.includes(camelPath(key))),
  );

function triggerJson(trigger: StoredTrigger): Json {
  return {
    name: trigger.name,
    uid: trigger.uid,
    createTime: trigger.createTime,
    updateTime: trigger.updateTime,
    eventDataContentType: "application/json",
    ...structuredClone(trigger.config),
    transport: structuredClone(trigger.transport),
    etag: trigger.etag,
  };
}

function triggerProblem(name: string, trigger: Json, state: EventarcState): FakeResponse | undefined {
  if (trigger.channel) return rpcError(501, "UNIMPLEMENTED", "the fake does not model channels");
  const filters = (trigger.eventFilters ?? []) as Json[];
  if (!filters.length) return invalid("eventFilters are required");
  for (const filter of filters) {
    if (!filter.attribute || !filter.value) return invalid("an event filter needs an attribute and a value");
    if (filter.operator !== undefined && filter.operator !== "match-path-pattern")
      return invalid(`Unsupported operator "${filter.operator}": only match-path-pattern`);
  }
  const attributes = filters.map((filter) => filter.attribute);
  const twice = attributes.find((attribute, i) => attributes.indexOf(attribute) !== i);
  if (twice) return invalid(`The event filter attribute "${twice}" is given twice`);
  const type = filters.find((filter) => filter.attribute === "type");
  if (!type) return invalid('The event filters must include the "type" attribute');
  if (type.value === AUDIT_LOG)
    for (const needed of ["serviceName", "methodName"])
      if (!attributes.includes(needed))
        return invalid(`Audit log triggers (${AUDIT_LOG}) need a "${needed}" event filter`);
  const labels = labelProblem(trigger.labels);
  if (labels) return invalid(labels);
  if (trigger.serviceAccount && !(state.options.serviceAccountExists?.(trigger.serviceAccount) ?? true))
    return invalid(`Service account ${trigger.serviceAccount} does not exist`);
  const destination = (trigger.destination ?? {}) as Json;
  if (destination.cloudFunction)
    return invalid("destination.cloudFunction is output only: Cloud Functions creates those triggers");
  const other = ["gke", "workflow", "httpEndpoint"].find((kind) => destination[kind] !== undefined);
  if (other) return rpcError(501, "UNIMPLEMENTED", `the fake does not model ${other} destinations`);
  const run = destination.cloudRun as Json | undefined;
  if (!run?.service || !run.region) return invalid("destination.cloudRun needs a service and a region");
  const service = `${name.split("/").slice(0, 2).join("/")}/locations/${run.region}/services/${run.service}`;
  if (!(state.options.runServiceExists?.(service) ?? true))
    return invalid(`Cloud Run service ${run.service} in region ${run.region} does not exist`);
  return undefined;
}
