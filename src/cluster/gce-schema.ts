/**
 * The cluster spec on GCE (`cloud: gce`): a project and region, a VPC network (created or yours), an image
 * published by `bake-image --target gce`. The groups are regional managed instance groups.
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

/** Compute Engine's resource names (RFC 1035 labels of at most 63 characters). */
export const GCE_NAME = /^[a-z](?:[-a-z0-9]{0,61}[a-z0-9])?$/;
export const GCE_REGION = /^[a-z]+-[a-z]+\d+$/;
const gceName = (what: string) => z.string().regex(GCE_NAME, `expected the name of ${what}`);

const machineType = z
  .string()
  .regex(/^[a-z][a-z0-9]*-[a-z0-9]+(-[a-z0-9]+)*$/, "expected a machine type such as e2-standard-2");
/** Labels kubebake sets itself (and Google's own). */
const reservedLabel = /^(kubernetescluster|role|kubebake-.*|goog-.*)$/;

export const gceClusterSpecSchema = z
  .strictObject({
    ...header,
    cloud: z.literal("gce"),
    project: z
      .string()
      .regex(/^[a-z][-a-z0-9]{4,28}[a-z0-9]$/, "expected a project id such as my-project-123")
      .optional()
      .describe("The project; default: the one of Application Default Credentials (gcloud's default)."),
    region: z
      .string()
      .regex(GCE_REGION, "expected a GCE region such as europe-west1")
      .optional()
      .describe(
        "The region; default: gcloud's (CLOUDSDK_COMPUTE_REGION, or compute/region of its active configuration).",
      ),
    network: z.strictObject({
      name: gceName("an existing VPC network")
        .optional()
        .describe("An existing VPC network (with subnetwork); without it kubebake creates its own."),
      subnetwork: gceName("an existing subnetwork of the region").optional(),
      cidr: cidr
        .default("10.0.0.0/16")
        .describe("For the network kubebake creates: the range of its one regional subnetwork."),
      zones: z
        .array(z.string().regex(/^[a-z]+-[a-z]+\d+-[a-z]$/, "expected a zone such as europe-west1-b"))
        .min(1)
        .max(4)
        .optional()
        .describe("The zones the groups spread over; default: three zones GCE chooses in the region."),
      ...accessFields,
      internet: z
        .boolean()
        .optional()
        .describe(
          "true gives each node an external IP; false or unset keeps the nodes off the internet (no external IPs; Private Google Access reaches the Google APIs the nodes call: Secret Manager and Compute).",
        ),
    }),
    image: z.strictObject({
      name: z
        .string()
        .regex(
          /^(projects\/[a-z][-a-z0-9]{4,28}[a-z0-9]\/global\/images\/)?[a-z](?:[-a-z0-9]{0,61}[a-z0-9])?$/,
          "expected an image name, or projects/PROJECT/global/images/NAME",
        )
        .optional(),
      /** A bake manifest: its imageId finds the image labelled kubebake-image-id in the project. */
      manifest: z.string().min(1).optional(),
      spec: z.string().min(1).optional(),
    }),
    groups: groupsSchema("machineType", machineType),
    labels: z
      .record(
        z
          .string()
          .regex(/^[a-z][a-z0-9_-]{0,62}$/, "expected a label key: lowercase letters, digits, _ and -"),
        z.string().regex(/^[a-z0-9_-]{0,63}$/, "expected a label value: lowercase letters, digits, _ and -"),
      )
      .default({}),
    discovery: discoverySchema,
    rollout: rolloutSchema(
      "How long a rollout waits for each batch's replacements to be running and stable in their group.",
    ),
  })
  .superRefine((spec, ctx) => {
    for (const key of Object.keys(spec.labels).filter((k) => reservedLabel.test(k))) {
      ctx.addIssue({
        code: "custom",
        path: ["labels", key],
        message: "expected a key of your own (kubernetescluster, role, kubebake-* and goog-* are taken)",
      });
    }
    for (const issue of sharedProblems(spec, "the VPC network")) ctx.addIssue({ code: "custom", ...issue });
    const { name, zones } = spec.network;
    if (spec.region !== undefined)
      for (const { path, message } of zoneProblems(zones, spec.region))
        ctx.addIssue({ code: "custom", path, message });
    for (const issue of existingNetworkProblems(spec.network, "name", "subnetwork"))
      ctx.addIssue({ code: "custom", ...issue });
    const bits = Number(spec.network.cidr.split("/")[1]);
    if (name === undefined && (bits < 8 || bits > 24)) {
      ctx.addIssue({
        code: "custom",
        path: ["network", "cidr"],
        message: "expected a /8 to /24 (the range of the cluster's subnetwork)",
      });
    }
    for (const issue of imageProblems(spec.image, "name")) ctx.addIssue({ code: "custom", ...issue });
  });

export type GceClusterSpec = z.output<typeof gceClusterSpecSchema>;
/** A spec with its project and region decided (the file's, else gcloud's defaults). */
export type GceSpec = GceClusterSpec & { project: string; region: string };

/** Zones that are not of the region (checked again once a region from gcloud's defaults is known). */
export function zoneProblems(zones: string[] | undefined, region: string) {
  return (zones ?? []).flatMap((zone, i) =>
    zone.startsWith(`${region}-`)
      ? []
      : [
          {
            path: ["network", "zones", i],
            message: `expected a zone of ${region} (${region}-b, ${region}-c…), got ${JSON.stringify(zone)}`,
          },
        ],
  );
}
