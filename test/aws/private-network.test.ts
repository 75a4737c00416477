/**
 * Private networks (network.internet: false, the default for new clusters): VPC endpoints for the AWS
 * APIs the nodes call, no internet gateway, no default route, no public IPs. A switch between private and
 * public converges, also after a failure at any of its steps; an unset field keeps a public cluster public.
 *
 * moto is lenient here: it detaches an internet gateway while instances of the VPC still hold public IPs
 * (AWS refuses; the rollout replaces them first, which these tests check by order), it answers
 * DescribeVpcEndpointServices' service-name filter with an error (endpoints.ts reads the list whole), and
 * ModifyVpcEndpoint ignores PrivateDnsEnabled (that repair is not tested here).
 */
import {
  AuthorizeSecurityGroupIngressCommand,
  DeleteVpcEndpointsCommand,
  DescribeRouteTablesCommand,
  DescribeSecurityGroupsCommand,
  DescribeSubnetsCommand,
  DescribeVpcEndpointsCommand,
  ModifyVpcEndpointCommand,
  type VpcEndpoint,
} from "@aws-sdk/client-ec2";
import { loadCloudSpec } from "../../src/cluster/load";
import { KubebakeError } from "../../src/errors";
import { isMutating, type AwsClients } from "../../src/launch/aws/clients";
import { applyCluster } from "../../src/launch/aws/cluster";
import { endpointPolicy, NODE_ENDPOINTS, OWNER_TAG } from "../../src/launch/aws/desired";
import { liveEndpoints } from "../../src/launch/aws/endpoints";
import { resolveInputs } from "../../src/launch/aws/inputs";
import { readClusterId } from "../../src/launch/aws/owner";
import { permissionKeys } from "../../src/launch/aws/security";
import { ChangeRecorder, type Change } from "../../src/launch/changes";
import { tempDir } from "../helpers";
import {
  AWS_CHOSEN_ID,
  failingClients,
  InjectedFailure,
  inventory,
  list,
  representativeSteps,
} from "./converge";
import {
  apply,
  clientsFor,
  clusterYaml,
  destroy,
  existingNetwork,
  inputsFor,
  REGION,
  registerAmi,
  runningInstances,
  writeSpec,
} from "./fixture";
import { startMoto, type Moto } from "./moto";

let moto: Moto;
beforeAll(async () => (moto = await startMoto()), 60_000);
afterAll(() => moto?.stop());
const dir = tempDir("aws-private");

const byTag = (cluster: string) => [{ Name: "tag:KubernetesCluster", Values: [cluster] }];
const details = (changes: Change[]) =>
  changes.map((c) => `${c.action} ${c.kind} ${c.name}${c.detail ? `: ${c.detail}` : ""}`);

/** One batch per group (batchPercent 100), so that a plan lists every replacement its apply makes. */
function specWith(ami: string, network: Record<string, unknown> = {}, name = "demo") {
  return clusterYaml({
    name,
    image: { ami },
    network: { zones: ["eu-west-1a", "eu-west-1b"], ...network },
    groups: {
      masters: { count: 1, instanceType: "t3.medium" },
      minions: { min: 1, max: 3, desired: 2, instanceType: "t3.large" },
    },
    rollout: { batchPercent: 100, timeoutSeconds: 900 },
  });
}

async function freshSpec(network: Record<string, unknown> = {}, file = "cluster.yaml") {
  await moto.reset();
  const clients = clientsFor(moto.endpoint);
  const ami = await registerAmi(clients, "kubebake-1");
  return { clients, ami, path: writeSpec(dir, specWith(ami, network), file) };
}

/** A plan (or apply) that also keeps what it printed as information, the lines a terminal shows. */
async function withInfo(clients: AwsClients, specPath: string, dryRun = true) {
  const spec = loadCloudSpec(specPath, "aws");
  const inputs = await resolveInputs(clients, spec, specPath);
  const info: string[] = [];
  const rec = new ChangeRecorder(dryRun, { step: () => {}, info: (line) => info.push(line) });
  await applyCluster({ clients, inputs, rec, pollMs: 10, sleep: async () => {} });
  return { changes: rec.changes, info };
}

