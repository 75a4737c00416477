import { normaliseName, recordName, zoneName } from "../../src/discover/names";
import {
  desiredAddresses,
  reconcile,
  ReconcileFailed,
  RecordConflict,
  recordChanges,
  type ClusterGroup,
  type GroupMember,
  type ReconcileOptions,
} from "../../src/discover/reconcile";
import {
  demoOptions,
  MASTERS,
  MINIONS,
  truthOf,
  modelPorts,
  prng,
  Route53Model,
  Scheduler,
  type Truth,
} from "./model";

const options = demoOptions;

const member = (instanceId: string, lifecycleState = "InService", healthStatus = "Healthy"): GroupMember => ({
  instanceId,
  lifecycleState,
  healthStatus,
});

const expected = (truth: Truth) => desiredAddresses(truth.groups, truth.ips);

describe("desired addresses", () => {
  test("only InService and Healthy members count; IPs sorted numerically and de-duplicated", () => {
    const groups: ClusterGroup[] = [
      {
        name: "m",
        role: "masters",
        members: [
          member("a"),
          member("b", "Pending"),
          member("c", "Terminating"),
          member("d", "Terminating:Wait"),
          member("e", "Standby"),
          member("f", "Detaching"),
          member("g", "InService", "Unhealthy"),
          member("h"),
          member("i"),
        ],
      },
      { name: "x", role: "other", members: [member("z")] },
      { name: "n", role: undefined, members: [member("y")] },
    ];
    const ips = new Map(
      Object.entries({ a: "10.0.0.10", b: "10.0.0.2", c: "10.0.0.3", d: "10.0.0.4", e: "10.0.0.5" }),
    );
    ips.set("f", "10.0.0.6").set("g", "10.0.0.7").set("h", "10.0.0.9").set("i", "10.0.0.10");
    ips.set("z", "10.9.9.9").set("y", "10.9.9.8");
    expect(desiredAddresses(groups, ips)).toEqual({ masters: ["10.0.0.9", "10.0.0.10"], minions: [] });
  });

  test("a member without a known IP (not running yet) is left out; records are capped", () => {
    const truth = truthOf(0, 0);
    truth.groups[1]!.members = Array.from({ length: 1000 }, (_, i) => member(`i-${i}`));
    truth.groups[1]!.members.forEach((m, i) => truth.ips.set(m.instanceId, `10.1.${i >> 8}.${i & 255}`));
    truth.groups[0]!.members = [member("i-new")];
    const desired = desiredAddresses(truth.groups, truth.ips, 400);
    expect(desired.masters).toEqual([]);
    expect(desired.minions).toHaveLength(400);
    expect(desired.minions.at(-1)).toBe("10.1.1.143");
  });
});

describe("record changes", () => {
  const current = { name: MASTERS, type: "A" as const, ttl: 30, values: ["10.0.0.2", "10.0.0.1"] };
  test("equal sets in any order: nothing to do", () => {
    expect(recordChanges(MASTERS, current, ["10.0.0.1", "10.0.0.2"], options)).toEqual([]);
  });
  test("different values or TTL: DELETE exactly what was read, CREATE the desired set", () => {
    expect(recordChanges(MASTERS, current, ["10.0.0.1"], options)).toEqual([
      { action: "DELETE", record: current },
      { action: "CREATE", record: { name: MASTERS, type: "A", ttl: 30, values: ["10.0.0.1"] } },
    ]);
    // Same addresses, another TTL: the DELETE carries the TTL that was read, the CREATE the new one.
    const sameValuesOtherTtl = { ...current, ttl: 60 };
    expect(recordChanges(MASTERS, sameValuesOtherTtl, [...current.values], options)).toEqual([
      { action: "DELETE", record: sameValuesOtherTtl },
      { action: "CREATE", record: { ...current, ttl: 30 } },
    ]);
  });
  test("empty group: delete the record, or keep it when the policy says so", () => {
    expect(recordChanges(MASTERS, current, [], options)).toEqual([{ action: "DELETE", record: current }]);
    expect(recordChanges(MASTERS, current, [], { ...options, emptyGroup: "keep" })).toEqual([]);
    expect(recordChanges(MASTERS, undefined, [], options)).toEqual([]);
  });
});

