/**
 * DNS discovery: make `<role>.<cluster>.<domain>` hold exactly the private IPs of the cluster's healthy
 * group members, and `etcd.<cluster>.<domain>` those of the masters group's live members (waiting ones
 * included, see `desiredAddresses`). Reconciles from truth on every call (events only say "look again"), and writes with a
 * compare-and-swap change batch so that a concurrent writer's record is never deleted unseen. Every
 * record ends confirmed by a read that found it equal to the truth, or the reconciliation fails (after
 * one structured log line per record) so that the invocation is retried.
 */
import { discoveryRecords, type RecordKey } from "./names";

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
  /** "A" for ours; any other type (CNAME, AAAA, TXT…) at one of our names is someone else's. */
  type: string;
  ttl: number;
  values: string[];
  /** Alias and routing-policy records (weighted, latency… have a SetIdentifier) are not ours either. */
  alias?: boolean;
  setIdentifier?: string;
  /** The cloud's version of the set as read (Azure's ETag), for a compare-and-swap; other clouds leave it out. */
  version?: string;
}

export interface RecordChange {
  action: "CREATE" | "DELETE";
  record: RecordSet;
}

/** What the reconciler needs from a cloud: read the groups, the IPs and the records; swap a record. */
export interface DiscoveryPorts {
  groups(cluster: string): Promise<ClusterGroup[]>;
  /** Private IPs of the cluster's pending (booting) and running instances, by instance id. */
  privateIps(cluster: string): Promise<Map<string, string>>;
  /** Every record set of the zone, of any type (the reconciler decides what is ours). */
  readRecords(zoneId: string): Promise<RecordSet[]>;
  /** Applies the batch atomically or throws RecordConflict / Transient / Rejected. */
  changeRecords(zoneId: string, changes: RecordChange[]): Promise<void>;
  sleep(ms: number): Promise<void>;
  /** Milliseconds on a clock that `ReconcileOptions.deadline` is measured on. */
  now?(): number;
}

/** The batch did not apply because the record is not what we read: a lost compare-and-swap. */
export class RecordConflict extends Error {
  override name = "RecordConflict";
}
/** Worth retrying after a back-off: throttling, PriorRequestNotComplete, 5xx, a network error. */
export class Transient extends Error {
  override name = "Transient";
}
/** Route 53 refuses the batch for a reason that retrying cannot change (a limit, a foreign record). */
export class Rejected extends Error {
  override name = "Rejected";
}

/** The reconciliation did not bring every record to the truth; each failure has been logged. */
export class ReconcileFailed extends Error {
  override name = "ReconcileFailed";
  constructor(readonly failures: RecordFailure[]) {
    super(failures.map((f) => `${f.record}: ${f.error}`).join("; "));
  }
}

export interface RecordFailure {
  record: string;
  /** null: no read of the truth succeeded. */
  want: string[] | null;
  have: string[] | null;
  attempts: number;
  error: string;
}

export type EmptyGroupPolicy = "delete" | "keep";

export interface ReconcileOptions {
  cluster: string;
  zoneId: string;
  domain: string;
  ttl: number;
  /**
   * A record with no address (a role without a healthy member; for `etcd`, no live master): delete it
   * (truth) or keep the last addresses. One policy for all three records (see `desiredAddresses`).
   */
  emptyGroup: EmptyGroupPolicy;
  /** At most this many addresses per record (see ROUTE53_MAX_VALUES). */
  maxValues?: number;
  /** Give up on a record after this many conflicting or transient failures. */
  maxAttempts?: number;
  /** Give up after this many passes that wrote (a truth that keeps moving); the retry goes on. */
  maxPasses?: number;
  baseDelayMs?: number;
  /** No pass starts and no back-off ends after this time (ports.now()); records not confirmed fail. */
  deadline?: number;
  log?: (entry: Record<string, unknown>) => void;
}

export interface ReconcileResult {
  /** Records written (one entry per successful swap). */
  writes: { name: string; from: string[] | null; to: string[] | null; fromTtl?: number; toTtl?: number }[];
  desired: Record<RecordKey, string[]>;
  conflicts: number;
  throttles: number;
}