/** The network's shape as the nodes meet it. */
async function networkState(clients: AwsClients, cluster = "demo") {
  const tables = (await clients.ec2.send(new DescribeRouteTablesCommand({ Filters: byTag(cluster) })))
    .RouteTables!;
  const subnets = (await clients.ec2.send(new DescribeSubnetsCommand({ Filters: byTag(cluster) }))).Subnets!;
  const instances = await runningInstances(clients, cluster);
  const { internetGateways, vpcEndpoints } =
    cluster === "demo" ? await inventory(clients) : { internetGateways: -1, vpcEndpoints: -1 };
  return {
    internetGateways,
    vpcEndpoints,
    defaultRoutes: tables.flatMap((t) => t.Routes ?? []).filter((r) => r.DestinationCidrBlock === "0.0.0.0/0")
      .length,
    subnetsMappingPublicIps: subnets.filter((s) => s.MapPublicIpOnLaunch).length,
    instancesWithPublicIps: instances.filter((i) => i.PublicIpAddress).length,
    instances: instances.length,
  };
}

const PRIVATE = {
  internetGateways: 0,
  vpcEndpoints: 5,
  defaultRoutes: 0,
  subnetsMappingPublicIps: 0,
  instancesWithPublicIps: 0,
  instances: 3,
};
const PUBLIC = {
  internetGateways: 1,
  vpcEndpoints: 0,
  defaultRoutes: 1,
  subnetsMappingPublicIps: 2,
  instancesWithPublicIps: 3,
  instances: 3,
};

const endpointsOf = async (clients: AwsClients, cluster = "demo") =>
  (await liveEndpoints(clients, byTag(cluster))).sort((a, b) => a.ServiceName!.localeCompare(b.ServiceName!));

/** A cluster's endpoints by the last part of their service name (ssm, autoscaling, sts, ec2, s3). */
const byService = (endpoints: VpcEndpoint[]) =>
  Object.fromEntries(endpoints.map((e) => [e.ServiceName!.split(".").pop()!, e])) as Record<
    "ssm" | "autoscaling" | "sts" | "ec2" | "s3",
    VpcEndpoint
  >;

async function endpointsGroup(clients: AwsClients, cluster = "demo") {
  const groups = await clients.ec2.send(
    new DescribeSecurityGroupsCommand({
      Filters: [{ Name: "group-name", Values: [`kubebake-${cluster}-endpoints`] }],
    }),
  );
  return groups.SecurityGroups?.[0];
}

