/**
 * An apply (or destroy) that fails at any mutating call leaves a state the next run converges from:
 * for every step N, fail the Nth mutating call, run again without failure, and check that a third run
 * changes nothing and that exactly one of everything exists. From every such state, the plan (or
 * destroy's dry run) lists exactly the changes the next run makes.
 *
 * A lost answer (the call succeeded, the caller never saw it) leaves what a failure before the next call
 * leaves, because a failed run undoes nothing: it matters only where the answer is an id AWS chose and
 * the next run must find the resource by its tags instead. Those steps run in both modes.
 */
import { DescribeAutoScalingGroupsCommand } from "@aws-sdk/client-auto-scaling";
import {
  DescribeInstancesCommand,
  DescribeSecurityGroupsCommand,
  DescribeSubnetsCommand,
  DescribeVpcsCommand,
} from "@aws-sdk/client-ec2";
import { ListHostedZonesByNameCommand } from "@aws-sdk/client-route-53";
import { isMutating, type AwsClients } from "../../src/launch/aws/clients";
import type { Change } from "../../src/launch/changes";
import { storedParameterNames } from "../../src/launch/aws/secrets";
import { tempDir } from "../helpers";
import { apply, clientsFor, clusterYaml, destroy, registerAmi, writeSpec } from "./fixture";
import { startMoto, type Moto } from "./moto";

let moto: Moto;
beforeAll(async () => (moto = await startMoto()), 60_000);
afterAll(() => moto?.stop());
const dir = tempDir("aws-converge");

class InjectedFailure extends Error {}

/** Calls whose answer is an id AWS chose (the next run finds the resource by its tags, never by the id). */
const AWS_CHOSEN_ID =
  /^(ec2:Create(Vpc|Subnet|InternetGateway|RouteTable|SecurityGroup|LaunchTemplate)|route53:CreateHostedZone)$/;

const list = (changes: Change[]) => changes.map((c) => `${c.action} ${c.kind} ${c.name}`);

/**
 * Clients whose `failAt`-th mutating call fails (0: never): before it reaches AWS, or after AWS made the
 * change and the answer was lost (the harder case: the resource exists but the caller never saw its id).
 */
function failingClients(failAt: () => number, when: "before" | "after" = "before") {
  let mutating = 0;
  const fail = (call: string) => {
    if (isMutating(call) && ++mutating === failAt())
      throw new InjectedFailure(`injected failure ${when} ${call}`);
  };
  return when === "before" ? clientsFor(moto.endpoint, fail) : clientsFor(moto.endpoint, undefined, fail);
}

async function inventory(clients: AwsClients) {
  const cluster = [{ Name: "tag:KubernetesCluster", Values: ["demo"] }];
  const running = (
    await clients.ec2.send(
      new DescribeInstancesCommand({
        Filters: [...cluster, { Name: "instance-state-name", Values: ["running"] }],
      }),
    )
  ).Reservations!.flatMap((r) => r.Instances ?? []);
  const zones = (await clients.route53.send(new ListHostedZonesByNameCommand({}))).HostedZones!;
  return {
    vpcs: (await clients.ec2.send(new DescribeVpcsCommand({ Filters: cluster }))).Vpcs!.length,
    subnets: (await clients.ec2.send(new DescribeSubnetsCommand({ Filters: cluster }))).Subnets!.length,
    securityGroups: (await clients.ec2.send(new DescribeSecurityGroupsCommand({ Filters: cluster })))
      .SecurityGroups!.length,
    groups: (await clients.autoScaling.send(new DescribeAutoScalingGroupsCommand({ Filters: cluster })))
      .AutoScalingGroups!.length,
    instances: running.length,
    parameters: (await storedParameterNames({ clients }, "demo")).size,
    zones: zones.filter((z) => z.Name === "demo.k8s.").length,
  };
}

const spec = () =>
  clusterYaml({
    groups: {
      masters: { count: 1, instanceType: "t3.medium" },
      minions: { min: 1, max: 3, desired: 2, instanceType: "t3.large" },
    },
  });

describe.each(["before", "after"] as const)("a failure %s a mutating call", (when) => {
  test(`apply converges after a failure ${when === "before" ? "at every mutating step" : "at every step that creates an id AWS chooses"}`, async () => {
    await moto.reset();
    const clean = clientsFor(moto.endpoint);
    const ami = await registerAmi(clean, "kubebake-1");
    const specPath = writeSpec(dir, { ...spec(), image: { ami } });
    const reference = await apply(clean, specPath);
    const steps = reference.mutating.length;
    const expected = await inventory(clean);
    expect(expected).toEqual({
      vpcs: 1,
      subnets: 2,
      securityGroups: 2,
      groups: 2,
      instances: 3,
      parameters: 27, // the PKI and the cluster id
      zones: 1,
    });

    const failures = reference.mutating
      .map((call, index) => ({ call, failAt: index + 1 }))
      .filter(({ call }) => when === "before" || AWS_CHOSEN_ID.test(call));
    expect(failures.length).toBe(when === "before" ? steps : 9);
    for (const { failAt } of failures) {
      await moto.reset();
      const setup = clientsFor(moto.endpoint);
      const stepAmi = await registerAmi(setup, "kubebake-1");
      const path = writeSpec(dir, { ...spec(), image: { ami: stepAmi } });
      let at = failAt;
      const clients = failingClients(() => at, when);
      await expect(apply(clients, path)).rejects.toThrow(InjectedFailure);
      at = 0;
      // From any state a failure leaves, the plan lists exactly what the apply then does.
      const plan = await apply(clients, path, true);
      const second = await apply(clients, path);
      expect({ failAt, changes: list(second.changes) }).toEqual({ failAt, changes: list(plan.changes) });
      const third = await apply(clients, path);
      expect({ failAt, call: reference.mutating[failAt - 1], mutating: third.mutating }).toEqual({
        failAt,
        call: reference.mutating[failAt - 1],
        mutating: [],
      });
      expect({ failAt, ...(await inventory(clients)) }).toEqual({ failAt, ...expected });
    }
  }, 600_000);
});

test("destroy converges after a failure at every mutating step and leaves nothing", async () => {
  await moto.reset();
  const clean = clientsFor(moto.endpoint);
  const ami = await registerAmi(clean, "kubebake-1");
  const specPath = writeSpec(dir, { ...spec(), image: { ami } });
  await apply(clean, specPath);
  const steps = (await destroy(clean)).mutating.length;
  const empty = { vpcs: 0, subnets: 0, securityGroups: 0, groups: 0, instances: 0, parameters: 0, zones: 0 };
  expect(await inventory(clean)).toEqual(empty);

  for (let failAt = 1; failAt <= steps; failAt++) {
    await moto.reset();
    const setup = clientsFor(moto.endpoint);
    const stepAmi = await registerAmi(setup, "kubebake-1");
    await apply(setup, writeSpec(dir, { ...spec(), image: { ami: stepAmi } }));
    let at = failAt;
    const clients = failingClients(() => at);
    await expect(destroy(clients)).rejects.toThrow(InjectedFailure);
    at = 0;
    const planned = await destroy(clients, "demo", true);
    const second = await destroy(clients);
    expect({ failAt, changes: list(second.changes) }).toEqual({ failAt, changes: list(planned.changes) });
    expect({ failAt, ...(await inventory(clients)) }).toEqual({ failAt, ...empty });
    expect({ failAt, changes: (await destroy(clients)).changes }).toEqual({ failAt, changes: [] });
  }
}, 600_000);
