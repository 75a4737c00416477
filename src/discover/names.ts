/** DNS names of discovery, in the one form Route 53 returns and compares: lowercase, trailing dot. */
export const ROLES = ["masters", "minions"] as const;
export type Role = (typeof ROLES)[number];

/** A cluster name is one DNS label short enough to prefix AWS resource names (64-character limits). */
export const CLUSTER_NAME = /^(?=.{1,40}$)[a-z0-9]([a-z0-9-]*[a-z0-9])?$/;
export const DNS_LABEL = /^(?=.{1,63}$)[a-z0-9]([a-z0-9-]*[a-z0-9])?$/;

/** `<domain>`'s labels, checked; the domain may be given with or without the trailing dot. */
export function domainLabels(domain: string): string[] {
  const labels = domain.toLowerCase().replace(/\.$/, "").split(".");
  const bad = labels.find((label) => !DNS_LABEL.test(label));
  if (bad !== undefined)
    throw new Error(`domain ${JSON.stringify(domain)}: bad label ${JSON.stringify(bad)}`);
  return labels;
}

/** The private zone that holds one cluster's records: `<cluster>.<domain>.` */
export function zoneName(cluster: string, domain: string): string {
  return [cluster, ...domainLabels(domain)].join(".") + ".";
}

/**
 * The records discovery keeps in a cluster's zone, in the order it handles them: one per role (the role's
 * InService and Healthy members: what API clients use) and `etcd` (the masters group's live members,
 * waiting ones included: what the masters' etcd agents use to find their peers; see reconcile.ts).
 */
export const ETCD_RECORD = "etcd";
export const RECORDS = [...ROLES, ETCD_RECORD] as const;
export type RecordKey = (typeof RECORDS)[number];

function nameInZone(label: RecordKey, cluster: string, domain: string): string {
  const name = `${label}.${zoneName(cluster, domain)}`;
  if (name.length > 255) throw new Error(`${name}: longer than 255 characters`);
  return name;
}

/** `<role>.<cluster>.<domain>.` */
export function recordName(role: Role, cluster: string, domain: string): string {
  return nameInZone(role, cluster, domain);
}

/** `etcd.<cluster>.<domain>.`: the name the masters' etcd agents read. */
export function etcdRecordName(cluster: string, domain: string): string {
  return nameInZone(ETCD_RECORD, cluster, domain);
}

/** Every record of the cluster's zone that discovery keeps (and may write), keyed as in RECORDS. */
export function discoveryRecords(cluster: string, domain: string): { key: RecordKey; name: string }[] {
  return RECORDS.map((key) => ({ key, name: nameInZone(key, cluster, domain) }));
}

/** A name as Route 53 lists it (octal escapes such as \052, any case, trailing dot or not) in our form. */
export function normaliseName(name: string): string {
  const unescaped = name.replace(/\\(\d{3})/g, (_, octal: string) => String.fromCharCode(parseInt(octal, 8)));
  const lower = unescaped.toLowerCase();
  return lower.endsWith(".") ? lower : `${lower}.`;
}
