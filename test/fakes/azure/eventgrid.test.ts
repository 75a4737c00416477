/** The Event Grid model through @azure/arm-eventgrid 14.1.0 (which sends 2022-06-15, the described version). */
import { EventGridManagementClient, type EventSubscription } from "@azure/arm-eventgrid";
import { ArmFake } from "./arm-fake";
import { EVENTGRID_SPECS, EventGridState, installEventGrid } from "./eventgrid";

const SUB = "00000000-1111-2222-3333-444444444444";
const GROUP = `/subscriptions/${SUB}/resourceGroups/rg-1`;
const FUNCTION = `${GROUP}/providers/Microsoft.Web/sites/kb-c1-lifecycle/functions/onScaleSetEvent`;
const credential = {
  getToken: async () => ({ token: "test-token", expiresOnTimestamp: Date.now() + 3600_000 }),
};
const wait = { updateIntervalInMs: 1 };

let fake: ArmFake;
let state: EventGridState;
let client: EventGridManagementClient;

beforeEach(async () => {
  fake = await ArmFake.start(EVENTGRID_SPECS);
  state = installEventGrid(
    fake,
    new EventGridState({
      functionExists: (id) => id.toLowerCase() === FUNCTION.toLowerCase(),
      resourceExists: (id) => id.toLowerCase() === GROUP.toLowerCase(),
    }),
  );
  client = new EventGridManagementClient(credential, SUB, {
    endpoint: fake.endpoint,
    tlsOptions: { ca: fake.ca },
    retryOptions: { maxRetries: 0 },
  });
});
afterEach(async () => {
  await fake.stop();
});

const topic = (name = "kb-c1-events", source = GROUP, location = "global") =>
  client.systemTopics.beginCreateOrUpdateAndWait(
    "rg-1",
    name,
    { location, source, topicType: "Microsoft.Resources.ResourceGroups" },
    wait,
  );

const subscriptionBody = (extra: Partial<EventSubscription> = {}): EventSubscription => ({
  destination: { endpointType: "AzureFunction", resourceId: FUNCTION, maxEventsPerBatch: 1 },
  filter: {
    includedEventTypes: [
      "Microsoft.Resources.ResourceWriteSuccess",
      "Microsoft.Resources.ResourceDeleteSuccess",
    ],
    subjectBeginsWith: `${GROUP}/providers/Microsoft.Compute/virtualMachines/`,
    advancedFilters: [
      {
        operatorType: "StringIn",
        key: "data.operationName",
        values: ["Microsoft.Compute/virtualMachines/write", "Microsoft.Compute/virtualMachines/delete"],
      },
    ],
  },
  ...extra,
});

const subscribe = (body = subscriptionBody(), name = "vm-changes") =>
  client.systemTopicEventSubscriptions.beginCreateOrUpdateAndWait("rg-1", "kb-c1-events", name, body, wait);

const vmEvent = (eventType: string, vm: string, operationName: string) => ({
  source: GROUP,
  eventType,
  subject: `${GROUP}/providers/Microsoft.Compute/virtualMachines/${vm}`,
  data: { operationName },
});

test("a system topic and a function subscription, both created asynchronously; events routed by the filter", async () => {
  const created = await topic();
  expect(created).toMatchObject({ location: "global", source: GROUP, provisioningState: "Succeeded" });
  const subscription = await subscribe();
  expect(subscription).toMatchObject({
    provisioningState: "Succeeded",
    topic: GROUP,
    destination: { endpointType: "AzureFunction", resourceId: FUNCTION },
  });
  const got = await client.systemTopicEventSubscriptions.get("rg-1", "kb-c1-events", "vm-changes");
  expect(got.filter?.advancedFilters).toEqual([
    expect.objectContaining({ operatorType: "StringIn", key: "data.operationName" }),
  ]);

  expect(
    state.route(
      vmEvent("Microsoft.Resources.ResourceWriteSuccess", "m_1", "Microsoft.Compute/virtualMachines/write"),
    ),
  ).toEqual([FUNCTION]);
  // Filtered out: another event type, another subject, another operation.
  expect(
    state.route(
      vmEvent("Microsoft.Resources.ResourceWriteFailure", "m_1", "Microsoft.Compute/virtualMachines/write"),
    ),
  ).toEqual([]);
  expect(
    state.route({
      ...vmEvent("Microsoft.Resources.ResourceWriteSuccess", "x", "Microsoft.Compute/virtualMachines/write"),
      subject: `${GROUP}/providers/Microsoft.Network/x`,
    }),
  ).toEqual([]);
  expect(
    state.route(
      vmEvent(
        "Microsoft.Resources.ResourceWriteSuccess",
        "m_1",
        "Microsoft.Compute/virtualMachines/start/action",
      ),
    ),
  ).toEqual([]);
  expect(fake.violations).toEqual([]);
});

