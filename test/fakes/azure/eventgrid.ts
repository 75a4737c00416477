/**
 * Event Grid system topics and their event subscriptions (Microsoft.EventGrid 2022-06-15), as kubebake
 * subscribes a function to its resource group's changes. A topic of type Microsoft.Resources.ResourceGroups
 * lives in location "global" with the group as source, one per source; a subscription's AzureFunction
 * destination must name an existing function. Creates and deletes are asynchronous. route() tells which
 * functions an event would reach, with the subscription filters applied, for a test to deliver it.
 */
import { randomUUID } from "node:crypto";
import { armError, type ArmFake, type ArmRequest, type ArmResponse } from "./arm-fake";
import type { Json, JsonObject } from "./openapi";
import { asArray, asObject, badRequest, Jobs, lower, resourceNotFound, succeedLater } from "./model-kit";

export const EVENTGRID_SPECS = [
  "eventgrid/resource-manager/Microsoft.EventGrid/stable/2022-06-15/EventGrid.json",
];

const RESOURCE_EVENTS = ["Write", "Delete", "Action"].flatMap((what) =>
  ["Success", "Failure", "Cancel"].map((end) => `Microsoft.Resources.Resource${what}${end}`),
);
/** Topic types kubebake may use and the event types they publish. */
const TOPIC_TYPES: Record<string, string[]> = {
  "Microsoft.Resources.ResourceGroups": RESOURCE_EVENTS,
  "Microsoft.Resources.Subscriptions": RESOURCE_EVENTS,
};
/** Event Grid's limit: 25 advanced filters and 25 filter values across them, per subscription. */
const MAX_FILTER_VALUES = 25;

/** An event as Event Grid schema has it (the fields filters look at). */
export interface GridEvent {
  /** The topic's source, e.g. the resource group id. */
  source: string;
  eventType: string;
  subject: string;
  data?: Json;
}

export interface EventGridOptions {
  /** Whether an AzureFunction destination's resourceId names a deployed function (web.ts: functionExists). */
  functionExists?: (id: string) => boolean;
  /** Whether a topic's source resource exists (a resource group); default: every one. */
  resourceExists?: (id: string) => boolean;
}

export class EventGridState {
  readonly topics = new Map<string, JsonObject>();
  readonly subscriptions = new Map<string, JsonObject>();
  functionExists: (id: string) => boolean;
  resourceExists: (id: string) => boolean;
  readonly jobs = new Jobs();

  constructor(options: EventGridOptions = {}) {
    this.functionExists = options.functionExists ?? (() => true);
    this.resourceExists = options.resourceExists ?? (() => true);
  }

  settle(): Promise<void> {
    return this.jobs.settle();
  }

  /** The function ids a published event reaches: Succeeded subscriptions of its source's topic that match. */
  route(event: GridEvent): string[] {
    const topics = [...this.topics.values()].filter(
      (t) => lower(String(asObject(t.properties).source)) === lower(event.source),
    );
    return topics.flatMap((topic) =>
      [...this.subscriptions.values()]
        .filter((s) => lower(String(s.id)).startsWith(`${lower(String(topic.id))}/eventsubscriptions/`))
        .filter((s) => asObject(s.properties).provisioningState === "Succeeded")
        .filter((s) => matches(asObject(asObject(s.properties).filter), event))
        .map((s) => String(asObject(asObject(asObject(s.properties).destination).properties).resourceId)),
    );
  }
}

