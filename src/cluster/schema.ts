/**
 * The cluster spec (`kubebake cluster plan|apply|destroy -f cluster.yaml`): where a cluster runs, from
 * which image, and how big its two groups are. Everything else (names, tags, policies, rules) is derived.
 */
import { z } from "zod";
import { CLUSTER_NAME } from "../discover/names";
import { podCapacityProblem, repositoryImagePodCIDR } from "./pods";
import { AWS_REGIONS, regionProblem, zoneOfRegion } from "./regions";

const cidr = z
  .string()
  .regex(
    /^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})\/(\d|[12]\d|3[0-2])$/,
    "expected an IPv4 CIDR such as 10.0.0.0/16",
  )
  .refine(
    (s) =>
      s
        .split("/")[0]!
        .split(".")
        .every((o) => Number(o) <= 255),
    "expected octets of at most 255",
  );

const instanceType = z
  .string()
  .regex(/^[a-z][a-z0-9-]*\.[a-z0-9]+$/, "expected an instance type such as t3.medium");
const reservedTag = /^(aws:|kubebake:)|^(KubernetesCluster|Role|Name)$/;

export const clusterSpecSchema = z
  .strictObject({
    apiVersion: z.literal("kubebake.io/v1alpha1"),
    kind: z.literal("Cluster"),
    name: z
      .string()
      .regex(CLUSTER_NAME, "expected 1 to 40 lowercase letters, digits and inner '-' (it is a DNS label)"),
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
      /** Who may reach the API server on 6443 from outside the cluster; nobody by default. */
      apiAccess: z
        .array(cidr)
        .default([])
        .describe(
          "CIDRs that may reach the API server (6443) from outside the cluster; none by default. A /0 needs allowApiFromAnywhere.",
        ),
      /** Who may reach SSH on 22; nobody by default. */
      sshAccess: z
        .array(cidr)
        .default([])
        .describe("CIDRs that may reach SSH (22); none by default. A /0 needs allowSshFromAnywhere."),
      allowSshFromAnywhere: z
        .boolean()
        .optional()
        .describe("Set to true to allow a /0 (the whole internet) in sshAccess; refused otherwise."),
      allowApiFromAnywhere: z
        .boolean()
        .optional()
        .describe(
          "Set to true to allow a /0 (the whole internet) in apiAccess; refused otherwise (the API still needs credentials, but is then open to scans and floods).",
        ),
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
    groups: z.strictObject({
      masters: z.strictObject({
        count: z.union([z.literal(1), z.literal(3), z.literal(5)], {
          error:
            "expected 1, 3 or 5: the masters form one etcd cluster, which an even size makes no safer (4 tolerate one failure, as 3 do) and more members make slower",
        }),
        instanceType,
      }),
      minions: z.strictObject({
        min: z.number().int().min(0).max(1000),
        max: z.number().int().min(0).max(1000),
        desired: z.number().int().min(0).max(1000),
        instanceType,
      }),
    }),
    sshKey: z
      .string()
      .min(1)
      .max(255)
      .optional()
      .describe(
        "The name of an EC2 key pair that already exists in the region, put on every node for SSH as the image's default user; none by default. SSH is reachable only from network.sshAccess.",
      ),
    tags: z.record(z.string().min(1).max(127), z.string().max(255)).default({}),
    discovery: z
      .strictObject({
        ttl: z.number().int().min(0).max(86400).default(30),
        emptyGroup: z.enum(["delete", "keep"]).default("delete"),
      })
      .default({ ttl: 30, emptyGroup: "delete" }),
    rollout: z
      .strictObject({
        /** Share of a group's instances replaced at once when the image changes (masters: one at a time). */
        batchPercent: z.number().int().min(1).max(100).default(25),
        timeoutSeconds: z
          .number()
          .int()
          .min(1)
          .default(900)
          .describe(
            "How long a rollout waits for each batch's replacements to be InService and Healthy. Also how long a new master may take to become a voting etcd member with a ready API server before Auto Scaling abandons it (the launch hook's heartbeat timeout, kept within AWS's 30 to 7200 s).",
          ),
      })
      .default({ batchPercent: 25, timeoutSeconds: 900 }),
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
    const { minions } = spec.groups;
    if (minions.min > minions.max) {
      ctx.addIssue({ code: "custom", path: ["groups", "minions", "min"], message: "expected at most max" });
    }
    if (minions.desired < minions.min || minions.desired > minions.max) {
      ctx.addIssue({
        code: "custom",
        path: ["groups", "minions", "desired"],
        message: "expected between min and max",
      });
    }
    const { vpc, subnets, zones } = spec.network;
    zones?.forEach((zone, i) => {
      if (!zoneOfRegion(zone, spec.region)) {
        ctx.addIssue({
          code: "custom",
          path: ["network", "zones", i],
          message: `expected a zone of ${spec.region} (${spec.region}a, ${spec.region}b…), got ${JSON.stringify(zone)}`,
        });
      }
    });
    // With internet: false every /0 is refused as unreachable, whatever the allow flags say.
    if (spec.network.internet === false) {
      for (const { path, message } of unreachableFromPrivate(spec.network))
        ctx.addIssue({ code: "custom", path, message });
    }
    for (const [field, allow, what] of [
      ["sshAccess", "allowSshFromAnywhere", "SSH"],
      ["apiAccess", "allowApiFromAnywhere", "the API server"],
    ] as const) {
      spec.network[field].forEach((range, i) => {
        if (range.endsWith("/0") && spec.network[allow] !== true && spec.network.internet !== false) {
          ctx.addIssue({
            code: "custom",
            path: ["network", field, i],
            message: `${range} opens ${what} to the whole internet; list your own networks, or set network.${allow}: true if you mean it`,
          });
        }
      });
    }
    if (vpc !== undefined && spec.network.internet !== undefined) {
      ctx.addIssue({
        code: "custom",
        path: ["network", "internet"],
        message:
          "expected no internet with an existing VPC: its subnets and routes are yours (give the nodes VPC endpoints for ssm, autoscaling and s3, or a NAT gateway)",
      });
    }
    if ((vpc === undefined) !== (subnets === undefined)) {
      ctx.addIssue({
        code: "custom",
        path: ["network", vpc === undefined ? "vpc" : "subnets"],
        message: "expected vpc and subnets together (an existing network), or neither (kubebake creates one)",
      });
    }
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
    if ((spec.image.ami === undefined) === (spec.image.manifest === undefined)) {
      ctx.addIssue({ code: "custom", path: ["image"], message: "expected exactly one of ami and manifest" });
    }
    // Every node the groups may grow to needs a pod range of its own. The pod CIDR is the image's: for a bare
    // AMI, the repository's image spec's (as apply takes it). image.spec and image.manifest name files relative
    // to the cluster file, which a schema does not know: podCapacityProblem is for where those are read.
    if (spec.image.spec === undefined && spec.image.manifest === undefined) {
      const { podCIDR, where } = repositoryImagePodCIDR();
      const problem = podCapacityProblem(spec.groups, podCIDR, where);
      if (problem) ctx.addIssue({ code: "custom", path: ["groups", "minions", "max"], message: problem });
    }
  });

export type ClusterSpec = z.output<typeof clusterSpecSchema>;

/**
 * A /0 in apiAccess or sshAccess asks for the whole internet, which cannot reach a private network (no
 * internet gateway, no public IPs): a contradiction, refused where the network is known to be private
 * (here for `internet: false`; at plan and apply for a new cluster that is private by default).
 */
export function unreachableFromPrivate(
  network: Pick<ClusterSpec["network"], "apiAccess" | "sshAccess">,
  why = "network.internet: false",
): { path: (string | number)[]; field: string; message: string }[] {
  return (["apiAccess", "sshAccess"] as const).flatMap((field) =>
    network[field].flatMap((range, i) =>
      range.endsWith("/0")
        ? [
            {
              path: ["network", field, i],
              field: `network.${field}[${i}]`,
              message: `${range} is the whole internet, which cannot reach a private network (${why}): set network.internet: true, or list the networks that reach the VPC (a VPN, peering, a bastion in the VPC)`,
            },
          ]
        : [],
    ),
  );
}
