/**
 * One reconciliation pass by pass, with scripted failures and a controlled clock and jitter: what it
 * writes, what it logs, how long it waits, when it gives up and with which message.
 */
import {
  batches,
  checkMaxValues,
  compareIPv4,
  reconcile,
  ReconcileFailed,
  RecordConflict,
  recordChanges,
  Rejected,
  Transient,
  type DiscoveryPorts,
  type RecordChange,
  type ReconcileOptions,
} from "../../src/discover/reconcile";
import {
  demoOptions,
  ETCD,
  immediate,
  MASTERS,
  MINIONS,
  modelPorts,
  prng,
  Route53Model,
  truthOf,
  type Truth,
} from "./model";

const options = demoOptions;

/**
 * Ports on the strict model whose writes and reads fail as scripted: `writes[i]` is thrown by the i-th
 * write (undefined: it goes through), `reads[i]` by the i-th record listing. Sleeps are recorded.
 */
function scripted(
  truth: () => Truth,
  script: { writes?: (Error | undefined)[]; reads?: (Error | undefined)[]; route53?: Route53Model } = {},
) {
  const route53 = script.route53 ?? new Route53Model(prng(1));
  const inner = modelPorts(immediate, route53, truth);
  const sleeps: number[] = [];
  const written: RecordChange[][] = [];
  let writes = 0;
  let reads = 0;
  const ports: DiscoveryPorts = {
    ...inner,
    async readRecords(zone) {
      const failure = script.reads?.[reads++];
      if (failure) throw failure;
      return inner.readRecords(zone);
    },
    async changeRecords(zone, changes) {
      const failure = script.writes?.[writes++];
      if (failure) throw failure;
      written.push(changes);
      return inner.changeRecords(zone, changes);
    },
    async sleep(ms) {
      sleeps.push(ms);
    },
  };
  return { ports, route53, sleeps, written };
}

function logged(extra: Partial<ReconcileOptions> = {}) {
  const lines: Record<string, unknown>[] = [];
  return { lines, options: { ...options, ...extra, log: (e: Record<string, unknown>) => lines.push(e) } };
}

async function failure(run: Promise<unknown>): Promise<ReconcileFailed> {
  const error = await run.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(error).toBeInstanceOf(ReconcileFailed);
  return error as ReconcileFailed;
}

let random: jest.SpyInstance;
beforeEach(() => {
  random = jest.spyOn(Math, "random").mockReturnValue(0.5);
});
afterEach(() => random.mockRestore());

describe("a clean run", () => {
  test("returns the desired addresses and one write per record, each logged at info", async () => {
    const truth = truthOf(2, 1);
    const { ports } = scripted(() => truth);
    const { lines, options: opts } = logged();
    const result = await reconcile(ports, opts);
    expect(result).toEqual({
      writes: [
        { name: MASTERS, from: null, to: ["10.0.1.1", "10.0.1.2"] },
        { name: MINIONS, from: null, to: ["10.0.2.1"] },
        { name: ETCD, from: null, to: ["10.0.1.1", "10.0.1.2"] },
      ],
      desired: { masters: ["10.0.1.1", "10.0.1.2"], minions: ["10.0.2.1"], etcd: ["10.0.1.1", "10.0.1.2"] },
      conflicts: 0,
      throttles: 0,
    });
    expect(lines).toEqual([
      {
        level: "info",
        msg: "record updated",
        cluster: "demo",
        name: MASTERS,
        from: null,
        to: ["10.0.1.1", "10.0.1.2"],
      },
      { level: "info", msg: "record updated", cluster: "demo", name: MINIONS, from: null, to: ["10.0.2.1"] },
      {
        level: "info",
        msg: "record updated",
        cluster: "demo",
        name: ETCD,
        from: null,
        to: ["10.0.1.1", "10.0.1.2"],
      },
    ]);
  });

  test("an emptied group's record is deleted (to: null, no TTLs even when the TTL differs)", async () => {
    const route53 = new Route53Model(prng(1));
    await reconcile(
      modelPorts(immediate, route53, () => truthOf(2, 1)),
      { ...options, ttl: 60 },
    );
    const result = await reconcile(
      modelPorts(immediate, route53, () => truthOf(2, 0)),
      options,
    );
    expect(result.writes[1]).toEqual({ name: MINIONS, from: ["10.0.2.1"], to: null });
    expect(result.writes[0]).toEqual({
      name: MASTERS,
      from: ["10.0.1.1", "10.0.1.2"],
      to: ["10.0.1.1", "10.0.1.2"],
      fromTtl: 60,
      toTtl: 30,
    });
    expect(route53.get(MINIONS)).toBeUndefined();
  });

  test("a changed record reports what it held; an unchanged TTL is not reported", async () => {
    const route53 = new Route53Model(prng(1));
    await reconcile(
      modelPorts(immediate, route53, () => truthOf(2, 1)),
      options,
    );
    const result = await reconcile(
      modelPorts(immediate, route53, () => truthOf(3, 1)),
      options,
    );
    expect(result.writes).toEqual([
      { name: MASTERS, from: ["10.0.1.1", "10.0.1.2"], to: ["10.0.1.1", "10.0.1.2", "10.0.1.3"] },
      { name: ETCD, from: ["10.0.1.1", "10.0.1.2"], to: ["10.0.1.1", "10.0.1.2", "10.0.1.3"] },
    ]);
  });
});

