/** What a GCE cluster should be, as pure data: each rule of src/launch/gce/desired.ts on its own. */
import { parse } from "yaml";
import { gceClusterSpecSchema, type GceSpec } from "../../src/cluster/schema";
import {
  CUSTOM_ROLES,
  customRoleId,
  DISCOVERY_EVENTS,
  DISCOVERY_READS,
  discoveryFunctionId,
  discoveryTriggerId,
  IDENTITIES,
  MASTERS_PERMISSIONS,
  mastersRoleId,
  RECORD_PERMISSIONS,
  UPDATE_POLICY,
  clusterZoneDnsName,
  describedAs,
  firewallBody,
  firewallRules,
  groupSize,
  labelsFor,
  mastersCondition,
  ownerIn,
  rolloutBatch,
  secretBindings,
  secretId,
  serviceAccountEmail,
  serviceAccountId,
  templateName,
  templateProperties,
  userData,
  type GceInputs,
} from "../../src/launch/gce/desired";
import { ROLE_SECRET_NAMES } from "../../src/launch/pki-files";
import { gceClusterYaml } from "./fixture";

const specOf = (overrides: Record<string, unknown> = {}): GceSpec =>
  gceClusterSpecSchema.parse(gceClusterYaml(overrides)) as GceSpec;
const inputsOf = (spec = specOf()): GceInputs => ({
  spec,
  project: spec.project,
  image: "projects/kb-test-project/global/images/kubebake-1",
  discoveryDomain: "k8s",
});
const links = {
  network: "projects/kb-test-project/global/networks/kubebake-demo",
  subnetwork: "projects/kb-test-project/regions/europe-west1/subnetworks/kubebake-demo",
};

test("service account ids fit GCE's 6 to 30 characters, unique per cluster however long its name", () => {
  expect(serviceAccountId("demo", "masters")).toBe("kb-demo-masters");
  expect(serviceAccountId("demo", "dns")).toBe("kb-demo-dns");
  const long = "a-very-long-cluster-name-for-the-test-x";
  const other = "a-very-long-cluster-name-for-the-test-y";
  const ids = [serviceAccountId(long, "minions"), serviceAccountId(other, "minions")];
  for (const id of ids) expect(id).toMatch(/^[a-z](?:[-a-z0-9]{4,28}[a-z0-9])$/);
  expect(ids[0]).not.toBe(ids[1]);
  expect(ids[0]).toMatch(/-minions$/);
  // The boundary: exactly 30 characters stays plain, 31 takes the hash.
  expect(serviceAccountId("c".repeat(19), "masters")).toBe(`kb-${"c".repeat(19)}-masters`);
  expect(serviceAccountId("c".repeat(20), "masters")).toMatch(/^kb-c+-[0-9a-f]{6}-masters$/);
  expect(serviceAccountEmail("p-1234", "demo", "minions")).toBe(
    "kb-demo-minions@p-1234.iam.gserviceaccount.com",
  );
});

test("secrets, the zone and descriptions carry the names the node side and destroy read", () => {
  expect(secretId("demo", "encryption-config.yaml")).toBe("kubebake-demo-encryption-config-yaml");
  expect(clusterZoneDnsName(inputsOf())).toBe("demo.k8s.");
  const spec = specOf();
  expect(ownerIn(describedAs(spec, "kb-0123", "the network"))).toBe("kb-0123");
  expect(ownerIn("kubebake cluster demo: no owner")).toBeUndefined();
  expect(ownerIn("someone's network owner kb-0123: x")).toBeUndefined();
  expect(ownerIn(undefined)).toBeUndefined();
  expect(labelsFor(spec, "zone", "kb-0123")).toEqual({
    team: "platform",
    kubernetescluster: "demo",
    "kubebake-owner": "kb-0123",
    "kubebake-name": "zone",
  });
});

test("each secret is readable by exactly its roles; masters alone rotate the join token; nobody reads the admin files", () => {
  const bindings = secretBindings("p-1234", "demo");
  const members = (file: string, role: string) =>
    bindings.get(file)?.find((b) => b.role === `roles/secretmanager.${role}`)?.members ?? [];
  const masters = "serviceAccount:kb-demo-masters@p-1234.iam.gserviceaccount.com";
  const minions = "serviceAccount:kb-demo-minions@p-1234.iam.gserviceaccount.com";
  expect(members("ca.crt", "secretAccessor")).toEqual([masters, minions]);
  expect(members("bootstrap-token", "secretAccessor")).toEqual([masters, minions]);
  expect(members("bootstrap-token", "secretVersionManager")).toEqual([masters]);
  expect(members("ca.key", "secretAccessor")).toEqual([masters]);
  expect(members("etcd-ca.key", "secretAccessor")).toEqual([masters]);
  for (const file of ["admin.crt", "admin.key", "admin.kubeconfig"]) expect(bindings.has(file)).toBe(false);
  for (const file of ROLE_SECRET_NAMES.masters) expect(members(file, "secretAccessor")).toContain(masters);
  expect(
    [...bindings.keys()].filter((file) => members(file, "secretAccessor").includes(minions)).sort(),
  ).toEqual([...ROLE_SECRET_NAMES.minions].sort());
  expect([...bindings.values()].flat().filter((b) => b.role.endsWith("secretVersionManager"))).toHaveLength(
    1,
  );
});

