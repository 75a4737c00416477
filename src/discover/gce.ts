/**
 * DiscoveryPorts on GCE: the cluster's regional managed instance groups and its instances (Compute) for the
 * truth, Cloud DNS for the records. The reconciler core is the one of every cloud (reconcile.ts); this file
 * only says what GCE's words mean in its terms. Cloud DNS deletes a record set only when the deletion names
 * it exactly (name, type, TTL and data), so a change whose deletion is stale fails whole (HTTP 412): the
 * same compare-and-swap as Route 53's batch.
 *
 * Cloud DNS is two REST calls over fetch (list the record sets, create a change) rather than
 * @google-cloud/dns: that client sends through teeny-request, which loads node-fetch by a dynamic ESM
 * import that neither the tests' module system nor a bundled function needs, for two requests.
 */
import type { ClusterGroup, DiscoveryPorts, GroupMember, RecordChange, RecordSet } from "./reconcile";
import { RecordConflict, Rejected, Transient } from "./reconcile";
import { normaliseName } from "./names";

/** The label that names an instance's cluster (src/node/providers/gce.sh reads the same). */
export const GCE_CLUSTER_LABEL = "kubernetescluster";
/** The managed instance group of a role: `kubebake-<cluster>-<role>`, one per region. */
export const gceGroupName = (cluster: string, role: string) => `kubebake-${cluster}-${role}`;
const ROLES = ["masters", "minions"] as const;

export interface GceDiscoveryTarget {
  project: string;
  region: string;
}

/** A managed instance as listManagedInstances answers it (the fields the mapping reads). */
export interface ManagedInstance {
  id?: string | number | null;
  instanceStatus?: string | null;
  currentAction?: string | null;
  instanceHealth?: { detailedHealthState?: string | null }[] | null;
}

/** Actions of an instance that is coming up: alive (an etcd peer may be waiting for it), not yet serving. */
const STARTING = new Set(["CREATING", "CREATING_WITHOUT_RETRIES", "VERIFYING", "STARTING", "RESUMING"]);
/** Statuses of an instance that exists and runs, or is about to. */
const UP = new Set(["PROVISIONING", "STAGING", "RUNNING"]);

/**
 * A managed instance in the reconciler's words, which are Auto Scaling's: `InService` when the group has
 * nothing to do to it and it runs; `Pending` while it is created, verified or started (alive: the etcd
 * record lists it); anything else (deleted, abandoned, recreated, stopped, suspended, restarted,
 * refreshed…) by GCE's own action name, which no record lists. `Healthy` unless a health check of the
 * group's autohealing says otherwise (without one, GCE reports no health, and a running instance counts).
 */
export function memberOf(instance: ManagedInstance): GroupMember {
  const action = instance.currentAction ?? "NONE";
  const status = instance.instanceStatus ?? "";
  let lifecycleState: string;
  if (action === "NONE" && status === "RUNNING") lifecycleState = "InService";
  else if ((action === "NONE" || STARTING.has(action)) && UP.has(status)) lifecycleState = "Pending";
  else lifecycleState = `gce:${action}:${status || "UNKNOWN"}`;
  const health = (instance.instanceHealth ?? []).map((h) => h.detailedHealthState ?? "UNKNOWN");
  return {
    instanceId: String(instance.id ?? ""),
    lifecycleState,
    healthStatus: health.every((state) => state === "HEALTHY") ? "Healthy" : "Unhealthy",
  };
}

/**
 * The HTTP status of a Google API error: ours (Cloud DNS over fetch) carry it; the Compute client's REST
 * transport turns it into a gRPC code (NOT_FOUND is 5), which is mapped back.
 */
