import { spawnSync } from "node:child_process";
import { join } from "node:path";
import { repoRoot } from "../helpers";

// etcd-decide.jq, the one decision of the node's etcd-member agent, as a pure function: what a master saw
// in, what it does next out. The agent around it and the real etcd are tested in membership.test.ts.
// scripts/mutate-jq.mjs points this at each mutant of the program.
const program = process.env.KUBEBAKE_ETCD_DECIDE ?? join(repoRoot, "src", "node", "etcd-decide.jq");

type Member = { id: string; name: string; ip: string; learner: boolean; started: boolean; healthy: boolean };
type Seen = {
  self: { name: string; ip: string };
  expected: number;
  dns: string[];
  hasData: boolean;
  peers: Record<string, "cluster" | "none" | "unreachable">;
  clusters: string[];
  members: Member[];
  snapshots: "unconfigured" | "unreadable" | string[];
  requested: string | null;
  refused: string[];
};
type Decision = {
  action: string;
  reason: string;
  id?: string;
  name?: string;
  initialCluster?: string;
  snapshot?: string;
};

function decide(seen: Partial<Seen>): Decision {
  const input: Seen = {
    self: { name: "m2", ip: "10.0.0.2" },
    expected: 3,
    dns: [],
    hasData: false,
    peers: {},
    clusters: [],
    members: [],
    snapshots: "unconfigured",
    requested: null,
    refused: [],
    ...seen,
  };
  const result = spawnSync("jq", ["-c", "-f", program], { input: JSON.stringify(input), encoding: "utf8" });
  if (result.status !== 0) throw new Error(`jq: ${result.stderr}`);
  return JSON.parse(result.stdout) as Decision;
}

const member = (n: number, over: Partial<Member> = {}): Member => ({
  id: `id${n}`,
  name: `m${n}`,
  ip: `10.0.0.${n}`,
  learner: false,
  started: true,
  healthy: true,
  ...over,
});
const three = ["10.0.0.1", "10.0.0.2", "10.0.0.3"];
const found = { clusters: ["c1"], peers: { "10.0.0.1": "cluster", "10.0.0.3": "cluster" } as const };

