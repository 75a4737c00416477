import { spawn, spawnSync, type ChildProcess } from "node:child_process";
import { readFileSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { bake } from "../src/bake/bake";
import type { Manifest } from "../src/bake/manifest";
import { generateClusterPki } from "../src/pki/pki";
import { silentProgress } from "../src/util/progress";
import { fixtureMirror, fixtureSpec, repoRoot, tempDir } from "./helpers";
import { reports, userData, Vm } from "./vm";

// Boots the fixture image under qemu (TCG + OVMF) and proves from the serial console that one image
// becomes a master or a minion from its user data alone, and that a minion finds its master by DNS.
// Needs root (the disk build keeps file owners; the two-VM test makes a network namespace).
// It also bakes the image a second time on an empty cache: the same inputs must give the same disk.
const asRoot = process.getuid?.() === 0 ? describe : describe.skip;
jest.setTimeout(15 * 60_000);

const work = tempDir("boot");
// The base layer (mmdebstrap, about a minute) is cached across runs in the checkout.
const cacheDir = join(repoRoot, ".cache", "kubebake");
let disk: string;
let manifest: Manifest;
let secrets: Record<string, string>;
let coldBake: ReturnType<typeof bake> | undefined;

const say = `say() { echo "KBTEST $*" > /dev/ttyS0; }`;
// Unit states, and the last journal lines of any unit that is not where it should be (for the failure message).
const unitReport = (
  prefix = "",
) => `for u in kubebake-node-config etcd kube-apiserver kube-controller-manager kube-scheduler kubebake-addons containerd kubelet kube-proxy; do
  state="$(systemctl show -p ActiveState --value $u)/$(systemctl show -p SubState --value $u)"
  say "${prefix}unit-$u $state condition=$(systemctl show -p ConditionResult --value $u)"
  case "$state" in failed/* | activating/auto-restart) journalctl -u $u -o cat -n 15 --no-pager | sed "s/^/KBLOG $u: /" > /dev/ttyS0 ;; esac
done`;

// The master stays up: the minion joins it after the report.
const masterReport = `#!/bin/bash
${say}
for i in $(seq 1 120); do systemctl is-active -q kube-apiserver && systemctl is-active -q etcd && break; sleep 1; done
say "role-file $(test -f /etc/sysconfig/kubernetes-masters && echo present || echo absent)"
${unitReport()}
say "etcd-health $(ETCDCTL_API=3 etcdctl --dial-timeout=20s --command-timeout=60s --endpoints=https://127.0.0.1:2379 --cacert=/etc/kubernetes/pki/etcd-ca.crt --cert=/etc/kubernetes/pki/apiserver-etcd-client.crt --key=/etc/kubernetes/pki/apiserver-etcd-client.key endpoint health 2>&1 | tr '\\n' ' ')"
for c in kube-apiserver kube-controller-manager kube-scheduler; do say "args-$c $(tr '\\n' ' ' < /var/lib/kubebake-standins/$c.args)"; done
say "readyz $(curl -s --cacert /etc/kubernetes/pki/ca.crt --resolve masters.demo.k8s:6443:127.0.0.1 https://masters.demo.k8s:6443/readyz)"
say "node-ip $(. /run/kubebake/node.env; echo $NODE_IP)"
say master-done
sleep infinity
`;

const minionJoinReport = `#!/bin/bash
${say}
journalctl -f -u kubelet -o cat | sed -u 's/^/KBJOURNAL /' > /dev/ttyS0 &
# While masters.demo.k8s does not resolve: which units run and which the role file kept off.
for i in $(seq 1 600); do journalctl -u kubelet -o cat | grep -q "does not resolve yet" && break; sleep 1; done
say "role-file $(test -f /etc/sysconfig/kubernetes-minions && echo present || echo absent)"
${unitReport("waiting-")}
say "waiting-kubelet-args $(test -f /var/lib/kubebake-standins/kubelet.args && echo recorded || echo none)"
for i in $(seq 1 600); do systemctl is-active -q kubelet && test -f /var/lib/kubebake-standins/kubelet.args && break; sleep 1; done
${unitReport()}
say "kubelet-args $(tr '\\n' ' ' < /var/lib/kubebake-standins/kubelet.args)"
say minion-done
systemctl poweroff
`;

asRoot("booting the one image", () => {
  beforeAll(async () => {
    // The reproducibility check's bake starts now and runs beside the first bake and the boots (it is
    // mostly mmdebstrap, which waits on dpkg and the disk); the last test awaits it.
    coldBake = bake({
      target: "raw",
      specPath: fixtureSpec,
      out: join(work, "cold"),
      arch: "amd64",
      cacheDir: join(work, "cold-cache"),
      mirror: fixtureMirror,
      progress: silentProgress,
    });
    coldBake.catch(() => {}); // reported by the test that awaits it
    const result = await bake({
      target: "qcow2",
      specPath: fixtureSpec,
      out: join(work, "image"),
      arch: "amd64",
      cacheDir,
      mirror: fixtureMirror,
      progress: silentProgress,
    });
    manifest = result.manifest;
    disk = join(work, "image", result.manifest.disk!.file);
    const files = await generateClusterPki({
      cluster: "demo",
      clusterDomain: "cluster.local",
      serviceCIDR: "10.32.0.0/16",
      discoveryDomain: "k8s",
    });
    secrets = Object.fromEntries(files.map((f) => [f.name, f.content]));
  });

  // One boot of each role (TCG boots are the slowest part of the suite): what the role file starts and skips,
  // then the minion finding its master by DNS.
  test("one image, two roles on a private network: the master runs etcd over TLS and the control plane with the rendered flags and skips the minion units; the minion skips the control plane and waits while masters.demo.k8s is absent; once it points at the master, readyz answers and kubelet starts with its node IP and the bootstrap kubeconfig (no node registers: the control plane is a stand-in)", async () => {
    const netns = `kbtest-${process.pid}`;
    const hosts = join(work, "k8s.hosts");
    writeFileSync(hosts, "");
    const sh = (script: string) => {
      const result = spawnSync("sh", ["-ec", script], { encoding: "utf8" });
      if (result.status !== 0) throw new Error(`${script}: ${result.stderr}`);
    };
    sh(`ip netns add ${netns}
      ip netns exec ${netns} ip link set lo up
      ip netns exec ${netns} ip link add br0 type bridge
      ip netns exec ${netns} ip addr add 10.77.0.1/24 dev br0
      ip netns exec ${netns} ip link set br0 up
      for tap in tap0 tap1; do ip netns exec ${netns} ip tuntap add $tap mode tap; ip netns exec ${netns} ip link set $tap master br0 up; done`);
    let dnsmasq: ChildProcess | undefined;
    const master = new Vm({
      name: "net-master",
      disk,
      dir: work,
      net: { netns, tap: "tap0", mac: "52:54:00:77:00:10" },
      userData: userData("masters", "CLUSTER_NAME=demo\n", secrets, masterReport),
    });
    const minion = new Vm({
      name: "net-minion",
      disk,
      dir: work,
      net: { netns, tap: "tap1", mac: "52:54:00:77:00:11" },
      userData: userData(
        "minions",
        "CLUSTER_NAME=demo\n",
        { "ca.crt": secrets["ca.crt"]!, "bootstrap-token": secrets["bootstrap-token"]! },
        minionJoinReport,
      ),
    });
    try {
      // DHCP with fixed addresses, and DNS for the k8s zone from a hosts file the test edits.
      dnsmasq = spawn(
        "ip",
        [
          "netns",
          "exec",
          netns,
          "dnsmasq",
          "--keep-in-foreground",
          "--no-resolv",
          "--no-hosts",
          "--interface=br0",
          "--bind-interfaces",
          "--except-interface=lo",
          `--addn-hosts=${hosts}`,
          "--local=/k8s/",
          "--dhcp-range=10.77.0.50,10.77.0.99,1h",
          "--dhcp-host=52:54:00:77:00:10,10.77.0.10",
          "--dhcp-host=52:54:00:77:00:11,10.77.0.11",
          "--dhcp-option=option:dns-server,10.77.0.1",
          "--user=root", // the hosts file is in the test's private folder
          `--dhcp-leasefile=${join(work, "leases")}`,
          "--pid-file=",
        ],
        { stdio: "ignore" },
      );
      master.start();
      minion.start();
      await master.waitFor(/KBTEST master-done/, 300_000);
      const m = reports(master.serial());
      expect(m.get("node-ip")).toBe("10.77.0.10");
      expect(m.get("role-file")).toBe("present");
      expect(m.get("etcd-health")).toMatch(/https:\/\/127\.0\.0\.1:2379 is healthy/);
      for (const unit of [
        "kubebake-node-config",
        "etcd",
        "kube-apiserver",
        "kube-controller-manager",
        "kube-scheduler",
      ]) {
        expect(`${unit} ${m.get(`unit-${unit}`)}`).toMatch(
          new RegExp(`^${unit} active/(running|exited) condition=yes$`),
        );
      }
      for (const unit of ["containerd", "kubelet", "kube-proxy"]) {
        expect(`${unit} ${m.get(`unit-${unit}`)}`).toBe(`${unit} inactive/dead condition=no`);
      }
      const rendered = (name: string) =>
        readFileSync(join(work, "image", "rootfs", "etc/systemd/system", `${name}.service`), "utf8").replace(
          /\s*\\\n\s*/g,
          " ",
        );
      expect(m.get("args-kube-apiserver")).toContain(
        `--advertise-address=10.77.0.10 --bind-address=0.0.0.0 --secure-port=6443`,
      );
      expect(rendered("kube-apiserver")).toContain(
        m.get("args-kube-apiserver")!.split(" ").slice(1, 12).join(" "),
      );
      expect(m.get("args-kube-controller-manager")).toContain("--cluster-name=demo");
      expect(m.get("args-kube-scheduler")).toContain("--config=/etc/kubernetes/kube-scheduler.yaml");
      expect(m.get("readyz")).toBe("ok");
      // The minion keeps waiting while the name does not resolve…
      await minion.waitFor(/KBJOURNAL .*attempt 3: masters\.demo\.k8s does not resolve yet/, 300_000);
      expect(minion.serial()).not.toMatch(/KBTEST minion-done/);
      await minion.waitFor(/KBTEST waiting-kubelet-args/, 120_000);
      const waiting = reports(minion.serial());
      expect(waiting.get("role-file")).toBe("present");
      for (const unit of [
        "etcd",
        "kube-apiserver",
        "kube-controller-manager",
        "kube-scheduler",
        "kubebake-addons",
      ]) {
        expect(`${unit} ${waiting.get(`waiting-unit-${unit}`)}`).toBe(`${unit} inactive/dead condition=no`);
      }
      expect(waiting.get("waiting-unit-containerd")).toBe("active/running condition=yes");
      expect(waiting.get("waiting-unit-kubelet")).toBe("activating/start-pre condition=yes");
      expect(waiting.get("waiting-kubelet-args")).toBe("none");
      // …and, once the record points at the master, finds it ready and starts kubelet (a real join needs a real apiserver).
      writeFileSync(hosts, "10.77.0.10 masters.demo.k8s\n");
      dnsmasq.kill("SIGHUP");
      await minion.waitFor(/KBTEST minion-done/, 300_000);
      const serial = minion.serial();
      expect(serial).toMatch(
        /KBJOURNAL .*attempt \d+: https:\/\/masters\.demo\.k8s:6443\/readyz is ready \(masters: 10\.77\.0\.10\)/,
      );
      const n = reports(serial);
      expect(n.get("unit-kubelet")).toBe("active/running condition=yes");
      expect(n.get("kubelet-args")).toContain("--node-ip=10.77.0.11");
      expect(n.get("kubelet-args")).toContain(
        "--bootstrap-kubeconfig=/etc/kubernetes/bootstrap-kubelet.kubeconfig",
      );
      await minion.stopped(60_000);
    } finally {
      master.kill();
      minion.kill();
      dnsmasq?.kill();
      spawnSync("ip", ["netns", "delete", netns]);
    }
  });

  test("the disk is clean by the image check", () => {
    const result = spawnSync("node", [join(repoRoot, "bin", "kubebake.js"), "image", "check", disk], {
      encoding: "utf8",
    });
    expect(result.stdout).toBe(`${disk}: clean\n`);
    expect(result.status).toBe(0);
    expect(readdirSync(join(work, "image")).sort()).toEqual(["disk.qcow2", "manifest.json", "rootfs"]);
  });

  // The first bake may have reused the checkout's base layer; the one started beside it makes everything
  // afresh (mmdebstrap again, about a minute) and delivers a raw disk where the first delivered a qcow2.
  test("two bakes of the same inputs, the second on an empty cache, give the same raw disk byte for byte, its digest in the manifest beside the image id", async () => {
    const coldCache = join(work, "cold-cache");
    const cold = await coldBake!;
    const sha256 = (path: string) => {
      const result = spawnSync("sha256sum", [path], { encoding: "utf8" });
      if (result.status !== 0) throw new Error(`sha256sum ${path}: ${result.stderr}`);
      return result.stdout.split(" ")[0]!;
    };
    // The base layers first, for a plain failure. They differ too when the Debian mirror has moved on
    // since the checkout's cache was made: remove .cache/kubebake/base then.
    const layer = `base/${manifest.disk!.baseLayer}.tar`;
    expect({ coldBaseLayer: sha256(join(coldCache, layer)) }).toEqual({
      coldBaseLayer: sha256(join(cacheDir, layer)),
    });
    const coldDisk = sha256(join(work, "cold", "disk.raw"));
    // The first bake's disk is a qcow2: its content as a raw disk, read back by qemu-img.
    const firstRaw = join(work, "first.raw");
    expect(spawnSync("qemu-img", ["convert", "-f", "qcow2", "-O", "raw", disk, firstRaw]).status).toBe(0);
    const firstDisk = sha256(firstRaw);
    rmSync(firstRaw);
    expect(coldDisk).toBe(firstDisk);
    const written = JSON.parse(readFileSync(join(work, "cold", "manifest.json"), "utf8")) as Manifest;
    expect(written).toEqual(cold.manifest);
    expect(written).toMatchObject({
      imageId: manifest.imageId,
      disk: { format: "raw", file: "disk.raw", sha256: coldDisk, rawSha256: coldDisk },
    });
    expect(manifest.disk!.rawSha256).toBe(coldDisk);
  });
});