test("a subscription the client did not wait for receives nothing until it settles", async () => {
  await topic();
  await client.systemTopicEventSubscriptions.beginCreateOrUpdate(
    "rg-1",
    "kb-c1-events",
    "vm-changes",
    subscriptionBody(),
    wait,
  );
  const event = vmEvent(
    "Microsoft.Resources.ResourceDeleteSuccess",
    "m_1",
    "Microsoft.Compute/virtualMachines/delete",
  );
  expect(state.route(event)).toEqual([]);
  await state.settle();
  expect(state.route(event)).toEqual([FUNCTION]);
});

test.each([
  ["a location other than global", () => topic("t", GROUP, "westeurope"), "global"],
  [
    "a source that is not a resource group",
    () => topic("t", `${GROUP}/providers/Microsoft.Compute/virtualMachines/x`),
    "not a resource group",
  ],
  [
    "a group that does not exist",
    () => topic("t", `/subscriptions/${SUB}/resourceGroups/nope`),
    "does not exist",
  ],
])("topics refused: %s", async (_, call, mention) => {
  await expect(call()).rejects.toMatchObject({ statusCode: 400, message: expect.stringContaining(mention) });
  expect(state.topics.size).toBe(0);
  expect(fake.violations).toEqual([]);
});

test("one topic per source; subscriptions need their topic, an existing function, published event types", async () => {
  await expect(subscribe()).rejects.toMatchObject({ statusCode: 404 });
  await topic();
  await expect(topic("second")).rejects.toMatchObject({
    statusCode: 400,
    message: expect.stringContaining("one per source"),
  });
  const missing = subscriptionBody({
    destination: { endpointType: "AzureFunction", resourceId: `${FUNCTION}x` },
  });
  await expect(subscribe(missing)).rejects.toMatchObject({
    statusCode: 400,
    message: expect.stringContaining("does not exist"),
  });
  const wrongType = subscriptionBody({ filter: { includedEventTypes: ["Microsoft.Storage.BlobCreated"] } });
  await expect(subscribe(wrongType)).rejects.toMatchObject({
    statusCode: 400,
    message: expect.stringContaining("BlobCreated"),
  });
  const tooMany = subscriptionBody({
    filter: {
      advancedFilters: [
        { operatorType: "StringIn", key: "subject", values: Array.from({ length: 26 }, (_, i) => `v${i}`) },
      ],
    },
  });
  await expect(subscribe(tooMany)).rejects.toMatchObject({ statusCode: 400 });
  expect(state.subscriptions.size).toBe(0);
  expect(fake.violations).toEqual([]);
});

test("deleting the topic deletes its subscriptions", async () => {
  await topic();
  await subscribe();
  await client.systemTopicEventSubscriptions.beginDeleteAndWait("rg-1", "kb-c1-events", "vm-changes", wait);
  await expect(
    client.systemTopicEventSubscriptions.get("rg-1", "kb-c1-events", "vm-changes"),
  ).rejects.toMatchObject({ statusCode: 404 });
  await subscribe(subscriptionBody(), "again");
  await client.systemTopics.beginDeleteAndWait("rg-1", "kb-c1-events", wait);
  await expect(client.systemTopics.get("rg-1", "kb-c1-events")).rejects.toMatchObject({ statusCode: 404 });
  expect(state.subscriptions.size).toBe(0);
  expect(fake.violations).toEqual([]);
});
