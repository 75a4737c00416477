/**
 * A fault at every mutating step of an Azure apply, then a rerun: the rerun converges (a third apply
 * changes nothing, the cluster is whole), and destroy leaves nothing of the cluster. Faults: ARM refuses
 * the call (500); the call's effect happens but its answer is lost (the connection drops); a long-running
 * operation ends Failed (the fake's models still do the work: the success is what the caller never learns).
 * Key Vault's data plane (SetSecret, one ArmFake per vault) gets the same faults: a PKI half-written.
 *
 * The SDK retries a 500 or a dropped connection, seconds apart, which hides one fault and costs seconds;
 * these clients do not retry, so a fault reaches the apply as it does once the SDK's retries are spent.
 * Key Vault's long-running calls, which the launch makes without an interval, poll here at once.
 */
import type { AzureClients } from "../../src/launch/azure/clients";
import { LAUNCH_GATE_SECRET, secretName } from "../../src/launch/azure/desired";
import { DISCOVERY_FUNCTIONS, discoveryStorageAccountName } from "../../src/launch/azure/discovery-desired";
import { formatChange } from "../../src/launch/changes";
import { PKI_FILE_NAMES } from "../../src/launch/pki-files";
import { azureClusterSpecSchema } from "../../src/cluster/schema";
import { armError, type ArmFake } from "../fakes/azure/arm-fake";
import { type AzureCloud } from "../fakes/azure/cloud";
import { emptyAzurite } from "../fakes/azure/functions-host";
import {
  apply,
  azureClusterYaml,
  clientsOf,
  destroy,
  startTestCloud,
  SUBSCRIPTION,
  useAzurite,
  writeSpec,
} from "./fixture";

jest.mock("@azure/keyvault-secrets", () => {
  const actual = jest.requireActual<typeof import("@azure/keyvault-secrets")>("@azure/keyvault-secrets");
  /** The launch's SecretClient without the SDK's retries (see above). */
  class SecretClient extends actual.SecretClient {
    constructor(...[url, credential, options]: ConstructorParameters<typeof actual.SecretClient>) {
      super(url, credential, { ...options, retryOptions: { maxRetries: 0 } });
    }
  }
  return { ...actual, SecretClient };
});

const path = writeSpec(azureClusterYaml());
const ACCOUNT = discoveryStorageAccountName(SUBSCRIPTION, azureClusterSpecSchema.parse(azureClusterYaml()));
const GROUP_ID = `/subscriptions/${SUBSCRIPTION}/resourceGroups/kubebake-demo`;
const READS = /_(Get\w*|List\w*|CheckNameAvailability)$/;

/** The launch's clients without retries (one fault must be met, not retried away). */
function testClients(cloud: AzureCloud): AzureClients {
  const clients = clientsOf(cloud);
  const { resources, network, msi, authorization, privateDns, compute, keyVault, web, storage, eventGrid } =
    clients;
  const all = [
    resources,
    network,
    msi,
    authorization,
    privateDns,
    compute,
    keyVault,
    web,
    storage,
    eventGrid,
  ];
  for (const client of all) client.pipeline.removePolicy({ name: "defaultRetryPolicy" });
  clients.calls.length = 0;
  return clients;
}

const azurite = useAzurite([ACCOUNT]);

/** A fresh fake Azure (as useAzureCloud's), for the body of `run`. */
async function withCloud<T>(run: (cloud: AzureCloud, clients: AzureClients) => Promise<T>): Promise<T> {
  const cloud = await startTestCloud(azurite());
  try {
    return await run(cloud, testClients(cloud));
  } finally {
    await cloud.stop();
    await emptyAzurite(azurite(), ACCOUNT);
  }
}

type Plane = "arm" | "vault";

interface Step {
  plane: Plane;
  operationId: string;
  calls: number;
  longRunning: boolean;
}

/** The mutating operations of a full apply from nothing, with how often each is called; what it made. */
async function applySteps(): Promise<{ steps: Step[]; made: string[] }> {
  return withCloud(async (cloud, clients) => {
    await apply(cloud, path, false, clients);
    const made = leftovers(cloud);
    const planes: [Plane, ArmFake][] = [
      ["arm", cloud.fake],
      ...[...cloud.keyVault.vaults.values()].map((v): [Plane, ArmFake] => ["vault", v.plane!]),
    ];
    const steps = new Map<string, Step>();
    for (const [plane, fake] of planes)
      for (const { method, operationId } of fake.log) {
        if (method === "GET" || !operationId || READS.test(operationId)) continue;
        const longRunning = fake.specs.operations.some((o) => o.operationId === operationId && o.longRunning);
        const step = steps.get(operationId) ?? { plane, operationId, calls: 0, longRunning };
        steps.set(operationId, { ...step, calls: step.calls + 1 });
      }
    return { steps: [...steps.values()], made };
  });
}

