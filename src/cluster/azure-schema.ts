/**
 * The cluster spec on Azure (`cloud: azure`): a subscription and location, a resource group and virtual
 * network (created or yours), a managed image published by `bake-image --target azure`. The groups are VM
 * scale sets (Flexible orchestration).
 */
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

const GUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;
/** A resource group's name (1 to 90 of letters, digits, `-_.()`, not ending in `.`). */
const RESOURCE_GROUP = /^[-\w._()]{0,89}[-\w_()]$/;
const vmSize = z
  .string()
  .regex(/^(Standard|Basic)_[A-Za-z0-9_]+$/, "expected a VM size such as Standard_D2s_v5");
/** Tags kubebake sets itself; Azure reserves the `azure`, `microsoft` and `windows` prefixes. */
const reservedTag = /^(kubebake:.*|KubernetesCluster|Role|Name)$|^(azure|microsoft|windows)/i;

export const azureClusterSpecSchema = z
  .strictObject({
    ...header,
    cloud: z.literal("azure"),
    subscription: z
      .string()
      .regex(GUID, "expected a subscription id (a GUID)")
      .optional()
      .describe("The subscription; default: AZURE_SUBSCRIPTION_ID."),
    location: z.string().regex(/^[a-z]+[a-z0-9]*$/, "expected an Azure location such as westeurope"),
    resourceGroup: z
      .string()
      .regex(RESOURCE_GROUP, "expected a resource group name")
      .optional()
      .describe(
        "An existing resource group for the cluster's resources; default: kubebake-<cluster>, which kubebake creates (and deletes on destroy).",
      ),
    network: z.strictObject({
      virtualNetwork: z
        .string()
        .regex(/^[a-zA-Z0-9][-\w.]{0,62}[\w]$/, "expected the name of an existing virtual network")
        .optional()
        .describe(
          "An existing virtual network in the resource group (with subnet); default: kubebake's own.",
        ),
      subnet: z
        .string()
        .regex(/^[a-zA-Z0-9][-\w.]{0,78}[\w]$/, "expected the name of an existing subnet")
        .optional(),
      cidr: cidr.default("10.0.0.0/16").describe("For the network kubebake creates: its address space."),
      zones: z
        .array(z.enum(["1", "2", "3"], { error: 'expected an availability zone: "1", "2" or "3"' }))
        .min(1)
        .max(3)
        .optional()
        .describe("Availability zones the scale sets spread over; default: none (regional placement)."),
      ...accessFields,
      internet: z
        .boolean()
        .optional()
        .describe(
          "true gives each node a public IP; false or unset keeps the nodes off the internet (no public IPs, no default outbound access).",
        ),
    }),
    image: z.strictObject({
      /** A managed image's resource id. */
      id: z
        .string()
        .regex(
          /^\/subscriptions\/[^/]+\/resourceGroups\/[^/]+\/providers\/Microsoft\.Compute\/images\/[^/]+$/i,
          "expected a managed image's resource id",
        )
        .optional(),
      /** A bake manifest: its imageId finds the managed image tagged kubebake:image-id in the resource group. */
      manifest: z.string().min(1).optional(),
      spec: z.string().min(1).optional(),
    }),
    groups: groupsSchema("vmSize", vmSize),
    sshPublicKey: z
      .string()
      .regex(
        /^(ssh-ed25519|ssh-rsa|ecdsa-sha2-nistp\d+) [A-Za-z0-9+/=]+( .*)?$/,
        "expected an OpenSSH public key",
      )
      .optional()
      .describe(
        "An OpenSSH public key put on every node for the admin user; without it the nodes take a key whose private half was never kept (Azure requires one), so nobody can log in.",
      ),
    tags: z.record(z.string().min(1).max(512), z.string().max(256)).default({}),
    discovery: discoverySchema,
    rollout: rolloutSchema(
      "How long a rollout waits for each batch's replacements to be running (a master: until it votes and serves).",
    ),
  })
  .superRefine((spec, ctx) => {
    for (const key of Object.keys(spec.tags).filter((k) => reservedTag.test(k))) {
      ctx.addIssue({
        code: "custom",
        path: ["tags", key],
        message:
          "expected a key of your own (kubebake:*, KubernetesCluster, Role and Name are kubebake's; azure*, microsoft* and windows* are Azure's)",
      });
    }
    for (const issue of sharedProblems(spec, "the virtual network"))
      ctx.addIssue({ code: "custom", ...issue });
    const { virtualNetwork } = spec.network;
    for (const issue of existingNetworkProblems(spec.network, "virtualNetwork", "subnet"))
      ctx.addIssue({ code: "custom", ...issue });
    if (virtualNetwork !== undefined && spec.resourceGroup === undefined) {
      ctx.addIssue({
        code: "custom",
        path: ["resourceGroup"],
        message: "expected the resource group that holds network.virtualNetwork",
      });
    }
    const bits = Number(spec.network.cidr.split("/")[1]);
    if (virtualNetwork === undefined && (bits < 8 || bits > 24)) {
      ctx.addIssue({
        code: "custom",
        path: ["network", "cidr"],
        message: "expected a /8 to /24 (the cluster's address space)",
      });
    }
    for (const issue of imageProblems(spec.image, "id")) ctx.addIssue({ code: "custom", ...issue });
  });

export type AzureClusterSpec = z.output<typeof azureClusterSpecSchema>;