describe("names", () => {
  test("normalised to lowercase with a trailing dot, escapes decoded", () => {
    expect(normaliseName("Masters.Demo.K8S")).toBe(MASTERS);
    expect(normaliseName("\\052.demo.k8s.")).toBe("*.demo.k8s.");
    expect(recordName("minions", "demo", "K8s.")).toBe(MINIONS);
    expect(zoneName("demo", "example.internal")).toBe("demo.example.internal.");
    expect(() => zoneName("demo", "bad_label")).toThrow(/bad label/);
  });
});

async function runAlone(route53: Route53Model, truth: Truth, extra: Partial<ReconcileOptions> = {}) {
  const scheduler = new Scheduler(prng(1));
  const run = reconcile(
    modelPorts(scheduler, route53, () => truth),
    { ...options, ...extra },
  );
  await scheduler.run([run]);
  return run;
}

describe("one invocation against the strict Route 53", () => {
  test("creates both records, then a second run reads three times and writes nothing", async () => {
    const route53 = new Route53Model(prng(7));
    const truth = truthOf(3, 5);
    const first = await runAlone(route53, truth);
    expect(first.writes.map((w) => w.name)).toEqual([MASTERS, MINIONS]);
    expect(route53.get(MASTERS)?.values).toEqual(["10.0.1.1", "10.0.1.2", "10.0.1.3"]);
    expect(route53.get(MINIONS)?.values).toHaveLength(5);
    const before = { ...route53.calls };
    const second = await runAlone(route53, truth);
    expect(second.writes).toEqual([]);
    expect(route53.calls).toEqual({ list: before.list + 1, change: before.change });
  });

  test("a TTL change on the strict model: the DELETE names the TTL read (Route 53 refuses another), the record gets the new TTL", async () => {
    const route53 = new Route53Model(prng(7));
    const truth = truthOf(1, 2);
    await runAlone(route53, truth, { ttl: 60 });
    const stored = route53.get(MASTERS)!;
    expect(stored.ttl).toBe(60);
    // The model is as strict as Route 53: a DELETE with the right values but another TTL is refused.
    expect(() => route53.change(new Map(), [{ action: "DELETE", record: { ...stored, ttl: 30 } }])).toThrow(
      RecordConflict,
    );
    const changed = await runAlone(route53, truth);
    expect(changed.writes.map((w) => [w.name, w.fromTtl, w.toTtl])).toEqual([
      [MASTERS, 60, 30],
      [MINIONS, 60, 30],
    ]);
    expect([route53.get(MASTERS)?.ttl, route53.get(MINIONS)?.ttl]).toEqual([30, 30]);
    expect((await runAlone(route53, truth)).writes).toEqual([]);
  });

  test("scale in: the record follows; an empty group's record goes, or stays with 'keep'", async () => {
    const route53 = new Route53Model(prng(7));
    const truth = truthOf(3, 5);
    await runAlone(route53, truth);
    truth.groups[1]!.members.splice(2);
    truth.groups[0]!.members[0]!.lifecycleState = "Terminating";
    await runAlone(route53, truth);
    expect(route53.get(MINIONS)?.values).toEqual(["10.0.2.1", "10.0.2.2"]);
    expect(route53.get(MASTERS)?.values).toEqual(["10.0.1.2", "10.0.1.3"]);
    truth.groups[1]!.members = [];
    await runAlone(route53, truth, { emptyGroup: "keep" });
    expect(route53.get(MINIONS)?.values).toEqual(["10.0.2.1", "10.0.2.2"]);
    await runAlone(route53, truth);
    expect(route53.get(MINIONS)).toBeUndefined();
  });

  test("1,000 minions fit Route 53's limits (the model enforces 1,000 elements per batch)", async () => {
    const route53 = new Route53Model(prng(7));
    const truth = truthOf(3, 1000);
    truth.groups[1]!.members.forEach((m, i) => truth.ips.set(m.instanceId, `10.2.${i >> 8}.${i & 255}`));
    await runAlone(route53, truth);
    truth.groups[1]!.members.reverse().splice(0, 10);
    await runAlone(route53, truth);
    expect(route53.get(MINIONS)?.values).toEqual(expected(truth).minions);
  });

  test("a truth that moves on every read: after maxPasses writing passes it fails, logged, never returns unconfirmed", async () => {
    const route53 = new Route53Model(prng(7));
    const one = truthOf(1, 1);
    const two = truthOf(2, 1);
    let reads = 0;
    const immediate = { step: async () => {} } as unknown as Scheduler;
    const lines: Record<string, unknown>[] = [];
    const run = reconcile(
      modelPorts(immediate, route53, () => (reads++ % 4 < 2 ? one : two)),
      { ...options, maxPasses: 3, log: (e) => lines.push(e) },
    );
    // Before: it returned after its third write without reading again, the record one step behind.
    await expect(run).rejects.toThrow(ReconcileFailed);
    expect(lines.filter((l) => l.msg === "record updated" && l.name === MASTERS)).toHaveLength(3);
    expect(lines.filter((l) => l.level === "error")).toEqual([
      {
        level: "error",
        msg: "record not reconciled",
        cluster: "demo",
        record: MASTERS,
        want: expect.any(Array),
        have: expect.any(Array),
        attempts: 0,
        error: "the truth kept changing: still different after 3 passes that wrote",
      },
    ]);
  });

  test("a write based on a stale read is always followed by a read that confirms it, or the run fails", async () => {
    // The truth changes right after the last allowed writing pass read it.
    const route53 = new Route53Model(prng(7));
    const before = truthOf(3, 1);
    const after = truthOf(2, 1);
    let truthReads = 0;
    const immediate = { step: async () => {} } as unknown as Scheduler;
    const run = reconcile(
      modelPorts(immediate, route53, () => (truthReads++ < 2 ? before : after)),
      { ...options, maxPasses: 1 },
    );
    await expect(run).rejects.toThrow(/still different after 1 passes that wrote/);
    // With room for one more pass the confirming read repairs it and the run succeeds.
    truthReads = 0;
    const fresh = new Route53Model(prng(7));
    const ok = await reconcile(
      modelPorts(immediate, fresh, () => (truthReads++ < 2 ? before : after)),
      { ...options, maxPasses: 2 },
    );
    expect(fresh.get(MASTERS)?.values).toEqual(expected(after).masters);
    expect(ok.writes.filter((w) => w.name === MASTERS)).toHaveLength(2);
  });

  test("gives up with an error after repeated throttling", async () => {
    const route53 = new Route53Model(prng(7), { throttleRate: 1 });
    await expect(runAlone(route53, truthOf(1, 1), { maxAttempts: 3 })).rejects.toThrow(
      /gave up after 3 attempts/,
    );
  });
});

