/**
 * In-memory clouds for the reconciler: a strict Route 53 (change batches are atomic, DELETE must match
 * the record exactly, CREATE must not find one, request limits enforced, injected throttling and stale
 * reads) and a mutable Auto Scaling truth. Every call is a step that a seeded scheduler releases, so
 * concurrent invocations interleave at every await.
 */
import {
  RecordConflict,
  Rejected,
  Transient,
  type ClusterGroup,
  type DiscoveryPorts,
  type RecordChange,
  type ReconcileOptions,
  type RecordSet,
} from "../../src/discover/reconcile";

/** A seeded PRNG (mulberry32): a failing seed reproduces. */
export function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** Releases one pending step at a time, chosen at random; `run` drives until every actor is done. */
export class Scheduler {
  private pending: (() => void)[] = [];
  constructor(readonly random: () => number) {}
  step(): Promise<void> {
    return new Promise((resolve) => this.pending.push(resolve));
  }
  async run(actors: Promise<unknown>[]): Promise<void> {
    let done = false;
    const all = Promise.allSettled(actors).then(() => (done = true));
    for (let guard = 0; guard < 100_000; guard++) {
      await new Promise((r) => setImmediate(r)); // let every actor reach its next step
      if (done) break;
      if (this.pending.length === 0) continue;
      const [next] = this.pending.splice(Math.floor(this.random() * this.pending.length), 1);
      next!();
    }
    await all;
  }
}

interface Version {
  record: RecordSet;
  id: number;
}

export interface ModelOptions {
  strict?: boolean;
  /** Writes answered with Throttling / PriorRequestNotComplete. */
  throttleRate?: number;
  /** Writes answered with HTTP 5xx (the change was not made). */
  serverErrorRate?: number;
  /** Reads (listings, and in modelPorts the truth's reads too) answered with throttling or 5xx. */
  readErrorRate?: number;
  staleRate?: number;
}

export class Route53Model {
  private current = new Map<string, Version>();
  private previous = new Map<string, Version | undefined>();
  private nextId = 1;
  calls = { list: 0, change: 0 };
  /** Record sets that are not ours (a CNAME, an alias, a weighted set…), by name: listed, never changed. */
  foreign = new Map<string, RecordSet>();
  /** DELETEs that removed a record version the deleter had not read (a lost concurrent write). */
  violations: string[] = [];
  staleReads = true;

  constructor(
    private random: () => number,
    private options: ModelOptions = {},
  ) {}

  records(): RecordSet[] {
    return [...this.current.values()].map((v) => v.record);
  }

  get(name: string): RecordSet | undefined {
    return this.current.get(name)?.record;
  }

  /** A listing, fresh or (with staleRate) from before the last write to a record. */
  list(reader: Map<string, number>): RecordSet[] {
    this.calls.list++;
    this.maybeReadError();
    reader.clear();
    const out: RecordSet[] = [...this.foreign.values()].map((r) => structuredClone(r));
    for (const name of new Set([...this.current.keys(), ...this.previous.keys()])) {
      const stale =
        this.staleReads && this.previous.has(name) && this.random() < (this.options.staleRate ?? 0);
      const version = stale ? this.previous.get(name) : this.current.get(name);
      if (!version) continue;
      reader.set(name, version.id);
      out.push(structuredClone(version.record));
    }
    return out;
  }

  /** Read throttling and 5xx, as the reads of Route 53, Auto Scaling and EC2 answer under load. */
  maybeReadError(): void {
    if (this.random() < (this.options.readErrorRate ?? 0)) {
      throw new Transient(this.random() < 0.5 ? "Throttling: Rate exceeded" : "InternalFailure: HTTP 503");
    }
  }