export function installEventGrid(fake: ArmFake, state = new EventGridState()): EventGridState {
  fake.on("SystemTopics_CreateOrUpdate", (req) => createTopic(fake, state, req));
  fake.on("SystemTopics_Get", (req) => {
    const topic = state.topics.get(lower(req.path));
    return topic ? { status: 200, body: topic } : resourceNotFound(req, "Microsoft.EventGrid/systemTopics");
  });
  fake.on("SystemTopics_Delete", (req) => {
    const topic = state.topics.get(lower(req.path));
    if (!topic) return { status: 204 };
    asObject(topic.properties).provisioningState = "Deleting";
    const finish = state.jobs.add(() => {
      state.topics.delete(lower(req.path));
      for (const id of state.subscriptions.keys())
        if (id.startsWith(`${lower(req.path)}/eventsubscriptions/`)) state.subscriptions.delete(id);
    });
    return { status: 202, headers: succeedLater(fake, req, finish) };
  });
  // Described lists, unanswered before (501): with one system topic per source, a launch must list the
  // topics to find the one its resource group may already have, and a topic's subscriptions to know
  // whether deleting the topic would take someone else's with it.
  fake.on("SystemTopics_ListBySubscription", (req) =>
    listTopics(state, `/subscriptions/${req.params.subscriptionId}`),
  );
  fake.on("SystemTopics_ListByResourceGroup", (req) =>
    listTopics(
      state,
      `/subscriptions/${req.params.subscriptionId}/resourceGroups/${req.params.resourceGroupName}`,
    ),
  );
  fake.on("SystemTopicEventSubscriptions_ListBySystemTopic", (req) => {
    const topicId = lower(req.path.replace(/\/eventSubscriptions$/i, ""));
    if (!state.topics.has(topicId)) return resourceNotFound(req, "Microsoft.EventGrid/systemTopics");
    const value = [...state.subscriptions.entries()]
      .filter(([id]) => id.startsWith(`${topicId}/eventsubscriptions/`))
      .map(([, subscription]) => subscription);
    return { status: 200, body: { value } };
  });
  fake.on("SystemTopicEventSubscriptions_CreateOrUpdate", (req) => createSubscription(fake, state, req));
  fake.on("SystemTopicEventSubscriptions_Get", (req) => {
    const subscription = state.subscriptions.get(lower(req.path));
    return subscription
      ? { status: 200, body: subscription }
      : resourceNotFound(req, "Microsoft.EventGrid/systemTopics/eventSubscriptions");
  });
  fake.on("SystemTopicEventSubscriptions_Delete", (req) => {
    const subscription = state.subscriptions.get(lower(req.path));
    if (!subscription) return { status: 204 };
    asObject(subscription.properties).provisioningState = "Deleting";
    const finish = state.jobs.add(() => state.subscriptions.delete(lower(req.path)));
    return { status: 202, headers: succeedLater(fake, req, finish) };
  });
  return state;
}

function listTopics(state: EventGridState, scope: string): ArmResponse {
  const value = [...state.topics.values()].filter((t) => lower(String(t.id)).startsWith(`${lower(scope)}/`));
  return { status: 200, body: { value } };
}

function createTopic(fake: ArmFake, state: EventGridState, req: ArmRequest): ArmResponse {
  const body = req.body as JsonObject;
  const properties = asObject(body.properties);
  const existing = state.topics.get(lower(req.path));
  const before = asObject(existing?.properties);
  const topicType = String(properties.topicType ?? before.topicType ?? "");
  const source = String(properties.source ?? before.source ?? "");
  if (!TOPIC_TYPES[topicType])
    return badRequest(
      "InvalidRequest",
      `The fake models topic types ${Object.keys(TOPIC_TYPES).join(", ")}, not '${topicType}'.`,
    );
  if (existing && (lower(source) !== lower(String(before.source)) || topicType !== before.topicType))
    return badRequest("InvalidRequest", "The source and topicType of a system topic cannot be changed.");
  if (
    topicType === "Microsoft.Resources.ResourceGroups" &&
    !/^\/subscriptions\/[^/]+\/resourceGroups\/[^/]+$/i.test(source)
  )
    return badRequest("InvalidRequest", `The source '${source}' is not a resource group id.`);
  if (String(body.location).toLowerCase() !== "global")
    return badRequest("InvalidRequest", `A system topic of type ${topicType} must be in location 'global'.`);
  if (!state.resourceExists(source))
    return badRequest("InvalidRequest", `The source resource '${source}' does not exist.`);
  const twin = [...state.topics.values()].find(
    (t) =>
      lower(String(asObject(t.properties).source)) === lower(source) &&
      lower(String(t.id)) !== lower(req.path),
  );
  if (twin)
    return badRequest(
      "InvalidRequest",
      `System topic ${String(twin.id)} already exists for source ${source}: one per source.`,
    );
  const topic: JsonObject = {
    ...body,
    id: req.path,
    name: req.params.systemTopicName!,
    type: "Microsoft.EventGrid/systemTopics",
    location: "global",
    properties: {
      source,
      topicType,
      metricResourceId: String(existing ? before.metricResourceId : randomUUID()),
      provisioningState: existing ? "Updating" : "Creating",
    },
  };
  state.topics.set(lower(req.path), topic);
  const finish = state.jobs.add(() => void (asObject(topic.properties).provisioningState = "Succeeded"));
  return { status: existing ? 200 : 201, body: topic, headers: succeedLater(fake, req, finish) };
}