test("a new cluster is private by default: endpoints for ssm, autoscaling, sts, ec2 and s3, no gateway, no public IP", async () => {
  const { clients, path } = await freshSpec();
  const plan = await withInfo(clients, path);
  expect(plan.info).toContainEqual(
    expect.stringMatching(/^network\.internet is unset: .*private, the default/),
  );
  // The network kind shows in the plan, and every endpoint is listed.
  expect(details(plan.changes)).toEqual(
    expect.arrayContaining([
      "create vpc kubebake-demo-vpc: 10.0.0.0/16, private: VPC endpoints, no internet",
      "create security-group kubebake-demo-endpoints",
      "update security-group kubebake-demo-endpoints: allow HTTPS to the VPC endpoints from 10.0.0.0/16",
      "create vpc-endpoint kubebake-demo-endpoint-ssm: Interface com.amazonaws.eu-west-1.ssm, private DNS, 2 subnet(s)",
      "create vpc-endpoint kubebake-demo-endpoint-autoscaling: Interface com.amazonaws.eu-west-1.autoscaling, private DNS, 2 subnet(s)",
      "create vpc-endpoint kubebake-demo-endpoint-sts: Interface com.amazonaws.eu-west-1.sts, private DNS, 2 subnet(s)",
      "create vpc-endpoint kubebake-demo-endpoint-ec2: Interface com.amazonaws.eu-west-1.ec2, private DNS, 2 subnet(s)",
      "create vpc-endpoint kubebake-demo-endpoint-s3: Gateway com.amazonaws.eu-west-1.s3, on kubebake-demo-routes",
    ]),
  );
  expect(plan.changes.map((c) => c.kind)).not.toContain("internet-gateway");
  expect(details(plan.changes).filter((line) => /public IPs/.test(line))).toEqual([]);

  const applied = await apply(clients, path);
  expect(list(applied.changes)).toEqual(list(plan.changes));
  expect(await networkState(clients)).toEqual(PRIVATE);
  expect((await apply(clients, path)).mutating).toEqual([]);

  const clusterId = (await readClusterId(clients, "demo"))!;
  const group = (await endpointsGroup(clients))!;
  expect(group.Tags).toContainEqual({ Key: OWNER_TAG, Value: clusterId });
  expect([...permissionKeys(group.IpPermissions ?? []).keys()]).toEqual(["tcp:443-443:10.0.0.0/16"]);
  const subnets = (await clients.ec2.send(new DescribeSubnetsCommand({ Filters: byTag("demo") }))).Subnets!;
  const table = (await clients.ec2.send(new DescribeRouteTablesCommand({ Filters: byTag("demo") })))
    .RouteTables![0]!;
  const inputs = inputsFor(loadCloudSpec(path, "aws"));
  const { autoscaling, s3, ssm, sts, ec2 } = byService(await endpointsOf(clients));
  for (const [endpoint, service] of [
    [ssm, "ssm"],
    [autoscaling, "autoscaling"],
    [sts, "sts"],
    [ec2, "ec2"],
  ] as const) {
    expect(endpoint).toMatchObject({
      ServiceName: `com.amazonaws.${REGION}.${service}`,
      VpcEndpointType: "Interface",
      PrivateDnsEnabled: true,
      Groups: [expect.objectContaining({ GroupId: group.GroupId })],
    });
    expect([...endpoint.SubnetIds!].sort()).toEqual(subnets.map((s) => s.SubnetId!).sort());
    expect(JSON.parse(endpoint.PolicyDocument!)).toEqual(
      endpointPolicy(
        inputs,
        NODE_ENDPOINTS.find((e) => e.service === service)!,
      ),
    );
  }
  expect(s3).toMatchObject({
    ServiceName: `com.amazonaws.${REGION}.s3`,
    VpcEndpointType: "Gateway",
    RouteTableIds: [table.RouteTableId],
  });
  // Through the S3 endpoint only the cluster's bucket, in this account, by this account's principals.
  expect(JSON.parse(s3.PolicyDocument!).Statement).toEqual([
    expect.objectContaining({
      Action: "s3:*",
      Resource: [
        expect.stringMatching(/^arn:aws:s3:::kubebake-demo-[0-9a-f]{12}$/),
        expect.stringMatching(/^arn:aws:s3:::kubebake-demo-[0-9a-f]{12}\/\*$/),
      ],
      Condition: {
        StringEquals: { "aws:PrincipalAccount": "123456789012", "s3:ResourceAccount": "123456789012" },
      },
    }),
  ]);
  // The gateway endpoint is a route of the cluster's table (to S3's prefix list): the only way out.
  expect(table.Routes!.filter((r) => r.GatewayId === s3.VpcEndpointId)).toHaveLength(1);
  for (const endpoint of [ssm, autoscaling, sts, ec2, s3])
    expect(endpoint.Tags).toContainEqual({ Key: OWNER_TAG, Value: clusterId });
}, 120_000);

test("an endpoint changed or deleted out of band is put back; the plan lists each repair", async () => {
  const { clients, path } = await freshSpec();
  await apply(clients, path);
  const { autoscaling, s3, ssm } = byService(await endpointsOf(clients));
  const group = (await endpointsGroup(clients))!;
  await clients.ec2.send(
    new ModifyVpcEndpointCommand({
      VpcEndpointId: s3.VpcEndpointId,
      PolicyDocument: JSON.stringify({
        Statement: [{ Effect: "Allow", Principal: "*", Action: "*", Resource: "*" }],
      }),
    }),
  );
  const removed = ssm.SubnetIds![0]!;
  await clients.ec2.send(
    new ModifyVpcEndpointCommand({ VpcEndpointId: ssm.VpcEndpointId, RemoveSubnetIds: [removed] }),
  );
  await clients.ec2.send(new DeleteVpcEndpointsCommand({ VpcEndpointIds: [autoscaling.VpcEndpointId!] }));
  await clients.ec2.send(
    new AuthorizeSecurityGroupIngressCommand({
      GroupId: group.GroupId,
      IpPermissions: [{ IpProtocol: "tcp", FromPort: 443, ToPort: 443, IpRanges: [{ CidrIp: "0.0.0.0/0" }] }],
    }),
  );
  const plan = await apply(clients, path, true);
  expect(details(plan.changes)).toEqual([
    "update security-group kubebake-demo-endpoints: revoke 1 rule(s) not in the spec",
    `update vpc-endpoint kubebake-demo-endpoint-ssm: subnets +${removed}`,
    "create vpc-endpoint kubebake-demo-endpoint-autoscaling: Interface com.amazonaws.eu-west-1.autoscaling, private DNS, 2 subnet(s)",
    "update vpc-endpoint kubebake-demo-endpoint-s3: policy",
  ]);
  const applied = await apply(clients, path);
  expect(details(applied.changes)).toEqual(details(plan.changes));
  expect((await apply(clients, path)).mutating).toEqual([]);
  expect(await networkState(clients)).toEqual(PRIVATE);
}, 120_000);