type Fault = "refused" | "answer lost" | "operation failed";

/** The fault on the `nth` call (1-based) of `operationId`. */
function inject(fake: ArmFake, operationId: string, nth: number, fault: Fault): void {
  const handler = fake.handler(operationId)!;
  let calls = 0;
  fake.on(operationId, async (request) => {
    if (++calls !== nth) return handler(request);
    if (fault === "refused") return armError(500, "InternalServerError", "injected");
    if (fault === "operation failed")
      fake.failNextOperation(operationId, { code: "InternalServerError", message: "injected" });
    const answer = await handler(request);
    return fault === "answer lost" ? { ...answer, dropAnswer: true } : answer;
  });
}

/** A fault in the data plane of the cluster's vault, which opens when ARM creates the vault. */
function injectInVault(cloud: AzureCloud, operationId: string, nth: number, fault: Fault): void {
  const create = cloud.fake.handler("Vaults_CreateOrUpdate")!;
  const injected = new Set<ArmFake>();
  cloud.fake.on("Vaults_CreateOrUpdate", async (request) => {
    const answer = await create(request);
    for (const { plane } of cloud.keyVault.vaults.values())
      if (plane && !injected.has(plane)) {
        injected.add(plane);
        inject(plane, operationId, nth, fault);
      }
    return answer;
  });
}

/**
 * The later calls whose fault leaves another state than the first call's: the second secret leaves the
 * PKI half-written (a rerun must replace it, since no node has read it); the last secret, the launch
 * gate's, leaves the PKI whole without it; the last role assignment, every grant made but one; the last
 * scale set (the minions'), the masters running.
 */
const LATER_CALLS: Record<string, (calls: number) => number[]> = {
  SetSecret: (calls) => [2, calls],
  RoleAssignments_Create: (calls) => [calls],
  VirtualMachineScaleSets_CreateOrUpdate: (calls) => [calls],
};

type Case = [step: Step, nth: number, fault: Fault];

/** The faults of a step: a long-running operation may also end Failed. */
const faultsOf = (step: Step): Fault[] =>
  step.longRunning ? ["refused", "answer lost", "operation failed"] : ["refused", "answer lost"];

/** Each operation's first call (and the later ones above), with each of its faults. */
const casesOf = (steps: Step[]): Case[] =>
  steps.flatMap((step) =>
    [1, ...(LATER_CALLS[step.operationId]?.(step.calls) ?? [])].flatMap((nth) =>
      faultsOf(step).map((fault): Case => [step, nth, fault]),
    ),
  );

/** What a whole cluster has: its members running, its PKI and the launch gate's secret, its function. */
function shape(cloud: AzureCloud) {
  const members = (role: string) =>
    cloud.vmss.vms
      .filter((vm) => vm.name.startsWith(`kubebake-demo-${role}_`))
      .map((vm) => `${vm.provisioningState} ${vm.powerState}`);
  const vault = [...cloud.keyVault.vaults.values()].find((v) => !v.deleted);
  const secrets = [...PKI_FILE_NAMES.map(secretName), LAUNCH_GATE_SECRET];
  return {
    masters: members("masters"),
    minions: members("minions"),
    secrets: secrets.filter((name) => vault && cloud.keyVault.secretValue(vault.name, name) !== undefined),
    functions: [...cloud.web.sites.values()].flatMap((site) => site.functions).sort(),
  };
}

const whole = {
  masters: Array(3).fill("Succeeded running"),
  minions: Array(2).fill("Succeeded running"),
  secrets: [...PKI_FILE_NAMES.map(secretName), LAUNCH_GATE_SECRET],
  functions: Object.values(DISCOVERY_FUNCTIONS).sort(),
};

