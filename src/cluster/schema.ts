/**
 * The cluster spec (`kubebake cluster plan|apply|destroy -f cluster.yaml`): where a cluster runs, from
 * which image, and how big its two groups are. Everything else (names, tags, policies, rules) is derived.
 * `cloud` picks the schema: each cloud names its places and images in its own words (aws-schema.ts,
 * gce-schema.ts); what they share is in common.ts.
 */
import { z } from "zod";
import { awsClusterSpecSchema, type AwsClusterSpec } from "./aws-schema";
import { azureClusterSpecSchema, type AzureClusterSpec } from "./azure-schema";
import { gceClusterSpecSchema, type GceClusterSpec, type GceSpec } from "./gce-schema";

export const clusterSpecSchema = z.discriminatedUnion("cloud", [
  awsClusterSpecSchema,
  gceClusterSpecSchema,
  azureClusterSpecSchema,
]);

export type ClusterSpec = AwsClusterSpec | GceClusterSpec | AzureClusterSpec;
export type Cloud = ClusterSpec["cloud"];
export {
  awsClusterSpecSchema,
  azureClusterSpecSchema,
  gceClusterSpecSchema,
  type AwsClusterSpec,
  type AzureClusterSpec,
  type GceClusterSpec,
  type GceSpec,
};
export { unreachableFromPrivate } from "./common";