describe("bootstrap: no cluster anywhere", () => {
  const none = { "10.0.0.1": "none", "10.0.0.3": "none" } as const;

  test("the lowest address of the full etcd record seeds, once every other master answers without a cluster", () => {
    expect(
      decide({
        self: { name: "m1", ip: "10.0.0.1" },
        dns: three,
        peers: { "10.0.0.2": "none", "10.0.0.3": "none" },
      }),
    ).toMatchObject({ action: "seed" });
  });

  test("any other master waits for the seed, naming it", () => {
    expect(decide({ dns: three, peers: none })).toEqual({
      action: "wait",
      reason: "no cluster yet; the seed is 10.0.0.1, the lowest address",
    });
  });

  test("every octet counts, the first most", () => {
    const seedOf = (dns: string[]) =>
      decide({
        dns,
        peers: Object.fromEntries(dns.slice(1).map((ip) => [ip, "none"])),
        self: { name: "x", ip: dns[0]! },
      }).reason;
    expect(seedOf(["10.1.0.1", "10.0.2.0", "9.255.0.1"])).toContain("the seed is 9.255.0.1");
    expect(seedOf(["10.1.0.1", "10.0.2.0", "10.0.1.255"])).toContain("the seed is 10.0.1.255");
    expect(seedOf(["10.1.0.1", "10.0.2.0", "10.2.0.0"])).toContain("the seed is 10.0.2.0");
  });

  test("addresses compare as numbers, not as text (10.0.0.9 is below 10.0.0.10)", () => {
    const dns = ["10.0.0.10", "10.0.0.9", "10.0.0.11"];
    const peers = { "10.0.0.10": "none", "10.0.0.11": "none" } as const;
    expect(decide({ self: { name: "m9", ip: "10.0.0.9" }, dns, peers }).action).toBe("seed");
    expect(
      decide({
        self: { name: "m10", ip: "10.0.0.10" },
        dns,
        peers: { "10.0.0.9": "none", "10.0.0.11": "none" },
      }).reason,
    ).toContain("the seed is 10.0.0.9");
  });

  test("no seed while the record lacks this master or holds fewer masters than the group", () => {
    const self = { name: "m1", ip: "10.0.0.1" };
    expect(
      decide({ self, dns: ["10.0.0.2", "10.0.0.3"], peers: { "10.0.0.2": "none", "10.0.0.3": "none" } }),
    ).toEqual({
      action: "wait",
      reason: "no cluster yet, and this master is not in the etcd record yet",
    });
    expect(decide({ self, dns: ["10.0.0.1", "10.0.0.2"], peers: { "10.0.0.2": "none" } })).toEqual({
      action: "wait",
      reason: "no cluster yet, and 2 of 3 masters are in the etcd record",
    });
  });

  test("no seed while another master cannot be reached: it may hide a running cluster (a partition)", () => {
    const self = { name: "m1", ip: "10.0.0.1" };
    expect(decide({ self, dns: three, peers: { "10.0.0.2": "none", "10.0.0.3": "unreachable" } })).toEqual({
      action: "wait",
      reason:
        "no cluster answers, but 10.0.0.3 cannot be reached: a partition or a master still booting could hide a running cluster",
    });
    // not asked yet counts as no answer
    expect(decide({ self, dns: three, peers: { "10.0.0.2": "none" } })).toEqual({
      action: "wait",
      reason: "no answer yet from 10.0.0.3",
    });
  });

  test("one master: seeds without a record (a single master needs no peers), but not past an unreachable or lower address", () => {
    const self = { name: "m1", ip: "10.0.0.5" };
    expect(decide({ self, expected: 1, dns: [] })).toEqual({
      action: "seed",
      reason: "no cluster anywhere, and no other master in the record of a one-master group",
    });
    expect(decide({ self, expected: 1, dns: ["10.0.0.5"] }).action).toBe("seed");
    expect(
      decide({ self, expected: 1, dns: ["10.0.0.4"], peers: { "10.0.0.4": "unreachable" } }).action,
    ).toBe("wait");
    expect(decide({ self, expected: 1, dns: ["10.0.0.6"], peers: { "10.0.0.6": "none" } }).action).toBe(
      "seed",
    );
    // two new masters of a one-master group (a surge): still one seed, the lowest
    expect(decide({ self, expected: 1, dns: ["10.0.0.4"], peers: { "10.0.0.4": "none" } }).action).toBe(
      "wait",
    );
  });
});