  change(reader: Map<string, number>, changes: RecordChange[]): void {
    this.calls.change++;
    if (this.random() < (this.options.throttleRate ?? 0)) {
      throw new Transient(this.random() < 0.5 ? "Rate exceeded" : "PriorRequestNotComplete");
    }
    if (this.random() < (this.options.serverErrorRate ?? 0)) {
      throw new Transient("InternalFailure: HTTP 500");
    }
    if (changes.length === 0 || changes.length > 100) throw new Error(`bad batch size ${changes.length}`);
    const elements = changes.reduce((n, c) => n + c.record.values.length, 0);
    const characters = changes.reduce((n, c) => n + c.record.values.join("").length, 0);
    if (elements > 1000) throw new Rejected(`${elements} ResourceRecord elements: Route 53 allows 1000`);
    if (characters > 32000) throw new Rejected(`${characters} value characters: Route 53 allows 32000`);
    for (const { record } of changes) {
      const foreign = this.foreign.get(record.name);
      if (record.type !== "A")
        throw new Error(`${record.name}: the reconciler wrote a ${record.type} record`);
      if (foreign && !(foreign.type === "A" && (foreign.alias || foreign.setIdentifier !== undefined)))
        throw new Rejected(
          `RRSet of type A with DNS name ${record.name} is not permitted because a conflicting RRSet of type ${foreign.type} with the same DNS name already exists`,
        );
      if (foreign)
        throw new Rejected(
          `RRSet with DNS name ${record.name}, type A cannot be created as a routing-policy set exists`,
        );
    }
    const next = new Map(this.current);
    const deleted: Version[] = [];
    for (const { action, record } of changes) {
      if (record.values.length === 0) throw new Error(`${record.name}: a record needs a value`);
      const existing = next.get(record.name);
      if (action === "DELETE") {
        if (!existing) throw new RecordConflict(`${record.name}: not found`);
        if (this.options.strict !== false && !sameRecord(existing.record, record)) {
          throw new RecordConflict(`${record.name}: values do not match`);
        }
        next.delete(record.name);
        deleted.push(existing);
      } else {
        if (existing && this.options.strict !== false)
          throw new RecordConflict(`${record.name}: already exists`);
        next.set(record.name, { record: structuredClone(record), id: this.nextId++ });
      }
    }
    for (const version of deleted) {
      if (reader.get(version.record.name) !== version.id && !readSameContent(version, reader)) {
        this.violations.push(`${version.record.name}: deleted version ${version.id} unseen`);
      }
    }
    for (const name of new Set([...this.current.keys(), ...next.keys()])) {
      if (this.current.get(name) !== next.get(name)) this.previous.set(name, this.current.get(name));
    }
    this.current = next;
  }
}

// Value-equal content read under another version id (an A-B-A) is what Route 53 itself compares.
function readSameContent(version: Version, reader: Map<string, number>): boolean {
  return reader.has(`content:${version.record.name}:${key(version.record)}`);
}

const key = (r: RecordSet) => `${r.ttl}:${[...r.values].sort().join(",")}`;
const sameRecord = (a: RecordSet, b: RecordSet) => a.type === b.type && key(a) === key(b);

export interface Truth {
  groups: ClusterGroup[];
  ips: Map<string, string>;
}

/** Ports for one invocation: every call waits for the scheduler, then reads or writes the models. */
export function modelPorts(scheduler: Scheduler, route53: Route53Model, truth: () => Truth): DiscoveryPorts {
  const seen = new Map<string, number>();
  return {
    async groups() {
      await scheduler.step();
      route53.maybeReadError();
      return structuredClone(truth().groups);
    },
    async privateIps() {
      await scheduler.step();
      route53.maybeReadError();
      return new Map(truth().ips);
    },
    async readRecords() {
      await scheduler.step();
      const records = route53.list(seen);
      for (const r of records) seen.set(`content:${r.name}:${key(r)}`, 1);
      return records;
    },
    async changeRecords(_zone, changes) {
      await scheduler.step();
      route53.change(seen, changes);
    },
    async sleep() {
      await scheduler.step();
    },
  };
}

/** The reconciler options, record names and truths the discovery tests share: cluster demo in k8s. */
export const demoOptions: ReconcileOptions = {
  cluster: "demo",
  zoneId: "Z1",
  domain: "k8s",
  ttl: 30,
  emptyGroup: "delete",
};
export const MASTERS = "masters.demo.k8s.";
export const MINIONS = "minions.demo.k8s.";
/** The masters group's live members, waiting ones included (what the etcd agents read). */
export const ETCD = "etcd.demo.k8s.";
/** A scheduler that never interleaves: each call goes on at once. */
export const immediate = { step: async () => {} } as unknown as Scheduler;

/**
 * `masters` and `minions` healthy members, at 10.0.1.x and 10.0.2.x, all InService: `etcd` equals
 * `masters` until a test puts a master in another state (Pending:Wait, Terminating…).
 */
export function truthOf(masters: number, minions: number): Truth {
  const ips = new Map<string, string>();
  const group = (role: string, count: number, offset: number): ClusterGroup => ({
    name: `kubebake-demo-${role}`,
    role,
    members: Array.from({ length: count }, (_, i) => {
      const instanceId = `i-${role}-${i}`;
      ips.set(instanceId, `10.0.${offset}.${i + 1}`);
      return { instanceId, lifecycleState: "InService", healthStatus: "Healthy" };
    }),
  });
  return { groups: [group("masters", masters, 1), group("minions", minions, 2)], ips };
}