function createSubscription(fake: ArmFake, state: EventGridState, req: ArmRequest): ArmResponse {
  const topicId = req.path.replace(/\/eventSubscriptions\/[^/]+$/i, "");
  const topic = state.topics.get(lower(topicId));
  if (!topic)
    return armError(
      404,
      "ResourceNotFound",
      `The system topic '${req.params.systemTopicName}' was not found.`,
    );
  const properties = asObject(asObject(req.body).properties);
  const destination = asObject(properties.destination);
  if (destination.endpointType !== "AzureFunction")
    return badRequest(
      "InvalidRequest",
      `The fake models AzureFunction destinations, not ${String(destination.endpointType)}.`,
    );
  const functionId = String(asObject(destination.properties).resourceId ?? "");
  if (
    !/\/providers\/Microsoft\.Web\/sites\/[^/]+\/functions\/[^/]+$/i.test(functionId) ||
    !state.functionExists(functionId)
  )
    return badRequest("InvalidRequest", `Destination function ${functionId} does not exist.`);
  const filter = asObject(properties.filter);
  const published = TOPIC_TYPES[String(asObject(topic.properties).topicType)]!;
  const unknown = asArray(filter.includedEventTypes).filter((t) => !published.includes(String(t)));
  if (unknown.length > 0)
    return badRequest(
      "InvalidRequest",
      `Event types ${unknown.join(", ")} are not published by topic type ${String(asObject(topic.properties).topicType)}.`,
    );
  const advanced = asArray(filter.advancedFilters).map(asObject);
  const values = advanced.reduce((n, f) => n + Math.max(1, asArray(f.values).length), 0);
  if (advanced.length > MAX_FILTER_VALUES || values > MAX_FILTER_VALUES)
    return badRequest(
      "InvalidRequest",
      `At most ${MAX_FILTER_VALUES} advanced filters and filter values are allowed.`,
    );
  const existing = state.subscriptions.get(lower(req.path));
  const subscription: JsonObject = {
    id: req.path,
    name: req.params.eventSubscriptionName!,
    type: "Microsoft.EventGrid/eventSubscriptions",
    properties: {
      eventDeliverySchema: "EventGridSchema",
      retryPolicy: { maxDeliveryAttempts: 30, eventTimeToLiveInMinutes: 1440 },
      ...properties,
      topic: String(asObject(topic.properties).source),
      provisioningState: existing ? "Updating" : "Creating",
    },
  };
  state.subscriptions.set(lower(req.path), subscription);
  const finish = state.jobs.add(
    () => void (asObject(subscription.properties).provisioningState = "Succeeded"),
  );
  // The description declares 201 only, for a create and a replace alike.
  return { status: 201, body: subscription, headers: succeedLater(fake, req, finish) };
}

/** Event Grid's filter semantics: string comparisons ignore case unless isSubjectCaseSensitive. */
function matches(filter: JsonObject, event: GridEvent): boolean {
  const types = asArray(filter.includedEventTypes).map(String);
  if (types.length > 0 && !types.includes(event.eventType)) return false;
  const sensitive = filter.isSubjectCaseSensitive === true;
  const norm = (s: string) => (sensitive ? s : s.toLowerCase());
  if (
    typeof filter.subjectBeginsWith === "string" &&
    !norm(event.subject).startsWith(norm(filter.subjectBeginsWith))
  )
    return false;
  if (
    typeof filter.subjectEndsWith === "string" &&
    !norm(event.subject).endsWith(norm(filter.subjectEndsWith))
  )
    return false;
  return asArray(filter.advancedFilters).every((f) => advancedMatches(asObject(f), event));
}

function advancedMatches(filter: JsonObject, event: GridEvent): boolean {
  const value = lookup(event, String(filter.key));
  const text = typeof value === "string" ? value.toLowerCase() : undefined;
  const values = asArray(filter.values).map((v) => String(v).toLowerCase());
  switch (filter.operatorType) {
    case "StringIn":
      return text !== undefined && values.includes(text);
    case "StringNotIn":
      return text === undefined || !values.includes(text);
    case "StringBeginsWith":
      return text !== undefined && values.some((v) => text.startsWith(v));
    case "StringEndsWith":
      return text !== undefined && values.some((v) => text.endsWith(v));
    case "StringContains":
      return text !== undefined && values.some((v) => text.includes(v));
    case "StringNotContains":
      return text === undefined || !values.some((v) => text.includes(v));
    case "BoolEquals":
      return value === filter.value;
    case "IsNotNull":
      return value !== undefined && value !== null;
    case "IsNullOrUndefined":
      return value === undefined || value === null;
    default:
      throw new Error(`the fake does not evaluate advanced filter ${String(filter.operatorType)}`);
  }
}

/** `data.operationName`, `subject`, `eventType`: a filter key's value in the event. */
function lookup(event: GridEvent, key: string): Json | undefined {
  let node: Json | undefined = event as unknown as JsonObject;
  for (const part of key.split(".")) node = asObject(node)[part];
  return node;
}