test("the masters' condition names this cluster's instances and its masters' group only", () => {
  const condition = mastersCondition({ spec: specOf(), project: "p-1234" });
  expect(condition.expression).toBe(
    'resource.name == "projects/p-1234/regions/europe-west1/instanceGroupManagers/kubebake-demo-masters" || ' +
      '(resource.type == "compute.googleapis.com/Instance" && resource.name.extract("/instances/{name}").startsWith("kubebake-demo-"))',
  );
  expect(condition.title).toBe("kubebake demo");
});

test("firewall rules: between the roles by service account, from the operators' ranges only when listed", () => {
  const ids = (spec: GceSpec) =>
    firewallRules(spec).map((r) => `${r.id} ${r.protocol}/${r.ports.join(",")} → ${r.targets.join("+")}`);
  expect(ids(specOf({ network: {} }))).toEqual([
    "api tcp/6443 → masters",
    "etcd tcp/2379-2380 → masters",
    "kubelet tcp/10250 → minions",
    "flannel udp/8472 → minions",
  ]);
  const open = specOf({
    network: { apiAccess: ["198.51.100.0/24", "192.0.2.0/24"], sshAccess: ["192.0.2.0/24"] },
  });
  const rules = firewallRules(open);
  expect(ids(open).slice(4)).toEqual(["api-operators tcp/6443 → masters", "ssh tcp/22 → masters+minions"]);
  expect(rules.find((r) => r.id === "api-operators")!.from).toEqual({
    ranges: ["192.0.2.0/24", "198.51.100.0/24"],
  });
  expect(rules.find((r) => r.id === "etcd")!.from).toEqual({ roles: ["masters"] });
  expect(rules.find((r) => r.id === "flannel")!.from).toEqual({ roles: ["minions"] });
  const inputs = inputsOf(open);
  const api = firewallBody(inputs, "kb-1", links.network, rules[0]!);
  expect(api).toEqual({
    name: "kubebake-demo-api",
    description: "kubebake cluster demo owner kb-1: API server from the nodes",
    network: links.network,
    direction: "INGRESS",
    priority: 1000,
    allowed: [{ IPProtocol: "tcp", ports: ["6443"] }],
    targetServiceAccounts: ["kb-demo-masters@kb-test-project.iam.gserviceaccount.com"],
    sourceServiceAccounts: [
      "kb-demo-masters@kb-test-project.iam.gserviceaccount.com",
      "kb-demo-minions@kb-test-project.iam.gserviceaccount.com",
    ],
  });
  const ssh = firewallBody(
    inputs,
    "kb-1",
    links.network,
    rules.find((r) => r.id === "ssh")!,
  );
  expect(ssh).toMatchObject({ sourceRanges: ["192.0.2.0/24"] });
  expect(ssh).not.toHaveProperty("sourceServiceAccounts");
  // Every rule's name fits GCE's 63 characters for the longest cluster name.
  const longest = specOf({ name: "x".repeat(40), network: open.network });
  for (const rule of firewallRules(longest))
    expect(firewallBody(inputsOf(longest), "kb-1", links.network, rule).name.length).toBeLessThanOrEqual(63);
});

