import { createHash } from "node:crypto";
import { mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { repoRoot, tempDir } from "../helpers";
import { Net, until, type Master } from "./net";

// One etcd cluster across the masters group, with the real etcd and etcdctl, each master in its own network
// namespace, a real DNS server for the etcd record, and the node's etcd-member run as its unit runs it.
// A writer puts keys without pause through the replacement scenarios; every acknowledged key must survive.
const asRoot = process.getuid?.() === 0 ? describe : describe.skip;
jest.setTimeout(15 * 60_000);

const work = tempDir("etcd");
const BOOTSTRAP_RUNS = Number(process.env.KUBEBAKE_ETCD_BOOTSTRAP_RUNS ?? 50);
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
// Figures for bench/etcd.mjs: how long a run of three takes to vote, how long a replacement takes to vote.
const figures: { bootstrapSeconds: number[]; replacementSeconds: number[]; restoreSeconds: number[] } = {
  bootstrapSeconds: [],
  replacementSeconds: [],
  restoreSeconds: [],
};
const sha256 = (data: Buffer) => createHash("sha256").update(data).digest("hex");

/** The one cluster every given master answers for, with all of them as voters; else undefined. */
async function oneClusterOf(masters: Master[]) {
  const views = await Promise.all(masters.map((m) => m.view()));
  if (views.some((v) => v === undefined)) return undefined;
  const clusters = new Set(views.map((v) => v!.cluster));
  if (clusters.size !== 1) return undefined;
  const members = views[0]!.members;
  const wanted = masters.map((m) => m.ip).sort();
  const voters = members.filter((m) => !m.learner && m.name !== "").map((m) => m.peerIp);
  if (members.length !== masters.length || voters.sort().join() !== wanted.join()) return undefined;
  return { cluster: views[0]!.cluster, members };
}

const describeViews = (masters: Master[]) => async () =>
  (
    await Promise.all(
      masters.map(
        async (m) =>
          `${m.name} (${m.ip}): ${JSON.stringify(await m.view())}\n${m.journalText().split("\n").slice(-12).join("\n")}`,
      ),
    )
  ).join("\n\n");

asRoot("etcd membership across the masters group", () => {
  let net: Net;
  beforeAll(async () => {
    net = new Net(work);
    await net.start();
    await net.startStore();
  });
  afterAll(async () => {
    await net?.stop();
    mkdirSync(join(repoRoot, "reports"), { recursive: true });
    writeFileSync(join(repoRoot, "reports", "etcd-times.json"), JSON.stringify(figures, null, 2) + "\n");
  });

  test(`three masters starting at once, ${BOOTSTRAP_RUNS} times with random delays and record timing, always form ONE cluster of three voters`, async () => {
    // Trios of masters of their own clusters side by side (an empty etcd is light), each run after run.
    const trios = Math.min(5, BOOTSTRAP_RUNS);
    const seeds: string[][] = [];
    await Promise.all(
      Array.from({ length: trios }, async (_, t) => {
        const cluster = `boot${t}`;
        const masters = [1, 2, 3].map((i) => net.master(20 + 10 * t + i, { retryMs: 200, cluster }));
        for (let run = t + 1; run <= BOOTSTRAP_RUNS; run += trios) {
          net.publish([], cluster);
          const started = Date.now();
          // Each master boots after a random delay; the reconciler publishes each after another random delay.
          const timers = masters.flatMap((m) => [
            setTimeout(() => m.start(), Math.random() * 1500),
            setTimeout(() => net.publish([...net.published(cluster), m.ip], cluster), Math.random() * 2500),
          ]);
          try {
            await until(
              `run ${run}: one cluster of three voters`,
              () => oneClusterOf(masters),
              90_000,
              describeViews(masters),
            );
          } finally {
            timers.forEach(clearTimeout);
          }
          figures.bootstrapSeconds.push((Date.now() - started) / 1000);
          seeds.push(masters.filter((m) => /decision: seed:/.test(m.journalText())).map((m) => m.ip));
          await Promise.all(masters.map((m) => m.stop()));
          for (const m of masters) {
            m.wipe();
            m.resetJournal(`run${run}`);
          }
        }
      }),
    );
    // Exactly one seed per run, and it is always the trio's lowest address.
    expect(seeds).toHaveLength(BOOTSTRAP_RUNS);
    for (const seed of seeds) expect(seed).toEqual([expect.stringMatching(/\.[3-9]1$/)]);
  });

  describe("a running cluster of three under a writer", () => {
    let masters: Master[];
    let writer: ReturnType<Net["writer"]>;
    const endpoints = () => net.masters.map((m) => m.endpoint);

    beforeAll(async () => {
      for (const m of net.masters) await m.stop();
      masters = [4, 5, 6].map((n) => net.master(n, { store: true }));
      net.publish(masters.map((m) => m.ip));
      masters.forEach((m) => m.start());
      await until(
        "one cluster of three voters",
        () => oneClusterOf(masters),
        120_000,
        describeViews(masters),
      );
      writer = net.writer(endpoints);
      await sleep(2000);
    });

    afterAll(async () => {
      await writer?.stop();
    });

    test("a master killed with its disk: the replacement (a new address) removes the dead member, joins as a learner, is promoted; no acknowledged write is lost", async () => {
      const [dead, ...alive] = masters as [Master, Master, Master];
      await dead.stop();
      dead.wipe();
      const replacement = net.master(7, { store: true });
      net.publish([...alive.map((m) => m.ip), replacement.ip]);
      const started = Date.now();
      replacement.start();
      const now = [...alive, replacement];
      const cluster = await until("three voters again", () => oneClusterOf(now), 120_000, describeViews(now));
      const seconds = (Date.now() - started) / 1000;
      expect(cluster.members.map((m) => m.peerIp)).not.toContain(dead.ip);
      const journal = replacement.journalText();
      expect(journal).toMatch(
        new RegExp(
          `decision: remove: member ${dead.name} \\(${dead.ip.replace(/\./g, "\\.")}\\) is no healthy master of the group and does not answer`,
        ),
      );
      expect(journal).toMatch(/decision: add-learner:/);
      expect(journal).toMatch(/decision: promote: learner \w+ has caught up; promoted to voter/);
      expect(journal).not.toMatch(/decision: seed:/);
      // Before its first membership change, a snapshot through a healthy voter.
      expect(journal).toMatch(
        /snapshot: \d{8}T\d{6}Z-r\d+\.db \(\d+ bytes, before a membership change\) stored in s3:/,
      );
      await sleep(1000);
      expect(writer.acked.length).toBeGreaterThan(20);
      expect(writer.lost(now.map((m) => m.endpoint))).toEqual([]);
      masters = now;
      figures.replacementSeconds.push(seconds);
    });

    test("rolling replacement of all three, one at a time, under the writer: never a second cluster, nothing lost", async () => {
      for (const n of [8, 9, 10]) {
        const [old, ...rest] = masters as [Master, Master, Master];
        await old.stop();
        old.wipe();
        const next = net.master(n, { store: true });
        net.publish([...rest.map((m) => m.ip), next.ip]);
        const started = Date.now();
        next.start();
        masters = [...rest, next];
        await until(
          `voters after replacing ${old.name}`,
          () => oneClusterOf(masters),
          120_000,
          describeViews(masters),
        );
        figures.replacementSeconds.push((Date.now() - started) / 1000);
        const acked = writer.acked.length;
        await until("the writer goes on", () => (writer.acked.length > acked + 5 ? true : undefined), 30_000);
      }
      expect(writer.lost(masters.map((m) => m.endpoint))).toEqual([]);
    });

    test("a joining master cut off from the others never seeds a cluster of its own; once back, it joins the one cluster", async () => {
      // The record lists the new master (InService) while a partition hides the others from it.
      const [old, ...rest] = masters as [Master, Master, Master];
      await old.stop();
      old.wipe();
      const cut = net.master(11, { store: true });
      cut.plug();
      const others = net.masters.filter((m) => m !== cut).map((m) => m.ip);
      cut.partition(others, true);
      net.publish([...rest.map((m) => m.ip), cut.ip]);
      cut.start();
      masters = [...rest, cut];
      await until(
        "the cut master's decision",
        () =>
          /decision: wait: no cluster answers, but .* cannot be reached/.test(cut.journalText())
            ? true
            : undefined,
        60_000,
        async () => cut.journalText(),
      );
      await sleep(5000); // and it keeps waiting
      expect(cut.etcdEnvWritten()).toBe(false);
      expect(cut.journalText()).not.toMatch(/decision: seed/);
      cut.partition(others, false);
      await until("the cut master joins", () => oneClusterOf(masters), 120_000, describeViews(masters));
      expect(writer.lost(masters.map((m) => m.endpoint))).toEqual([]);
    });

    test("an old master returning with stale data after it was replaced moves its data aside and rejoins: never a second cluster", async () => {
      const [stale, ...rest] = masters as [Master, Master, Master];
      await stale.stop(); // keeps its data folder
      const replacement = net.master(12, { store: true });
      net.publish([...rest.map((m) => m.ip), replacement.ip]);
      replacement.start();
      const now = [...rest, replacement];
      await until("replaced", () => oneClusterOf(now), 120_000, describeViews(now));
      // The old instance comes back (same address, same disk) while the group still lists it.
      net.publish([...now.map((m) => m.ip), stale.ip]);
      stale.start();
      const four = [...now, stale];
      const cluster = await until(
        "one cluster with the returned master in it",
        () => oneClusterOf(four),
        120_000,
        describeViews(four),
      );
      expect(stale.journalText()).toMatch(/decision: discard-data: cluster \w+ no longer lists this master/);
      expect(stale.setAside()).toEqual([expect.stringMatching(/^data\.removed-\d{8}T\d{6}Z\/member$/)]);
      const views = await Promise.all(four.map((m) => m.view()));
      expect(new Set(views.map((v) => v?.cluster))).toEqual(new Set([cluster.cluster]));
      expect(writer.lost(four.map((m) => m.endpoint))).toEqual([]);
      masters = four;
    });

    test("every master lost at once: the new masters restore the newest snapshot that passes its integrity check, refusing corrupt ones, and the data is the snapshot's", async () => {
      await writer.stop();
      // The hourly timer fires on every master; only the leader stores a snapshot.
      const before = net.storedSnapshots();
      expect(await Promise.all(masters.map((m) => m.snapshot()))).toEqual(masters.map(() => 0));
      const taken = net.storedSnapshots().filter((name) => !before.includes(name));
      expect(taken).toEqual([expect.stringMatching(/^\d{8}T\d{6}Z-r\d+\.db$/)]);
      const said = masters.map((m) => m.journalText());
      expect(
        said.filter((j) => /snapshot: \S+ \(\d+ bytes, scheduled\) stored in s3:\/\//.test(j)),
      ).toHaveLength(1);
      expect(said.filter((j) => /not the leader: the leader stores the snapshot/.test(j))).toHaveLength(
        masters.length - 1,
      );
      // Written after the snapshot: lost with the masters, as a restore means.
      const alive = masters.map((m) => m.endpoint);
      expect(net.etcdctl(alive, ["put", "/after-snapshot", "x"]).status).toBe(0);
      // Two newer copies that must be refused: bytes that differ from the digest the store recorded, and a
      // recorded digest that matches bytes whose own etcd hash does not.
      const good = net.storeGet(taken[0]!);
      const corrupt = Buffer.from(good);
      corrupt[Math.floor(corrupt.length / 2)] ^= 0xff;
      const mismatched = "29991231T000000Z-r1.db";
      const badHash = "29991231T000001Z-r1.db";
      net.storePut(mismatched, corrupt, sha256(good));
      net.storePut(badHash, corrupt, sha256(corrupt));

      for (const m of masters) await m.stop();
      for (const m of masters) m.wipe();
      net.publish([]);
      const fresh = [13, 14, 15].map((n) => net.master(n, { store: true }));
      net.publish(fresh.map((m) => m.ip));
      const started = Date.now();
      fresh.forEach((m) => m.start());
      await until(
        "one restored cluster of three voters",
        () => oneClusterOf(fresh),
        180_000,
        describeViews(fresh),
      );
      figures.restoreSeconds.push((Date.now() - started) / 1000);

      const [seed, ...others] = fresh as [Master, Master, Master];
      const journal = seed.journalText();
      expect(journal).toContain(
        `snapshot ${badHash} failed its integrity check and is refused: etcdutl refused it`,
      );
      expect(journal).toContain(
        `snapshot ${mismatched} failed its integrity check and is refused: its SHA-256 is ${sha256(corrupt)}, the store recorded ${sha256(good)}`,
      );
      expect(journal).toContain(
        `decision: restore: no cluster anywhere, every other master answers without one, and this master has the lowest address; restoring the newest snapshot ${taken[0]} (refused: ${badHash}, ${mismatched})`,
      );
      for (const m of others) expect(m.journalText()).not.toMatch(/decision: (seed|restore):/);
      // The data is the snapshot's: every key the writer had acknowledged, and not the key written after it.
      const restored = fresh.map((m) => m.endpoint);
      expect(writer.lost(restored)).toEqual([]);
      const after = net.etcdctl(restored, ["get", "/after-snapshot", "-w", "json"]);
      expect(after.status).toBe(0);
      expect((JSON.parse(after.stdout) as { kvs?: unknown[] }).kvs).toBeUndefined();
    });
  });
});