test("public → private → public converges: the new way out first, nodes replaced, the old way out last", async () => {
  const { clients, ami } = await freshSpec();
  const publicSpec = writeSpec(dir, specWith(ami, { internet: true }), "public.yaml");
  const privateSpec = writeSpec(dir, specWith(ami, { internet: false }), "private.yaml");
  const publicPlan = await apply(clients, publicSpec, true);
  expect(details(publicPlan.changes)).toContain(
    "create vpc kubebake-demo-vpc: 10.0.0.0/16, public: internet gateway, public IPs",
  );
  await apply(clients, publicSpec);
  expect(await networkState(clients)).toEqual(PUBLIC);
  expect(await endpointsGroup(clients)).toBeUndefined();

  const toPrivate = await apply(clients, privateSpec, true);
  const lines = details(toPrivate.changes);
  expect(lines).toEqual([
    expect.stringMatching(/^update subnet kubebake-demo-subnet-eu-west-1a: no public IPs on launch$/),
    expect.stringMatching(/^update subnet kubebake-demo-subnet-eu-west-1b: no public IPs on launch$/),
    "create security-group kubebake-demo-endpoints",
    "update security-group kubebake-demo-endpoints: allow HTTPS to the VPC endpoints from 10.0.0.0/16",
    expect.stringMatching(/^create vpc-endpoint kubebake-demo-endpoint-ssm: /),
    expect.stringMatching(/^create vpc-endpoint kubebake-demo-endpoint-autoscaling: /),
    expect.stringMatching(/^create vpc-endpoint kubebake-demo-endpoint-sts: /),
    expect.stringMatching(/^create vpc-endpoint kubebake-demo-endpoint-ec2: /),
    expect.stringMatching(/^create vpc-endpoint kubebake-demo-endpoint-s3: /),
    expect.stringMatching(/^replace instances kubebake-demo-masters: 1 outdated instance/),
    expect.stringMatching(/^replace instances kubebake-demo-minions: 2 outdated instance/),
    expect.stringMatching(/^update route-table kubebake-demo-routes: remove the default route to igw-/),
    expect.stringMatching(/^update internet-gateway kubebake-demo-igw: detach from vpc-/),
    "delete internet-gateway kubebake-demo-igw",
  ]);
  const applied = await apply(clients, privateSpec);
  expect(list(applied.changes)).toEqual(list(toPrivate.changes));
  // The gateway goes only after every node with a public IP was replaced.
  const order = (call: string) => applied.mutating.lastIndexOf(call);
  expect(order("autoScaling:TerminateInstanceInAutoScalingGroup")).toBeLessThan(
    applied.mutating.indexOf("ec2:DetachInternetGateway"),
  );
  expect(order("ec2:CreateVpcEndpoint")).toBeLessThan(
    applied.mutating.indexOf("autoScaling:TerminateInstanceInAutoScalingGroup"),
  );
  expect(await networkState(clients)).toEqual(PRIVATE);
  expect((await apply(clients, privateSpec)).mutating).toEqual([]);

  const toPublic = await apply(clients, publicSpec, true);
  expect(details(toPublic.changes)).toEqual([
    "update subnet kubebake-demo-subnet-eu-west-1a: public IPs on launch",
    "update subnet kubebake-demo-subnet-eu-west-1b: public IPs on launch",
    "create internet-gateway kubebake-demo-igw",
    "update internet-gateway kubebake-demo-igw: attach to kubebake-demo-vpc",
    "update route-table kubebake-demo-routes: default route to the internet gateway",
    expect.stringMatching(/^replace instances kubebake-demo-masters: 1 outdated instance/),
    expect.stringMatching(/^replace instances kubebake-demo-minions: 2 outdated instance/),
    "delete vpc-endpoint kubebake-demo-endpoint-autoscaling: com.amazonaws.eu-west-1.autoscaling",
    "delete vpc-endpoint kubebake-demo-endpoint-ec2: com.amazonaws.eu-west-1.ec2",
    "delete vpc-endpoint kubebake-demo-endpoint-s3: com.amazonaws.eu-west-1.s3",
    "delete vpc-endpoint kubebake-demo-endpoint-ssm: com.amazonaws.eu-west-1.ssm",
    "delete vpc-endpoint kubebake-demo-endpoint-sts: com.amazonaws.eu-west-1.sts",
    "delete security-group kubebake-demo-endpoints",
  ]);
  const back = await apply(clients, publicSpec);
  expect(list(back.changes)).toEqual(list(toPublic.changes));
  expect(await networkState(clients)).toEqual(PUBLIC);
  expect(await endpointsGroup(clients)).toBeUndefined();
  expect((await apply(clients, publicSpec)).mutating).toEqual([]);
}, 240_000);