export function httpStatusOf(error: unknown): number | undefined {
  const code = (error as { code?: unknown } | null)?.code;
  if (typeof code !== "number") return undefined;
  if (code >= 100) return code;
  const GRPC: Record<number, number> = {
    3: 400, // INVALID_ARGUMENT
    4: 504, // DEADLINE_EXCEEDED
    5: 404, // NOT_FOUND
    6: 409, // ALREADY_EXISTS
    7: 403, // PERMISSION_DENIED
    8: 429, // RESOURCE_EXHAUSTED
    9: 412, // FAILED_PRECONDITION
    10: 409, // ABORTED
    13: 500, // INTERNAL
    14: 503, // UNAVAILABLE
    16: 401, // UNAUTHENTICATED
  };
  return GRPC[code];
}

/** Google's API errors in the reconciler's kinds: 412/409 a lost swap, 429 and 5xx worth a retry, 400 refused. */
export function classifyGoogleError(error: unknown): unknown {
  if (!(error instanceof Error)) return error;
  if (error instanceof Transient || error instanceof RecordConflict || error instanceof Rejected)
    return error;
  const code = httpStatusOf(error) ?? 0;
  if (code === 412 || code === 409) return new RecordConflict(error.message, { cause: error });
  if (code === 429 || (code >= 500 && code < 600)) return new Transient(error.message, { cause: error });
  if (
    ["ECONNRESET", "ECONNREFUSED", "ETIMEDOUT", "EPIPE"].includes(String((error as { code?: unknown }).code))
  )
    return new Transient(error.message, { cause: error });
  if (code === 400) return new Rejected(error.message, { cause: error });
  return error;
}

async function call<T>(send: () => Promise<T>): Promise<T> {
  try {
    return await send();
  } catch (error) {
    throw classifyGoogleError(error);
  }
}

/** A group by name, and its managed instances (the official client, or src/discover/gce-rest.ts). */
export interface DiscoveryGroups {
  get(request: { project: string; region: string; instanceGroupManager: string }): Promise<unknown>;
  listManagedInstancesAsync(
    request: { project: string; region: string; instanceGroupManager: string },
    options?: object,
  ): AsyncIterable<ManagedInstance>;
}

/** An instance as the aggregated list gives it (the fields discovery reads). */
export interface DiscoveryInstance {
  id?: string | number | null;
  status?: string | null;
  networkInterfaces?: { networkIP?: string | null }[] | null;
}

export interface DiscoveryInstances {
  aggregatedListAsync(
    request: { project: string; filter: string },
    options?: object,
  ): AsyncIterable<[string, { instances?: DiscoveryInstance[] | null }]>;
}

export interface GceDiscoveryClients {
  groups: DiscoveryGroups;
  instances: DiscoveryInstances;
  /** Cloud DNS: https://dns.googleapis.com, or a fake's base URL, and the request headers (a token). */
  dns: { baseUrl: string; headers(): Promise<Headers> };
}

/** A Cloud DNS answer that is not 2xx, as an error the classifier reads. */
class GoogleApiError extends Error {
  constructor(
    readonly code: number,
    message: string,
  ) {
    super(message);
  }
}

async function dnsCall<T>(dns: GceDiscoveryClients["dns"], path: string, init: RequestInit = {}): Promise<T> {
  let answer: Response;
  try {
    const headers = await dns.headers();
    if (init.body) headers.set("content-type", "application/json");
    answer = await fetch(`${dns.baseUrl}/dns/v1/${path}`, { ...init, headers });
  } catch (error) {
    throw new Transient(`Cloud DNS: ${(error as Error).message}`, { cause: error });
  }
  return answerOf<T>(answer, "Cloud DNS");
}

/** A Google REST answer's JSON, or its failure as an error carrying the HTTP status. */
export async function answerOf<T>(answer: Response, api: string): Promise<T> {
  const text = await answer.text();
  if (!answer.ok) {
    // Google's JSON error, or whatever a front end in between answered (an HTML 502 page).
    let message = text.slice(0, 300);
    try {
      message = (JSON.parse(text) as { error?: { message?: string } }).error?.message ?? message;
    } catch {
      // not JSON: its first characters say enough
    }
    throw new GoogleApiError(answer.status, `${api} ${answer.status}: ${message}`);
  }
  return JSON.parse(text) as T;
}

