import {
  discoveryRecords,
  etcdRecordName,
  normaliseName,
  RECORDS,
  recordName,
  zoneName,
} from "../../src/discover/names";
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
  ETCD,
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
  test("role records: only InService and Healthy members; etcd: live Healthy masters; IPs sorted numerically and de-duplicated", () => {
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
    expect(desiredAddresses(groups, ips)).toEqual({
      masters: ["10.0.0.9", "10.0.0.10"],
      minions: [],
      // a, h and i (InService, i's address the same as a's) and b (Pending); never a group without a role.
      etcd: ["10.0.0.2", "10.0.0.9", "10.0.0.10"],
    });
  });

  test("a member without a known IP (not running yet) is left out; records are capped", () => {
    const truth = truthOf(0, 0);
    truth.groups[1]!.members = Array.from({ length: 1000 }, (_, i) => member(`i-${i}`));
    truth.groups[1]!.members.forEach((m, i) => truth.ips.set(m.instanceId, `10.1.${i >> 8}.${i & 255}`));
    truth.groups[0]!.members = [member("i-new"), member("i-booting", "Pending:Wait")];
    const desired = desiredAddresses(truth.groups, truth.ips, 400);
    // toStrictEqual: toEqual would take [undefined] (an address never known) for [].
    expect(desired.masters).toStrictEqual([]);
    expect(desired.etcd).toStrictEqual([]);
    expect(desired.minions).toHaveLength(400);
    expect(desired.minions.at(-1)).toBe("10.1.1.143");
  });
});

/** Every LifecycleState of the Auto Scaling API (2026), and one it might add. */
const LIFECYCLE_STATES = [
  "Pending",
  "Pending:Wait",
  "Pending:Proceed",
  "Quarantined",
  "InService",
  "Terminating",
  "Terminating:Wait",
  "Terminating:Proceed",
  "Terminated",
  "Detaching",
  "Detached",
  "EnteringStandby",
  "Standby",
  "Warmed:Pending",
  "Warmed:Pending:Wait",
  "Warmed:Pending:Proceed",
  "Warmed:Terminating",
  "Warmed:Terminating:Wait",
  "Warmed:Terminating:Proceed",
  "Warmed:Terminated",
  "Warmed:Stopped",
  "Warmed:Running",
  "Warmed:Hibernated",
  "SomethingNew",
];
/** The states in which a master is in `etcd.`: it exists, has its address, and is not leaving. */
const ALIVE = ["Pending", "Pending:Wait", "Pending:Proceed", "InService"];

