import { spawn, spawnSync, type ChildProcess } from "node:child_process";
import {
  appendFileSync,
  existsSync,
  mkdirSync,
  readdirSync,
  readFileSync,
  renameSync,
  rmSync,
  writeFileSync,
} from "node:fs";
import { join } from "node:path";
import { etcdutlProgramDir, repoRoot, upstreamPrograms } from "../helpers";

// Several masters on one machine, each in its own network namespace with its own address on a bridge, a real
// DNS server (dnsmasq) answering etcd.demo.k8s from a hosts file the test edits as the discovery
// reconciler would, and each master's etcd run the way its systemd unit runs it: etcd-member prepare, the
// rendered ExecStart with this master's values, etcd-member promote, and again whenever etcd exits.
// Needs root. Only addresses inside the namespaces made here are used. The snapshot store is moto's S3,
// started on the hub's address when a test asks for it.

const nodeDir = join(repoRoot, "src", "node");
export const SUBNET = "10.78.0";
const HUB_IP = `${SUBNET}.1`;
const STORE_PORT = 4566;
export const STORE_BUCKET = "kubebake-demo-snapshots";

function sh(script: string): string {
  const result = spawnSync("sh", ["-ec", script], { encoding: "utf8" });
  if (result.status !== 0) throw new Error(`${script}\n${result.stderr}`);
  return result.stdout;
}