test("the confirming pass repairs an A-B-A: a run that read a passing state writes it after the truth came back", async () => {
  const route53 = new Route53Model(prng(3));
  const settled = truthOf(3, 5);
  const flapped = structuredClone(settled);
  flapped.groups[0]!.members[0]!.lifecycleState = "Standby";
  const immediate = { step: async () => {} } as unknown as Scheduler;
  let truth = settled;
  await reconcile(
    modelPorts(immediate, route53, () => truth),
    options,
  );
  // Run Y reads the records, then the truth while a master is briefly in Standby; before Y writes, the
  // master is back and run X (the event for its return) finds records and truth equal and writes nothing.
  const inner = modelPorts(immediate, route53, () => truth);
  let flaps = 1;
  const y = {
    ...inner,
    async groups(cluster: string) {
      if (flaps-- > 0) truth = flapped;
      return inner.groups(cluster);
    },
    async privateIps(cluster: string) {
      const ips = await inner.privateIps(cluster);
      if (truth === flapped) {
        truth = settled;
        const x = await reconcile(
          modelPorts(immediate, route53, () => truth),
          options,
        );
        expect(x.writes).toEqual([]);
      }
      return ips;
    },
  };
  const result = await reconcile(y, options);
  // Y wrote the Standby state, then its confirming pass saw the truth and wrote it back.
  expect(result.writes.map((w) => w.to?.length)).toEqual([2, 3]);
  expect(route53.get(MASTERS)?.values).toEqual(expected(settled).masters);
});

