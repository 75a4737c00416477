/** The cluster PKI's files by name, as every cloud stores them and the node scripts fetch them. */

/** The files of generateClusterPki, which the node scripts fetch by these names. */
export const PKI_FILE_NAMES = ["admin", "ca", "etcd-ca", "front-proxy-ca"]
  .flatMap((base) => [`${base}.crt`, `${base}.key`])
  .concat(["admin.kubeconfig", "bootstrap-token", "encryption-config.yaml", "sa.key", "sa.pub"])
  .sort();

/** Files of older PKIs that no node reads any more (masters issue their own certificates): deleted. */
export const RETIRED_PKI_FILE_NAMES = [
  ...["apiserver", "apiserver-etcd-client", "apiserver-kubelet-client", "controller-manager"],
  ...["front-proxy-client", "scheduler"],
]
  .flatMap((base) => [`${base}.crt`, `${base}.key`])
  .sort();

/**
 * What each role's node-config fetches (src/node/node-config), and so all its role may read: masters the
 * CAs they issue their own certificates from, the service-account pair, the join token and the Secrets
 * key, never the operator's admin credential; minions what a join needs.
 */
export const ROLE_SECRET_NAMES = {
  masters: ["ca", "etcd-ca", "front-proxy-ca"]
    .flatMap((base) => [`${base}.crt`, `${base}.key`])
    .concat(["bootstrap-token", "encryption-config.yaml", "sa.key", "sa.pub"])
    .sort(),
  minions: ["ca.crt", "bootstrap-token"],
} as const;