function openssl(args: string[], cwd: string) {
  const result = spawnSync("openssl", args, { cwd, encoding: "utf8" });
  if (result.status !== 0) throw new Error(`openssl ${args.join(" ")}: ${result.stderr}`);
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** The etcd command line of the baked unit (rendered from the image spec), its ${VARS} still in. */
function etcdExecStart(): string[] {
  const unit = readFileSync(
    join(repoRoot, "test", "golden", "etc", "systemd", "system", "etcd.service"),
    "utf8",
  );
  const line = /^ExecStart=(.+)$/m.exec(unit.replace(/\s*\\\n\s*/g, " "))![1]!;
  return line.trim().split(/\s+/);
}

export class Net {
  readonly id = `${process.pid % 100000}`;
  readonly hub = `kbe${this.id}h`;
  readonly hosts: string;
  readonly secrets: string;
  readonly client: string;
  private dnsmasq?: ChildProcess;
  private moto?: ChildProcess;
  private records = new Map<string, string[]>();
  readonly masters: Master[] = [];

  constructor(readonly dir: string) {
    this.hosts = join(dir, "k8s.hosts");
    this.secrets = join(dir, "secrets");
    this.client = join(dir, "client");
  }

  async start(): Promise<void> {
    writeFileSync(this.hosts, "");
    sh(`ip netns add ${this.hub}
      ip netns exec ${this.hub} ip link set lo up
      ip netns exec ${this.hub} ip link add br0 type bridge
      ip netns exec ${this.hub} ip addr add ${HUB_IP}/24 dev br0
      ip netns exec ${this.hub} ip link set br0 up`);
    this.dnsmasq = spawn(
      "ip",
      [
        ...["netns", "exec", this.hub, "dnsmasq", "--keep-in-foreground", "--no-resolv", "--no-hosts"],
        ...["--interface=br0", "--bind-interfaces", "--except-interface=lo", `--addn-hosts=${this.hosts}`],
        ...["--local=/k8s/", "--user=root", "--pid-file=", "--log-facility=-", "--quiet-dhcp"],
      ],
      { stdio: "ignore" },
    );
    this.makeSecrets();
    await sleep(300);
  }

  /** moto's S3 on the hub's address, with the cluster's bucket: the masters' snapshot store. */
  async startStore(): Promise<void> {
    const log = join(this.dir, "moto.log");
    writeFileSync(log, "");
    this.moto = spawn(
      "sh",
      ["-c", `exec ip netns exec ${this.hub} moto_server -H ${HUB_IP} -p ${STORE_PORT} >>${log} 2>&1`],
      { stdio: "ignore" },
    );
    await until(
      "moto's S3 on the hub",
      () => (this.storeCurl(`/${STORE_BUCKET}`, ["-X", "PUT"]).status === 0 ? true : undefined),
      30_000,
      async () => readFileSync(log, "utf8").slice(-2000),
    );
  }

  get storeEndpoint(): string {
    return `http://${HUB_IP}:${STORE_PORT}`;
  }

  /** curl against the store from the hub, unsigned (moto lets anonymous calls make and list buckets). */
  storeCurl(path: string, options: string[] = []) {
    return spawnSync("ip", [
      ...["netns", "exec", this.hub, "curl", "-sSf", "--max-time", "10", ...options],
      `${this.storeEndpoint}${path}`,
    ]);
  }

  /** The masters' own store functions (src/node/s3.sh, signed), from the hub, for a cluster's prefix. */
  private store(call: string, cluster: string, args: string[] = []) {
    const script = `set -euo pipefail; . ${nodeDir}/lib.sh; . ${nodeDir}/providers/aws.sh; . ${nodeDir}/s3.sh; ${call}`;
    const result = spawnSync("ip", ["netns", "exec", this.hub, "bash", "-c", script, "store", ...args], {
      env: { ...process.env, ...this.storeEnv(), SNAPSHOT_STORE: `s3://${STORE_BUCKET}/${cluster}/etcd` },
      maxBuffer: 1 << 28,
    });
    if (result.status !== 0) throw new Error(`${call} ${args.join(" ")}: ${result.stderr}`);
    return result.stdout;
  }

  /** The store's endpoint and a key pair moto accepts; on an instance these come from its role (IMDS). */
  storeEnv(): Record<string, string> {
    return {
      AWS_ENDPOINT_URL_S3: this.storeEndpoint,
      AWS_ACCESS_KEY_ID: "AKIAKUBEBAKETEST0001",
      AWS_SECRET_ACCESS_KEY: "kubebake-test-secret",
      AWS_REGION: "us-east-1",
    };
  }

  /** The snapshot names under a cluster's prefix, oldest first. */
  storedSnapshots(cluster = "demo"): string[] {
    return this.store("store_list", cluster).toString().split("\n").filter(Boolean);
  }

  storeGet(name: string, cluster = "demo"): Buffer {
    const file = join(this.dir, `fetched-${name}`);
    this.store('store_get "$1" "$2" >/dev/null', cluster, [name, file]);
    return readFileSync(file);
  }

  /** Stores an object as a master would, but with the SHA-256 given (a corrupt copy may lie). */
  storePut(name: string, content: Buffer, sha256: string, cluster = "demo"): void {
    const file = join(this.dir, `stored-${name}`);
    writeFileSync(file, content);
    this.store('s3_target; s3_call PUT "$s3_prefix/$1" "" "$2" /dev/null /dev/null "$3"', cluster, [
      name,
      file,
      sha256,
    ]);
  }

  /** The cluster's secrets as a files: source: real CAs (the etcd CA signs each master's certificate). */
  private makeSecrets(): void {
    mkdirSync(this.secrets, { recursive: true });
    const ca = (name: string) =>
      openssl(
        [
          ...["req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"],
          ...["-days", "2", "-subj", `/CN=${name}`, "-keyout", `${name}.key`, "-out", `${name}.crt`],
        ],
        this.secrets,
      );
    // Each master issues its certificates from these at boot (node-config runs issue-certs).
    ca("ca");
    ca("etcd-ca");
    ca("front-proxy-ca");
    for (const name of ["sa.key", "sa.pub", "encryption-config.yaml"])
      writeFileSync(join(this.secrets, name), `${name} (test material)\n`);
    writeFileSync(join(this.secrets, "bootstrap-token"), "abcdef.0123456789abcdef");
    // The writer's client certificate, of the etcd CA.
    const s = this.secrets;
    openssl(
      [
        ...["req", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"],
        ...["-subj", "/CN=writer", "-keyout", `${this.client}.key`, "-out", `${this.client}.csr`],
      ],
      s,
    );
    writeFileSync(`${this.client}.ext`, "extendedKeyUsage=clientAuth\n");
    openssl(
      [
        ...["x509", "-req", "-in", `${this.client}.csr`, "-CA", "etcd-ca.crt", "-CAkey", "etcd-ca.key"],
        ...["-CAcreateserial", "-days", "2", "-extfile", `${this.client}.ext`, "-out", `${this.client}.crt`],
      ],
      s,
    );
  }

  /** The etcd record of a cluster, as the discovery reconciler keeps it: the live masters of its group. */
  publish(ips: string[], cluster = "demo"): void {
    this.records.set(cluster, [...new Set(ips)]);
    const lines = [...this.records].flatMap(([name, list]) => list.map((ip) => `${ip} etcd.${name}.k8s\n`));
    writeFileSync(this.hosts, lines.join(""));
    this.dnsmasq?.kill("SIGHUP");
  }

  published(cluster = "demo"): string[] {
    return this.records.get(cluster) ?? [];
  }

  /** A master with its own namespace and address (not started). */
  master(
    n: number,
    options: { expected?: number; retryMs?: number; cluster?: string; store?: boolean } = {},
  ): Master {
    const m = new Master(
      this,
      n,
      options.expected ?? 3,
      options.retryMs ?? 500,
      options.cluster ?? "demo",
      options.store ?? false,
    );
    this.masters.push(m);
    return m;
  }

  /** etcdctl from the bridge's side, as a client of the cluster (the writer's certificate). */
  etcdctl(endpoints: string[], args: string[], timeoutSeconds = 5) {
    return spawnSync("ip", this.etcdctlArgs(endpoints, args, timeoutSeconds), { encoding: "utf8" });
  }

  /** The same without blocking: the masters' units run on this process's event loop. */
  etcdctlAsync(endpoints: string[], args: string[], timeoutSeconds = 5) {
    return new Promise<{ status: number | null; stdout: string }>((resolve) => {
      const child = spawn("ip", this.etcdctlArgs(endpoints, args, timeoutSeconds), {
        stdio: ["ignore", "pipe", "ignore"],
      });
      let stdout = "";
      child.stdout.on("data", (d: Buffer) => (stdout += d.toString()));
      child.on("close", (status) => resolve({ status, stdout }));
    });
  }

  private etcdctlArgs(endpoints: string[], args: string[], timeoutSeconds: number): string[] {
    return [
      ...[
        "netns",
        "exec",
        this.hub,
        join(upstreamPrograms(), "etcdctl"),
        `--endpoints=${endpoints.join(",")}`,
      ],
      ...[
        `--cacert=${join(this.secrets, "etcd-ca.crt")}`,
        `--cert=${this.client}.crt`,
        `--key=${this.client}.key`,
      ],
      ...["--dial-timeout=2s", `--command-timeout=${timeoutSeconds}s`, "--hex"],
      ...args,
    ];
  }

  /** A client writing keys without pause to whatever masters answer; every acknowledged key is recorded. */
  writer(endpoints: () => string[]): Writer {
    return new Writer(this, endpoints);
  }

  async stop(): Promise<void> {
    await Promise.all(this.masters.map((m) => m.stop()));
    this.dnsmasq?.kill();
    spawnSync("sh", ["-c", `ip netns pids ${this.hub} 2>/dev/null | xargs -r kill`]);
    this.moto?.kill();
    for (const m of this.masters) m.destroy();
    spawnSync("ip", ["netns", "delete", this.hub]);
  }
}

export class Writer {
  private stopped = false;
  private done: Promise<void>;
  readonly acked: number[] = [];

  constructor(
    private net: Net,
    endpoints: () => string[],
  ) {
    this.done = (async () => {
      for (let i = 1; !this.stopped; i++) {
        const args = ["put", `/writer/${String(i).padStart(8, "0")}`, `value-${i}`];
        const { status } = await net.etcdctlAsync(endpoints(), args, 5);
        if (status === 0) this.acked.push(i);
        await sleep(20);
      }
    })();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    await this.done;
  }

  /** The acknowledged keys the cluster no longer has, or has with another value. */
  lost(endpoints: string[]): number[] {
    const result = this.net.etcdctl(endpoints, ["get", "--prefix", "/writer/", "-w", "json"], 20);
    if (result.status !== 0) throw new Error(`etcdctl get: ${result.stderr}`);
    const kvs = (JSON.parse(result.stdout) as { kvs?: { key: string; value: string }[] }).kvs ?? [];
    const stored = new Map(
      kvs.map((kv) => [Buffer.from(kv.key, "base64").toString(), Buffer.from(kv.value, "base64").toString()]),
    );
    return this.acked.filter((i) => stored.get(`/writer/${String(i).padStart(8, "0")}`) !== `value-${i}`);
  }
}

export type MemberView = { id: string; name: string; learner: boolean; peerIp: string };

export class Master {
  readonly ns: string;
  readonly ip: string;
  readonly name: string;
  readonly dir: string;
  readonly log: string;
  private running = false;
  private loop?: Promise<void>;
  private etcd?: ChildProcess;
  private agent?: ChildProcess;
  private netUp = false;

  constructor(
    private net: Net,
    readonly n: number,
    readonly expected: number,
    private retryMs: number,
    readonly cluster: string,
    readonly store: boolean,
  ) {
    this.ns = `kbe${net.id}m${n}`;
    this.ip = `${SUBNET}.${10 + n}`;
    this.name = `master-${n}`;
    this.dir = join(net.dir, this.name);
    this.log = join(this.dir, "journal.log");
  }

  get endpoint(): string {
    return `https://${this.ip}:2379`;
  }

  private paths() {
    return {
      sysconfig: join(this.dir, "sysconfig"),
      pki: join(this.dir, "pki"),
      config: join(this.dir, "kubernetes"),
      nodeEnv: join(this.dir, "run", "node.env"),
      etcdEnv: join(this.dir, "run", "etcd.env"),
      data: join(this.dir, "data"),
    };
  }

  /** The namespace, its link to the bridge and its resolver; then the role file and node-config, as at boot. */
  plug(): void {
    if (this.netUp) return;
    const veth = `kbe${this.net.id}v${this.n}`;
    sh(`ip netns add ${this.ns}
      ip netns exec ${this.ns} ip link set lo up
      ip link add ${veth} netns ${this.net.hub} type veth peer name eth0 netns ${this.ns}
      ip netns exec ${this.net.hub} ip link set ${veth} master br0 up
      ip netns exec ${this.ns} ip addr add ${this.ip}/24 dev eth0
      ip netns exec ${this.ns} ip link set eth0 up
      mkdir -p /etc/netns/${this.ns}
      echo "nameserver ${SUBNET}.1" > /etc/netns/${this.ns}/resolv.conf`);
    this.netUp = true;
    const p = this.paths();
    mkdirSync(p.sysconfig, { recursive: true });
    writeFileSync(
      join(p.sysconfig, "kubernetes-masters"),
      [
        `CLUSTER_NAME=${this.cluster}`,
        `MASTERS_COUNT=${this.expected}`,
        `SECRET_SOURCE=files:${this.net.secrets}`,
        `NODE_NAME=${this.name}`,
        `NODE_IP=${this.ip}`,
        ...(this.store ? [`SNAPSHOT_STORE=s3://${STORE_BUCKET}/${this.cluster}/etcd`] : []),
        "",
      ].join("\n"),
    );
    writeFileSync(
      join(this.dir, "image.env"),
      [
        "CLUSTER_DOMAIN=cluster.local",
        "DISCOVERY_DOMAIN=k8s",
        "FIRST_SERVICE_IP=10.32.0.1",
        `KUBEBAKE_CONFIG_DIR=${p.config}`,
        `KUBEBAKE_PKI_DIR=${p.pki}`,
        `KUBEBAKE_NODE_ENV=${p.nodeEnv}`,
        `KUBEBAKE_LIBEXEC=${nodeDir}`,
        "",
      ].join("\n"),
    );
    const result = spawnSync("bash", [join(nodeDir, "node-config")], { env: this.env(), encoding: "utf8" });
    if (result.status !== 0) throw new Error(`node-config on ${this.name}: ${result.stderr}`);
  }

  private env(): NodeJS.ProcessEnv {
    const p = this.paths();
    return {
      PATH: `${upstreamPrograms()}:${etcdutlProgramDir()}:${process.env.PATH}`,
      TMPDIR: this.dir,
      ...this.net.storeEnv(),
      KUBEBAKE_IMAGE_ENV: join(this.dir, "image.env"),
      KUBEBAKE_SYSCONFIG_DIR: p.sysconfig,
      KUBEBAKE_ETCD_DATA_DIR: p.data,
      KUBEBAKE_ETCD_ENV: p.etcdEnv,
      KUBEBAKE_ETCD_RETRY_SECONDS: String(this.retryMs / 1000),
      KUBEBAKE_ETCD_TRACE: process.env.KUBEBAKE_ETCD_TRACE ?? "",
    };
  }

  private journal(text: string): void {
    const at = new Date().toISOString().slice(11, 23);
    for (const line of text.split("\n").filter(Boolean)) appendFileSync(this.log, `${at} ${line}\n`);
  }

  /** `etcd-member snapshot`, as the timer runs it on this master; its lines go to the journal too. */
  async snapshot(): Promise<number | null> {
    return this.agentRun("snapshot");
  }

  /** Runs etcd-member in this master's namespace; its lines go to the journal. */
  private agentRun(verb: "prepare" | "promote" | "snapshot"): Promise<number | null> {
    return new Promise((resolve) => {
      const child = spawn("ip", ["netns", "exec", this.ns, "bash", join(nodeDir, "etcd-member"), verb], {
        env: this.env(),
        stdio: ["ignore", "pipe", "pipe"],
      });
      if (verb === "prepare") this.agent = child;
      child.stdout.on("data", (d: Buffer) => this.journal(d.toString()));
      child.stderr.on("data", (d: Buffer) => this.journal(d.toString()));
      child.on("exit", (code) => resolve(code));
    });
  }

  /** The unit's command line with this master's values, as systemd expands it. */
  private commandLine(): string[] {
    const p = this.paths();
    const vars: Record<string, string> = {};
    for (const file of [p.nodeEnv, p.etcdEnv, join(p.sysconfig, "kubernetes-masters")])
      for (const line of readFileSync(file, "utf8").split("\n")) {
        const m = /^(\w+)=(.*)$/.exec(line);
        if (m) vars[m[1]!] = m[2]!;
      }
    const [, ...args] = etcdExecStart();
    return args.map((a) =>
      a
        .replace(/\$\{(\w+)\}/g, (_, v: string) => vars[v] ?? "")
        .replace("/etc/kubernetes/pki", p.pki)
        // systemd's %d: the credentials folder, copies of the PKI files of the same names (LoadCredential=)
        .replace("=%d/", `=${p.pki}/`)
        .replace("--data-dir=/var/lib/etcd", `--data-dir=${p.data}`),
    );
  }

  /** Starts the unit: prepare, etcd, promote, and again after etcd exits (Restart=always). */
  start(): void {
    this.plug();
    if (this.running) return;
    this.running = true;
    this.journal(`--- start`);
    this.loop = (async () => {
      while (this.running) {
        const prepared = await this.agentRun("prepare");
        if (!this.running) break;
        if (prepared !== 0) {
          this.journal(`etcd-member prepare exited ${prepared}`);
          await sleep(1000);
          continue;
        }
        const etcd = spawn(
          "ip",
          ["netns", "exec", this.ns, join(upstreamPrograms(), "etcd"), ...this.commandLine()],
          {
            stdio: ["ignore", "ignore", "pipe"],
          },
        );
        this.etcd = etcd;
        let last = "";
        etcd.stderr.on("data", (d: Buffer) => (last = (last + d.toString()).slice(-2000)));
        const exited = new Promise<void>((resolve) => etcd.on("exit", () => resolve()));
        void this.agentRun("promote");
        await exited;
        this.journal(
          `etcd exited; its last words: ${last.split("\n").filter(Boolean).slice(-2).join(" | ")}`,
        );
        if (this.running) await sleep(500);
      }
    })();
  }

  /** Stops the unit (SIGKILL: a crash or a terminated instance, not a graceful leave). */
  async stop(): Promise<void> {
    this.running = false;
    this.agent?.kill("SIGKILL");
    this.etcd?.kill("SIGKILL");
    spawnSync("sh", ["-c", `ip netns pids ${this.ns} 2>/dev/null | xargs -r kill -9`]);
    await this.loop;
  }

  /** A new disk: the data folder is gone. */
  wipe(): void {
    rmSync(this.paths().data, { recursive: true, force: true });
    rmSync(this.paths().etcdEnv, { force: true });
  }

  /** Cut this master off the given addresses (its DNS server stays reachable), or put it back. */
  partition(from: string[], cut: boolean): void {
    for (const ip of from)
      sh(`ip netns exec ${this.ns} ip route ${cut ? "add" : "del"} unreachable ${ip}/32`);
  }

  /** Starts a new journal; the old one is kept beside it for a look after a failure. */
  resetJournal(label: string): void {
    if (existsSync(this.log)) renameSync(this.log, `${this.log}.${label}`);
  }

  /** The agent's lines (one per decision) and the harness's. */
  journalText(): string {
    return existsSync(this.log) ? readFileSync(this.log, "utf8") : "";
  }

  /** The member folders etcd-member moved aside (data.removed-<time>/member). */
  setAside(): string[] {
    return readdirSync(this.dir)
      .filter((name) => name.startsWith("data.removed-"))
      .flatMap((name) => readdirSync(join(this.dir, name)).map((entry) => `${name}/${entry}`));
  }

  etcdEnvWritten(): boolean {
    return existsSync(this.paths().etcdEnv);
  }

  /** The cluster as this master's etcd sees it: id and members, or undefined when it does not answer. */
  async view(): Promise<{ cluster: string; members: MemberView[] } | undefined> {
    const result = await this.net.etcdctlAsync([this.endpoint], ["member", "list", "-w", "json"], 3);
    if (result.status !== 0) return undefined;
    const answer = JSON.parse(result.stdout) as {
      header: { cluster_id: string };
      members: { ID: string; name?: string; isLearner?: boolean; peerURLs: string[] }[];
    };
    return {
      cluster: answer.header.cluster_id,
      members: answer.members.map((m) => ({
        id: m.ID,
        name: m.name ?? "",
        learner: m.isLearner ?? false,
        peerIp: m.peerURLs[0]!.replace(/^https:\/\//, "").replace(/:\d+$/, ""),
      })),
    };
  }

  destroy(): void {
    spawnSync("ip", ["netns", "delete", this.ns]);
    rmSync(`/etc/netns/${this.ns}`, { recursive: true, force: true });
  }
}

/** Polls until check returns a value, or fails with what it last saw. */
export async function until<T>(
  what: string,
  check: () => Promise<T | undefined> | T | undefined,
  ms: number,
  last?: () => Promise<string>,
): Promise<T> {
  const deadline = Date.now() + ms;
  for (;;) {
    const value = await check();
    if (value !== undefined) return value;
    if (Date.now() > deadline)
      throw new Error(`${what}: not within ${ms / 1000} s${last ? `\n${await last()}` : ""}`);
    await sleep(250);
  }
}