interface RecordSetJson {
  name: string;
  type: string;
  ttl?: number;
  rrdatas?: string[];
  routingPolicy?: unknown;
}

/** The iterators turn the pages themselves; the clients' default (autoPaginate) only earns a warning. */
const PAGED = { autoPaginate: false };

/** Record sets per page of the listing (the API's maximum; tests pass small ones to turn pages). */
export const RECORDS_PAGE = 1000;

export function gceDiscoveryPorts(
  clients: GceDiscoveryClients,
  target: GceDiscoveryTarget,
  recordsPage = RECORDS_PAGE,
): DiscoveryPorts {
  const { project, region } = target;
  return {
    async groups(cluster) {
      const groups: ClusterGroup[] = [];
      for (const role of ROLES) {
        const name = gceGroupName(cluster, role);
        let found: boolean;
        try {
          await clients.groups.get({ project, region, instanceGroupManager: name });
          found = true;
        } catch (error) {
          if (httpStatusOf(error) !== 404) throw classifyGoogleError(error);
          found = false;
        }
        if (!found) continue;
        const members = await call(async () => {
          const all: ManagedInstance[] = [];
          for await (const instance of clients.groups.listManagedInstancesAsync(
            { project, region, instanceGroupManager: name },
            PAGED,
          ))
            all.push(instance as ManagedInstance);
          return all;
        });
        groups.push({ name, role, members: members.map(memberOf) });
      }
      return groups;
    },

    async privateIps(cluster) {
      const ips = new Map<string, string>();
      await call(async () => {
        const pages = clients.instances.aggregatedListAsync(
          { project, filter: `labels.${GCE_CLUSTER_LABEL} = "${cluster}"` },
          PAGED,
        );
        for await (const [scope, list] of pages) {
          // Only this region's zones: a cluster of the same name elsewhere is another cluster.
          if (!scope.startsWith(`zones/${region}-`)) continue;
          for (const instance of list.instances ?? []) {
            const ip = instance.networkInterfaces?.[0]?.networkIP;
            if (instance.id != null && ip && UP.has(String(instance.status)))
              ips.set(String(instance.id), ip);
          }
        }
      });
      return ips;
    },

    async readRecords(zoneId) {
      const records: RecordSet[] = [];
      let pageToken: string | undefined;
      do {
        const query = new URLSearchParams({ maxResults: String(recordsPage) });
        if (pageToken) query.set("pageToken", pageToken);
        const page = await call(() =>
          dnsCall<{ rrsets?: RecordSetJson[]; nextPageToken?: string }>(
            clients.dns,
            `projects/${project}/managedZones/${zoneId}/rrsets?${query}`,
          ),
        );
        for (const set of page.rrsets ?? [])
          records.push({
            name: normaliseName(set.name),
            type: set.type,
            ttl: set.ttl ?? 0,
            values: [...(set.rrdatas ?? [])],
            // A routing policy (weighted, geo, failover) is someone else's set, as on Route 53.
            ...(set.routingPolicy ? { setIdentifier: "routingPolicy" } : {}),
          });
        pageToken = page.nextPageToken;
      } while (pageToken);
      return records;
    },

    async changeRecords(zoneId, changes: RecordChange[]) {
      const asJson = ({ record }: RecordChange) => ({
        kind: "dns#resourceRecordSet",
        name: record.name,
        type: record.type,
        ttl: record.ttl,
        rrdatas: record.values,
      });
      await call(() =>
        dnsCall(clients.dns, `projects/${project}/managedZones/${zoneId}/changes`, {
          method: "POST",
          body: JSON.stringify({
            kind: "dns#change",
            additions: changes.filter((c) => c.action === "CREATE").map(asJson),
            deletions: changes.filter((c) => c.action === "DELETE").map(asJson),
          }),
        }),
      );
    },

    sleep: (ms) => new Promise((resolve) => setTimeout(resolve, ms)),
    now: () => Date.now(),
  };
}