/**
 * Concurrent invocations (the schedule plus events), truth changing between any two steps, each change
 * followed by the event-triggered invocation that AWS would send; Route 53 throttles and reads go stale.
 */
async function scenario(seed: number, model: { strict?: boolean; throttleRate: number; staleRate: number }) {
  const random = prng(seed);
  const scheduler = new Scheduler(random);
  const route53 = new Route53Model(random, model);
  let truth = truthOf(3, 5);
  let nextIp = 100;
  const results: Awaited<ReturnType<typeof reconcile>>[] = [];
  const invoke = () =>
    reconcile(
      modelPorts(scheduler, route53, () => truth),
      { ...options, baseDelayMs: 1, maxAttempts: 50 },
    ).then((r) => results.push(r));
  const mutator = async () => {
    const events: Promise<unknown>[] = [];
    for (let change = 0; change < 6; change++) {
      for (let wait = Math.floor(random() * 6); wait > 0; wait--) await scheduler.step();
      truth = structuredClone(truth);
      const group = truth.groups[Math.floor(random() * 2)]!;
      const pick = random();
      if (pick < 0.4 && group.members.length > 0)
        group.members.splice(Math.floor(random() * group.members.length), 1);
      else if (pick < 0.8 && group.members.length > 0) {
        // Standby and back: the truth returns to an earlier state (the A-B-A case).
        const flapping = group.members[0]!;
        flapping.lifecycleState = flapping.lifecycleState === "InService" ? "Standby" : "InService";
      } else {
        const id = `i-new-${nextIp}`;
        truth.ips.set(id, `10.0.3.${nextIp++}`);
        group.members.push(member(id));
      }
      events.push(invoke());
    }
    await Promise.all(events);
  };
  await scheduler.run([invoke(), invoke(), mutator()]);
  return { route53, truth, results, invoke, scheduler };
}

const recorded = (route53: Route53Model) => ({
  masters: route53.get(MASTERS)?.values ?? [],
  minions: route53.get(MINIONS)?.values ?? [],
});

const SEEDS = Array.from({ length: 150 }, (_, i) => i + 1);

describe("concurrent invocations against the strict Route 53", () => {
  test("with throttling: the final records equal the truth and no concurrent write is lost", async () => {
    let conflicts = 0;
    let throttles = 0;
    for (const seed of SEEDS) {
      const { route53, truth, results } = await scenario(seed, { throttleRate: 0.25, staleRate: 0 });
      const want = expected(truth);
      expect({ seed, ...recorded(route53) }).toEqual({ seed, ...want });
      expect({ seed, violations: route53.violations }).toEqual({ seed, violations: [] });
      conflicts += results.reduce((n, r) => n + r.conflicts, 0);
      throttles += results.reduce((n, r) => n + r.throttles, 0);
    }
    // The schedules did exercise the retry paths.
    expect(conflicts).toBeGreaterThan(20);
    expect(throttles).toBeGreaterThan(20);
  });

  test("with stale reads too: never a lost write, and the next scheduled run (reads caught up) converges", async () => {
    for (const seed of SEEDS) {
      const { route53, truth, invoke, scheduler } = await scenario(seed, {
        throttleRate: 0.2,
        staleRate: 0.4,
      });
      expect({ seed, violations: route53.violations }).toEqual({ seed, violations: [] });
      route53.staleReads = false;
      await scheduler.run([invoke()]);
      const want = expected(truth);
      expect({ seed, ...recorded(route53) }).toEqual({ seed, ...want });
    }
  });

  test("the lost-write check can fail: a lenient Route 53 (like moto's) lets stale writers delete unseen records", async () => {
    let violations = 0;
    for (const seed of SEEDS) {
      const { route53 } = await scenario(seed, { strict: false, throttleRate: 0, staleRate: 0.4 });
      violations += route53.violations.length;
    }
    expect(violations).toBeGreaterThan(0);
  });
});