/**
 * Route 53 takes at most 1,000 ResourceRecord elements and 32,000 value characters per change batch. Our
 * batch is DELETE(current) + CREATE(desired); an IPv4 value has at most 15 characters, so 500 addresses
 * would fit both limits (1,000 elements, 15,000 characters). 400 leaves room for a current record a little
 * larger than ours; a larger one is swapped in two batches (see `batches`).
 */
export const ROUTE53_MAX_ELEMENTS = 1000;
export const ROUTE53_MAX_VALUE_CHARACTERS = 32_000;
export const MAX_RECORD_VALUES = 400;

export function checkMaxValues(maxValues: number): void {
  // The element limit is the one that binds: 1,000 IPv4 values have at most 15,000 of the 32,000 characters.
  const fits = Number.isInteger(maxValues) && maxValues >= 1 && 2 * maxValues <= ROUTE53_MAX_ELEMENTS;
  if (!fits) {
    throw new Error(
      `maxValues ${maxValues}: DELETE + CREATE of that many addresses must fit one Route 53 change batch (${ROUTE53_MAX_ELEMENTS} elements, ${ROUTE53_MAX_VALUE_CHARACTERS} characters): at most ${ROUTE53_MAX_ELEMENTS / 2}`,
    );
  }
}

/** Ready for clients: the role records (`masters`: API servers, `minions`) hold only these. */
const IN_SERVICE = (m: GroupMember) => m.lifecycleState === "InService" && m.healthStatus === "Healthy";

/**
 * Auto Scaling lifecycle states of a member that is, or is about to be, a member of the group: launched
 * (`Pending`; its address is known once EC2 runs it), held by the masters' launch hook until its etcd
 * member votes (`Pending:Wait`), let go by it (`Pending:Proceed`), or in service. Every other state —
 * Terminating*, Terminated, Detaching, Detached, EnteringStandby, Standby, Quarantined, Warmed:* and any
 * state Auto Scaling adds later — is a member leaving or not part of the group.
 */
export const ALIVE_STATES: ReadonlySet<string> = new Set([
  "Pending",
  "Pending:Wait",
  "Pending:Proceed",
  "InService",
]);
const ALIVE = (m: GroupMember) => ALIVE_STATES.has(m.lifecycleState) && m.healthStatus === "Healthy";

/**
 * Desired addresses per record, private IPs sorted numerically, de-duplicated and capped at maxValues:
 * - `masters`, `minions`: the role's members InService and Healthy (API clients must reach ready servers);
 * - `etcd`: the masters group's members alive and Healthy (ALIVE_STATES). A new master waits in
 *   Pending:Wait until its etcd member votes, and it finds its peers through this record: with InService
 *   members only, the first masters of a group would never see each other, and a replacement would be
 *   invisible to the members it joins. Minions never appear in it, whatever their state.
 * An empty `etcd` set (no master alive) follows the same emptyGroup policy as the role records rather
 * than a policy of its own: the only readers of the record are masters, so when none is alive nobody
 * is reading it, and "keep" then keeps both master records' last addresses alike, as the operator chose.
 */
export function desiredAddresses(
  groups: ClusterGroup[],
  ips: Map<string, string>,
  maxValues = MAX_RECORD_VALUES,
): Record<RecordKey, string[]> {
  const out = { masters: new Set<string>(), minions: new Set<string>(), etcd: new Set<string>() };
  const add = (set: Set<string>, member: GroupMember) => {
    const ip = ips.get(member.instanceId);
    if (ip) set.add(ip);
  };
  for (const group of groups) {
    if (group.role !== "masters" && group.role !== "minions") continue;
    for (const member of group.members) {
      if (IN_SERVICE(member)) add(out[group.role], member);
      if (group.role === "masters" && ALIVE(member)) add(out.etcd, member);
    }
  }
  const sorted = (s: Set<string>) => [...s].sort(compareIPv4).slice(0, maxValues);
  return { masters: sorted(out.masters), minions: sorted(out.minions), etcd: sorted(out.etcd) };
}

