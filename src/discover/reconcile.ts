/**
 * DNS discovery: make `<role>.<cluster>.<domain>` hold exactly the private IPs of the cluster's healthy
 * group members. Reconciles from truth on every call (events only say "look again"), and writes with a
 * compare-and-swap change batch so that a concurrent writer's record is never deleted unseen.
 */
import { recordName, ROLES, type Role } from "./names";

export interface GroupMember {
  instanceId: string;
  lifecycleState: string;
  healthStatus: string;
}

/** An autoscaling group of the cluster, found by its KubernetesCluster tag; role from its Role tag. */
export interface ClusterGroup {
  name: string;
  role: string | undefined;
  members: GroupMember[];
}

export interface RecordSet {
  /** Lowercase, with the trailing dot, as Route 53 returns it. */
  name: string;
  type: "A";
  ttl: number;
  values: string[];
}

export interface RecordChange {
  action: "CREATE" | "DELETE";
  record: RecordSet;
}

/** What the reconciler needs from a cloud: read the groups, the IPs and the records; swap a record. */
export interface DiscoveryPorts {
  groups(cluster: string): Promise<ClusterGroup[]>;
  /** Private IPs of the cluster's running instances, by instance id. */
  privateIps(cluster: string): Promise<Map<string, string>>;
  /** The A records of the zone (other types are not ours). */
  readRecords(zoneId: string): Promise<RecordSet[]>;
  /** Applies the batch atomically or throws RecordConflict / Throttled. */
  changeRecords(zoneId: string, changes: RecordChange[]): Promise<void>;
  sleep(ms: number): Promise<void>;
}

/** The batch did not apply because the record is not what we read (Route 53's InvalidChangeBatch). */
export class RecordConflict extends Error {
  override name = "RecordConflict";
}
/** Back off and try again (Throttling, PriorRequestNotComplete). */
export class Throttled extends Error {
  override name = "Throttled";
}

export type EmptyGroupPolicy = "delete" | "keep";

export interface ReconcileOptions {
  cluster: string;
  zoneId: string;
  domain: string;
  ttl: number;
  /** A role with no healthy member: delete its record (truth) or keep the last addresses. */
  emptyGroup: EmptyGroupPolicy;
  /** At most this many addresses per record (DELETE + CREATE of one record must fit 1,000 elements). */
  maxValues?: number;
  /** Give up after this many conflicting or throttled attempts. */
  maxAttempts?: number;
  /** Stop after this many passes that wrote (a truth that keeps moving); the next invocation goes on. */
  maxPasses?: number;
  baseDelayMs?: number;
  log?: (entry: Record<string, unknown>) => void;
}

export interface ReconcileResult {
  /** Records written (one entry per successful swap). */
  writes: { name: string; from: string[] | null; to: string[] | null }[];
  desired: Record<Role, string[]>;
  conflicts: number;
  throttles: number;
}

export const MAX_RECORD_VALUES = 400;
const HEALTHY = (m: GroupMember) => m.lifecycleState === "InService" && m.healthStatus === "Healthy";

/** Desired addresses per role: members InService and Healthy, private IPs sorted and de-duplicated. */
export function desiredAddresses(
  groups: ClusterGroup[],
  ips: Map<string, string>,
  maxValues = MAX_RECORD_VALUES,
): Record<Role, string[]> {
  const out = { masters: new Set<string>(), minions: new Set<string>() };
  for (const group of groups) {
    if (group.role !== "masters" && group.role !== "minions") continue;
    for (const member of group.members.filter(HEALTHY)) {
      const ip = ips.get(member.instanceId);
      if (ip) out[group.role].add(ip);
    }
  }
  const sorted = (s: Set<string>) => [...s].sort(compareIPv4).slice(0, maxValues);
  return { masters: sorted(out.masters), minions: sorted(out.minions) };
}

export function compareIPv4(a: string, b: string): number {
  const n = (ip: string) => ip.split(".").reduce((acc, part) => acc * 256 + Number(part), 0);
  return n(a) - n(b);
}

const sameValues = (a: string[], b: string[]) =>
  a.length === b.length && [...a].sort(compareIPv4).every((v, i) => v === b[i]);

/**
 * One reconciliation. Each pass reads the records first and the truth second; it writes only records
 * that differ, each as DELETE(exactly what was read) + CREATE(desired). A conflict or a throttle starts
 * the pass again from fresh reads; after a successful write one more pass confirms nothing moved meanwhile.
 */
export async function reconcile(ports: DiscoveryPorts, options: ReconcileOptions): Promise<ReconcileResult> {
  const maxAttempts = options.maxAttempts ?? 8;
  const baseDelay = options.baseDelayMs ?? 200;
  const log = options.log ?? (() => {});
  const result: ReconcileResult = {
    writes: [],
    desired: { masters: [], minions: [] },
    conflicts: 0,
    throttles: 0,
  };
  let failures = 0;
  let passesThatWrote = 0;
  for (;;) {
    let wrote = false;
    try {
      const records = await ports.readRecords(options.zoneId);
      const groups = await ports.groups(options.cluster);
      const ips = await ports.privateIps(options.cluster);
      const desired = desiredAddresses(groups, ips, options.maxValues);
      result.desired = desired;
      for (const role of ROLES) {
        const name = recordName(role, options.cluster, options.domain);
        const current = records.find((r) => r.name === name && r.type === "A");
        const want = desired[role];
        const changes = recordChanges(name, current, want, options);
        if (changes.length === 0) continue;
        await ports.changeRecords(options.zoneId, changes);
        wrote = true;
        const write = { name, from: current?.values ?? null, to: want.length > 0 ? want : null };
        result.writes.push(write);
        log({ level: "info", msg: "record updated", ...write });
      }
    } catch (error) {
      if (!(error instanceof RecordConflict || error instanceof Throttled)) throw error;
      if (error instanceof RecordConflict) result.conflicts++;
      else result.throttles++;
      failures++;
      if (failures >= maxAttempts) {
        throw new Error(`gave up after ${failures} attempts: ${error.message}`, { cause: error });
      }
      // Full jitter: concurrent invocations that collided should not collide again in step.
      const delay = Math.random() * Math.min(baseDelay * 2 ** failures, 10_000);
      log({ level: "warn", msg: "retrying", reason: error.name, detail: error.message, delayMs: delay });
      await ports.sleep(delay);
      continue;
    }
    if (!wrote) return result;
    if (++passesThatWrote >= (options.maxPasses ?? 5)) {
      log({ level: "warn", msg: "the truth kept changing; leaving the rest to the next invocation" });
      return result;
    }
  }
}

/** The compare-and-swap batch turning `current` into `want`; empty when nothing is to change. */
export function recordChanges(
  name: string,
  current: RecordSet | undefined,
  want: string[],
  options: Pick<ReconcileOptions, "ttl" | "emptyGroup">,
): RecordChange[] {
  if (want.length === 0) {
    if (!current || options.emptyGroup === "keep") return [];
    return [{ action: "DELETE", record: current }];
  }
  if (current && current.ttl === options.ttl && sameValues(current.values, want)) return [];
  const create: RecordChange = {
    action: "CREATE",
    record: { name, type: "A", ttl: options.ttl, values: want },
  };
  return current ? [{ action: "DELETE", record: current }, create] : [create];
}