describe("a running cluster", () => {
  test("a new master with no record of its own joins as a learner", () => {
    expect(decide({ ...found, dns: three, members: [member(1), member(3)] })).toEqual({
      action: "add-learner",
      reason: "cluster c1 has 2 voters, all healthy or still masters of the group; joining as a learner",
    });
  });

  test("added but not started: another unstarted member is no part of the initial cluster", () => {
    const members = [
      member(1),
      member(2, { name: "", started: false, learner: true, healthy: false }),
      member(4, { name: "", started: false, healthy: false }),
    ];
    expect(decide({ ...found, dns: [...three, "10.0.0.4"], members }).initialCluster).toBe(
      "m1=https://10.0.0.1:2380,m2=https://10.0.0.2:2380",
    );
  });

  test("added but not started: starts with every started member and itself as the initial cluster", () => {
    const members = [
      member(1),
      member(2, { name: "", started: false, learner: true, healthy: false }),
      member(3),
    ];
    expect(decide({ ...found, dns: three, members })).toEqual({
      action: "start-added",
      id: undefined,
      initialCluster: "m1=https://10.0.0.1:2380,m3=https://10.0.0.3:2380,m2=https://10.0.0.2:2380",
      reason: "added to cluster c1 as member id2; starting to catch up",
    });
  });

  test("a member that left the group and does not answer is removed before joining, one at a time", () => {
    const members = [member(1), member(3), member(4, { healthy: false }), member(5, { healthy: false })];
    const dns = ["10.0.0.1", "10.0.0.2", "10.0.0.3"];
    expect(decide({ ...found, dns, members, expected: 5 })).toEqual({
      action: "remove",
      id: "id4",
      name: "m4",
      reason: "member m4 (10.0.0.4) is no healthy master of the group and does not answer",
    });
  });

  test("never removes a member that answers, even when the record does not list it (the record may lag)", () => {
    const members = [member(1), member(3), member(4)];
    expect(decide({ ...found, dns: three, members }).action).toBe("add-learner");
  });

  test("never removes a silent member the record still lists (its own agent is at work)", () => {
    const members = [member(1), member(3, { healthy: false })];
    expect(decide({ ...found, dns: three, members }).action).toBe("add-learner");
  });

  test("no removal that would leave the voters without a healthy quorum", () => {
    // 3 voters: 1 healthy, 2 gone. Removing one leaves 2 voters needing 2 healthy.
    const members = [member(1), member(4, { healthy: false }), member(5, { healthy: false })];
    expect(decide({ ...found, dns: three, members })).toEqual({
      action: "wait",
      reason: "member m4 (10.0.0.4) is gone, but removing it would leave 1 healthy of 2 voters",
    });
    // 5 voters, 3 healthy, 2 gone: removing one leaves 4 voters needing 3.
    const five = [
      member(1),
      member(3),
      member(6),
      member(4, { healthy: false }),
      member(5, { healthy: false }),
    ];
    expect(decide({ ...found, dns: [...three, "10.0.0.6"], members: five, expected: 5 }).action).toBe(
      "remove",
    );
  });

  test("a gone learner goes whatever the quorum (learners do not vote)", () => {
    const members = [member(1), member(4, { learner: true, healthy: false }), member(5, { healthy: false })];
    expect(decide({ ...found, dns: three, members })).toMatchObject({ action: "remove", id: "id4" });
  });

  test("an unstarted member whose master left the group is removed (a join that never finished)", () => {
    const members = [
      member(1),
      member(3),
      member(7, { name: "", started: false, learner: true, healthy: false }),
    ];
    expect(decide({ ...found, dns: three, members })).toMatchObject({ action: "remove", id: "id7" });
  });

  test("waits while another master of the group is joining: one learner at a time", () => {
    const joining = member(4, { name: "", started: false, learner: true, healthy: false });
    expect(
      decide({ ...found, dns: [...three, "10.0.0.4"], members: [member(1), member(3), joining] }),
    ).toEqual({
      action: "wait",
      reason: "the master at 10.0.0.4 is joining; one learner at a time",
    });
    const learning = member(4, { learner: true });
    expect(decide({ ...found, dns: three, members: [member(1), member(3), learning] })).toEqual({
      action: "wait",
      reason: "the master at 10.0.0.4 is joining; one learner at a time",
    });
  });

  test("its own old member, when this master has no data (a new disk, the same address), is removed first", () => {
    expect(
      decide({ ...found, dns: three, members: [member(1), member(2, { healthy: false }), member(3)] }),
    ).toEqual({
      action: "remove",
      id: "id2",
      name: "m2",
      reason: "this master's old member id2 has no data here (a new disk); removing it to join afresh",
    });
    // four voters, two healthy: removing this master's old one leaves three, two of them healthy
    const four = [member(1), member(2, { healthy: false }), member(3), member(4, { healthy: false })];
    expect(decide({ ...found, dns: [...three, "10.0.0.4"], members: four }).action).toBe("remove");
    // …unless that would cost the quorum
    const members = [member(1, { healthy: false }), member(2, { healthy: false }), member(3)];
    expect(decide({ ...found, dns: three, members }).action).toBe("wait");
  });

  test("two different clusters answering: no action at all, an operator must look", () => {
    expect(decide({ ...found, clusters: ["c1", "c2"], dns: three, members: [member(1)] })).toEqual({
      action: "wait",
      reason:
        "the peers serve 2 different clusters (c1, c2); acting could join the wrong one, an operator must look",
    });
    expect(decide({ ...found, clusters: ["c1", "c2"], hasData: true, dns: three }).action).toBe("wait");
  });
});

describe("a master with data", () => {
  test("still a member: starts with its data", () => {
    expect(
      decide({
        ...found,
        hasData: true,
        dns: three,
        members: [member(1), member(2, { healthy: false }), member(3)],
      }),
    ).toEqual({
      action: "start-data",
      reason: "still member id2 of cluster c1",
    });
  });

  test("no peer answers: starts with its data (etcd itself waits for a quorum; it cannot form a new cluster)", () => {
    expect(
      decide({ hasData: true, dns: three, peers: { "10.0.0.1": "unreachable", "10.0.0.3": "none" } }).action,
    ).toBe("start-data");
  });

  test("removed from the cluster while away: moves its old data aside rather than split the cluster", () => {
    const decision = decide({
      ...found,
      hasData: true,
      dns: three,
      members: [member(1), member(3), member(4)],
    });
    expect(decision.action).toBe("discard-data");
    // listed again but only as a fresh, unstarted member: the old data is still not that member's
    const members = [member(1), member(3), member(2, { id: "new", name: "", started: false, learner: true })];
    expect(decide({ ...found, hasData: true, dns: three, members }).action).toBe("discard-data");
  });
});