test("user data writes only the role file: masters learn their group, size and launch gate", () => {
  const masters = parse(userData(inputsOf(), "masters").replace(/^#cloud-config\n/, "")).write_files;
  expect(masters).toEqual([
    {
      path: "/etc/sysconfig/kubernetes-masters",
      owner: "root:root",
      permissions: "0644",
      content:
        "CLUSTER_NAME=demo\nCLOUD_PROVIDER=gce\nSECRET_SOURCE=secretmanager:projects/kb-test-project/secrets/kubebake-demo\n" +
        "MASTERS_COUNT=3\nGROUP_NAME=kubebake-demo-masters\nLAUNCH_HOOK=kubebake/launch-ready\n",
    },
  ]);
  const minions = parse(userData(inputsOf(), "minions").replace(/^#cloud-config\n/, "")).write_files[0];
  expect(minions.path).toBe("/etc/sysconfig/kubernetes-minions");
  expect(minions.content).toBe(
    "CLUSTER_NAME=demo\nCLOUD_PROVIDER=gce\nSECRET_SOURCE=secretmanager:projects/kb-test-project/secrets/kubebake-demo\n",
  );
  expect(userData(inputsOf(), "masters").startsWith("#cloud-config\n")).toBe(true);
});

test("templates: Shielded VM, OS Login, guest attributes, the role's account; an external IP only with internet", () => {
  const properties = templateProperties(inputsOf(), "kb-1", "minions", links);
  expect(properties).toMatchObject({
    machineType: "e2-standard-4",
    labels: { kubernetescluster: "demo", role: "minions", "kubebake-owner": "kb-1", team: "platform" },
    disks: [
      {
        boot: true,
        autoDelete: true,
        initializeParams: { sourceImage: "projects/kb-test-project/global/images/kubebake-1" },
      },
    ],
    serviceAccounts: [
      {
        email: "kb-demo-minions@kb-test-project.iam.gserviceaccount.com",
        scopes: ["https://www.googleapis.com/auth/cloud-platform"],
      },
    ],
    shieldedInstanceConfig: { enableSecureBoot: true, enableVtpm: true, enableIntegrityMonitoring: true },
  });
  const metadata = Object.fromEntries(properties.metadata.items.map((i) => [i.key, i.value]));
  expect(metadata).toMatchObject({
    "enable-oslogin": "TRUE",
    "block-project-ssh-keys": "TRUE",
    "enable-guest-attributes": "TRUE",
  });
  expect(metadata["user-data"]).toBe(userData(inputsOf(), "minions"));
  expect(properties.networkInterfaces).toEqual([{ network: links.network, subnetwork: links.subnetwork }]);
  const open = templateProperties(
    inputsOf(specOf({ network: { internet: true } })),
    "kb-1",
    "minions",
    links,
  );
  expect(open.networkInterfaces[0]).toHaveProperty("accessConfigs", [
    { type: "ONE_TO_ONE_NAT", name: "External NAT" },
  ]);
});

test("a template's name follows its content but not the cluster id, and fits 63 characters", () => {
  const a = templateProperties(inputsOf(), "kb-1", "masters", links);
  const b = templateProperties(inputsOf(), "kb-2", "masters", links);
  expect(templateName("demo", "masters", a)).toBe(templateName("demo", "masters", b));
  expect(templateName("demo", "masters", a)).toMatch(/^kubebake-demo-masters-[0-9a-f]{10}$/);
  const bigger = templateProperties(
    inputsOf(
      specOf({
        groups: {
          masters: { count: 3, machineType: "e2-standard-8" },
          minions: { min: 1, max: 10, desired: 2, machineType: "e2-standard-4" },
        },
      }),
    ),
    "kb-1",
    "masters",
    links,
  );
  expect(templateName("demo", "masters", bigger)).not.toBe(templateName("demo", "masters", a));
  const long = templateName("y".repeat(40), "minions", a);
  expect(long.length).toBe(63);
  expect(long).toMatch(/^kubebake-y{40}-minions-[0-9a-f]{5}$/);
});

test("group sizes and rollout batches: masters one at a time, minions by batchPercent, at least one", () => {
  const spec = specOf({
    groups: {
      masters: { count: 5, machineType: "e2-small" },
      minions: { min: 0, max: 50, desired: 7, machineType: "e2-small" },
    },
    rollout: { batchPercent: 30 },
  });
  expect(groupSize(spec, "masters")).toBe(5);
  expect(groupSize(spec, "minions")).toBe(7);
  expect(rolloutBatch(spec, "masters", 5)).toBe(1);
  expect(rolloutBatch(spec, "minions", 7)).toBe(2);
  expect(rolloutBatch(spec, "minions", 3)).toBe(1);
  expect(rolloutBatch(specOf({ rollout: { batchPercent: 100 } }), "minions", 4)).toBe(4);
});

test("the cluster's identities, custom roles and discovery's names and permissions, exactly", () => {
  expect(IDENTITIES).toEqual(["masters", "minions", "dns"]);
  expect(customRoleId("demo-x", "records")).toBe("kubebake_demo_x_records");
  expect(mastersRoleId("demo")).toBe("kubebake_demo_masters");
  expect(CUSTOM_ROLES).toEqual(["masters", "discovery", "records"]);
  expect(MASTERS_PERMISSIONS).toEqual([
    "compute.instanceGroupManagers.get",
    "compute.instanceGroupManagers.update",
    "compute.instances.get",
  ]);
  expect(DISCOVERY_READS).toEqual(["compute.instanceGroupManagers.get", "compute.instances.list"]);
  expect(RECORD_PERMISSIONS).toEqual([
    "dns.changes.create",
    "dns.changes.get",
    "dns.managedZones.get",
    "dns.resourceRecordSets.create",
    "dns.resourceRecordSets.delete",
    "dns.resourceRecordSets.list",
    "dns.resourceRecordSets.update",
  ]);
  expect(discoveryFunctionId("demo")).toBe("kubebake-demo-dns");
  expect(discoveryTriggerId("demo", "inserts")).toBe("kubebake-demo-dns-inserts");
  expect(DISCOVERY_EVENTS).toEqual({
    inserts: "v1.compute.instances.insert",
    deletes: "v1.compute.instances.delete",
  });
  expect(UPDATE_POLICY).toEqual({
    type: "OPPORTUNISTIC",
    instanceRedistributionType: "NONE",
    minimalAction: "REPLACE",
    replacementMethod: "SUBSTITUTE",
  });
});
