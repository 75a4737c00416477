/**
 * The Compute resources fake, driven through the official @google-cloud/compute clients: what a cluster
 * launch makes (network, subnetwork, firewalls, template, regional group) behaves as on GCE, and every
 * request the clients send is one the discovery documents accept.
 */
import {
  FirewallsClient,
  GlobalOperationsClient,
  InstancesClient,
  InstanceTemplatesClient,
  NetworksClient,
  RegionInstanceGroupManagersClient,
  RegionOperationsClient,
  SubnetworksClient,
  type protos,
} from "@google-cloud/compute";
import { testAuth } from "../../publish/gce/helpers";
import { ComputeState, installCompute } from "./compute";
import { ComputeResourcesState, installComputeResources } from "./compute-resources";
import { GoogleApiFake } from "./fake";

type Operation = protos.google.cloud.compute.v1.IOperation;

const project = "p1";
const region = "europe-west1";
const PREFIX = "kubebake-demo";
const SA = `nodes@${project}.iam.gserviceaccount.com`;

describe("the Compute resources fake, through the official clients", () => {
  let fake: GoogleApiFake;
  let state: ComputeResourcesState;
  let compute: ComputeState;
  let accounts: Set<string>;
  let c: ReturnType<typeof clients>;

  function clients() {
    const settings = {
      authClient: testAuth as never,
      apiEndpoint: "127.0.0.1",
      port: fake.port,
      protocol: "http",
    };
    return {
      networks: new NetworksClient(settings),
      subnetworks: new SubnetworksClient(settings),
      firewalls: new FirewallsClient(settings),
      templates: new InstanceTemplatesClient(settings),
      groups: new RegionInstanceGroupManagersClient(settings),
      instances: new InstancesClient(settings),
      globalOps: new GlobalOperationsClient(settings),
      regionOps: new RegionOperationsClient(settings),
    };
  }

  beforeEach(async () => {
    fake = new GoogleApiFake(["compute.v1"]);
    compute = installCompute(fake, new ComputeState());
    accounts = new Set([SA]);
    state = installComputeResources(
      fake,
      new ComputeResourcesState({ compute, serviceAccountExists: (email) => accounts.has(email) }),
    );
    await fake.start();
    c = clients();
    compute.images.set("kb-image", {
      kind: "compute#image",
      id: "1",
      name: "kb-image",
      status: "READY",
      selfLink: `${fake.url}/compute/v1/projects/${project}/global/images/kb-image`,
      creationTimestamp: new Date().toISOString(),
    });
  });
  afterEach(() => fake.stop());

  /** Waits (as callers do) until the operation a call's `[op]` started is DONE; answers the final one. */
  async function done(started: unknown[]): Promise<Operation> {
    let operation = (started[0] as { latestResponse: Operation }).latestResponse;
    const scope = operation.region ? { region } : {};
    while (String(operation.status) !== "DONE") {
      const ops = operation.region ? c.regionOps : c.globalOps;
      [operation] = await ops.wait({ project, ...scope, operation: operation.name! } as never);
    }
    return operation;
  }
  /** The operation ended without error. */
  async function ok(started: unknown[]): Promise<void> {
    const operation = await done(started);
    expect(operation.error?.errors ?? []).toEqual([]);
  }
  const rejection = (promise: Promise<unknown>) =>
    promise.then(
      () => {
        throw new Error("expected a refusal");
      },
      (error: { code: number; message: string }) => error,
    );

  const network = (name = `${PREFIX}-net`) => ({
    name,
    autoCreateSubnetworks: false,
    routingConfig: { routingMode: "REGIONAL" },
    mtu: 1460,
  });
  const subnet = (name = `${PREFIX}-subnet`, ipCidrRange = "10.0.0.0/24") => ({
    name,
    network: `projects/${project}/global/networks/${PREFIX}-net`,
    ipCidrRange,
    region,
    privateIpGoogleAccess: true,
  });
  const template = (name: string, image = "kb-image") => ({
    name,
    properties: {
      machineType: "e2-medium",
      labels: { kubernetescluster: "demo" },
      disks: [
        {
          boot: true,
          autoDelete: true,
          initializeParams: { sourceImage: `projects/${project}/global/images/${image}` },
        },
      ],
      networkInterfaces: [
        // Real selfLinks use www.googleapis.com; the fake takes references with any host.
        {
          subnetwork: `https://www.googleapis.com/compute/v1/projects/${project}/regions/${region}/subnetworks/${PREFIX}-subnet`,
        },
      ],
      serviceAccounts: [{ email: SA, scopes: ["https://www.googleapis.com/auth/cloud-platform"] }],
      metadata: { items: [{ key: "user-data", value: "#cloud-config\n" }] },
    },
  });
  const group = (name: string, templateName: string, targetSize = 3) => ({
    name,
    baseInstanceName: name,
    instanceTemplate: `global/instanceTemplates/${templateName}`,
    targetSize,
    distributionPolicy: { zones: ["b", "c", "d"].map((z) => ({ zone: `zones/${region}-${z}` })) },
    updatePolicy: {
      type: "PROACTIVE",
      minimalAction: "REPLACE",
      maxSurge: { fixed: 3 },
      maxUnavailable: { fixed: 0 },
    },
    namedPorts: [{ name: "https", port: 6443 }],
  });

  async function makeNetwork(): Promise<void> {
    await ok(await c.networks.insert({ project, networkResource: network() }));
    await ok(await c.subnetworks.insert({ project, region, subnetworkResource: subnet() }));
  }
  async function makeGroup(name = `${PREFIX}-masters`, size = 3): Promise<void> {
    await makeNetwork();
    await ok(await c.templates.insert({ project, instanceTemplateResource: template(`${PREFIX}-v1`) }));
    await ok(
      await c.groups.insert({
        project,
        region,
        instanceGroupManagerResource: group(name, `${PREFIX}-v1`, size),
      }),
    );
  }
  const members = async (name = `${PREFIX}-masters`) =>
    (await c.groups.listManagedInstances({ project, region, instanceGroupManager: name }))[0];

  it("round-trips a network: the insert takes effect when its operation is DONE", async () => {
    const [started] = await c.networks.insert({ project, networkResource: network() });
    // Not there until the operation is DONE, and the name is taken meanwhile.
    expect(state.networks.has(`${PREFIX}-net`)).toBe(false);
    expect((await rejection(c.networks.insert({ project, networkResource: network() }))).message).toMatch(
      /already exists/,
    );
    await ok([started]);
    const [got] = await c.networks.get({ project, network: `${PREFIX}-net` });
    expect(got).toMatchObject({ name: `${PREFIX}-net`, autoCreateSubnetworks: false, mtu: 1460 });
    expect(got.selfLink).toBe(`${fake.url}/compute/v1/projects/${project}/global/networks/${PREFIX}-net`);
    expect(fake.invalid).toEqual([]);
  });

  it("round-trips a subnetwork (a regional operation), firewall and template; each appears in its list", async () => {
    await makeNetwork();
    const [sub] = await c.subnetworks.get({ project, region, subnetwork: `${PREFIX}-subnet` });
    expect(sub).toMatchObject({
      ipCidrRange: "10.0.0.0/24",
      gatewayAddress: "10.0.0.1",
      privateIpGoogleAccess: true,
    });
    const [net] = await c.networks.get({ project, network: `${PREFIX}-net` });
    expect(net.subnetworks).toEqual([sub.selfLink]);

    const rule = {
      name: `${PREFIX}-api`,
      network: net.selfLink,
      direction: "INGRESS",
      sourceRanges: ["0.0.0.0/0"],
      targetServiceAccounts: [SA],
      allowed: [{ IPProtocol: "tcp", ports: ["6443"] }],
    };
    await ok(await c.firewalls.insert({ project, firewallResource: rule }));
    const [fw] = await c.firewalls.get({ project, firewall: rule.name });
    expect(fw).toMatchObject({
      priority: 1000,
      direction: "INGRESS",
      allowed: [{ IPProtocol: "tcp", ports: ["6443"] }],
    });

    await ok(await c.templates.insert({ project, instanceTemplateResource: template(`${PREFIX}-v1`) }));
    const [tpl] = await c.templates.get({ project, instanceTemplate: `${PREFIX}-v1` });
    expect(tpl.properties?.metadata?.items).toMatchObject([{ key: "user-data", value: "#cloud-config\n" }]);

    const names = async (pending: Promise<[{ name?: string | null }[], ...unknown[]]>) =>
      (await pending)[0].map((r) => r.name);
    expect(await names(c.subnetworks.list({ project, region }))).toEqual([`${PREFIX}-subnet`]);
    expect(await names(c.firewalls.list({ project }))).toEqual([`${PREFIX}-api`]);
    expect(await names(c.templates.list({ project }))).toEqual([`${PREFIX}-v1`]);
    expect(fake.invalid).toEqual([]);
  });

  it("answers 409 alreadyExists for a duplicate and 404 with Google's message for a missing resource", async () => {
    await makeNetwork();
    const duplicate = await rejection(
      c.subnetworks.insert({ project, region, subnetworkResource: subnet() }),
    );
    expect(duplicate.code).toBe(10); // gax maps HTTP 409 to ABORTED
    expect(duplicate.message).toMatch(
      `The resource 'projects/${project}/regions/${region}/subnetworks/${PREFIX}-subnet' already exists`,
    );
    const missing = await rejection(c.networks.get({ project, network: "nope" }));
    expect(missing.code).toBe(5);
    expect(missing.message).toMatch(`The resource 'projects/${project}/global/networks/nope' was not found`);
    // A reference to a network that does not exist is a 404 naming it.
    const orphan = await rejection(
      c.firewalls.insert({
        project,
        firewallResource: {
          name: "fw",
          network: "global/networks/nope",
          sourceRanges: ["10.0.0.0/8"],
          allowed: [{ IPProtocol: "icmp" }],
        },
      }),
    );
    expect(orphan.message).toMatch(`'projects/${project}/global/networks/nope' was not found`);
    expect(fake.invalid).toEqual([]);
  });

  it("refuses what GCE refuses: a bad name, an overlapping range, tags mixed with service accounts, a sourceless ingress", async () => {
    await makeNetwork();
    const refusals = [
      c.networks.insert({ project, networkResource: network("Bad_Name") }),
      c.subnetworks.insert({ project, region, subnetworkResource: subnet("other", "10.0.0.128/25") }),
      c.firewalls.insert({
        project,
        firewallResource: {
          name: "mixed",
          network: `global/networks/${PREFIX}-net`,
          sourceTags: ["a"],
          targetServiceAccounts: [SA],
          allowed: [{ IPProtocol: "tcp" }],
        },
      }),
      c.firewalls.insert({
        project,
        firewallResource: {
          name: "sourceless",
          network: `global/networks/${PREFIX}-net`,
          allowed: [{ IPProtocol: "tcp" }],
        },
      }),
    ];
    const errors = await Promise.all(refusals.map(rejection));
    expect(errors.map((e) => e.code)).toEqual([3, 3, 3, 3]);
    expect(errors.map((e) => e.message)).toEqual([
      expect.stringMatching(/resource.name.*Must be a match of regex/),
      expect.stringMatching(/conflicts with existing subnetwork 'kubebake-demo-subnet'/),
      expect.stringMatching(/targetServiceAccounts.*Cannot be used with tags/),
      expect.stringMatching(/INGRESS rule needs one of sourceRanges/),
    ]);
    // The fake records every 400 as a request the real API would refuse.
    expect(fake.invalid).toHaveLength(4);
  });

  it("lists by `name eq` regex (and other filters), page by page", async () => {
    for (const name of [`${PREFIX}-a`, `${PREFIX}-b`, "other-c"])
      await ok(await c.networks.insert({ project, networkResource: network(name) }));
    const [matched] = await c.networks.list({ project, filter: `name eq "${PREFIX}-.*"` });
    expect(matched.map((n) => n.name)).toEqual([`${PREFIX}-a`, `${PREFIX}-b`]);
    const [exact] = await c.networks.list({ project, filter: `(name = "other-c") AND (mtu = 1460)` });
    expect(exact.map((n) => n.name)).toEqual(["other-c"]);
    // The regex must match the whole name.
    expect((await c.networks.list({ project, filter: `name eq "${PREFIX}"` }))[0]).toEqual([]);
    const [first, next, raw] = await c.networks.list({ project, maxResults: 2 }, { autoPaginate: false });
    expect([first.length, Boolean(raw?.nextPageToken)]).toEqual([2, true]);
    const [second] = await c.networks.list(next!, { autoPaginate: false });
    expect(second.map((n) => n.name)).toEqual(["other-c"]);
    expect(fake.invalid).toEqual([]);
    // A filter the fake does not model is not silently ignored.
    await rejection(c.networks.list({ project, filter: `name = "a" OR name = "b"` }));
    expect(fake.invalid[0].problems[0]).toMatch(/does not understand the filter/);
  });

  it("refuses to delete a network a subnetwork uses (the operation ends in RESOURCE_IN_USE_BY_ANOTHER_RESOURCE)", async () => {
    await makeNetwork();
    const refused = await done(await c.networks.delete({ project, network: `${PREFIX}-net` }));
    expect(refused.error?.errors?.[0]).toMatchObject({
      code: "RESOURCE_IN_USE_BY_ANOTHER_RESOURCE",
      message: `The network resource 'projects/${project}/global/networks/${PREFIX}-net' is already being used by 'projects/${project}/regions/${region}/subnetworks/${PREFIX}-subnet'`,
    });
    expect(state.networks.has(`${PREFIX}-net`)).toBe(true);
    // Others (a Cloud DNS private zone) may use it too.
    state.networkUsers.push((name) =>
      name === `${PREFIX}-net` ? [`projects/${project}/managedZones/demo`] : [],
    );
    await ok(await c.subnetworks.delete({ project, region, subnetwork: `${PREFIX}-subnet` }));
    const again = await done(await c.networks.delete({ project, network: `${PREFIX}-net` }));
    expect(again.error?.errors?.[0].message).toMatch(/managedZones\/demo/);
    state.networkUsers.length = 0;
    await ok(await c.networks.delete({ project, network: `${PREFIX}-net` }));
    expect(state.remaining(PREFIX)).toEqual([]);
    expect(fake.invalid).toEqual([]);
  });

  it("refuses to delete a template a group uses (400 resourceInUseByAnotherResource)", async () => {
    await makeGroup();
    const refused = await rejection(c.templates.delete({ project, instanceTemplate: `${PREFIX}-v1` }));
    expect(refused.code).toBe(3);
    expect(refused.message).toMatch(
      `The instance_template resource 'projects/${project}/global/instanceTemplates/${PREFIX}-v1' is already being used by 'projects/${project}/regions/${region}/instanceGroupManagers/${PREFIX}-masters'`,
    );
    expect(state.templates.has(`${PREFIX}-v1`)).toBe(true);
  });

  it("a group's instances are created PROVISIONING/CREATING and RUNNING after settle, with the template's labels, metadata and addresses", async () => {
    state.autoSettle = false;
    await makeGroup();
    const creating = await members();
    expect(creating.map((m) => [m.instanceStatus, m.currentAction])).toEqual(
      Array(3).fill(["PROVISIONING", "CREATING"]),
    );
    const [before] = await c.groups.get({ project, region, instanceGroupManager: `${PREFIX}-masters` });
    expect([before.status?.isStable, before.currentActions?.creating]).toEqual([false, 3]);

    state.settle();
    const running = await members();
    expect(running.map((m) => [m.instanceStatus, m.currentAction])).toEqual(
      Array(3).fill(["RUNNING", "NONE"]),
    );
    const [after] = await c.groups.get({ project, region, instanceGroupManager: `${PREFIX}-masters` });
    expect([
      after.status?.isStable,
      after.status?.versionTarget?.isReached,
      after.currentActions?.none,
    ]).toEqual([true, true, 3]);
    // One instance per zone, named from the base name.
    const zones = running.map((m) => /zones\/([^/]+)\//.exec(m.instance!)![1]).sort();
    expect(zones).toEqual([`${region}-b`, `${region}-c`, `${region}-d`]);
    expect(running.every((m) => new RegExp(`^${PREFIX}-masters-[a-z0-9]{4}$`).test(m.name!))).toBe(true);

    const vms: protos.google.cloud.compute.v1.IInstance[] = [];
    for await (const [, scoped] of c.instances.aggregatedListAsync({
      project,
      filter: `labels.kubernetescluster = "demo"`,
    }))
      vms.push(...(scoped.instances ?? []));
    expect(vms.map((vm) => vm.networkInterfaces?.[0].networkIP).sort()).toEqual([
      "10.0.0.2",
      "10.0.0.3",
      "10.0.0.4",
    ]);
    const [one] = await c.instances.get({
      project,
      zone: `${region}-b`,
      instance: vms.find((vm) => vm.zone?.endsWith("-b"))!.name!,
    });
    expect(one.serviceAccounts?.[0].email).toBe(SA);
    expect(one.metadata?.items?.map((i) => i.key)).toEqual(["user-data", "instance-template", "created-by"]);
    expect(fake.invalid).toEqual([]);
  });

  it("resizes a group, replaces instances PROACTIVELY on a new version, and deletes its instances with it", async () => {
    await makeGroup(`${PREFIX}-masters`, 2);
    expect(await members()).toHaveLength(2);
    await ok(await c.groups.resize({ project, region, instanceGroupManager: `${PREFIX}-masters`, size: 4 }));
    expect((await members()).filter((m) => m.currentAction === "NONE")).toHaveLength(4);

    await ok(await c.templates.insert({ project, instanceTemplateResource: template(`${PREFIX}-v2`) }));
    const [current] = await c.groups.get({ project, region, instanceGroupManager: `${PREFIX}-masters` });
    await ok(
      await c.groups.patch({
        project,
        region,
        instanceGroupManager: `${PREFIX}-masters`,
        instanceGroupManagerResource: {
          fingerprint: current.fingerprint,
          versions: [{ name: "v2", instanceTemplate: `global/instanceTemplates/${PREFIX}-v2` }],
        },
      }),
    );
    const replaced = await members();
    expect(replaced.map((m) => m.version?.instanceTemplate?.split("/").pop())).toEqual(
      Array(4).fill(`${PREFIX}-v2`),
    );
    expect(state.replaced.map((r) => [r.from, r.to])).toEqual(
      Array(4).fill([`${PREFIX}-v1`, `${PREFIX}-v2`]),
    );
    // Substituted: new names, none of the old left.
    expect(replaced.map((m) => m.name).filter((n) => state.replaced.some((r) => r.instance === n))).toEqual(
      [],
    );
    // The old template is free now.
    await ok(await c.templates.delete({ project, instanceTemplate: `${PREFIX}-v1` }));

    await ok(await c.groups.delete({ project, region, instanceGroupManager: `${PREFIX}-masters` }));
    expect(state.instances.size).toBe(0);
    expect(state.remaining(PREFIX)).toEqual([
      `instanceTemplates/${PREFIX}-v2`,
      `networks/${PREFIX}-net`,
      `subnetworks/${PREFIX}-subnet`,
    ]);
    expect(fake.invalid).toEqual([]);
  });

  it("an OPPORTUNISTIC group keeps its instances on the old template; new ones take the new one", async () => {
    await makeGroup(`${PREFIX}-minions`, 2);
    await ok(await c.templates.insert({ project, instanceTemplateResource: template(`${PREFIX}-v2`) }));
    await ok(
      await c.groups.patch({
        project,
        region,
        instanceGroupManager: `${PREFIX}-minions`,
        instanceGroupManagerResource: {
          instanceTemplate: `global/instanceTemplates/${PREFIX}-v2`,
          updatePolicy: { type: "OPPORTUNISTIC" },
        },
      }),
    );
    await ok(await c.groups.resize({ project, region, instanceGroupManager: `${PREFIX}-minions`, size: 3 }));
    const templates = (await members(`${PREFIX}-minions`)).map((m) =>
      m.version?.instanceTemplate?.split("/").pop(),
    );
    expect(templates.sort()).toEqual([`${PREFIX}-v1`, `${PREFIX}-v1`, `${PREFIX}-v2`]);
    const [got] = await c.groups.get({ project, region, instanceGroupManager: `${PREFIX}-minions` });
    expect(got.status?.versionTarget?.isReached).toBe(false);
    expect(state.replaced).toEqual([]);
  });

  it("instances whose template names a missing image or service account stay CREATING with lastAttempt.errors", async () => {
    await makeNetwork();
    accounts.clear();
    await ok(
      await c.templates.insert({ project, instanceTemplateResource: template(`${PREFIX}-v1`, "missing") }),
    );
    await ok(
      await c.groups.insert({
        project,
        region,
        instanceGroupManagerResource: group(`${PREFIX}-masters`, `${PREFIX}-v1`, 1),
      }),
    );
    const [stuck] = await members();
    expect(stuck.currentAction).toBe("CREATING");
    expect(stuck.lastAttempt?.errors?.errors?.[0].message).toMatch(
      `projects/${project}/global/images/missing' was not found`,
    );
    compute.images.set("missing", { ...compute.images.get("kb-image")!, name: "missing" });
    const [account] = await members();
    expect(account.lastAttempt?.errors?.errors?.[0].message).toMatch(
      `'${SA}' of type 'serviceAccount' was not found`,
    );
    accounts.add(SA);
    expect((await members()).map((m) => m.currentAction)).toEqual(["NONE"]);
    expect(fake.invalid).toEqual([]);
  });

  it("answers 412 conditionNotMet to a patch with a stale fingerprint", async () => {
    await makeGroup();
    const [before] = await c.groups.get({ project, region, instanceGroupManager: `${PREFIX}-masters` });
    await ok(await c.groups.resize({ project, region, instanceGroupManager: `${PREFIX}-masters`, size: 1 }));
    const stale = await rejection(
      c.groups.patch({
        project,
        region,
        instanceGroupManager: `${PREFIX}-masters`,
        instanceGroupManagerResource: { fingerprint: before.fingerprint, targetSize: 5 },
      }),
    );
    expect(stale.code).toBe(9); // gax maps HTTP 412 to FAILED_PRECONDITION
    expect(stale.message).toMatch(/fingerprint/);

    const [sub] = await c.subnetworks.get({ project, region, subnetwork: `${PREFIX}-subnet` });
    await ok(
      await c.subnetworks.setPrivateIpGoogleAccess({
        project,
        region,
        subnetwork: `${PREFIX}-subnet`,
        subnetworksSetPrivateIpGoogleAccessRequestResource: { privateIpGoogleAccess: false },
      }),
    );
    const staleSubnet = await rejection(
      c.subnetworks.patch({
        project,
        region,
        subnetwork: `${PREFIX}-subnet`,
        subnetworkResource: { fingerprint: sub.fingerprint, ipCidrRange: "10.0.0.0/23" },
      }),
    );
    expect(staleSubnet.code).toBe(9);
    const [fresh] = await c.subnetworks.get({ project, region, subnetwork: `${PREFIX}-subnet` });
    await ok(
      await c.subnetworks.patch({
        project,
        region,
        subnetwork: `${PREFIX}-subnet`,
        subnetworkResource: { fingerprint: fresh.fingerprint, ipCidrRange: "10.0.0.0/23" },
      }),
    );
    expect(state.subnetworks.get(`${region}/${PREFIX}-subnet`)?.ipCidrRange).toBe("10.0.0.0/23");
    expect(fake.invalid).toEqual([]);
  });

  it("patches a firewall by merging and updates it by replacing; a patch must name the rule", async () => {
    await makeNetwork();
    const rule = {
      name: `${PREFIX}-ssh`,
      network: `global/networks/${PREFIX}-net`,
      sourceRanges: ["10.0.0.0/8"],
      targetServiceAccounts: [SA],
      allowed: [{ IPProtocol: "tcp", ports: ["22"] }],
    };
    await ok(await c.firewalls.insert({ project, firewallResource: rule }));
    const patch = { name: rule.name, sourceRanges: ["192.168.0.0/16"] };
    await ok(await c.firewalls.patch({ project, firewall: rule.name, firewallResource: patch }));
    expect(state.firewalls.get(rule.name)).toMatchObject({
      sourceRanges: ["192.168.0.0/16"],
      targetServiceAccounts: [SA],
    });
    const replacement = { name: rule.name, sourceRanges: ["10.1.0.0/16"], allowed: [{ IPProtocol: "udp" }] };
    await ok(await c.firewalls.update({ project, firewall: rule.name, firewallResource: replacement }));
    expect(state.firewalls.get(rule.name)?.targetServiceAccounts).toBeUndefined();
    expect(state.firewalls.get(rule.name)?.allowed).toEqual([{ IPProtocol: "udp" }]);
    const unnamed = await rejection(
      c.firewalls.patch({ project, firewall: rule.name, firewallResource: { priority: 10 } }),
    );
    expect(unnamed.message).toMatch(/Required field 'resource.name'/);
  });

  it("recreates named instances in place; a subnetwork its instances use cannot be deleted", async () => {
    await makeGroup(`${PREFIX}-masters`, 2);
    const [first] = await members();
    await ok(
      await c.groups.recreateInstances({
        project,
        region,
        instanceGroupManager: `${PREFIX}-masters`,
        regionInstanceGroupManagersRecreateRequestResource: { instances: [first.instance!] },
      }),
    );
    const again = (await members()).find((m) => m.name === first.name)!;
    expect([again.currentAction, again.id === first.id]).toEqual(["NONE", false]);
    expect(state.replaced).toMatchObject([{ instance: first.name, replacement: first.name }]);
    const inUse = await rejection(c.subnetworks.delete({ project, region, subnetwork: `${PREFIX}-subnet` }));
    expect(inUse.message).toMatch(/subnetwork resource .* is already being used by 'projects\/p1\/zones\//);
    fake.invalid.length = 0;
    // A deleted instance (or one never made) is not found.
    const gone = await rejection(c.instances.get({ project, zone: `${region}-b`, instance: "nope" }));
    expect(gone.message).toMatch(`'projects/${project}/zones/${region}-b/instances/nope' was not found`);
  });

  it("an auto-mode network has a subnetwork per region, deleted with it", async () => {
    await ok(
      await c.networks.insert({ project, networkResource: { name: "auto", autoCreateSubnetworks: true } }),
    );
    const [sub] = await c.subnetworks.get({ project, region, subnetwork: "auto" });
    expect(sub.ipCidrRange).toBe("10.132.0.0/20");
    await ok(await c.networks.delete({ project, network: "auto" }));
    expect(state.remaining("auto")).toEqual([]);
    expect(fake.invalid).toEqual([]);
  });

  it("ends an operation in an injected error, changing nothing", async () => {
    state.failNextOperation("compute.networks.insert", {
      code: "QUOTA_EXCEEDED",
      message: "Quota 'NETWORKS' exceeded",
    });
    const failed = await done(await c.networks.insert({ project, networkResource: network() }));
    expect(failed.error?.errors).toMatchObject([
      { code: "QUOTA_EXCEEDED", message: "Quota 'NETWORKS' exceeded" },
    ]);
    expect(state.networks.size).toBe(0);
    await ok(await c.networks.insert({ project, networkResource: network() }));
  });

  it("records an unknown body field in fake.invalid (the clients drop them; a raw request does not)", async () => {
    const res = await fetch(`${fake.url}/compute/v1/projects/${project}/global/networks`, {
      method: "POST",
      headers: { authorization: "Bearer t", "content-type": "application/json" },
      body: JSON.stringify({ ...network(), subnetMode: "custom" }),
    });
    expect(res.status).toBe(400);
    expect(fake.invalid[0].problems[0]).toMatch(/Unknown name "subnetMode" at 'Network'/);
    expect(state.networks.size).toBe(0);
  });
});