/** Whatever any model still holds of the cluster: its group's resources, its vault, role assignments. */
function leftovers(cloud: AzureCloud): string[] {
  const ids = [
    ...cloud.groups.all().map((g) => `/subscriptions/${g.subscriptionId}/resourceGroups/${g.name}`),
    ...[
      cloud.network.virtualNetworks,
      cloud.network.securityGroups,
      cloud.network.applicationSecurityGroups,
      cloud.network.publicIpAddresses,
      cloud.network.natGateways,
    ]
      .flatMap((map) => [...map.values()])
      .map((r) => r.id),
    ...cloud.msi.all().map((i) => i.id),
    ...[...cloud.dns.zones.values()].map((z) => z.id),
    ...[...cloud.vmss.scaleSets.values()].map((s) => String(s.resource.id)),
    ...cloud.vmss.vms.map((vm) => vm.id),
    ...[...cloud.web.sites.values()].map((s) => s.id),
    ...[...cloud.web.plans.values()].map((p) => String(p.resource.id)),
    ...[...cloud.storage.accounts.values()].map((a) => String(a.resource.id)),
    ...[...cloud.eventGrid.topics.values(), ...cloud.eventGrid.subscriptions.values()].map((r) =>
      String(r.id),
    ),
  ].filter((id) => id.toLowerCase().startsWith(GROUP_ID.toLowerCase()));
  return [
    ...ids,
    ...[...cloud.keyVault.vaults.values()].map((v) => `vault ${v.name}${v.deleted ? " (deleted)" : ""}`),
    ...cloud.rbac.all().map((a) => `role assignment ${a.scope} ${a.principalId}`),
  ];
}

let steps: Step[];
let made: string[];
beforeAll(async () => {
  ({ steps, made } = await applySteps());
}, 60_000);

test("an apply makes calls of every kind it has (the cases below cover them)", () => {
  expect(steps.map((s) => s.operationId)).toEqual(
    expect.arrayContaining([
      "ResourceGroups_CreateOrUpdate",
      "VirtualNetworks_CreateOrUpdate",
      "ApplicationSecurityGroups_CreateOrUpdate",
      "NetworkSecurityGroups_CreateOrUpdate",
      "UserAssignedIdentities_CreateOrUpdate",
      "RoleAssignments_Create",
      "Vaults_CreateOrUpdate",
      "SetSecret",
      "PrivateZones_CreateOrUpdate",
      "VirtualNetworkLinks_CreateOrUpdate",
      "StorageAccounts_Create",
      "BlobContainers_Create",
      "AppServicePlans_CreateOrUpdate",
      "WebApps_CreateOrUpdate",
      "WebApps_SyncFunctionTriggers",
      "SystemTopics_CreateOrUpdate",
      "SystemTopicEventSubscriptions_CreateOrUpdate",
      "VirtualMachineScaleSets_CreateOrUpdate",
    ]),
  );
  const secrets = steps.find((s) => s.operationId === "SetSecret")!;
  expect(secrets).toMatchObject({ plane: "vault", calls: PKI_FILE_NAMES.length + 1 });
  expect(steps.find((s) => s.operationId === "VirtualMachineScaleSets_CreateOrUpdate")!.longRunning).toBe(
    true,
  );
  // What the cases' destroy must leave none of: every kind the apply makes is seen.
  const kinds = ["/resourceGroups/kubebake-demo", "/virtualNetworks/", "/networkSecurityGroups/"]
    .concat([
      "/userAssignedIdentities/",
      "/privateDnsZones/",
      "/virtualMachineScaleSets/",
      "/virtualMachines/",
    ])
    .concat(["/sites/", "/serverfarms/", "/storageAccounts/", "/systemTopics/", "/eventSubscriptions/"])
    .concat(["vault ", "role assignment "]);
  expect(kinds.filter((kind) => !made.some((id) => id.includes(kind)))).toEqual([]);
});

test("every step's fault fails the apply, and a rerun converges", async () => {
  const seen: string[] = [];
  for (const [step, nth, fault] of casesOf(steps)) {
    const at = `${step.operationId} #${nth} ${fault}`;
    await withCloud(async (cloud, clients) => {
      if (step.plane === "vault") injectInVault(cloud, step.operationId, nth, fault);
      else inject(cloud.fake, step.operationId, nth, fault);
      // The apply stops at the fault itself, not at something else it left behind.
      await expect(apply(cloud, path, false, clients)).rejects.toThrow(
        fault === "answer lost" ? /socket hang up|ECONNRESET/ : /injected/,
      );
      await apply(cloud, path, false, clients).catch((error: Error) => {
        throw new Error(`${at}: the rerun failed: ${error.message}`);
      });
      const third = await apply(cloud, path, false, clients);
      expect({ at, changes: third.rec.changes.map(formatChange), cluster: shape(cloud) }).toEqual({
        at,
        changes: [],
        cluster: whole,
      });
      await destroy(cloud, path, false, clients);
      expect({ at, left: leftovers(cloud) }).toEqual({ at, left: [] });
      // Only the injected fault may have been refused; every other request had Azure's shape.
      expect({ at, violations: cloud.fake.violations }).toEqual({ at, violations: [] });
    });
    seen.push(at);
  }
  const calls = (s: Step) => 1 + (LATER_CALLS[s.operationId]?.(s.calls).length ?? 0);
  expect(seen).toHaveLength(steps.reduce((n, s) => n + calls(s) * faultsOf(s).length, 0));
}, 600_000);
