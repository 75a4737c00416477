/**
 * What every cloud's cluster spec shares: the header, the operator's access ranges, the two groups'
 * sizes, discovery and rollout. Each cloud's schema (aws-schema.ts, gce-schema.ts) adds its own words
 * for where the cluster runs and from which image.
 */
import { z } from "zod";
import { CLUSTER_NAME } from "../discover/names";
import { podCapacityProblem, repositoryImagePodCIDR } from "./pods";

export const cidr = z
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

export const header = {
  apiVersion: z.literal("kubebake.io/v1alpha1"),
  kind: z.literal("Cluster"),
  name: z
    .string()
    .regex(CLUSTER_NAME, "expected 1 to 40 lowercase letters, digits and inner '-' (it is a DNS label)"),
};

/** Who may reach the API server and SSH from outside the cluster: nobody by default. */
export const accessFields = {
  apiAccess: z
    .array(cidr)
    .default([])
    .describe(
      "CIDRs that may reach the API server (6443) from outside the cluster; none by default. A /0 needs allowApiFromAnywhere.",
    ),
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
};

type AccessNetwork = {
  apiAccess: string[];
  sshAccess: string[];
  allowSshFromAnywhere?: boolean;
  allowApiFromAnywhere?: boolean;
  internet?: boolean;
};

/** The two groups; `machine` is the cloud's field for a node's size (instanceType, machineType). */
export function groupsSchema<K extends string>(machine: K, machineSchema: z.ZodString) {
  return z.strictObject({
    masters: z.strictObject({
      count: z.union([z.literal(1), z.literal(3), z.literal(5)], {
        error:
          "expected 1, 3 or 5: the masters form one etcd cluster, which an even size makes no safer (4 tolerate one failure, as 3 do) and more members make slower",
      }),
      ...({ [machine]: machineSchema } as Record<K, z.ZodString>),
    }),
    minions: z.strictObject({
      min: z.number().int().min(0).max(1000),
      max: z.number().int().min(0).max(1000),
      desired: z.number().int().min(0).max(1000),
      ...({ [machine]: machineSchema } as Record<K, z.ZodString>),
    }),
  });
}

export const discoverySchema = z
  .strictObject({
    ttl: z.number().int().min(0).max(86400).default(30),
    emptyGroup: z.enum(["delete", "keep"]).default("delete"),
  })
  .default({ ttl: 30, emptyGroup: "delete" });

export const rolloutSchema = (timeoutDescription: string) =>
  z
    .strictObject({
      /** Share of a group's instances replaced at once when the image changes (masters: one at a time). */
      batchPercent: z.number().int().min(1).max(100).default(25),
      timeoutSeconds: z.number().int().min(1).default(900).describe(timeoutDescription),
    })
    .default({ batchPercent: 25, timeoutSeconds: 900 });

type Issue = { path: (string | number)[]; message: string };

/** Problems every cloud's spec is checked for: group sizes, /0 access ranges, pod capacity. */
export function sharedProblems(
  spec: {
    groups: { masters: { count: number }; minions: { min: number; max: number; desired: number } };
    network: AccessNetwork;
    image: { spec?: string; manifest?: string };
  },
  place: string,
): Issue[] {
  const issues: Issue[] = [];
  const { minions } = spec.groups;
  if (minions.min > minions.max)
    issues.push({ path: ["groups", "minions", "min"], message: "expected at most max" });
  if (minions.desired < minions.min || minions.desired > minions.max)
    issues.push({ path: ["groups", "minions", "desired"], message: "expected between min and max" });
  // With internet: false every /0 is refused as unreachable, whatever the allow flags say.
  if (spec.network.internet === false) issues.push(...unreachableFromPrivate(spec.network, undefined, place));
  for (const [field, allow, what] of [
    ["sshAccess", "allowSshFromAnywhere", "SSH"],
    ["apiAccess", "allowApiFromAnywhere", "the API server"],
  ] as const) {
    spec.network[field].forEach((range, i) => {
      if (range.endsWith("/0") && spec.network[allow] !== true && spec.network.internet !== false) {
        issues.push({
          path: ["network", field, i],
          message: `${range} opens ${what} to the whole internet; list your own networks, or set network.${allow}: true if you mean it`,
        });
      }
    });
  }
  // Every node the groups may grow to needs a pod range of its own. The pod CIDR is the image's: without a
  // manifest or spec, the repository's image spec's (as apply takes it). image.spec and image.manifest name
  // files relative to the cluster file, which a schema does not know: podCapacityProblem is for where those
  // are read.
  if (spec.image.spec === undefined && spec.image.manifest === undefined) {
    const { podCIDR, where } = repositoryImagePodCIDR();
    const problem = podCapacityProblem(spec.groups, podCIDR, where);
    if (problem) issues.push({ path: ["groups", "minions", "max"], message: problem });
  }
  return issues;
}

/**
 * A /0 in apiAccess or sshAccess asks for the whole internet, which cannot reach a private network (no
 * internet gateway, no public IPs): a contradiction, refused where the network is known to be private
 * (here for `internet: false`; at plan and apply for a new cluster that is private by default).
 */
export function unreachableFromPrivate(
  network: Pick<AccessNetwork, "apiAccess" | "sshAccess">,
  why = "network.internet: false",
  place = "the VPC",
): { path: (string | number)[]; field: string; message: string }[] {
  return (["apiAccess", "sshAccess"] as const).flatMap((field) =>
    network[field].flatMap((range, i) =>
      range.endsWith("/0")
        ? [
            {
              path: ["network", field, i],
              field: `network.${field}[${i}]`,
              message: `${range} is the whole internet, which cannot reach a private network (${why}): set network.internet: true, or list the networks that reach ${place} (a VPN, peering, a bastion in ${place})`,
            },
          ]
        : [],
    ),
  );
}

/** An existing network is named by two fields (network and subnet), given together or not at all. */
export function existingNetworkProblems(
  network: Record<string, unknown>,
  first: string,
  second: string,
): Issue[] {
  if ((network[first] === undefined) === (network[second] === undefined)) return [];
  return [
    {
      path: ["network", network[first] === undefined ? first : second],
      message: `expected ${first} and ${second} together (an existing network), or neither (kubebake creates one)`,
    },
  ];
}

/** The image is named one way: by the cloud's image field, or by a bake manifest. */
export function imageProblems(image: Record<string, unknown>, field: string): Issue[] {
  if ((image[field] === undefined) !== (image.manifest === undefined)) return [];
  return [{ path: ["image"], message: `expected exactly one of ${field} and manifest` }];
}