describe("conflicts and throttling: counted, backed off with full jitter, given up after maxAttempts", () => {
  test("one conflict: counted as a conflict, logged with the record and error, then written on the next pass", async () => {
    // Minions are written in the same pass: open until confirmed, but with no error to give as a reason.
    const truth = truthOf(1, 1);
    const { ports, sleeps, route53 } = scripted(() => truth, {
      writes: [new RecordConflict("values do not match")],
    });
    const { lines, options: opts } = logged({ baseDelayMs: 100 });
    const result = await reconcile(ports, opts);
    expect([result.conflicts, result.throttles]).toEqual([1, 0]);
    expect(route53.get(MASTERS)?.values).toEqual(["10.0.1.1"]);
    // Full jitter: random (0.5 here) times base * 2^failures in a row (1).
    expect(sleeps).toEqual([100]);
    expect(lines.filter((l) => l.level === "warn")).toEqual([
      {
        level: "warn",
        msg: "retrying",
        cluster: "demo",
        reason: `${MASTERS} RecordConflict: values do not match`,
        delayMs: 100,
      },
    ]);
  });

  test("a throttled write counts as a throttle; both records' errors are the reason of one back-off", async () => {
    const truth = truthOf(1, 1);
    const { ports, sleeps } = scripted(() => truth, {
      writes: [new Transient("Throttling: Rate exceeded"), new RecordConflict("already exists")],
    });
    const { lines, options: opts } = logged();
    const result = await reconcile(ports, opts);
    expect([result.conflicts, result.throttles]).toEqual([1, 1]);
    expect(sleeps).toEqual([200]); // the default base delay, 200 ms, times 2 times 0.5
    expect(lines.find((l) => l.level === "warn")?.reason).toBe(
      `${MASTERS} Transient: Throttling: Rate exceeded; ${MINIONS} RecordConflict: already exists`,
    );
  });

  test("the back-off doubles with each failed pass in a row, up to 10 s; by default a record gives up after 8 attempts", async () => {
    const truth = truthOf(1, 0);
    const { ports, sleeps } = scripted(() => truth, { writes: Array(20).fill(new Transient("Throttling")) });
    random.mockReturnValue(0.999);
    // Seven waits: none after the eighth attempt, which gives up. Both records of the master fail in
    // each pass (one back-off per pass, not per record).
    const error = await failure(reconcile(ports, { ...options, baseDelayMs: 1000 }));
    expect(sleeps.map(Math.round)).toEqual([1998, 3996, 7992, 9990, 9990, 9990, 9990]);
    expect(error.failures).toEqual(
      [MASTERS, ETCD].map((record) => ({
        record,
        want: ["10.0.1.1"],
        have: null,
        attempts: 8,
        error: "gave up after 8 attempts: Transient: Throttling",
      })),
    );
    expect(error.message).toBe(
      `${MASTERS}: gave up after 8 attempts: Transient: Throttling; ${ETCD}: gave up after 8 attempts: Transient: Throttling`,
    );
    expect(error.name).toBe("ReconcileFailed");
  });

  test("a pass without a setback resets the back-off", async () => {
    // Pass 1: masters conflict (1 in a row), etcd written. Pass 2: masters written, etcd confirmed.
    // Pass 3: the truth moved, masters conflict again: 1 in a row.
    let reads = 0;
    const { ports, sleeps } = scripted(() => (reads++ < 4 ? truthOf(1, 0) : truthOf(2, 0)), {
      writes: [new RecordConflict("a"), undefined, undefined, new RecordConflict("b")],
    });
    await reconcile(ports, { ...options, baseDelayMs: 100 });
    expect(sleeps).toEqual([100, 100]);
  });

  test("a transient read error counts against every open record, backs off with its message, then reads again", async () => {
    const truth = truthOf(1, 1);
    const { ports, sleeps } = scripted(() => truth, { reads: [new Transient("InternalFailure: HTTP 503")] });
    const { lines, options: opts } = logged();
    const result = await reconcile(ports, opts);
    expect([result.conflicts, result.throttles]).toEqual([0, 3]);
    expect(sleeps).toEqual([200]);
    expect(lines.find((l) => l.level === "warn")).toEqual({
      level: "warn",
      msg: "retrying",
      cluster: "demo",
      reason: "InternalFailure: HTTP 503",
      delayMs: 200,
    });
    expect(result.writes).toHaveLength(3);
  });

  test("giving up does not wait first: no back-off after the last attempt, on a write or on a read", async () => {
    const truth = truthOf(1, 0);
    const writes = scripted(() => truth, {
      writes: [new Transient("Throttling"), new Transient("Throttling")],
    });
    const { lines, options: opts } = logged({ maxAttempts: 1 });
    await failure(reconcile(writes.ports, opts));
    const reads = scripted(() => truth, { reads: [new Transient("Throttling")] });
    await failure(reconcile(reads.ports, opts));
    expect([writes.sleeps, reads.sleeps]).toEqual([[], []]);
    expect(lines.filter((l) => l.msg === "retrying")).toEqual([]);
  });

  test("a read error that is not transient fails every open record at once, naming the error", async () => {
    const truth = truthOf(1, 1);
    const { ports, sleeps, written } = scripted(() => truth, { reads: [new Error("AccessDenied")] });
    const error = await failure(reconcile(ports, options));
    expect(error.failures.map((f) => [f.record, f.error, f.attempts])).toEqual([
      [MASTERS, "read failed: Error: AccessDenied", 0],
      [MINIONS, "read failed: Error: AccessDenied", 0],
      [ETCD, "read failed: Error: AccessDenied", 0],
    ]);
    expect(error.message).toBe(
      `${MASTERS}: read failed: Error: AccessDenied; ${MINIONS}: read failed: Error: AccessDenied; ${ETCD}: read failed: Error: AccessDenied`,
    );
    expect([sleeps, written]).toEqual([[], []]);
  });

  test("a write error that is neither transient, a conflict nor a rejection fails that record without retrying", async () => {
    const truth = truthOf(1, 1);
    const { ports, sleeps, route53 } = scripted(() => truth, { writes: [new Error("AccessDenied")] });
    const error = await failure(reconcile(ports, options));
    expect(error.failures).toEqual([
      {
        record: MASTERS,
        want: ["10.0.1.1"],
        have: null,
        attempts: 0,
        error: "write failed: Error: AccessDenied",
      },
    ]);
    expect(sleeps).toEqual([]);
    expect(route53.get(MINIONS)?.values).toEqual(["10.0.2.1"]);
  });

  test("a rejection fails the record with Route 53's message, what it held and what it should hold", async () => {
    const route53 = new Route53Model(prng(1));
    await reconcile(
      modelPorts(immediate, route53, () => truthOf(1, 0)),
      options,
    );
    const { ports } = scripted(() => truthOf(2, 0), { route53, writes: [new Rejected("limit reached")] });
    const error = await failure(reconcile(ports, options));
    expect(error.failures).toEqual([
      {
        record: MASTERS,
        want: ["10.0.1.1", "10.0.1.2"],
        have: ["10.0.1.1"],
        attempts: 0,
        error: "Route 53 rejected the change: limit reached",
      },
    ]);
  });

  test("the error classes carry their names (the function reports them as its error type)", () => {
    expect(String(new RecordConflict("x"))).toBe("RecordConflict: x");
    expect(String(new Transient("x"))).toBe("Transient: x");
    expect(String(new Rejected("x"))).toBe("Rejected: x");
  });
});