export function compareIPv4(a: string, b: string): number {
  const n = (ip: string) => ip.split(".").reduce((acc, part) => acc * 256 + Number(part), 0);
  return n(a) - n(b);
}

const sameValues = (a: string[], b: string[]) =>
  a.length === b.length && [...a].sort(compareIPv4).every((v, i) => v === b[i]);

const isOurs = (r: RecordSet) => r.type === "A" && !r.alias && r.setIdentifier === undefined;

/** A record set at our name that we must not touch: another type, an alias or a routing-policy set. */
export function foreignAt(records: RecordSet[], name: string): RecordSet | undefined {
  return records.find((r) => r.name === name && !isOurs(r));
}

const describe = (r: RecordSet) =>
  `${r.type}${r.alias ? " alias" : ""}${r.setIdentifier !== undefined ? ` (SetIdentifier ${JSON.stringify(r.setIdentifier)})` : ""}`;

interface RecordState {
  key: RecordKey;
  name: string;
  attempts: number;
  confirmed: boolean;
  failed?: RecordFailure;
  want: string[] | null;
  have: string[] | null;
  lastError?: string;
}

/**
 * One reconciliation. Each pass reads the records first and the truth second, and handles every record
 * that is not settled yet on its own: a record that equals the truth is confirmed by that read; one that
 * differs is written as DELETE(exactly what was read) + CREATE(desired), and the next pass must confirm
 * it. A conflict or a transient error counts against that record only and starts a new pass after a
 * full-jitter back-off; a permanent rejection or a foreign record at our name fails that record at once.
 * The reconciliation throws ReconcileFailed when any record was not confirmed.
 */
