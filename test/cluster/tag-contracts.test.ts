/**
 * The tags desired.ts puts on resources are read back by other parts of kubebake (and by AWS filters):
 * what the launcher writes must be what the readers look for. Checked through the readers themselves,
 * with stand-in clients that filter by tag the way AWS does.
 */
import { DescribeAutoScalingGroupsCommand } from "@aws-sdk/client-auto-scaling";
import { DescribeImagesCommand } from "@aws-sdk/client-ec2";
import { GetCallerIdentityCommand } from "@aws-sdk/client-sts";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { awsClusterSpecSchema } from "../../src/cluster/schema";
import { awsDiscoveryPorts, type DiscoveryClients } from "../../src/discover/aws";
import { ROLES } from "../../src/discover/names";
import type { AwsClients } from "../../src/launch/aws/clients";
import type { Context } from "../../src/launch/aws/context";
import { asTagList, resourceName } from "../../src/launch/aws/desired";
import { groupTags } from "../../src/launch/aws/groups";
import { resolveInputs } from "../../src/launch/aws/inputs";
import { tempDir } from "../helpers";
import { clusterYaml, inputsFor } from "../aws/fixture";

type Tag = { Key?: string; Value?: string };
/** AWS's `tag:<key>` filters: every filter must match one of its values. */
const matches = (tags: Tag[], filters: { Name?: string; Values?: string[] }[] = []) =>
  filters.every((f) =>
    tags.some((t) => f.Name === `tag:${t.Key}` && (f.Values ?? []).includes(t.Value ?? "")),
  );

describe("tags written and read back", () => {
  const dir = tempDir("image-id");
  test("discovery finds the cluster's groups by the tags the launcher puts on them, and tells their roles", async () => {
    const spec = awsClusterSpecSchema.parse(clusterYaml());
    const ctx = { inputs: inputsFor(spec), clusterId: "kb-0123456789abcdef" } as Context;
    const other = { ...ctx, inputs: inputsFor(awsClusterSpecSchema.parse(clusterYaml({ name: "other" }))) };
    const groups = [
      ...ROLES.map((role) => [ctx, role] as const),
      ...ROLES.map((role) => [other, role] as const),
    ].map(([c, role]) => ({
      AutoScalingGroupName: resourceName(c.inputs.spec.name, role),
      Tags: asTagList(groupTags(c, role)),
      Instances: [],
    }));
    const autoScaling = {
      send: async (command: unknown) => {
        if (!(command instanceof DescribeAutoScalingGroupsCommand)) throw new Error("unexpected call");
        return { AutoScalingGroups: groups.filter((g) => matches(g.Tags, command.input.Filters)) };
      },
    };
    const found = await awsDiscoveryPorts({ autoScaling } as unknown as DiscoveryClients).groups("demo");
    expect(found.map((g) => `${g.name}: ${g.role}`)).toEqual([
      "kubebake-demo-masters: masters",
      "kubebake-demo-minions: minions",
    ]);
  });

  test("an image manifest finds its AMI by the documented kubebake:image-id tag", async () => {
    const manifest = join(dir, "manifest.json");
    writeFileSync(manifest, JSON.stringify({ imageId: "sha256-abc" }));
    const images = [
      { ImageId: "ami-0000000000000000a", Tags: [{ Key: "kubebake:image-id", Value: "sha256-abc" }] },
      { ImageId: "ami-0000000000000000b", Tags: [{ Key: "kubebake:image-id", Value: "sha256-def" }] },
      { ImageId: "ami-0000000000000000c", Tags: [{ Key: "Name", Value: "sha256-abc" }] },
    ];
    const clients = {
      sts: {
        send: async (c: unknown) =>
          c instanceof GetCallerIdentityCommand
            ? { Account: "123456789012", Arn: "arn:aws:iam::123456789012:user/ci" }
            : {},
      },
      ec2: {
        send: async (command: unknown) => {
          if (!(command instanceof DescribeImagesCommand)) throw new Error("unexpected call");
          return { Images: images.filter((i) => matches(i.Tags, command.input.Filters)) };
        },
      },
    } as unknown as AwsClients;
    const spec = awsClusterSpecSchema.parse(
      clusterYaml({
        image: { manifest: "manifest.json", spec: join(__dirname, "../../image/kubebake.yaml") },
      }),
    );
    const inputs = await resolveInputs(clients, spec, join(dir, "cluster.yaml"));
    expect(inputs.ami).toBe("ami-0000000000000000a");
    // The partition of every ARN the launcher writes is the caller's.
    expect(inputs.partition).toBe("aws");
  });
});