/**
 * A switch that fails at a mutating call, then runs again: for every step N of the switch, fail its Nth
 * mutating call (before it reaches AWS; or after, where AWS chose an id the next run must find by tags),
 * plan, apply, and check that the plan listed the apply's changes, a third apply changes nothing and the
 * network is what the spec says. The first, second and last of a run of identical calls stand for the
 * rest (representativeSteps).
 */
describe.each([
  ["private", "before"],
  ["private", "after"],
  ["public", "before"],
  ["public", "after"],
] as const)("a switch to %s that fails %s a mutating call", (to, when) => {
  const from = to === "private" ? "public" : "private";
  const network = (kind: "private" | "public") => ({ internet: kind === "public" });
  const want = to === "private" ? PRIVATE : PUBLIC;
  test(`converges from ${when === "before" ? "every step" : "every step that creates an id AWS chooses"}`, async () => {
    const { clients: reference, ami } = await freshSpec();
    await apply(reference, writeSpec(dir, specWith(ami, network(from)), "switch-from.yaml"));
    const calls = (await apply(reference, writeSpec(dir, specWith(ami, network(to)), "switch-to.yaml")))
      .mutating;
    const steps =
      when === "before"
        ? representativeSteps(calls)
        : calls.flatMap((call, index) => (AWS_CHOSEN_ID.test(call) ? [index + 1] : []));
    expect(calls).toEqual(
      expect.arrayContaining(
        to === "private"
          ? [
              "ec2:CreateVpcEndpoint",
              "ec2:DeleteRoute",
              "ec2:DetachInternetGateway",
              "ec2:DeleteInternetGateway",
            ]
          : [
              "ec2:CreateInternetGateway",
              "ec2:CreateRoute",
              "ec2:DeleteVpcEndpoints",
              "ec2:DeleteSecurityGroup",
            ],
      ),
    );
    // To private: the endpoints' group and five endpoints; to public: the internet gateway.
    if (when === "after") expect(steps).toHaveLength(to === "private" ? 6 : 1);
    for (const failAt of steps) {
      await moto.reset();
      const setup = clientsFor(moto.endpoint);
      const stepAmi = await registerAmi(setup, "kubebake-1");
      await apply(setup, writeSpec(dir, specWith(stepAmi, network(from)), "step-from.yaml"));
      const path = writeSpec(dir, specWith(stepAmi, network(to)), "step-to.yaml");
      let at = failAt;
      const clients = failingClients(moto.endpoint, () => at, when);
      await expect(apply(clients, path)).rejects.toThrow(InjectedFailure);
      at = 0;
      const plan = await apply(clients, path, true);
      const second = await apply(clients, path);
      expect({ failAt, changes: list(second.changes) }).toEqual({ failAt, changes: list(plan.changes) });
      const third = await apply(clients, path);
      expect({ failAt, call: calls[failAt - 1], mutating: third.mutating }).toEqual({
        failAt,
        call: calls[failAt - 1],
        mutating: [],
      });
      expect({ failAt, ...(await networkState(clients)) }).toEqual({ failAt, ...want });
    }
  }, 600_000);
});

test("unset: a cluster whose VPC has its internet gateway stays public, and the plan says why", async () => {
  const { clients, ami } = await freshSpec();
  await apply(clients, writeSpec(dir, specWith(ami, { internet: true }), "was-public.yaml"));
  const unset = writeSpec(dir, specWith(ami), "unset.yaml");
  const plan = await withInfo(clients, unset);
  expect(plan.changes).toEqual([]);
  expect(plan.info).toContainEqual(
    expect.stringMatching(
      /^network\.internet is unset and the cluster's VPC has its internet gateway: it stays public \(set network\.internet: false/,
    ),
  );
  expect((await apply(clients, unset)).mutating).toEqual([]);
  expect(await networkState(clients)).toEqual(PUBLIC);
}, 120_000);