export async function reconcile(ports: DiscoveryPorts, options: ReconcileOptions): Promise<ReconcileResult> {
  const maxAttempts = options.maxAttempts ?? 8;
  const maxPasses = options.maxPasses ?? 5;
  const maxValues = options.maxValues ?? MAX_RECORD_VALUES;
  checkMaxValues(maxValues);
  const baseDelay = options.baseDelayMs ?? 200;
  const log = options.log ?? (() => {});
  const now = () => (ports.now ? ports.now() : Date.now());
  const deadline = options.deadline ?? Infinity;
  const result: ReconcileResult = {
    writes: [],
    desired: { masters: [], minions: [], etcd: [] },
    conflicts: 0,
    throttles: 0,
  };
  const states: RecordState[] = discoveryRecords(options.cluster, options.domain).map(({ key, name }) => ({
    key,
    name,
    attempts: 0,
    confirmed: false,
    want: null,
    have: null,
  }));
  const open = () => states.filter((s) => !s.confirmed && !s.failed);
  const fail = (state: RecordState, error: string) => {
    state.failed = {
      record: state.name,
      want: state.want,
      have: state.have,
      attempts: state.attempts,
      error,
    };
    log({ level: "error", msg: "record not reconciled", cluster: options.cluster, ...state.failed });
  };
  const retryLater = (state: RecordState, error: Error) => {
    if (error instanceof RecordConflict) result.conflicts++;
    else result.throttles++;
    state.attempts++;
    state.lastError = `${error.name}: ${error.message}`;
    if (state.attempts >= maxAttempts)
      fail(state, `gave up after ${state.attempts} attempts: ${state.lastError}`);
  };

  let passesThatWrote = 0;
  let failuresInARow = 0;
  while (open().length > 0) {
    if (now() >= deadline) {
      for (const state of open())
        fail(
          state,
          `deadline reached after ${state.attempts} attempts${state.lastError ? `: ${state.lastError}` : ""}`,
        );
      break;
    }
    let wrote = false;
    let setback = false;
    let records: RecordSet[];
    let desired: Record<RecordKey, string[]>;
    try {
      records = await ports.readRecords(options.zoneId);
      const groups = await ports.groups(options.cluster);
      const ips = await ports.privateIps(options.cluster);
      desired = desiredAddresses(groups, ips, maxValues);
    } catch (error) {
      if (!(error instanceof Transient)) {
        for (const state of open()) fail(state, `read failed: ${String(error)}`);
        break;
      }
      for (const state of open()) retryLater(state, error);
      failuresInARow++;
      // No wait (and no "retrying") when that was every open record's last attempt.
      if (open().length > 0) await backOff(error.message);
      continue;
    }
    result.desired = desired;
    for (const state of open()) {
      const current = records.find((r) => r.name === state.name && isOurs(r));
      const want = desired[state.key];
      state.want = want;
      state.have = current?.values ?? null;
      const foreign = foreignAt(records, state.name);
      if (foreign) {
        // Not ours: a person or another tool put it there. Repairing it could break what it serves.
        fail(
          state,
          `a ${describe(foreign)} record exists at ${state.name}; remove it to let discovery manage the name`,
        );
        continue;
      }
      const changes = recordChanges(state.name, current, want, options);
      if (changes.length === 0) {
        state.confirmed = true;
        continue;
      }
      if (passesThatWrote >= maxPasses) {
        // This read is the confirmation that failed: the record is still not the truth.
        fail(state, `the truth kept changing: still different after ${passesThatWrote} passes that wrote`);
        continue;
      }
      try {
        for (const batch of batches(changes)) await ports.changeRecords(options.zoneId, batch);
      } catch (error) {
        if (error instanceof Rejected) fail(state, `Route 53 rejected the change: ${error.message}`);
        else if (error instanceof RecordConflict || error instanceof Transient) {
          retryLater(state, error);
          setback = true;
        } else fail(state, `write failed: ${String(error)}`);
        continue;
      }
      wrote = true;
      state.lastError = undefined;
      const write = {
        name: state.name,
        from: current?.values ?? null,
        to: want.length > 0 ? want : null,
        ...(current && current.ttl !== options.ttl && want.length > 0
          ? { fromTtl: current.ttl, toTtl: options.ttl }
          : {}),
      };
      result.writes.push(write);
      log({ level: "info", msg: "record updated", cluster: options.cluster, ...write });
    }
    if (wrote) passesThatWrote++;
    if (setback) {
      failuresInARow++;
      if (open().length > 0)
        await backOff(
          open()
            .filter((s) => s.lastError)
            .map((s) => `${s.name} ${s.lastError}`)
            .join("; "),
        );
    } else failuresInARow = 0;
  }
  const failures = states.flatMap((s) => (s.failed ? [s.failed] : []));
  if (failures.length > 0) throw new ReconcileFailed(failures);
  return result;

  /** Full jitter: concurrent writers that collided should not collide again in step. Never past the deadline. */
  async function backOff(reason: string) {
    const jitter = Math.random() * Math.min(baseDelay * 2 ** failuresInARow, 10_000);
    const delay = Math.max(0, Math.min(jitter, deadline - now()));
    log({ level: "warn", msg: "retrying", cluster: options.cluster, reason, delayMs: Math.round(delay) });
    await ports.sleep(delay);
  }
}

/** One batch when DELETE + CREATE fits Route 53's limits, else DELETE then CREATE (briefly no record). */
export function batches(changes: RecordChange[]): RecordChange[][] {
  const elements = changes.reduce((n, c) => n + c.record.values.length, 0);
  const characters = changes.reduce((n, c) => n + c.record.values.join("").length, 0);
  if (elements <= ROUTE53_MAX_ELEMENTS && characters <= ROUTE53_MAX_VALUE_CHARACTERS) return [changes];
  return changes.map((c) => [c]);
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

/** A reconciliation in one log line's fields (the discovery functions log and answer it). */
export function reconcileSummary(
  cluster: string,
  result: {
    desired: { masters: string[]; minions: string[]; etcd: string[] };
    writes: unknown[];
    conflicts: number;
    throttles: number;
  },
  started: number,
  now = Date.now(),
) {
  return {
    cluster,
    masters: result.desired.masters.length,
    minions: result.desired.minions.length,
    etcd: result.desired.etcd.length,
    writes: result.writes.length,
    conflicts: result.conflicts,
    throttles: result.throttles,
    ms: now - started,
  };
}
