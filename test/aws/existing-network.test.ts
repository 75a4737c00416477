/** The network a cluster gets: a VPC it does not own (checked, used, left by destroy), and checked zones. */
import { DescribeAutoScalingGroupsCommand } from "@aws-sdk/client-auto-scaling";
import {
  CreateKeyPairCommand,
  DescribeLaunchTemplateVersionsCommand,
  DescribeSubnetsCommand,
  DescribeVpcsCommand,
  ModifyVpcAttributeCommand,
} from "@aws-sdk/client-ec2";
import { tempDir } from "../helpers";
import { apply, clientsFor, clusterYaml, destroy, existingNetwork, registerAmi, writeSpec } from "./fixture";
import { startMoto, type Moto } from "./moto";
import { KubebakeError } from "../../src/errors";

let moto: Moto;
beforeAll(async () => (moto = await startMoto()), 60_000);
afterAll(() => moto?.stop());
const dir = tempDir("aws-existing");

test("an existing VPC and subnets are used as they are and survive destroy", async () => {
  const clients = clientsFor(moto.endpoint);
  const ami = await registerAmi(clients, "kubebake-1");
  // DNS hostnames off, as a new VPC has them
  const { vpc, subnet } = await existingNetwork(clients, false);
  const spec = writeSpec(dir, clusterYaml({ image: { ami }, network: { vpc, subnets: [subnet] } }));

  // A VPC without DNS hostnames cannot serve the private zone: refused before anything is created.
  const refused = await apply(clients, spec).catch((error) => error);
  expect(refused).toBeInstanceOf(KubebakeError);
  expect(refused.message).toMatch(new RegExp(`network.vpc: ${vpc} needs enableDnsHostnames`));
  expect(refused.exitCode).toBe(2);

  await clients.ec2.send(new ModifyVpcAttributeCommand({ VpcId: vpc, EnableDnsHostnames: { Value: true } }));
  const result = await apply(clients, spec);
  expect(result.vpcId).toBe(vpc);
  expect(result.changes.map((c) => c.kind)).not.toContain("vpc");
  expect(result.changes.map((c) => c.kind)).not.toContain("subnet");
  const groups = (await clients.autoScaling.send(new DescribeAutoScalingGroupsCommand({})))
    .AutoScalingGroups!;
  expect(groups.map((g) => g.VPCZoneIdentifier)).toEqual([subnet, subnet]);
  expect((await apply(clients, spec)).mutating).toEqual([]);

  const gone = await destroy(clients);
  expect(gone.changes.map((c) => c.kind)).not.toContain("vpc");
  expect((await clients.ec2.send(new DescribeVpcsCommand({ VpcIds: [vpc] }))).Vpcs).toHaveLength(1);
  expect((await clients.ec2.send(new DescribeSubnetsCommand({ SubnetIds: [subnet] }))).Subnets).toHaveLength(
    1,
  );

  const missing = writeSpec(
    dir,
    clusterYaml({ image: { ami }, network: { vpc, subnets: ["subnet-0123456789abcdef0"] } }),
    "missing.yaml",
  );
  await expect(apply(clients, missing)).rejects.toThrow(
    /network\.subnets: subnet-0123456789abcdef0 does not exist in eu-west-1/,
  );
}, 120_000);

test("a zone the region lacks or a missing SSH key is refused before anything is created", async () => {
  await moto.reset();
  const clients = clientsFor(moto.endpoint);
  const ami = await registerAmi(clients, "kubebake-1");
  const ownedVpcs = async () =>
    (
      await clients.ec2.send(
        new DescribeVpcsCommand({ Filters: [{ Name: "tag:KubernetesCluster", Values: ["demo"] }] }),
      )
    ).Vpcs;

  const badZone = writeSpec(
    dir,
    clusterYaml({ image: { ami }, network: { zones: ["eu-west-1a", "eu-west-1z"] } }),
    "zone.yaml",
  );
  const zoneError = await apply(clients, badZone).catch((error) => error);
  expect(zoneError).toBeInstanceOf(KubebakeError);
  expect(zoneError.message).toMatch(
    /^network\.zones\[1\]: eu-west-1z is not an available zone of eu-west-1 \(eu-west-1a, /,
  );

  const noKey = writeSpec(dir, clusterYaml({ image: { ami }, sshKey: "ops" }), "key.yaml");
  const keyError = await apply(clients, noKey).catch((error) => error);
  expect(keyError).toBeInstanceOf(KubebakeError);
  expect(keyError.message).toBe('sshKey: key pair "ops" does not exist in eu-west-1');
  expect(await ownedVpcs()).toEqual([]);

  await clients.ec2.send(new CreateKeyPairCommand({ KeyName: "ops" }));
  await apply(clients, noKey);
  const data = (
    await clients.ec2.send(
      new DescribeLaunchTemplateVersionsCommand({
        LaunchTemplateName: "kubebake-demo-minions",
        Versions: ["$Latest"],
      }),
    )
  ).LaunchTemplateVersions![0]!.LaunchTemplateData!;
  expect(data.KeyName).toBe("ops");
  expect(await ownedVpcs()).toHaveLength(1);
}, 120_000);
