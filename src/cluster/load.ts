import { loadYamlWithSchema } from "../spec/load";
import { clusterSpecSchema, type ClusterSpec } from "./schema";

export function loadClusterSpec(path: string): { path: string; spec: ClusterSpec } {
  const { spec } = loadYamlWithSchema(path, clusterSpecSchema);
  return { path, spec };
}
