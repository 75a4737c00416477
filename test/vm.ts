import { spawn, spawnSync, type ChildProcess } from "node:child_process";
import { copyFileSync, existsSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { bake } from "../src/bake/bake";
import { generateClusterPki } from "../src/pki/pki";
import { silentProgress } from "../src/util/progress";
import { fixtureMirror, fixtureSpec, repoRoot } from "./helpers";
import { signCertificate } from "./openssl";

/** A VM of the baked disk under qemu (TCG, OVMF), booted with a NoCloud seed; its serial console goes to a file. */
export interface VmOptions {
  name: string;
  disk: string;
  dir: string;
  userData: string;
  /** "user": qemu's private NAT; otherwise a tap in a network namespace the test made. */
  net: "user" | { netns: string; tap: string; mac: string };
  memoryMiB?: number;
  /** Virtual CPUs (default 1): a TCG vCPU is a host thread. */
  cpus?: number;
  /** The root volume (GiB), grown into by cloud-init at first boot; default 8. */
  diskGiB?: number;
  /** Raw disk images attached read-only after the seed (test tools, never part of the image). */
  extraDrives?: string[];
}

const OVMF_CODE = "/usr/share/OVMF/OVMF_CODE_4M.fd";
const OVMF_VARS = "/usr/share/OVMF/OVMF_VARS_4M.fd";

export class Vm {
  readonly serialPath: string;
  private process?: ChildProcess;
  private exited?: Promise<number | null>;

  constructor(private readonly options: VmOptions) {
    this.serialPath = join(options.dir, `${options.name}.serial.log`);
  }

  start(): void {
    const { dir, name } = this.options;
    mkdirSync(dir, { recursive: true });
    const seedDir = join(dir, `${name}-seed`);
    mkdirSync(seedDir, { recursive: true });
    writeFileSync(join(seedDir, "user-data"), this.options.userData);
    writeFileSync(
      join(seedDir, "meta-data"),
      `instance-id: ${name}-${process.pid}\nlocal-hostname: ${name}\n`,
    );
    const seed = join(dir, `${name}-seed.iso`);
    check(
      spawnSync("cloud-localds", [seed, join(seedDir, "user-data"), join(seedDir, "meta-data")]),
      "cloud-localds",
    );
    const overlay = join(dir, `${name}.qcow2`);
    check(
      // A root volume larger than the image, as clouds give: cloud-init's growpart and resizefs take the rest at
      // first boot (the image's root file system has little room; the kubelet's image GC would free it).
      spawnSync("qemu-img", [
        "create",
        "-q",
        "-f",
        "qcow2",
        "-b",
        this.options.disk,
        "-F",
        "qcow2",
        overlay,
        `${this.options.diskGiB ?? 8}G`,
      ]),
      "qemu-img",
    );
    const vars = join(dir, `${name}-vars.fd`);
    copyFileSync(OVMF_VARS, vars);
    const net =
      this.options.net === "user"
        ? ["-netdev", "user,id=n0,restrict=on", "-device", "virtio-net-pci,netdev=n0"]
        : [
            "-netdev",
            `tap,id=n0,ifname=${this.options.net.tap},script=no,downscript=no`,
            "-device",
            `virtio-net-pci,netdev=n0,mac=${this.options.net.mac}`,
          ];
    const qemu = [
      "qemu-system-x86_64",
      "-machine",
      "q35",
      "-accel",
      "tcg,thread=multi",
      "-cpu",
      "max",
      "-smp",
      String(this.options.cpus ?? 1),
      "-m",
      String(this.options.memoryMiB ?? 1024),
      "-nographic",
      "-no-reboot",
      "-monitor",
      "none",
      "-drive",
      `if=pflash,format=raw,readonly=on,file=${OVMF_CODE}`,
      "-drive",
      `if=pflash,format=raw,file=${vars}`,
      "-drive",
      `file=${overlay},if=virtio`,
      "-drive",
      `file=${seed},if=virtio,media=cdrom,readonly=on`,
      ...(this.options.extraDrives ?? []).flatMap((file) => [
        "-drive",
        `file=${file},if=virtio,format=raw,readonly=on`,
      ]),
      ...net,
      "-serial",
      `file:${this.serialPath}`,
    ];
    const command =
      this.options.net === "user" ? qemu : ["ip", "netns", "exec", this.options.net.netns, ...qemu];
    this.process = spawn(command[0]!, command.slice(1), { stdio: "ignore" });
    this.exited = new Promise((resolve) => this.process!.on("exit", (code) => resolve(code)));
  }

  serial(): string {
    return existsSync(this.serialPath) ? readFileSync(this.serialPath, "latin1") : "";
  }

  /** Waits until the serial console shows the pattern, the VM stops, or the time is up. */
  async waitFor(pattern: RegExp, timeoutMs: number): Promise<RegExpMatchArray> {
    const deadline = Date.now() + timeoutMs;
    let stopped = false;
    void this.exited!.then(() => (stopped = true));
    for (;;) {
      const match = this.serial().match(pattern);
      if (match) return match;
      if (stopped || Date.now() > deadline) {
        const tail = this.serial().split("\n").slice(-60).join("\n");
        throw new Error(
          `${this.options.name}: ${stopped ? "stopped" : "timed out"} before ${pattern}; serial log tail:\n${tail}`,
        );
      }
      await new Promise((resolve) => setTimeout(resolve, 500));
    }
  }

  /** Waits for the VM to power itself off, or kills it by PID when the time is up. */
  async stopped(timeoutMs: number): Promise<void> {
    const timer = setTimeout(() => this.kill(), timeoutMs);
    await this.exited;
    clearTimeout(timer);
  }

  kill(): void {
    if (this.process?.exitCode === null) this.process.kill("SIGKILL");
  }
}

function check(result: ReturnType<typeof spawnSync>, what: string): void {
  if (result.status !== 0) throw new Error(`${what} failed: ${result.stderr?.toString()}`);
}

/** Lines the report scripts print: "KBTEST <key> <value…>". */
export function reports(serial: string): Map<string, string> {
  const map = new Map<string, string>();
  for (const match of serial.matchAll(/^KBTEST (\S+) ?(.*?)\r?$/gm)) map.set(match[1]!, match[2]!);
  return map;
}

/** Cloud-config writing the role file, the PKI for the `none` secret source, and a test report script. */
export function userData(
  role: "masters" | "minions",
  roleFile: string,
  secrets: Record<string, string>,
  report: string,
): string {
  const files = [
    { path: `/etc/sysconfig/kubernetes-${role}`, permissions: "0644", content: roleFile },
    ...Object.entries(secrets).map(([name, content]) => ({
      path: `/etc/kubebake/secrets/${name}`,
      permissions: "0600",
      content,
    })),
    { path: "/usr/local/sbin/kubebake-test-report", permissions: "0755", content: report },
  ];
  const b64 = (text: string) => Buffer.from(text).toString("base64");
  return [
    "#cloud-config",
    "locale: C.UTF-8",
    "write_files:",
    ...files.flatMap((f) => [
      `  - path: ${f.path}`,
      `    permissions: '${f.permissions}'`,
      "    encoding: b64",
      `    content: ${b64(f.content)}`,
    ]),
    "runcmd:",
    "  - [/usr/local/sbin/kubebake-test-report]",
    "",
  ].join("\n");
}

/**
 * What a boot test starts from: the fixture image baked as a qcow2 disk into `work/image` (the base layer,
 * about a minute of mmdebstrap, is cached across runs in the checkout), and the PKI of cluster demo, by
 * file name, for the `none` secret source.
 */
export async function bootImageAndSecrets(
  work: string,
): Promise<{ disk: string; secrets: Record<string, string> }> {
  const result = await bake({
    target: "qcow2",
    specPath: fixtureSpec,
    out: join(work, "image"),
    arch: "amd64",
    cacheDir: join(repoRoot, ".cache", "kubebake"),
    mirror: fixtureMirror,
    progress: silentProgress,
  });
  const files = await generateClusterPki({
    cluster: "demo",
    discoveryDomain: "k8s",
  });
  return {
    disk: join(work, "image", result.manifest.disk!.file),
    secrets: Object.fromEntries(files.map((f) => [f.name, f.content])),
  };
}

/**
 * A network namespace with a bridge at `address` (its /24) and one tap per guest on it: the guests' only
 * network. The caller deletes it (`ip netns delete`).
 */
export function bridgeNamespace(netns: string, address: string, taps: string[]): void {
  const script = `ip netns add ${netns}
    ip netns exec ${netns} ip link set lo up
    ip netns exec ${netns} ip link add br0 type bridge
    ip netns exec ${netns} ip addr add ${address}/24 dev br0
    ip netns exec ${netns} ip link set br0 up
    for tap in ${taps.join(" ")}; do ip netns exec ${netns} ip tuntap add $tap mode tap; ip netns exec ${netns} ip link set $tap master br0 up; done`;
  const result = spawnSync("sh", ["-ec", script], { encoding: "utf8" });
  if (result.status !== 0) throw new Error(`${script}: ${result.stderr}`);
}

/**
 * The etcdctl flags for a client certificate of the cluster's etcd CA, made in `dir` for the host (masters
 * issue their own; the PKI holds none).
 */
export function etcdClientFlags(dir: string, secrets: Record<string, string>): string[] {
  mkdirSync(dir, { recursive: true });
  for (const name of ["etcd-ca.crt", "etcd-ca.key"])
    writeFileSync(join(dir, name), secrets[name]!, { mode: 0o600 });
  signCertificate(dir, "etcd-client", { subject: "/CN=kbtest", ca: "etcd-ca" });
  return [
    `--cacert=${join(dir, "etcd-ca.crt")}`,
    `--cert=${join(dir, "etcd-client.crt")}`,
    `--key=${join(dir, "etcd-client.key")}`,
  ];
}