describe("which member is in which record (one member at a time, every state, both health statuses)", () => {
  const rows = LIFECYCLE_STATES.flatMap((state) =>
    ["Healthy", "Unhealthy"].flatMap((health) =>
      ["masters", "minions"].map((role) => {
        const inService = state === "InService" && health === "Healthy";
        const alive = ALIVE.includes(state) && health === "Healthy";
        return {
          role,
          state,
          health,
          want: {
            masters: role === "masters" && inService ? ["10.0.0.1"] : [],
            minions: role === "minions" && inService ? ["10.0.0.1"] : [],
            etcd: role === "masters" && alive ? ["10.0.0.1"] : [],
          },
        };
      }),
    ),
  );
  test.each(rows)("a $state $health member of the $role group", ({ role, state, health, want }) => {
    const groups: ClusterGroup[] = [
      { name: `kubebake-demo-${role}`, role, members: [member("i-1", state, health)] },
    ];
    expect(desiredAddresses(groups, new Map([["i-1", "10.0.0.1"]]))).toEqual(want);
  });

  test("the table covers what matters: a waiting master is in etcd only, a waiting minion nowhere", () => {
    const row = (role: string, state: string) =>
      rows.find((r) => r.role === role && r.state === state && r.health === "Healthy")!.want;
    expect(row("masters", "InService")).toEqual({ masters: ["10.0.0.1"], minions: [], etcd: ["10.0.0.1"] });
    expect(row("masters", "Pending:Wait")).toEqual({ masters: [], minions: [], etcd: ["10.0.0.1"] });
    expect(row("masters", "Terminating")).toEqual({ masters: [], minions: [], etcd: [] });
    expect(row("minions", "Pending:Wait")).toEqual({ masters: [], minions: [], etcd: [] });
    expect(row("minions", "InService")).toEqual({ masters: [], minions: ["10.0.0.1"], etcd: [] });
  });

  test("a new group of three masters, all waiting at the launch hook: etcd lists the three, masters none", () => {
    const truth = truthOf(3, 2);
    for (const m of truth.groups[0]!.members) m.lifecycleState = "Pending:Wait";
    // Minions launching beside them never count as etcd peers.
    truth.groups[1]!.members[0]!.lifecycleState = "Pending:Wait";
    expect(desiredAddresses(truth.groups, truth.ips)).toEqual({
      masters: [],
      minions: ["10.0.2.2"],
      etcd: ["10.0.1.1", "10.0.1.2", "10.0.1.3"],
    });
  });

  test("a replacement: the new master waits, the old one terminates; the survivors and the new one are peers", () => {
    const truth = truthOf(3, 0);
    truth.groups[0]!.members[0]!.lifecycleState = "Terminating";
    truth.groups[0]!.members.push(member("i-new", "Pending:Wait"));
    truth.ips.set("i-new", "10.0.1.9");
    expect(desiredAddresses(truth.groups, truth.ips)).toEqual({
      masters: ["10.0.1.2", "10.0.1.3"],
      minions: [],
      etcd: ["10.0.1.2", "10.0.1.3", "10.0.1.9"],
    });
  });

  test("etcd's addresses are sorted numerically, de-duplicated and capped like the others", () => {
    const groups: ClusterGroup[] = [
      {
        name: "m",
        role: "masters",
        members: [
          member("a", "Pending:Wait"),
          member("b"),
          member("c", "Pending:Proceed"),
          member("d", "Pending"),
        ],
      },
    ];
    const ips = new Map([
      ["a", "10.0.0.10"],
      ["b", "10.0.0.9"],
      ["c", "10.0.0.10"],
      ["d", "9.0.0.1"],
    ]);
    expect(desiredAddresses(groups, ips).etcd).toEqual(["9.0.0.1", "10.0.0.9", "10.0.0.10"]);
    expect(desiredAddresses(groups, ips, 2).etcd).toEqual(["9.0.0.1", "10.0.0.9"]);
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

  test("three records per cluster: the two roles' and etcd's, in that order", () => {
    expect(RECORDS).toEqual(["masters", "minions", "etcd"]);
    expect(etcdRecordName("demo", "K8s.")).toBe(ETCD);
    expect(etcdRecordName("demo", "example.internal")).toBe("etcd.demo.example.internal.");
    expect(discoveryRecords("demo", "k8s")).toEqual([
      { key: "masters", name: MASTERS },
      { key: "minions", name: MINIONS },
      { key: "etcd", name: ETCD },
    ]);
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
  test("creates the three records, then a second run reads three times and writes nothing", async () => {
    const route53 = new Route53Model(prng(7));
    const truth = truthOf(3, 5);
    const first = await runAlone(route53, truth);
    expect(first.writes.map((w) => w.name)).toEqual([MASTERS, MINIONS, ETCD]);
    expect(route53.get(MASTERS)?.values).toEqual(["10.0.1.1", "10.0.1.2", "10.0.1.3"]);
    expect(route53.get(ETCD)?.values).toEqual(["10.0.1.1", "10.0.1.2", "10.0.1.3"]);
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
      [ETCD, 60, 30],
    ]);
    expect([route53.get(MASTERS)?.ttl, route53.get(MINIONS)?.ttl, route53.get(ETCD)?.ttl]).toEqual([
      30, 30, 30,
    ]);
    expect((await runAlone(route53, truth)).writes).toEqual([]);
  });

  test("masters waiting at the launch hook are in etcd only; as each goes InService, masters follows and etcd is not rewritten", async () => {
    const route53 = new Route53Model(prng(7));
    const truth = truthOf(3, 1);
    for (const m of truth.groups[0]!.members) m.lifecycleState = "Pending:Wait";
    const first = await runAlone(route53, truth);
    expect(first.writes.map((w) => w.name)).toEqual([MINIONS, ETCD]);
    expect(route53.get(MASTERS)).toBeUndefined();
    expect(route53.get(ETCD)?.values).toEqual(["10.0.1.1", "10.0.1.2", "10.0.1.3"]);
    // Idempotent: a second pass over the same truth changes nothing.
    const before = { ...route53.calls };
    expect((await runAlone(route53, truth)).writes).toEqual([]);
    expect(route53.calls.change).toBe(before.change);
    for (const [i, m] of truth.groups[0]!.members.entries()) {
      m.lifecycleState = "InService";
      const pass = await runAlone(route53, truth);
      expect(pass.writes.map((w) => w.name)).toEqual([MASTERS]);
      expect(route53.get(MASTERS)?.values).toEqual(expected(truth).masters);
      expect(route53.get(MASTERS)?.values).toHaveLength(i + 1);
    }
    expect(route53.get(ETCD)?.values).toEqual(["10.0.1.1", "10.0.1.2", "10.0.1.3"]);
  });

  test("a terminating master leaves both records; with no master alive, etcd follows the empty-group policy", async () => {
    const route53 = new Route53Model(prng(7));
    const truth = truthOf(2, 1);
    await runAlone(route53, truth);
    truth.groups[0]!.members[0]!.lifecycleState = "Terminating:Wait";
    await runAlone(route53, truth);
    expect(route53.get(MASTERS)?.values).toEqual(["10.0.1.2"]);
    expect(route53.get(ETCD)?.values).toEqual(["10.0.1.2"]);
    truth.groups[0]!.members[1]!.lifecycleState = "Terminated";
    await runAlone(route53, truth, { emptyGroup: "keep" });
    expect(route53.get(MASTERS)?.values).toEqual(["10.0.1.2"]);
    expect(route53.get(ETCD)?.values).toEqual(["10.0.1.2"]);
    const deleted = await runAlone(route53, truth);
    expect(deleted.writes).toEqual([
      { name: MASTERS, from: ["10.0.1.2"], to: null },
      { name: ETCD, from: ["10.0.1.2"], to: null },
    ]);
    expect([route53.get(MASTERS), route53.get(ETCD)]).toEqual([undefined, undefined]);
    expect(route53.get(MINIONS)?.values).toEqual(["10.0.2.1"]);
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
    // The masters group moves, so both records of its members do; minions stay confirmed.
    expect(lines.filter((l) => l.level === "error")).toEqual(
      [MASTERS, ETCD].map((record) => ({
        level: "error",
        msg: "record not reconciled",
        cluster: "demo",
        record,
        want: expect.any(Array),
        have: expect.any(Array),
        attempts: 0,
        error: "the truth kept changing: still different after 3 passes that wrote",
      })),
    );
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
  // Y wrote the Standby state (masters and etcd), then its confirming pass saw the truth and wrote it back.
  expect(result.writes.map((w) => [w.name, w.to?.length])).toEqual([
    [MASTERS, 2],
    [ETCD, 2],
    [MASTERS, 3],
    [ETCD, 3],
  ]);
  expect(route53.get(MASTERS)?.values).toEqual(expected(settled).masters);
  expect(route53.get(ETCD)?.values).toEqual(expected(settled).etcd);
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
        // Standby (out of every record) or Pending:Wait (in etcd alone, for a master) and back: the truth
        // returns to an earlier state (the A-B-A case).
        const flapping = group.members[0]!;
        const away = random() < 0.5 ? "Standby" : "Pending:Wait";
        flapping.lifecycleState = flapping.lifecycleState === "InService" ? away : "InService";
      } else {
        const id = `i-new-${nextIp}`;
        truth.ips.set(id, `10.0.3.${nextIp++}`);
        // Some launch into the hook's wait, as masters do.
        group.members.push(member(id, random() < 0.5 ? "Pending:Wait" : "InService"));
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
  etcd: route53.get(ETCD)?.values ?? [],
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