test("a private network: a /0 in apiAccess is refused before anything is created; other ranges are a warning", async () => {
  const { clients, ami } = await freshSpec();
  const open = writeSpec(
    dir,
    specWith(ami, { apiAccess: ["0.0.0.0/0"], allowApiFromAnywhere: true }),
    "open-private.yaml",
  );
  const before = clients.calls.length;
  const refused = await apply(clients, open).catch((error) => error);
  expect(refused).toBeInstanceOf(KubebakeError);
  expect(refused.exitCode).toBe(2);
  expect(refused.message).toMatch(
    /^network\.apiAccess\[0\]: 0\.0\.0\.0\/0 is the whole internet, which cannot reach a private network \(network\.internet unset: private by default\): set network\.internet: true/,
  );
  expect(clients.calls.slice(before).filter(isMutating)).toEqual([]);
  // Public, it is what allowApiFromAnywhere says.
  const publicOpen = writeSpec(
    dir,
    specWith(ami, { apiAccess: ["0.0.0.0/0"], allowApiFromAnywhere: true, internet: true }),
    "open-public.yaml",
  );
  expect((await apply(clients, publicOpen, true)).changes.length).toBeGreaterThan(0);

  const viaVpn = writeSpec(dir, specWith(ami, { apiAccess: ["203.0.113.0/24"] }), "vpn.yaml");
  expect((await withInfo(clients, viaVpn)).info).toContainEqual(
    expect.stringMatching(
      /^network\.apiAccess: nodes of a private network have no public address; 203\.0\.113\.0\/24 reach them only through a path you add to the VPC/,
    ),
  );
}, 120_000);

test("isolation: a cluster's endpoints are its own; destroying it leaves another's", async () => {
  const { clients, ami } = await freshSpec();
  await apply(clients, writeSpec(dir, specWith(ami), "demo.yaml"));
  await apply(clients, writeSpec(dir, specWith(ami, {}, "other"), "other.yaml"));
  const others = await endpointsOf(clients, "other");
  expect(others).toHaveLength(5);
  const planned = await destroy(clients, "demo", true);
  expect(details(planned.changes).filter((line) => /vpc-endpoint/.test(line))).toEqual(
    [
      "delete vpc-endpoint kubebake-demo-endpoint-autoscaling: com.amazonaws.eu-west-1.autoscaling",
      "delete vpc-endpoint kubebake-demo-endpoint-ec2: com.amazonaws.eu-west-1.ec2",
      "delete vpc-endpoint kubebake-demo-endpoint-s3: com.amazonaws.eu-west-1.s3",
      "delete vpc-endpoint kubebake-demo-endpoint-ssm: com.amazonaws.eu-west-1.ssm",
      "delete vpc-endpoint kubebake-demo-endpoint-sts: com.amazonaws.eu-west-1.sts",
    ].sort(),
  );
  await destroy(clients, "demo");
  expect(await endpointsOf(clients, "demo")).toEqual([]);
  expect(await endpointsGroup(clients, "demo")).toBeUndefined();
  expect((await endpointsOf(clients, "other")).map((e) => e.VpcEndpointId)).toEqual(
    others.map((e) => e.VpcEndpointId),
  );
  expect(await endpointsGroup(clients, "other")).toBeDefined();
}, 120_000);

test("an existing VPC gets no endpoints and no route change: the operator provides the way out", async () => {
  await moto.reset();
  const clients = clientsFor(moto.endpoint);
  const ami = await registerAmi(clients, "kubebake-1");
  const { vpc, subnet } = await existingNetwork(clients);
  const spec = writeSpec(
    dir,
    clusterYaml({ image: { ami }, network: { vpc, subnets: [subnet] } }),
    "existing.yaml",
  );
  const result = await apply(clients, spec);
  const kinds = new Set(result.changes.map((c) => c.kind));
  for (const kind of ["vpc-endpoint", "internet-gateway", "route-table", "subnet"])
    expect(kinds).not.toContain(kind);
  const endpoints = await clients.ec2.send(
    new DescribeVpcEndpointsCommand({ Filters: [{ Name: "vpc-id", Values: [vpc] }] }),
  );
  expect(endpoints.VpcEndpoints).toEqual([]);
  expect((await apply(clients, spec)).mutating).toEqual([]);
}, 120_000);