test("a foreign record at our name: the failure says what we want and that we hold no record there", async () => {
  const route53 = new Route53Model(prng(1));
  route53.foreign.set(MASTERS, { name: MASTERS, type: "CNAME", ttl: 60, values: ["lb.example."] });
  const error = await failure(
    reconcile(
      modelPorts(immediate, route53, () => truthOf(1, 0)),
      options,
    ),
  );
  expect(error.failures).toEqual([
    {
      record: MASTERS,
      want: ["10.0.1.1"],
      have: null,
      attempts: 0,
      error: `a CNAME record exists at ${MASTERS}; remove it to let discovery manage the name`,
    },
  ]);
});

describe("the deadline (ports.now)", () => {
  test("already passed: nothing is read, every record fails after 0 attempts", async () => {
    const truth = truthOf(1, 1);
    const { ports, route53 } = scripted(() => truth);
    const error = await failure(reconcile({ ...ports, now: () => 1000 }, { ...options, deadline: 1000 }));
    expect(error.failures.map((f) => [f.record, f.error])).toEqual([
      [MASTERS, "deadline reached after 0 attempts"],
      [MINIONS, "deadline reached after 0 attempts"],
      [ETCD, "deadline reached after 0 attempts"],
    ]);
    expect(route53.calls).toEqual({ list: 0, change: 0 });
  });

  test("just before it: the pass runs", async () => {
    const truth = truthOf(1, 1);
    const { ports } = scripted(() => truth);
    const result = await reconcile({ ...ports, now: () => 999 }, { ...options, deadline: 1000 });
    expect(result.writes).toHaveLength(3);
  });

  test("without ports.now the deadline is on the wall clock", async () => {
    const truth = truthOf(1, 1);
    const { ports } = scripted(() => truth);
    delete ports.now;
    await expect(reconcile(ports, { ...options, deadline: Date.now() - 1 })).rejects.toThrow(
      /deadline reached/,
    );
    const result = await reconcile(ports, { ...options, deadline: Date.now() + 60_000 });
    expect(result.writes).toHaveLength(3);
  });

  test("a back-off never ends past it; the record then fails with its last error", async () => {
    let clock = 0;
    const truth = truthOf(1, 0);
    const { ports, sleeps } = scripted(() => truth, { writes: Array(20).fill(new Transient("Throttling")) });
    const timed = {
      ...ports,
      now: () => clock,
      async sleep(ms: number) {
        await ports.sleep(ms);
        clock += ms;
      },
    };
    const error = await failure(reconcile(timed, { ...options, baseDelayMs: 1000, deadline: 2500 }));
    // 1000 (0.5 of 2000), then 2000 capped to the 1500 left; at 2500 the deadline is reached.
    expect(sleeps).toEqual([1000, 1500]);
    expect(error.failures.map((f) => [f.record, f.error])).toEqual([
      [MASTERS, "deadline reached after 2 attempts: Transient: Throttling"],
      [ETCD, "deadline reached after 2 attempts: Transient: Throttling"],
    ]);
  });

  test("a back-off that starts past the deadline waits 0 ms", async () => {
    let clock = 0;
    const truth = truthOf(1, 0);
    const { ports, sleeps } = scripted(() => truth, { writes: [new Transient("Throttling")] });
    const late = {
      ...ports,
      now: () => clock,
      async changeRecords(zone: string, changes: RecordChange[]) {
        clock = 5000; // the write took that long
        return ports.changeRecords(zone, changes);
      },
    };
    await failure(reconcile(late, { ...options, deadline: 4000 }));
    expect(sleeps).toEqual([0]);
  });

  test("a record written after an error is not reported with that error when the deadline then ends the run", async () => {
    let clock = 0;
    let reads = 0;
    const { ports } = scripted(() => (reads++ < 4 ? truthOf(1, 0) : truthOf(2, 0)), {
      writes: [new RecordConflict("lost"), undefined, undefined],
    });
    const timed = {
      ...ports,
      now: () => clock,
      async changeRecords(zone: string, changes: RecordChange[]) {
        await ports.changeRecords(zone, changes);
        // The masters record's successful write is the last thing before the deadline (etcd's, in the
        // first pass, is not).
        if (changes[0]!.record.name === MASTERS) clock = 10_000;
      },
    };
    const error = await failure(reconcile(timed, { ...options, deadline: 5000 }));
    expect(error.failures.map((f) => f.error)).toEqual(["deadline reached after 1 attempts"]);
  });
});

