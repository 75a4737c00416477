import { spawn, spawnSync, type ChildProcess } from "node:child_process";
import { mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { repoRoot, tempDir, upstreamPrograms } from "./helpers";
import { bootImageAndSecrets, bridgeNamespace, etcdClientFlags, reports, userData, Vm } from "./vm";

// Three masters of the one image booted at once under qemu (TCG), each with the role file of a
// three-master group: etcd-member makes them ONE etcd cluster of three voters (one seed, two learners
// promoted), every master's API server is ready, and each master passes its launch gate. Three TCG guests
// on our two cores take long, so this runs from bench/boot-masters.mjs (KUBEBAKE_BOOT_MASTERS=1), not in
// .ci/run; bench/boot.txt keeps the figures. Needs root.
const enabled = process.getuid?.() === 0 && process.env.KUBEBAKE_BOOT_MASTERS === "1";
const maybe = enabled ? describe : describe.skip;
jest.setTimeout(60 * 60_000);

const work = tempDir("boot-masters");
const MASTERS = [10, 11, 12].map((n) => ({
  name: `master-${n - 9}`,
  ip: `10.79.0.${n}`,
  mac: `52:54:00:79:00:${n}`,
}));

const report = `#!/bin/bash
say() { echo "KBTEST $*" > /dev/ttyS0; }
journalctl -f -n all -u etcd -u kubebake-launch-ready -o cat | grep --line-buffered 'kubebake \\|"level":"\\(warn\\|error\\)"' |
  sed -u 's/^/KBJOURNAL /' > /dev/ttyS0 &
for i in $(seq 1 3000); do systemctl is-active -q etcd && break; sleep 1; done
say "etcd-active $(date +%s)"
say "etcd-decisions $(journalctl -u etcd -o cat | grep -o 'decision: [a-z-]*' | xargs)"
for i in $(seq 1 3000); do systemctl is-active -q kubebake-launch-ready && break; sleep 1; done
say "launch-ready $(systemctl show -p ActiveState --value kubebake-launch-ready) $(journalctl -u kubebake-launch-ready -o cat | grep -c 'is ready and its etcd member votes')"
say "snapshot-timer $(systemctl show -p ActiveState --value etcd-snapshot.timer)"
say master-done
sleep infinity
`;

maybe("three masters of the one image", () => {
  let disk: string;
  let secrets: Record<string, string>;
  beforeAll(async () => {
    ({ disk, secrets } = await bootImageAndSecrets(work));
  });

  test("boot at once and form one etcd cluster of three voters; every API server is ready; every master passes its launch gate", async () => {
    const netns = `kbmasters-${process.pid}`;
    bridgeNamespace(netns, "10.79.0.1", ["tap0", "tap1", "tap2"]);
    // The discovery reconciler's records: the whole group, as it publishes three live instances.
    const hosts = join(work, "k8s.hosts");
    writeFileSync(hosts, MASTERS.map((m) => `${m.ip} etcd.demo.k8s\n${m.ip} masters.demo.k8s\n`).join(""));
    const etcdClient = etcdClientFlags(join(work, "pki"), secrets);
    let dnsmasq: ChildProcess | undefined;
    const vms = MASTERS.map(
      (m, i) =>
        new Vm({
          name: m.name,
          disk,
          dir: work,
          memoryMiB: 2048,
          net: { netns, tap: `tap${i}`, mac: m.mac },
          userData: userData("masters", "CLUSTER_NAME=demo\nMASTERS_COUNT=3\n", secrets, report),
        }),
    );
    const started = Date.now();
    try {
      dnsmasq = spawn(
        "ip",
        [
          ...["netns", "exec", netns, "dnsmasq", "--keep-in-foreground", "--no-resolv", "--no-hosts"],
          ...["--interface=br0", "--bind-interfaces", "--except-interface=lo", `--addn-hosts=${hosts}`],
          ...["--local=/k8s/", "--dhcp-range=10.79.0.50,10.79.0.99,1h"],
          ...MASTERS.map((m) => `--dhcp-host=${m.mac},${m.ip}`),
          ...["--dhcp-option=option:dns-server,10.79.0.1", "--user=root", "--pid-file="],
          `--dhcp-leasefile=${join(work, "leases")}`,
        ],
        { stdio: "ignore" },
      );
      vms.forEach((vm) => vm.start());
      for (const vm of vms) await vm.waitFor(/KBTEST master-done/, 50 * 60_000);
      const seconds = (Date.now() - started) / 1000;
      const said = vms.map((vm) => reports(vm.serial()));
      // One seed (the lowest address); the two others joined as learners (a promotion whose answer timed
      // out is seen by the next look as "a voter", without a decision line; the member status below decides).
      const joined =
        /^(decision: (wait|add-learner) )*decision: add-learner (decision: wait )*decision: start-added( decision: promote)?$/;
      expect(said.map((r) => r.get("etcd-decisions"))).toEqual([
        "decision: seed",
        expect.stringMatching(joined),
        expect.stringMatching(joined),
      ]);
      const etcdctl = spawnSync(
        "ip",
        [
          ...["netns", "exec", netns, join(upstreamPrograms(), "etcdctl")],
          `--endpoints=${MASTERS.map((m) => `https://${m.ip}:2379`).join(",")}`,
          ...etcdClient,
          ...["--command-timeout=30s", "endpoint", "status", "-w", "json"],
        ],
        { encoding: "utf8" },
      );
      expect(etcdctl.status).toBe(0);
      const statuses = JSON.parse(etcdctl.stdout) as {
        Endpoint: string;
        Status: { header: { cluster_id: number }; leader: number; isLearner?: boolean };
      }[];
      expect(statuses).toHaveLength(3);
      expect(new Set(statuses.map((s) => String(s.Status.header.cluster_id))).size).toBe(1);
      expect(new Set(statuses.map((s) => String(s.Status.leader))).size).toBe(1);
      expect(statuses.every((s) => !s.Status.isLearner)).toBe(true);
      // Each master's gate saw its API server ready (provider none: no hook to complete).
      for (const r of said) expect(r.get("launch-ready")).toBe("active 1");
      for (const r of said) expect(r.get("snapshot-timer")).toBe("active");
      mkdirSync(join(repoRoot, "reports"), { recursive: true });
      writeFileSync(
        join(repoRoot, "reports", "boot-masters.json"),
        JSON.stringify(
          {
            allMastersReadySeconds: seconds,
            etcdActiveSeconds: said.map((r) => Number(r.get("etcd-active")) - Math.floor(started / 1000)),
          },
          null,
          2,
        ) + "\n",
      );
    } finally {
      vms.forEach((vm) => vm.kill());
      dnsmasq?.kill();
      spawnSync("ip", ["netns", "delete", netns]);
    }
  });
});