describe("every master lost: a new cluster starts from the newest good snapshot", () => {
  // The seed's situation: the lowest address of the full record, every other master answers without a cluster.
  const seed = {
    self: { name: "m1", ip: "10.0.0.1" },
    dns: three,
    peers: { "10.0.0.2": "none", "10.0.0.3": "none" } as const,
  };
  const stored = ["20261201T030000Z-r900.db", "20261201T020000Z-r800.db", "20261201T010000Z-r700.db"];

  test("the seed restores the newest snapshot instead of starting empty", () => {
    expect(decide({ ...seed, snapshots: stored })).toMatchObject({
      action: "restore",
      snapshot: "20261201T030000Z-r900.db",
      reason: expect.stringContaining("restoring the newest snapshot 20261201T030000Z-r900.db"),
    });
  });

  test("a one-master group restores too", () => {
    expect(
      decide({ self: { name: "m1", ip: "10.0.0.1" }, expected: 1, dns: ["10.0.0.1"], snapshots: stored }),
    ).toMatchObject({ action: "restore", snapshot: "20261201T030000Z-r900.db" });
  });

  test("an empty store, or none configured, seeds an empty cluster", () => {
    expect(decide({ ...seed, snapshots: [] })).toMatchObject({
      action: "seed",
      reason: expect.stringContaining("the store holds no snapshot"),
    });
    expect(decide({ ...seed, snapshots: "unconfigured" })).toMatchObject({ action: "seed" });
  });

  test("a store that cannot be read makes the seed wait: an empty cluster could hide the data", () => {
    expect(decide({ ...seed, snapshots: "unreadable" })).toMatchObject({
      action: "wait",
      reason: expect.stringContaining("the snapshot store cannot be read"),
    });
  });

  test("a snapshot refused by the integrity check is skipped for the next newest, and the reason names it", () => {
    expect(decide({ ...seed, snapshots: stored, refused: ["20261201T030000Z-r900.db"] })).toMatchObject({
      action: "restore",
      snapshot: "20261201T020000Z-r800.db",
      reason: expect.stringContaining("(refused: 20261201T030000Z-r900.db)"),
    });
  });

  test("when every snapshot is refused, nothing starts: never an empty cluster over lost data", () => {
    expect(decide({ ...seed, snapshots: stored, refused: stored })).toMatchObject({
      action: "wait",
      reason: expect.stringContaining("every snapshot in the store failed its integrity check"),
    });
  });

  test("a requested snapshot wins over the newest; missing or refused, the seed waits and says why", () => {
    const requested = "20261201T010000Z-r700.db";
    expect(decide({ ...seed, snapshots: stored, requested })).toMatchObject({
      action: "restore",
      snapshot: requested,
      reason: expect.stringContaining("as asked"),
    });
    expect(decide({ ...seed, snapshots: stored, requested: "nope.db" })).toMatchObject({
      action: "wait",
      reason: expect.stringContaining("snapshot nope.db was asked for, but the store has no such snapshot"),
    });
    expect(decide({ ...seed, snapshots: stored, requested, refused: [requested] })).toMatchObject({
      action: "wait",
      reason: expect.stringContaining(
        `snapshot ${requested} was asked for, but it failed its integrity check`,
      ),
    });
    expect(decide({ ...seed, snapshots: [], requested })).toMatchObject({ action: "wait" });
    expect(decide({ ...seed, snapshots: "unreadable", requested })).toMatchObject({ action: "wait" });
  });

  test("only the seed restores: the others wait for it, and a master with data starts with its data", () => {
    expect(
      decide({
        ...seed,
        self: { name: "m2", ip: "10.0.0.2" },
        peers: { "10.0.0.1": "none", "10.0.0.3": "none" },
        snapshots: stored,
      }),
    ).toMatchObject({
      action: "wait",
      reason: expect.stringContaining("the seed is 10.0.0.1"),
    });
    expect(decide({ ...seed, hasData: true, snapshots: stored })).toMatchObject({ action: "start-data" });
  });
});