describe("passes that wrote", () => {
  test("by default, a truth that moves on every read fails after 5 passes that wrote", async () => {
    let reads = 0;
    const { ports } = scripted(() => truthOf(1 + (Math.floor(reads++ / 2) % 2), 0));
    const error = await failure(reconcile(ports, options));
    expect(error.failures.map((f) => [f.record, f.error])).toEqual([
      [MASTERS, "the truth kept changing: still different after 5 passes that wrote"],
      [ETCD, "the truth kept changing: still different after 5 passes that wrote"],
    ]);
  });
});

describe("Route 53's batch limits", () => {
  test("maxValues: a whole number from 1 to 500; the refusal explains the limits", () => {
    expect(() => checkMaxValues(1)).not.toThrow();
    expect(() => checkMaxValues(500)).not.toThrow();
    for (const bad of [0, 501, 1.5, -1]) {
      expect(() => checkMaxValues(bad)).toThrow(
        `maxValues ${bad}: DELETE + CREATE of that many addresses must fit one Route 53 change batch (1000 elements, 32000 characters): at most 500`,
      );
    }
  });

  test("reconcile refuses a maxValues that does not fit before reading anything", async () => {
    const { ports, route53 } = scripted(() => truthOf(1, 1));
    await expect(reconcile(ports, { ...options, maxValues: 501 })).rejects.toThrow(/at most 500/);
    expect(route53.calls.list).toBe(0);
  });

  test("records are capped at maxValues addresses, the lowest kept", async () => {
    const { ports, route53 } = scripted(() => truthOf(3, 1));
    await reconcile(ports, { ...options, maxValues: 2 });
    expect(route53.get(MASTERS)?.values).toEqual(["10.0.1.1", "10.0.1.2"]);
  });

  const record = (values: string[]) => ({ name: MASTERS, type: "A", ttl: 30, values });
  const change = (action: "CREATE" | "DELETE", values: string[]): RecordChange => ({
    action,
    record: record(values),
  });

  test("1,000 elements in one batch; 1,001 split into DELETE then CREATE", () => {
    const ips = (n: number) => Array.from({ length: n }, (_, i) => `10.0.${i >> 8}.${i & 255}`);
    const one = [change("DELETE", ips(500)), change("CREATE", ips(500))];
    expect(batches(one)).toEqual([one]);
    const two = [change("DELETE", ips(501)), change("CREATE", ips(500))];
    expect(batches(two)).toEqual([[two[0]], [two[1]]]);
  });

  test("32,000 value characters in one batch; 32,001 split", () => {
    const long = (n: number) => ["x".repeat(n)];
    const one = [change("DELETE", long(16_000)), change("CREATE", long(16_000))];
    expect(batches(one)).toEqual([one]);
    const two = [change("DELETE", long(16_001)), change("CREATE", long(16_000))];
    expect(batches(two)).toEqual([[two[0]], [two[1]]]);
    // Only the values count, not anything between them: four values of 8,000 still fit.
    const values = (n: number) => ["a".repeat(n), "b".repeat(n)];
    const many = [change("DELETE", values(8_000)), change("CREATE", values(8_000))];
    expect(batches(many)).toEqual([many]);
  });
});

