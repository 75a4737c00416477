/** The cluster spec on AWS (`cloud: aws`): a region, a VPC (created or yours), an AMI. */
import { z } from "zod";
import {
  accessFields,
  cidr,
  discoverySchema,
  groupsSchema,
  header,
  rolloutSchema,
  existingNetworkProblems,
  imageProblems,
  sharedProblems,
} from "./common";
import { AWS_REGIONS, regionProblem, zoneOfRegion } from "./regions";

const instanceType = z
  .string()
  .regex(/^[a-z][a-z0-9-]*\.[a-z0-9]+$/, "expected an instance type such as t3.medium");
const reservedTag = /^(aws:|kubebake:)|^(KubernetesCluster|Role|Name)$/;

export const awsClusterSpecSchema = z
  .strictObject({
    ...header,
    cloud: z.literal("aws"),
    region: z.enum(AWS_REGIONS, { error: (issue) => regionProblem(issue.input) }),
    network: z.strictObject({
      /** An existing VPC and subnets; without them kubebake creates (and later deletes) its own. */
      vpc: z
        .string()
        .regex(/^vpc-[0-9a-f]{8,17}$/, "expected a VPC id")
        .optional(),
      subnets: z
        .array(z.string().regex(/^subnet-[0-9a-f]{8,17}$/, "expected a subnet id"))
        .min(1)
        .optional(),
      /** For a created VPC: its CIDR, split into one /20 subnet per zone. */
      cidr: cidr.default("10.0.0.0/16"),
      zones: z
        .array(z.string().regex(/^[a-z]{2}(-[a-z]+)+-\d+[a-z]$/, "expected an availability zone"))
        .min(1)
        .max(6)
        .optional(),
      ...accessFields,
      internet: z
        .boolean()
        .optional()
        .describe(
          "For the VPC kubebake creates: false keeps the nodes off the internet (no public IPs, no internet gateway, no NAT; VPC endpoints for the AWS APIs the nodes call: SSM, Auto Scaling, S3); true gives the subnets public IPs and an internet gateway. Unset: false for a new cluster, while a cluster whose VPC already has its internet gateway stays public (plan and apply say so). Not with an existing vpc: its subnets and routes are yours.",
        ),
    }),
    image: z.strictObject({
      ami: z
        .string()
        .regex(/^ami-[0-9a-f]{8,17}$/, "expected an AMI id")
        .optional(),
      /** A bake manifest: its imageId finds the AMI tagged kubebake:image-id in the region. */
      manifest: z.string().min(1).optional(),
      /**
       * The image spec the image was baked with (its domains and CIDRs are in the nodes). Default: the
       * spec in the bake tree beside `manifest`, or image/kubebake.yaml for a bare AMI id.
       */
      spec: z.string().min(1).optional(),
    }),
    groups: groupsSchema("instanceType", instanceType),
    sshKey: z
      .string()
      .min(1)
      .max(255)
      .optional()
      .describe(
        "The name of an EC2 key pair that already exists in the region, put on every node for SSH as the image's default user; none by default. SSH is reachable only from network.sshAccess.",
      ),
    tags: z.record(z.string().min(1).max(127), z.string().max(255)).default({}),
    discovery: discoverySchema,
    rollout: rolloutSchema(
      "How long a rollout waits for each batch's replacements to be InService and Healthy. Also how long a new master may take to become a voting etcd member with a ready API server before Auto Scaling abandons it (the launch hook's heartbeat timeout, kept within AWS's 30 to 7200 s).",
    ),
    etcd: z
      .strictObject({
        snapshotRetentionDays: z
          .number({ error: "expected a whole number of days from 1 to 3650" })
          .int({ error: "expected a whole number of days from 1 to 3650" })
          .min(1, { error: "expected a whole number of days from 1 to 3650" })
          .max(3650, { error: "expected a whole number of days from 1 to 3650" })
          .default(7)
          .describe(
            "Days an etcd snapshot is kept in the cluster's S3 bucket before it expires (1 to 3650); a version that a newer upload replaced is deleted a day after it was replaced.",
          ),
      })
      .default({ snapshotRetentionDays: 7 })
      .describe("The masters' etcd cluster: how long its snapshots in S3 are kept."),
  })
  .superRefine((spec, ctx) => {
    for (const key of Object.keys(spec.tags).filter((k) => reservedTag.test(k))) {
      ctx.addIssue({
        code: "custom",
        path: ["tags", key],
        message: "expected a key of your own (aws:*, kubebake:*, KubernetesCluster, Role and Name are taken)",
      });
    }
    for (const issue of sharedProblems(spec, "the VPC")) ctx.addIssue({ code: "custom", ...issue });
    const { vpc, zones } = spec.network;
    zones?.forEach((zone, i) => {
      if (!zoneOfRegion(zone, spec.region)) {
        ctx.addIssue({
          code: "custom",
          path: ["network", "zones", i],
          message: `expected a zone of ${spec.region} (${spec.region}a, ${spec.region}b…), got ${JSON.stringify(zone)}`,
        });
      }
    });
    if (vpc !== undefined && spec.network.internet !== undefined) {
      ctx.addIssue({
        code: "custom",
        path: ["network", "internet"],
        message:
          "expected no internet with an existing VPC: its subnets and routes are yours (give the nodes VPC endpoints for ssm, autoscaling and s3, or a NAT gateway)",
      });
    }
    for (const issue of existingNetworkProblems(spec.network, "vpc", "subnets"))
      ctx.addIssue({ code: "custom", ...issue });
    const bits = Number(spec.network.cidr.split("/")[1]);
    if (vpc === undefined && bits > 20) {
      ctx.addIssue({
        code: "custom",
        path: ["network", "cidr"],
        message: "expected a /20 or larger (one /20 subnet per zone)",
      });
    } else if (vpc === undefined && (zones?.length ?? 3) > 2 ** (20 - bits)) {
      ctx.addIssue({
        code: "custom",
        path: ["network", "zones"],
        message: `expected at most ${2 ** (20 - bits)} zones in a /${bits}`,
      });
    }
    if (vpc !== undefined && zones !== undefined) {
      ctx.addIssue({
        code: "custom",
        path: ["network", "zones"],
        message: "expected no zones with an existing VPC",
      });
    }
    for (const issue of imageProblems(spec.image, "ami")) ctx.addIssue({ code: "custom", ...issue });
  });

export type AwsClusterSpec = z.output<typeof awsClusterSpecSchema>;
