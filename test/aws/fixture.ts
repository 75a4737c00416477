import {
  CreateSubnetCommand,
  CreateTagsCommand,
  CreateVpcCommand,
  DescribeInstancesCommand,
  ModifyVpcAttributeCommand,
  RegisterImageCommand,
  type Instance,
} from "@aws-sdk/client-ec2";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { stringify } from "yaml";
import { loadCloudSpec } from "../../src/cluster/load";
import { ChangeRecorder } from "../../src/launch/changes";
import { awsClients, isMutating, type AwsClients } from "../../src/launch/aws/clients";
import { applyCluster } from "../../src/launch/aws/cluster";
import { destroyCluster } from "../../src/launch/aws/destroy";
import { resolveInputs } from "../../src/launch/aws/inputs";
import type { Inputs } from "../../src/launch/aws/desired";
import { awsClusterSpecSchema, type AwsClusterSpec } from "../../src/cluster/schema";
import { silentProgress } from "../../src/util/progress";

process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED = "true";

export const REGION = "eu-west-1";
export const credentials = { accessKeyId: "testing", secretAccessKey: "testing" };

export function clusterYaml(overrides: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    apiVersion: "kubebake.io/v1alpha1",
    kind: "Cluster",
    name: "demo",
    cloud: "aws",
    region: REGION,
    network: { zones: ["eu-west-1a", "eu-west-1b"], apiAccess: ["203.0.113.0/24"] },
    image: { ami: "ami-00000000" },
    groups: {
      masters: { count: 1, instanceType: "t3.medium" },
      minions: { min: 1, max: 10, desired: 5, instanceType: "t3.large" },
    },
    tags: { team: "platform" },
    ...overrides,
  };
}

/** A cluster key's ARN, for the desired-state tests (apply creates the real one). */
export const KEY_ARN = "arn:aws:kms:eu-west-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab";

/** The inputs apply derives from a spec, as pure data for the desired-state tests (no cloud). */
export function inputsFor(
  spec: AwsClusterSpec = awsClusterSpecSchema.parse(clusterYaml()),
  account = "123456789012",
): Inputs {
  return {
    spec,
    account,
    partition: "aws",
    rootDevice: "/dev/xvda",
    ami: "ami-0123456789abcdef0",
    discoveryDomain: "k8s",
  };
}

export function writeSpec(dir: string, spec: Record<string, unknown>, name = "cluster.yaml"): string {
  const path = join(dir, name);
  writeFileSync(path, stringify(spec));
  return path;
}

export function clientsFor(
  endpoint: string,
  beforeCall?: (call: string) => void,
  afterCall?: (call: string) => void,
  region = REGION,
): AwsClients {
  return awsClients({ region, endpoint, credentials, beforeCall, afterCall });
}

/**
 * An operator's network, made outside kubebake: a VPC (10.9.0.0/16) with DNS hostnames on (unless asked
 * not to) and one subnet in eu-west-1a.
 */
export async function existingNetwork(
  clients: AwsClients,
  dnsHostnames = true,
): Promise<{ vpc: string; subnet: string }> {
  const vpc = (await clients.ec2.send(new CreateVpcCommand({ CidrBlock: "10.9.0.0/16" }))).Vpc!.VpcId!;
  if (dnsHostnames)
    await clients.ec2.send(
      new ModifyVpcAttributeCommand({ VpcId: vpc, EnableDnsHostnames: { Value: true } }),
    );
  const subnet = (
    await clients.ec2.send(
      new CreateSubnetCommand({ VpcId: vpc, CidrBlock: "10.9.0.0/20", AvailabilityZone: "eu-west-1a" }),
    )
  ).Subnet!.SubnetId!;
  return { vpc, subnet };
}

export async function registerAmi(clients: AwsClients, name: string, tags: Record<string, string> = {}) {
  const answer = await clients.ec2.send(
    new RegisterImageCommand({
      Name: name,
      Architecture: "x86_64",
      RootDeviceName: "/dev/xvda",
      VirtualizationType: "hvm",
    }),
  );
  // moto ignores RegisterImage's TagSpecifications, so the tags are added afterwards.
  if (Object.keys(tags).length > 0) {
    const Tags = Object.entries(tags).map(([Key, Value]) => ({ Key, Value }));
    await clients.ec2.send(new CreateTagsCommand({ Resources: [answer.ImageId!], Tags }));
  }
  return answer.ImageId!;
}

export async function apply(clients: AwsClients, specPath: string, dryRun = false) {
  const spec = loadCloudSpec(specPath, "aws");
  const inputs = await resolveInputs(clients, spec, specPath);
  const rec = new ChangeRecorder(dryRun, silentProgress);
  const before = clients.calls.length;
  const result = await applyCluster({ clients, inputs, rec, pollMs: 10, sleep: async () => {} });
  const calls = clients.calls.slice(before);
  return { ...result, changes: rec.changes, calls, mutating: calls.filter(isMutating) };
}

export async function destroy(clients: AwsClients, cluster = "demo", dryRun = false) {
  const rec = new ChangeRecorder(dryRun, silentProgress);
  const before = clients.calls.length;
  await destroyCluster({ clients, rec, cluster, pollMs: 10, sleep: async () => {}, timeoutMs: 30_000 });
  return { changes: rec.changes, mutating: clients.calls.slice(before).filter(isMutating) };
}

/** The running instances of cluster `cluster`, as its nodes are found by tag. */
export async function runningInstances(clients: AwsClients, cluster = "demo"): Promise<Instance[]> {
  const described = await clients.ec2.send(
    new DescribeInstancesCommand({
      Filters: [
        { Name: "tag:KubernetesCluster", Values: [cluster] },
        { Name: "instance-state-name", Values: ["running"] },
      ],
    }),
  );
  return described.Reservations!.flatMap((r) => r.Instances ?? []);
}