describe("record changes and address order", () => {
  const current = { name: MASTERS, type: "A", ttl: 30, values: ["10.0.0.1"] };
  test("one address more or less is a change, however the values compare as prefixes", () => {
    expect(recordChanges(MASTERS, current, ["10.0.0.1", "10.0.0.2"], options)).toHaveLength(2);
    expect(
      recordChanges(MASTERS, { ...current, values: ["10.0.0.1", "10.0.0.2"] }, ["10.0.0.1"], options),
    ).toHaveLength(2);
    expect(recordChanges(MASTERS, current, ["10.0.0.3"], options)).toHaveLength(2);
  });

  test("a new record is one CREATE", () => {
    expect(recordChanges(MASTERS, undefined, ["10.0.0.1"], options)).toEqual([
      { action: "CREATE", record: { name: MASTERS, type: "A", ttl: 30, values: ["10.0.0.1"] } },
    ]);
  });

  test("IPv4 addresses compare by number, octet by octet", () => {
    const sorted = ["10.0.0.10", "9.255.255.255", "10.0.1.0", "10.0.0.9", "10.1.0.0", "10.0.0.255"].sort(
      compareIPv4,
    );
    expect(sorted).toEqual(["9.255.255.255", "10.0.0.9", "10.0.0.10", "10.0.0.255", "10.0.1.0", "10.1.0.0"]);
    expect(compareIPv4("10.0.0.1", "10.0.0.1")).toBe(0);
    expect(Math.sign(compareIPv4("10.0.0.2", "10.0.0.1"))).toBe(1);
    expect(Math.sign(compareIPv4("10.0.0.1", "10.0.0.2"))).toBe(-1);
  });
});
