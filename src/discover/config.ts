/** The discovery function's settings, shared by the Lambda (environment) and `kubebake dns` (cluster spec). */
import { CLUSTER_NAME, domainLabels } from "./names";
import type { EmptyGroupPolicy } from "./reconcile";

export interface DiscoveryConfig {
  cluster: string;
  zoneId: string;
  domain: string;
  ttl: number;
  emptyGroup: EmptyGroupPolicy;
}

/** The environment variables `kubebake dns deploy` gives the function. */
export function discoveryEnvironment(config: DiscoveryConfig): Record<string, string> {
  return {
    CLUSTER_NAME: config.cluster,
    HOSTED_ZONE_ID: config.zoneId,
    DISCOVERY_DOMAIN: config.domain,
    RECORD_TTL: String(config.ttl),
    EMPTY_GROUP_POLICY: config.emptyGroup,
  };
}

export function discoveryConfigFromEnv(env: NodeJS.ProcessEnv): DiscoveryConfig {
  const need = (key: string) => {
    const value = env[key];
    if (!value) throw new Error(`environment variable ${key} is not set`);
    return value;
  };
  const cluster = need("CLUSTER_NAME");
  // Not lower-cased: it is also the KubernetesCluster tag value, and tag values are case-sensitive, so a
  // lower-cased "Demo" would find no group and empty the records. Cluster specs only allow lower case.
  if (!CLUSTER_NAME.test(cluster)) {
    throw new Error(
      `CLUSTER_NAME ${JSON.stringify(cluster)} is not a cluster name (lower-case letters, digits and '-', at most 40)`,
    );
  }
  // DNS names compare without case and Route 53 lists them in lower case: normalised here, once.
  const domain = domainLabels(env.DISCOVERY_DOMAIN ?? "k8s").join(".");
  const ttl = Number(env.RECORD_TTL ?? "30");
  if (!Number.isInteger(ttl) || ttl < 0 || ttl > 2147483647)
    throw new Error(`RECORD_TTL ${env.RECORD_TTL} is not a TTL`);
  const emptyGroup = env.EMPTY_GROUP_POLICY ?? "delete";
  if (emptyGroup !== "delete" && emptyGroup !== "keep") {
    throw new Error(`EMPTY_GROUP_POLICY ${emptyGroup}: expected delete or keep`);
  }
  return { cluster, zoneId: need("HOSTED_ZONE_ID").replace(/^\/hostedzone\//, ""), domain, ttl, emptyGroup };
}
