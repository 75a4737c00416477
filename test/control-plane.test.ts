/**
 * The real etcd and kube-apiserver on this host's loopback, the API server with the command line and config
 * files the image bakes (test/golden, paths moved into a temporary folder) and the certificates a master
 * issues itself (src/node/issue-certs): Secrets are sealed in etcd, the
 * audit log records requests without their bodies, Pod Security refuses a privileged pod, and a key rotation
 * done the documented way (kubebake pki encryption-key add/use/retire, an API server restart after each)
 * never leaves a Secret unreadable; a CA rotation (kubebake pki ca add/use/retire) keeps both CAs' clients in
 * during the overlap and shuts the old CA's out after it. Faster than a VM boot, so it runs every step the
 * boot test cannot afford.
 */
import { spawn, spawnSync, type ChildProcess } from "node:child_process";
import { createHash } from "node:crypto";
import { mkdirSync, readdirSync, readFileSync, writeFileSync } from "node:fs";
import { createServer } from "node:net";
import { join } from "node:path";
import { generateClusterPki } from "../src/pki/pki";
import { writePki } from "../src/pki/write";
import { repoRoot, runCli, tempDir, upstreamPrograms } from "./helpers";
import { certificateRequest, signCertificate } from "./openssl";
import {
  DescribeParametersCommand,
  GetParameterCommand,
  PutParameterCommand,
  SSMClient,
} from "@aws-sdk/client-ssm";
import { startMoto, type Moto } from "./aws/moto";
import { startFakeSts, type FakeSts, type StsSession } from "./aws/sts";
import { EC2Client, RegisterImageCommand, RunInstancesCommand } from "@aws-sdk/client-ec2";

jest.setTimeout(10 * 60_000);

const work = tempDir("control-plane");
const pki = join(work, "pki");
const config = join(work, "config");
const auditLog = join(work, "log", "audit.log");
const golden = join(repoRoot, "test", "golden");
const programs = () => upstreamPrograms();

const freePort = () =>
  new Promise<number>((resolve) => {
    const server = createServer().listen(0, "127.0.0.1", () => {
      const { port } = server.address() as { port: number };
      server.close(() => resolve(port));
    });
  });

let etcd: ChildProcess | undefined;
let apiserver: ChildProcess | undefined;
let apiserverLog = "";
let etcdPort: number;
let apiPort: number;

/** The baked unit's ExecStart, with this host's paths and ports in place of the node's. */
function apiserverCommandLine(): string[] {
  const unit = readFileSync(join(golden, "etc/systemd/system/kube-apiserver.service"), "utf8");
  const line = /^ExecStart=(.+)$/m.exec(unit.replace(/\s*\\\n\s*/g, " "))![1]!.trim();
  const args = line.split(/\s+/).slice(1);
  return args.map((arg) =>
    arg
      .replace("${NODE_IP}", "127.0.0.1")
      .replace(/^--bind-address=.*/, "--bind-address=127.0.0.1")
      .replace(/^--secure-port=.*/, `--secure-port=${apiPort}`)
      .replace(/^--etcd-servers=.*/, `--etcd-servers=https://127.0.0.1:${etcdPort}`)
      .replace("/var/log/kubernetes/audit.log", auditLog)
      .replace("/etc/kubernetes/pki/", `${pki}/`)
      .replace("/etc/kubernetes/", `${config}/`),
  );
}

const kubeconfig = join(work, "admin.kubeconfig");
const kubectl = (...args: string[]) =>
  spawnSync(
    join(programs(), "kubectl"),
    [
      `--kubeconfig=${kubeconfig}`,
      `--server=https://127.0.0.1:${apiPort}`,
      "--tls-server-name=masters.demo.k8s",
      "--request-timeout=20s",
      ...args,
    ],
    { encoding: "utf8" },
  );

/** A kubeconfig for this API server with a client certificate (an identity a master issues itself). */
function kubeconfigFor(file: string, cert: string, key: string): void {
  writeFileSync(
    file,
    [
      "apiVersion: v1",
      "kind: Config",
      `clusters: [{name: c, cluster: {server: 'https://127.0.0.1:${apiPort}', certificate-authority: '${pki}/ca.crt'}}]`,
      `users: [{name: u, user: {client-certificate: '${cert}', client-key: '${key}'}}]`,
      "contexts: [{name: x, context: {cluster: c, user: u}}]",
      "current-context: x",
      "",
    ].join("\n"),
    { mode: 0o600 },
  );
}

/**
 * Runs a node script (src/node/SCRIPT) as on this test's master: its image.env and role file, the real
 * kubectl on PATH (after `shims`, if any), kubectl's cache in the test's folder; `env` adds to that.
 */
function masterScript(script: string, args: string[] = [], env: Record<string, string> = {}, shims?: string) {
  return spawnSync("bash", [join(repoRoot, "src", "node", script), ...args], {
    encoding: "utf8",
    env: {
      PATH: [shims, programs(), process.env.PATH].filter(Boolean).join(":"),
      HOME: work,
      KUBEBAKE_IMAGE_ENV: join(work, "image.env"),
      KUBEBAKE_SYSCONFIG_DIR: join(work, "sysconfig"),
      ...env,
    },
  });
}

/** masterScript without blocking: for scripts that call servers of this process (the fake STS). */
function masterScriptAsync(script: string, args: string[] = [], env: Record<string, string> = {}) {
  const child = spawn("bash", [join(repoRoot, "src", "node", script), ...args], {
    env: {
      PATH: [programs(), process.env.PATH].join(":"),
      HOME: work,
      KUBEBAKE_IMAGE_ENV: join(work, "image.env"),
      KUBEBAKE_SYSCONFIG_DIR: join(work, "sysconfig"),
      ...env,
    },
    stdio: ["ignore", "pipe", "pipe"],
  });
  let stdout = "";
  let stderr = "";
  child.stdout.on("data", (d) => (stdout += d));
  child.stderr.on("data", (d) => (stderr += d));
  return new Promise<{ status: number | null; stdout: string; stderr: string }>((resolve) =>
    child.on("close", (status) => resolve({ status, stdout, stderr })),
  );
}

/** `kubectl auth can-i ARGS` as the identity of a kubeconfig: "yes" or "no". */
const canIAs = (kubeconfigFile: string, ...args: string[]) =>
  spawnSync(join(programs(), "kubectl"), [`--kubeconfig=${kubeconfigFile}`, "auth", "can-i", ...args], {
    encoding: "utf8",
    env: { PATH: process.env.PATH!, HOME: work },
  }).stdout.trim();

let managerRunning = () => false;
/**
 * The real controller manager with the baked unit's command line (paths and port moved here, only the
 * controllers that approve and sign node certificates and publish kube-root-ca.crt, no leader election) while `during` runs.
 */
async function withControllerManager<T>(during: () => Promise<T>): Promise<T> {
  const unit = readFileSync(join(golden, "etc/systemd/system/kube-controller-manager.service"), "utf8");
  const line = /^ExecStart=(.+)$/m.exec(unit.replace(/\s*\\\n\s*/g, " "))![1]!.trim();
  const cmKubeconfig = join(work, "controller-manager.kubeconfig");
  kubeconfigFor(cmKubeconfig, `${pki}/controller-manager.crt`, `${pki}/controller-manager.key`);
  const port = await freePort();
  const args = line
    .split(/\s+/)
    .slice(1)
    .filter((arg) => !arg.startsWith("$"))
    .map((arg) =>
      arg
        .replace("${CLUSTER_NAME}", "demo")
        .replace(/^--controllers=.*/, "--controllers=csrsigning,csrapproving,root-ca-cert-publisher")
        .replace(/^--leader-elect=.*/, "--leader-elect=false")
        .replace("/etc/kubernetes/controller-manager.kubeconfig", cmKubeconfig)
        .replace("/etc/kubernetes/pki/", `${pki}/`),
    )
    .concat(`--secure-port=${port}`);
  let log = "";
  const manager = spawn(join(programs(), "kube-controller-manager"), args, {
    stdio: ["ignore", "ignore", "pipe"],
  });
  manager.stderr!.on("data", (chunk: Buffer) => (log = (log + chunk.toString()).slice(-8000)));
  const exited = new Promise((resolve) => manager.once("exit", resolve));
  managerRunning = () => manager.exitCode === null;
  try {
    return await during();
  } catch (error) {
    throw new Error(`${(error as Error).message}\nkube-controller-manager:\n${log.slice(-3000)}`);
  } finally {
    if (manager.exitCode === null) manager.kill("SIGTERM");
    await exited;
  }
}
/** Waits up to a minute for a value other than "", while the controller manager runs. */
async function eventually(what: string, read: () => string) {
  for (let i = 0; i < 60 && managerRunning(); i++) {
    const value = read();
    if (value !== "") return value;
    await new Promise((resolve) => setTimeout(resolve, 1000));
  }
  throw new Error(`no ${what} (the controller manager ${managerRunning() ? "ran a minute" : "exited"})`);
}

async function startApiserver(): Promise<void> {
  apiserverLog = "";
  apiserver = spawn(join(programs(), "kube-apiserver"), apiserverCommandLine(), {
    stdio: ["ignore", "ignore", "pipe"],
  });
  apiserver.stderr!.on(
    "data",
    (chunk: Buffer) => (apiserverLog = (apiserverLog + chunk.toString()).slice(-20_000)),
  );
  const deadline = Date.now() + 120_000;
  for (;;) {
    const ready = kubectl("get", "--raw", "/readyz");
    if (ready.status === 0 && ready.stdout === "ok") return;
    if (apiserver.exitCode !== null || Date.now() > deadline)
      throw new Error(`kube-apiserver did not become ready:\n${apiserverLog.slice(-4000)}`);
    await new Promise((resolve) => setTimeout(resolve, 1000));
  }
}

async function stopApiserver(): Promise<void> {
  if (!apiserver || apiserver.exitCode !== null) return;
  const exited = new Promise((resolve) => apiserver!.once("exit", resolve));
  apiserver.kill("SIGTERM");
  await exited;
}

/** A Secret's bytes as etcd holds them. */
function rawSecret(name: string): string {
  const result = spawnSync(
    join(programs(), "etcdctl"),
    [
      `--endpoints=https://127.0.0.1:${etcdPort}`,
      `--cacert=${pki}/etcd-ca.crt`,
      `--cert=${pki}/apiserver-etcd-client.crt`,
      `--key=${pki}/apiserver-etcd-client.key`,
      "get",
      `/registry/secrets/default/${name}`,
      "--print-value-only",
    ],
    { encoding: "latin1" },
  );
  if (result.status !== 0) throw new Error(`etcdctl: ${result.stderr}`);
  return result.stdout;
}

const secretValue = (name: string) => {
  const result = kubectl("get", "secret", name, "-o", "jsonpath={.data.v}");
  return result.status === 0 ? Buffer.from(result.stdout, "base64").toString() : `error: ${result.stderr}`;
};
const keyNames = () =>
  [...readFileSync(join(pki, "encryption-config.yaml"), "utf8").matchAll(/name: (key-[\d-]+)/g)].map(
    (m) => m[1],
  );

beforeAll(async () => {
  const files = await generateClusterPki({
    cluster: "demo",
    discoveryDomain: "k8s",
  });
  await writePki(pki, files);
  writeFileSync(kubeconfig, files.find((f) => f.name === "admin.kubeconfig")!.content, { mode: 0o600 });
  mkdirSync(config, { recursive: true });
  for (const name of ["authentication-config", "authorization-config", "admission-config", "audit-policy"])
    writeFileSync(join(config, `${name}.yaml`), readFileSync(join(golden, "etc/kubernetes", `${name}.yaml`)));
  // This "master's" own certificates, made by the script that makes them on a master at boot.
  const sysconfig = join(work, "sysconfig");
  mkdirSync(sysconfig);
  writeFileSync(join(sysconfig, "kubernetes-masters"), "CLUSTER_NAME=demo\n");
  const imageEnv = join(work, "image.env");
  writeFileSync(
    imageEnv,
    [
      "CLUSTER_DOMAIN=cluster.local",
      "DISCOVERY_DOMAIN=k8s",
      "FIRST_SERVICE_IP=10.32.0.1",
      `KUBEBAKE_PKI_DIR=${pki}`,
    ]
      .concat([`KUBEBAKE_LIBEXEC=${join(repoRoot, "src", "node")}`, ""])
      .join("\n"),
  );
  const issued = masterScript("issue-certs", ["boot"], { NODE_NAME: "m1", NODE_IP: "127.0.0.1" });
  if (issued.status !== 0) throw new Error(`issue-certs: ${issued.stderr}`);
  etcdPort = await freePort();
  const peerPort = await freePort();
  apiPort = await freePort();
  etcd = spawn(
    join(programs(), "etcd"),
    [
      "--name=m1",
      `--data-dir=${join(work, "etcd")}`,
      `--listen-client-urls=https://127.0.0.1:${etcdPort}`,
      `--advertise-client-urls=https://127.0.0.1:${etcdPort}`,
      `--listen-peer-urls=http://127.0.0.1:${peerPort}`,
      `--initial-advertise-peer-urls=http://127.0.0.1:${peerPort}`,
      `--initial-cluster=m1=http://127.0.0.1:${peerPort}`,
      "--listen-metrics-urls=",
      "--client-cert-auth=true",
      `--trusted-ca-file=${pki}/etcd-ca.crt`,
      `--cert-file=${pki}/etcd-member.crt`,
      `--key-file=${pki}/etcd-member.key`,
    ],
    { stdio: "ignore" },
  );
  await startApiserver();
});

afterAll(async () => {
  await stopApiserver();
  etcd?.kill("SIGTERM");
});

test("a Secret is secretbox ciphertext in etcd under the cluster's key, and plain through the API", () => {
  const created = kubectl("create", "secret", "generic", "sealed", "--from-literal=v=plain-value-1");
  expect({ status: created.status, stderr: created.stderr }).toEqual({ status: 0, stderr: "" });
  const raw = rawSecret("sealed");
  expect(raw.startsWith(`k8s:enc:secretbox:v1:${keyNames()[0]}:`)).toBe(true);
  expect(raw).not.toContain("plain-value-1");
  expect(raw).not.toContain(Buffer.from("plain-value-1").toString("base64"));
  expect(secretValue("sealed")).toBe("plain-value-1");
});

test("the audit log records who created the Secret, at Metadata, without its value", () => {
  const events = readFileSync(auditLog, "utf8")
    .trim()
    .split("\n")
    .map((line) => JSON.parse(line) as Record<string, any>);
  const create = events.filter(
    (e) => e.objectRef?.resource === "secrets" && e.objectRef?.name === "sealed" && e.verb === "create",
  );
  expect(create.map((e) => [e.user.username, e.level, e.stage, e.responseStatus.code])).toEqual([
    ["kubebake-admin", "Metadata", "ResponseComplete", 201],
  ]);
  expect(readFileSync(auditLog, "utf8")).not.toContain("plain-value-1");
  // Health probes and lease renewals are left out of the log.
  expect(events.filter((e) => /^\/(readyz|livez|healthz)/.test(e.requestURI))).toEqual([]);
});

test("Pod Security: a privileged pod is refused in default, a restricted-clean one passes without warnings, kube-system is exempt", () => {
  const pod = (namespace: string, securityContext: object, podSecurityContext: object = {}) => {
    const file = join(work, `pod-${namespace}-${Object.keys(securityContext).join("-")}.json`);
    writeFileSync(
      file,
      JSON.stringify({
        apiVersion: "v1",
        kind: "Pod",
        metadata: { name: "p", namespace },
        spec: {
          securityContext: podSecurityContext,
          containers: [{ name: "c", image: "example.invalid/x:1", securityContext }],
        },
      }),
    );
    return kubectl("apply", "--dry-run=server", "-f", file);
  };
  // No controller manager runs here to make the namespaces' default service accounts.
  for (const namespace of ["default", "kube-system"])
    kubectl("create", "serviceaccount", "default", "-n", namespace);
  const refused = pod("default", { privileged: true });
  expect(refused.status).toBe(1);
  expect(refused.stderr).toMatch(
    /forbidden: violates PodSecurity "baseline:latest": privileged \(container "c" must not set securityContext\.privileged=true\)/,
  );
  const warned = pod("default", {});
  expect(warned.status).toBe(0);
  expect(warned.stderr).toMatch(/Warning: would violate PodSecurity "restricted:latest"/);
  const clean = pod(
    "default",
    { allowPrivilegeEscalation: false, capabilities: { drop: ["ALL"] } },
    { runAsNonRoot: true, runAsUser: 65534, seccompProfile: { type: "RuntimeDefault" } },
  );
  expect({ status: clean.status, stderr: clean.stderr }).toEqual({ status: 0, stderr: "" });
  const exempt = pod("kube-system", { privileged: true });
  expect({ status: exempt.status, stderr: exempt.stderr }).toEqual({ status: 0, stderr: "" });
});

test("a key rotation the documented way keeps every Secret readable, and ends with all of them under the new key", async () => {
  const file = join(pki, "encryption-config.yaml");
  const step = async (name: "add" | "use" | "retire") => {
    const result = runCli("kubebake", ["pki", "encryption-key", name, "--file", file, "--json"]);
    expect({ code: result.code, stderr: result.stderr }).toEqual({ code: 0, stderr: "" });
    await stopApiserver();
    await startApiserver();
    return (JSON.parse(result.stdout) as { keys: string[] }).keys;
  };
  const [oldKey] = keyNames() as [string];
  kubectl("create", "secret", "generic", "before", "--from-literal=v=before-value");

  // 1. add: the new key is read, not written.
  const added = await step("add");
  expect(added[0]).toBe(oldKey);
  expect(added).toHaveLength(2);
  const newKey = added[1]!;
  kubectl("create", "secret", "generic", "during", "--from-literal=v=during-value");
  expect(rawSecret("during").startsWith(`k8s:enc:secretbox:v1:${oldKey}:`)).toBe(true);

  // 2. use: new writes are under the new key; the old Secrets still read. Then every Secret is rewritten.
  expect(await step("use")).toEqual([newKey, oldKey]);
  expect(secretValue("before")).toBe("before-value");
  const all = kubectl("get", "secrets", "-A", "-o", "json");
  writeFileSync(join(work, "all-secrets.json"), all.stdout);
  const replaced = kubectl("replace", "-f", join(work, "all-secrets.json"));
  expect({ status: replaced.status, stderr: replaced.stderr }).toEqual({ status: 0, stderr: "" });
  for (const name of ["sealed", "before", "during"])
    expect(`${name} ${rawSecret(name).slice(0, 22 + newKey.length)}`).toBe(
      `${name} k8s:enc:secretbox:v1:${newKey}:`,
    );

  // 3. retire: the old key is gone from the file, and every Secret still reads.
  expect(await step("retire")).toEqual([newKey]);
  expect(keyNames()).toEqual([newKey]);
  expect([secretValue("sealed"), secretValue("before"), secretValue("during")]).toEqual([
    "plain-value-1",
    "before-value",
    "during-value",
  ]);

  // A step out of order changes nothing and exits 2.
  const before = readFileSync(file, "utf8");
  const refused = runCli("kubebake", ["pki", "encryption-key", "use", "--file", file]);
  expect({ code: refused.code, stderr: refused.stderr }).toEqual({
    code: 2,
    stderr: `error: only key ${newKey}: "add" a key before using it\n`,
  });
  expect(readFileSync(file, "utf8")).toBe(before);
});

test("renewed certificates: etcd and the API server serve their new ones after the restarts issue-certs asks for, and the cluster keeps answering", async () => {
  const served = (port: number) => {
    const s = spawnSync(
      "openssl",
      ["s_client", "-connect", `127.0.0.1:${port}`, "-servername", "localhost"],
      {
        input: "",
        encoding: "utf8",
      },
    );
    const pem = /-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/.exec(s.stdout)?.[0];
    if (!pem) throw new Error(`no certificate on ${port}: ${s.stderr}`);
    return spawnSync("openssl", ["x509", "-noout", "-serial", "-enddate"], { input: pem, encoding: "utf8" })
      .stdout;
  };
  const before = { etcd: served(etcdPort), api: served(apiPort) };
  const shims = join(work, "shims");
  const calls = join(work, "calls");
  mkdirSync(shims, { recursive: true });
  writeFileSync(join(shims, "systemctl"), `#!/bin/sh\necho "systemctl $*" >> ${calls}\n`, { mode: 0o755 });
  // The script waits for 127.0.0.1:6443; this API server is elsewhere, and restarted by the test below.
  writeFileSync(join(shims, "curl"), "#!/bin/sh\nprintf ok\n", { mode: 0o755 });
  const renewed = masterScript(
    "issue-certs",
    ["renew"],
    {
      NODE_NAME: "m1",
      NODE_IP: "127.0.0.1",
      KUBEBAKE_CERT_DAYS: "1",
      KUBEBAKE_CERT_RENEW_BEFORE_SECONDS: String(31 * 86_400),
    },
    shims,
  );
  expect({ status: renewed.status, stderr: renewed.stderr }).toEqual({ status: 0, stderr: "" });
  expect(readFileSync(calls, "utf8")).toContain("systemctl try-restart kube-apiserver\n");
  // On a master etcd gets its certificate as a systemd credential, copied at each start: it is restarted.
  // This etcd reads the PKI folder itself, for every new connection.
  expect(readFileSync(calls, "utf8")).toContain("systemctl try-restart etcd\n");
  expect(served(etcdPort)).not.toBe(before.etcd);
  // The API server restarted as systemd would: it reaches etcd with its new client certificate and serves
  // its new certificate; what was stored before still reads.
  await stopApiserver();
  await startApiserver();
  expect(served(apiPort)).not.toBe(before.api);
  expect(secretValue("sealed")).toBe("plain-value-1");
  const created = kubectl("create", "secret", "generic", "after-renewal", "--from-literal=v=x");
  expect({ status: created.status, stderr: created.stderr }).toEqual({ status: 0, stderr: "" });
});

describe("approve-kubelet-certs with the real API server", () => {
  const approverKubeconfig = join(work, "approver.kubeconfig");
  const nodeKubeconfig = join(work, "node-n1.kubeconfig");
  /** A kubelet-serving request for SUBJECT naming SANS, sent as the node n1 (or as the admin). */
  const request = (
    name: string,
    subject: string,
    sans: string,
    as: "node" | "admin" = "node",
    refused?: RegExp,
  ) => {
    certificateRequest(work, name, subject, sans);
    const csr = {
      apiVersion: "certificates.k8s.io/v1",
      kind: "CertificateSigningRequest",
      metadata: { name },
      spec: {
        signerName: "kubernetes.io/kubelet-serving",
        usages: ["digital signature", "key encipherment", "server auth"],
        request: readFileSync(join(work, `${name}.csr`)).toString("base64"),
      },
    };
    writeFileSync(join(work, `${name}.json`), JSON.stringify(csr));
    const created = spawnSync(
      join(programs(), "kubectl"),
      [
        `--kubeconfig=${as === "node" ? nodeKubeconfig : kubeconfig}`,
        ...(as === "admin"
          ? [`--server=https://127.0.0.1:${apiPort}`, "--tls-server-name=masters.demo.k8s"]
          : []),
        "create",
        "-f",
        join(work, `${name}.json`),
      ],
      { encoding: "utf8" },
    );
    if (refused)
      expect({ name, status: created.status, stderr: created.stderr }).toEqual({
        name,
        status: 1,
        stderr: expect.stringMatching(refused),
      });
    else
      expect({ name, status: created.status, stderr: created.stderr }).toEqual({
        name,
        status: 0,
        stderr: "",
      });
  };
  const condition = (name: string) =>
    JSON.parse(kubectl("get", "csr", name, "-o", "jsonpath={.status.conditions}").stdout || "[]") as {
      type: string;
      reason: string;
      message: string;
    }[];
  const approve = () =>
    masterScript("approve-kubelet-certs", ["once"], { KUBEBAKE_APPROVER_KUBECONFIG: approverKubeconfig });

  beforeAll(() => {
    const rbac = kubectl("apply", "-f", join(golden, "usr/lib/kubebake/addons/bootstrap-rbac.yaml"));
    expect({ status: rbac.status, stderr: rbac.stderr }).toEqual({ status: 0, stderr: "" });
    kubeconfigFor(approverKubeconfig, `${pki}/kubelet-cert-approver.crt`, `${pki}/kubelet-cert-approver.key`);
    // Node n1: its object with the addresses its kubelet reported, and its client certificate.
    writeFileSync(
      join(work, "n1.json"),
      JSON.stringify({ apiVersion: "v1", kind: "Node", metadata: { name: "n1" } }),
    );
    expect(kubectl("create", "-f", join(work, "n1.json")).status).toBe(0);
    const status = kubectl(
      ...["patch", "node", "n1", "--subresource=status", "--type=merge", "-p"],
      JSON.stringify({
        status: {
          addresses: [
            { type: "InternalIP", address: "10.0.0.5" },
            { type: "Hostname", address: "n1" },
          ],
        },
      }),
    );
    expect(status.stderr).toBe("");
    signCertificate(work, "n1-client", { subject: "/O=system:nodes/CN=system:node:n1", ca: `${pki}/ca` });
    kubeconfigFor(nodeKubeconfig, join(work, "n1-client.crt"), join(work, "n1-client.key"));
  });

  test("a request naming only the node's own name and address is approved; any other name, subject or requester is denied, saying why", () => {
    request("good", "/O=system:nodes/CN=system:node:n1", "DNS:n1,IP:10.0.0.5");
    request("other-ip", "/O=system:nodes/CN=system:node:n1", "DNS:n1,IP:10.0.0.99");
    request("other-name", "/O=system:nodes/CN=system:node:n1", "DNS:n1,DNS:api.example.com");
    // NodeRestriction already refuses another node's subject; the approver checks it again for requests the
    // admission plugin does not see (e.g. made before it was on).
    request(
      "other-node",
      "/O=system:nodes/CN=system:node:n2",
      "DNS:n1,IP:10.0.0.5",
      "node",
      /can only create a node CSR with CN=system:node:n1/,
    );
    request("not-a-node", "/O=system:nodes/CN=system:node:n1", "DNS:n1,IP:10.0.0.5", "admin");
    const pass = approve();
    expect({ status: pass.status, stderr: pass.stderr }).toEqual({ status: 0, stderr: "" });
    expect(condition("good")).toEqual([
      expect.objectContaining({ type: "Approved", reason: "KubebakeNodeAddresses" }),
    ]);
    const denied = (name: string) => {
      const [c] = condition(name);
      return `${c?.type}: ${c?.message}`;
    };
    expect(denied("other-ip")).toBe(
      "Denied: IP:10.0.0.99 is not an address of node n1 (it has: IP:10.0.0.5 DNS:n1)",
    );
    expect(denied("other-name")).toBe(
      "Denied: DNS:api.example.com is not an address of node n1 (it has: IP:10.0.0.5 DNS:n1)",
    );
    expect(denied("not-a-node")).toBe("Denied: asked by kubebake-admin, not by a node");
    // A second pass leaves decided requests alone.
    const again = approve();
    expect(again.stdout).toBe("");
  });

  test("the approver's identity can approve for the two kubelet signers and nothing else", () => {
    const canI = (...args: string[]) => canIAs(approverKubeconfig, ...args);
    // A signer's name has a '/', which `kubectl auth can-i` takes apart: ask with a review of our own.
    const mayApprove = (signer: string) => {
      const review = join(work, "review.json");
      writeFileSync(
        review,
        JSON.stringify({
          apiVersion: "authorization.k8s.io/v1",
          kind: "SelfSubjectAccessReview",
          spec: {
            resourceAttributes: {
              group: "certificates.k8s.io",
              resource: "signers",
              name: signer,
              verb: "approve",
            },
          },
        }),
      );
      const r = spawnSync(
        join(programs(), "kubectl"),
        [`--kubeconfig=${approverKubeconfig}`, "create", "--validate=false", "-f", review, "-o", "json"],
        {
          encoding: "utf8",
        },
      );
      if (r.status !== 0) throw new Error(`SelfSubjectAccessReview: ${r.stderr}`);
      return (JSON.parse(r.stdout) as { status: { allowed: boolean } }).status.allowed ? "yes" : "no";
    };
    expect({
      approveKubeletServing: mayApprove("kubernetes.io/kubelet-serving"),
      approveKubeletClient: mayApprove("kubernetes.io/kube-apiserver-client-kubelet"),
      approveClientCerts: mayApprove("kubernetes.io/kube-apiserver-client"),
      readSecrets: canI("get", "secrets", "-A"),
      deleteCsrs: canI("delete", "certificatesigningrequests"),
      updateNodes: canI("update", "nodes"),
    }).toEqual({
      approveKubeletServing: "yes",
      approveKubeletClient: "yes",
      approveClientCerts: "no",
      readSecrets: "no",
      deleteCsrs: "no",
      updateNodes: "no",
    });
  });
});

describe("join-token with the real API server", () => {
  let moto: Moto;
  let ssm: SSMClient;
  const secrets = join(work, "store");
  const credentials = { accessKeyId: "AKIDJOINTOKEN", secretAccessKey: "join-token-test-secret" };
  const tokenKubectl = (token: string, ...args: string[]) =>
    spawnSync(
      join(programs(), "kubectl"),
      [
        `--server=https://127.0.0.1:${apiPort}`,
        `--certificate-authority=${pki}/ca.crt`,
        "--tls-server-name=masters.demo.k8s",
        // The token goes in a kubeconfig of its own: on kubectl's command line it would be public.
        `--kubeconfig=${tokenConfig(token)}`,
        ...args,
      ],
      { encoding: "utf8", env: { PATH: process.env.PATH!, HOME: work } },
    );
  const tokenConfig = (token: string) => {
    const file = join(work, `token-${token.split(".")[0]}.kubeconfig`);
    writeFileSync(
      file,
      `apiVersion: v1\nkind: Config\nusers: [{name: t, user: {token: ${token}}}]\nclusters: [{name: c, cluster: {server: x}}]\ncontexts: [{name: x, context: {cluster: c, user: t}}]\ncurrent-context: x\n`,
      { mode: 0o600 },
    );
    return file;
  };
  /** join-token on this "master": provider none (the token came with the user data) or aws (SSM on moto). */
  const joinToken = (provider: "none" | "aws", extra: Record<string, string> = {}) => {
    const roleFile =
      provider === "none"
        ? `CLUSTER_NAME=demo\nSECRET_SOURCE=files:${secrets}\n`
        : "CLUSTER_NAME=demo\nCLOUD_PROVIDER=aws\nSECRET_SOURCE=ssm:/kubebake/demo\nSECRET_KMS_KEY=alias/aws/ssm\n";
    writeFileSync(join(work, "sysconfig", "kubernetes-masters"), roleFile);
    return masterScript("join-token", [], {
      // Its own identity, which may only get, create and delete Secrets in kube-system.
      KUBEBAKE_JOIN_TOKEN_KUBECONFIG: joinTokenKubeconfig,
      AWS_ACCESS_KEY_ID: credentials.accessKeyId,
      AWS_SECRET_ACCESS_KEY: credentials.secretAccessKey,
      AWS_REGION: "eu-west-1",
      AWS_ENDPOINT_URL_SSM: moto.endpoint,
      ...extra,
    });
  };
  /** What a token may do that matters: ask for a node's certificate. */
  const mayJoin = (token: string) =>
    tokenKubectl(
      token,
      "auth",
      "can-i",
      "create",
      "certificatesigningrequests.certificates.k8s.io",
    ).stdout.trim();
  const kubeconfigWithServer = join(work, "admin-direct.kubeconfig");
  const joinTokenKubeconfig = join(work, "join-token.kubeconfig");
  /** A kubebake join token's Secret, made by hand: expiring at `expiration`, or never. */
  const tokenSecretOf = (id: string, secret: string, expiration?: Date) => ({
    apiVersion: "v1",
    kind: "Secret",
    metadata: { name: `bootstrap-token-${id}`, namespace: "kube-system" },
    type: "bootstrap.kubernetes.io/token",
    stringData: {
      "token-id": id,
      "token-secret": secret,
      ...(expiration ? { expiration: expiration.toISOString().replace(/\.\d+Z$/, "Z") } : {}),
      "usage-bootstrap-authentication": "true",
      "auth-extra-groups": "system:bootstrappers:kubebake",
    },
  });
  const tokenSecret = (id: string) =>
    JSON.parse(
      kubectl("get", "secret", "-n", "kube-system", `bootstrap-token-${id}`, "-o", "json").stdout || "null",
    ) as {
      data: Record<string, string>;
    } | null;
  const expiry = (id: string) =>
    Date.parse(Buffer.from(tokenSecret(id)!.data.expiration!, "base64").toString());
  const published = async () =>
    (
      await ssm.send(
        new GetParameterCommand({ Name: "/kubebake/demo/bootstrap-token", WithDecryption: true }),
      )
    ).Parameter!.Value!;

  beforeAll(async () => {
    moto = await startMoto();
    ssm = new SSMClient({ region: "eu-west-1", endpoint: moto.endpoint, credentials });
    mkdirSync(secrets, { recursive: true });
    writeFileSync(join(secrets, "bootstrap-token"), readFileSync(join(pki, "bootstrap-token")));
    // The operator's kubeconfig with the server this test's API server listens on.
    writeFileSync(
      kubeconfigWithServer,
      readFileSync(kubeconfig, "utf8").replace(/server: .*/, `server: https://127.0.0.1:${apiPort}`),
      { mode: 0o600 },
    );
    expect(kubectl("apply", "-f", join(golden, "usr/lib/kubebake/addons/bootstrap-rbac.yaml")).status).toBe(
      0,
    );
    kubeconfigFor(joinTokenKubeconfig, `${pki}/join-token.crt`, `${pki}/join-token.key`);
  });
  afterAll(async () => moto?.stop());

  test("provider none: the delivered token gets a Secret that expires after the TTL, once; it joins and does nothing else", () => {
    const token = readFileSync(join(secrets, "bootstrap-token"), "utf8").trim();
    const id = token.split(".")[0]!;
    const before = Date.now();
    const first = joinToken("none");
    expect({ status: first.status, stderr: first.stderr }).toEqual({ status: 0, stderr: "" });
    expect(first.stdout).toContain(
      `join token ${id} accepted for 240 minutes; provider none cannot publish a new one`,
    );
    const expires = expiry(id);
    expect(expires).toBeGreaterThanOrEqual(Math.floor(before / 1000) * 1000 + 240 * 60_000);
    expect(expires).toBeLessThanOrEqual(Date.now() + 240 * 60_000);
    const again = joinToken("none");
    expect(again.stdout).toMatch(
      new RegExp(`join token ${id} is valid for 2[0-9]{2} more minutes: nothing to do`),
    );
    expect(expiry(id)).toBe(expires);
    // What the token may do: ask for a node certificate, nothing more.
    const can = (...args: string[]) => tokenKubectl(token, "auth", "can-i", ...args).stdout.trim();
    expect({
      createCsr: can("create", "certificatesigningrequests.certificates.k8s.io"),
      readSecrets: can("get", "secrets", "-n", "kube-system"),
      listNodes: can("list", "nodes"),
      createPods: can("create", "pods"),
    }).toEqual({ createCsr: "yes", readSecrets: "no", listNodes: "no", createPods: "no" });
  });

  test("an expired token is refused by the API server", () => {
    const expired = `expird.${"0123456789abcdef"}`;
    writeFileSync(
      join(work, "expired.json"),
      JSON.stringify(tokenSecretOf("expird", "0123456789abcdef", new Date(Date.now() - 60_000))),
    );
    expect(kubectl("create", "-f", join(work, "expired.json")).status).toBe(0);
    const refused = tokenKubectl(expired, "get", "--raw", "/apis");
    expect(refused.status).toBe(1);
    expect(refused.stderr).toMatch(/Unauthorized/);
  });

  test("provider aws: a token that never expired or runs short is replaced by a new one, published to SSM; the one without expiry is deleted and refused", async () => {
    // As an older image left it: the store's token, its Secret without expiry.
    const old = readFileSync(join(secrets, "bootstrap-token"), "utf8").trim();
    const oldId = old.split(".")[0]!;
    await ssm.send(
      new PutParameterCommand({
        Name: "/kubebake/demo/bootstrap-token",
        Value: old,
        Type: "SecureString",
        Overwrite: true,
      }),
    );
    kubectl("delete", "secret", "-n", "kube-system", `bootstrap-token-${oldId}`);
    writeFileSync(join(work, "forever.json"), JSON.stringify(tokenSecretOf(oldId, old.split(".")[1]!)));
    expect(kubectl("create", "-f", join(work, "forever.json")).status).toBe(0);

    const rotated = joinToken("aws");
    expect({ status: rotated.status, stderr: rotated.stderr }).toEqual({ status: 0, stderr: "" });
    const fresh = await published();
    const freshId = fresh.split(".")[0]!;
    expect(fresh).toMatch(/^[a-z0-9]{6}\.[a-z0-9]{16}$/);
    expect(fresh).not.toBe(old);
    expect(rotated.stdout).toContain(
      `minted and published join token ${freshId}, valid for 240 minutes (replacing ${oldId})`,
    );
    expect(rotated.stdout).toContain(`deleted join token ${oldId}, which never expired`);
    expect(tokenSecret(oldId)).toBeNull();
    expect(expiry(freshId) - Date.now()).toBeGreaterThan(235 * 60_000);
    // The API server caches a token's success for 10 s: the deleted one is refused once that passed.
    let refused = tokenKubectl(old, "get", "--raw", "/apis");
    for (let i = 0; i < 15 && refused.status === 0; i++) {
      await new Promise((resolve) => setTimeout(resolve, 1000));
      refused = tokenKubectl(old, "get", "--raw", "/apis");
    }
    expect(refused.stderr).toMatch(/Unauthorized/);
    expect(mayJoin(fresh)).toBe("yes");
    // The new token was never on a command line; the parameter keeps its KMS key.
    expect(rotated.stdout + rotated.stderr).not.toContain(fresh.split(".")[1]);
    const described = await ssm.send(
      new DescribeParametersCommand({
        ParameterFilters: [{ Key: "Name", Values: ["/kubebake/demo/bootstrap-token"] }],
      }),
    );
    expect(described.Parameters?.[0]?.KeyId).toBe("alias/aws/ssm");

    // Valid for most of its life: kept. With less than half left (a TTL twice as long makes it so): replaced.
    expect(joinToken("aws").stdout).toContain(`join token ${freshId} is valid for`);
    const again = joinToken("aws", { KUBEBAKE_JOIN_TOKEN_TTL_MINUTES: "600" });
    expect(again.status).toBe(0);
    const third = await published();
    expect(third).not.toBe(fresh);
    // The previous token stays valid until its own expiry: a node that read it a moment ago still joins.
    expect(mayJoin(fresh)).toBe("yes");
  });
});

describe("node-gc with the real API server", () => {
  const gcKubeconfig = join(work, "node-gc.kubeconfig");
  const shims = join(work, "gc-shims");
  /** Discovery's records as this test's DNS: name → addresses (getent's shim answers from it). */
  const records = join(work, "records");
  const nodeGc = () =>
    masterScript("node-gc", [], { KUBEBAKE_NODE_GC_KUBECONFIG: gcKubeconfig, NODE_IP: "10.0.0.1" }, shims);
  const ago = (seconds: number) =>
    new Date(Date.now() - seconds * 1000).toISOString().replace(/\.\d+Z$/, ".000000Z");
  /** A Node as a kubelet would have left it: its address, Ready or not, its lease renewed `renewed` s ago. */
  const node = (name: string, address: string, ready: "True" | "Unknown", renewed: number) => {
    writeFileSync(
      join(work, `${name}.json`),
      JSON.stringify({ apiVersion: "v1", kind: "Node", metadata: { name } }),
    );
    expect(kubectl("create", "-f", join(work, `${name}.json`)).status).toBe(0);
    const status = {
      status: {
        addresses: [{ type: "InternalIP", address }],
        conditions: [
          {
            type: "Ready",
            status: ready,
            reason: "Test",
            lastHeartbeatTime: ago(renewed),
            lastTransitionTime: ago(renewed),
          },
        ],
      },
    };
    expect(
      kubectl("patch", "node", name, "--subresource=status", "--type=merge", "-p", JSON.stringify(status))
        .stderr,
    ).toBe("");
    const lease = {
      apiVersion: "coordination.k8s.io/v1",
      kind: "Lease",
      metadata: { name, namespace: "kube-node-lease" },
      spec: { holderIdentity: name, leaseDurationSeconds: 40, renewTime: ago(renewed) },
    };
    writeFileSync(join(work, `${name}-lease.json`), JSON.stringify(lease));
    expect(kubectl("create", "-f", join(work, `${name}-lease.json`)).status).toBe(0);
  };
  const nodes = () =>
    kubectl("get", "nodes", "-o", "jsonpath={.items[*].metadata.name}")
      .stdout.split(" ")
      .filter((n) => n.startsWith("gc-"))
      .sort();

  beforeAll(() => {
    expect(kubectl("apply", "-f", join(golden, "usr/lib/kubebake/addons/bootstrap-rbac.yaml")).status).toBe(
      0,
    );
    kubeconfigFor(gcKubeconfig, `${pki}/node-gc.crt`, `${pki}/node-gc.key`);
    mkdirSync(shims, { recursive: true });
    // getent ahostsv4 NAME, answered from the records file ("name address" lines), as glibc prints it.
    writeFileSync(
      join(shims, "getent"),
      `#!/bin/sh\nfound=1\nwhile read -r name address; do [ "$name" = "$2" ] && echo "$address STREAM $2" && found=0; done < ${records}\nexit $found\n`,
      { mode: 0o755 },
    );
    writeFileSync(join(work, "sysconfig", "kubernetes-masters"), "CLUSTER_NAME=demo\n");
    node("gc-gone", "10.0.0.66", "Unknown", 3600);
    node("gc-live-member", "10.0.0.7", "Unknown", 3600);
    node("gc-ready", "10.0.0.67", "True", 10);
    node("gc-just-lost", "10.0.0.68", "Unknown", 60);
  });

  test("a Node is deleted only when it is not ready, has no heartbeat for 15 minutes and no record lists its machine", () => {
    writeFileSync(records, "masters.demo.k8s 10.0.0.1\nminions.demo.k8s 10.0.0.7\netcd.demo.k8s 10.0.0.1\n");
    const pass = nodeGc();
    expect({ status: pass.status, stderr: pass.stderr }).toEqual({ status: 0, stderr: "" });
    expect(pass.stdout).toMatch(
      /deleted node gc-gone \(10\.0\.0\.66\): not ready, no heartbeat for 36\d\ds, in no discovery record/,
    );
    expect(pass.stdout).toMatch(
      /node gc-live-member \(10\.0\.0\.7\) is not ready for 36\d\ds, but its machine is a live member: kept/,
    );
    expect(pass.stdout).toContain("pass done: 1 node(s) deleted");
    expect(nodes()).toEqual(["gc-just-lost", "gc-live-member", "gc-ready"]);
  });

  test("a pass is skipped when DNS does not list this master (it may not be current); nothing is deleted", () => {
    node("gc-gone-2", "10.0.0.69", "Unknown", 3600);
    writeFileSync(records, "minions.demo.k8s 10.0.0.7\n");
    const pass = nodeGc();
    expect(pass.stdout).toContain("skipped: masters.demo.k8s does not list this master (10.0.0.1)");
    expect(nodes()).toContain("gc-gone-2");
  });

  test("its identity may list and delete Nodes and read their leases, nothing else", () => {
    const can = (...args: string[]) => canIAs(gcKubeconfig, ...args);
    expect({
      deleteNodes: can("delete", "nodes"),
      listLeases: can("list", "leases", "-n", "kube-node-lease"),
      updateNodes: can("update", "nodes"),
      readSecrets: can("get", "secrets", "-A"),
      deletePods: can("delete", "pods", "-A"),
      leaderLeases: can("list", "leases", "-n", "kube-system"),
    }).toEqual({
      deleteNodes: "yes",
      listLeases: "yes",
      updateNodes: "no",
      readSecrets: "no",
      deletePods: "no",
      leaderLeases: "no",
    });
  });
});

describe("apply-addons with the real API server", () => {
  const run = join(work, "run");
  const addonsKubeconfig = join(work, "addons.kubeconfig");
  const applyAddons = () =>
    masterScript("apply-addons", [], {
      KUBEBAKE_CONFIG_DIR: work,
      KUBEBAKE_ADDONS_DIR: join(golden, "usr/lib/kubebake/addons"),
      KUBEBAKE_LOCAL_API: `https://127.0.0.1:${apiPort}`,
      KUBEBAKE_RUN_DIR: run,
    });
  const addonsCan = (...args: string[]) => canIAs(addonsKubeconfig, ...args);

  beforeAll(() => {
    mkdirSync(run, { recursive: true });
    writeFileSync(join(work, "sysconfig", "kubernetes-masters"), "CLUSTER_NAME=demo\n");
    kubeconfigFor(addonsKubeconfig, `${pki}/addons.crt`, `${pki}/addons.key`);
  });

  test("kubebake's RBAC goes in as a one-apply system:masters credential that is deleted at once; flannel and CoreDNS as kubebake:addons, twice with the same result", () => {
    // What an earlier version bound: the controller manager's automatic approval of join tokens' requests.
    const old = kubectl(
      ...["create", "clusterrolebinding", "kubebake:node-autoapprove-bootstrap"],
      "--clusterrole=system:certificates.k8s.io:certificatesigningrequests:nodeclient",
      "--group=system:bootstrappers:kubebake",
    );
    expect({ status: old.status, stderr: old.stderr }).toEqual({ status: 0, stderr: "" });
    for (const pass of [1, 2]) {
      const applied = applyAddons();
      expect({ pass, status: applied.status, stderr: applied.stderr }).toEqual({
        pass,
        status: 0,
        stderr: "",
      });
      expect(applied.stdout).toMatch(/applied bootstrap-rbac[\s\S]*applied flannel[\s\S]*applied coredns/);
      // The one-apply credential is gone: nothing is left in the run folder.
      expect(readdirSync(run)).toEqual([]);
    }
    const exists = (...args: string[]) => kubectl("get", ...args, "-o", "name").stdout.trim();
    expect(exists("clusterrolebinding", "kubebake:node-autoapprove-bootstrap", "--ignore-not-found")).toBe(
      "",
    );
    expect([
      exists("namespace", "kube-flannel"),
      exists("daemonset", "-n", "kube-flannel", "kube-flannel-ds"),
      exists("deployment", "-n", "kube-system", "coredns"),
      exists("service", "-n", "kube-system", "kube-dns"),
      exists("clusterrolebinding", "kubebake:coredns"),
    ]).toEqual([
      "namespace/kube-flannel",
      "daemonset.apps/kube-flannel-ds",
      "deployment.apps/coredns",
      "service/kube-dns",
      "clusterrolebinding.rbac.authorization.k8s.io/kubebake:coredns",
    ]);
    // The audit log names who applied what: the add-ons by kubebake:addons, not by an admin.
    const creators = readFileSync(auditLog, "utf8")
      .split("\n")
      .filter(Boolean)
      .map(
        (line) =>
          JSON.parse(line) as {
            user: { username: string };
            objectRef?: { resource: string; name?: string };
            verb: string;
          },
      )
      .filter(
        (e) =>
          e.verb === "patch" && e.objectRef?.name === "coredns" && e.objectRef.resource === "deployments",
      )
      .map((e) => e.user.username);
    expect([...new Set(creators)]).toEqual(["kubebake:addons"]);
  });

  test("kubebake:addons may apply the add-ons' objects by name and nothing else; no certificate on the master says system:masters", () => {
    expect({
      patchCoreDns: addonsCan("patch", "deployments/coredns", "-n", "kube-system"),
      patchOtherDeployment: addonsCan("patch", "deployments/other", "-n", "kube-system"),
      createPods: addonsCan("create", "pods", "-n", "default"),
      readSecrets: addonsCan("get", "secrets", "-n", "kube-system"),
      listConfigMaps: addonsCan("list", "configmaps", "-A"),
      bindClusterAdmin: addonsCan("bind", "clusterroles/cluster-admin"),
      bindFlannel: addonsCan("bind", "clusterroles/kubebake:flannel"),
      patchBootstrapRbac: addonsCan("patch", "clusterrolebindings/kubebake:kubelet-bootstrap"),
      deleteNamespaces: addonsCan("delete", "namespaces/kube-flannel"),
    }).toEqual({
      patchCoreDns: "yes",
      patchOtherDeployment: "no",
      createPods: "no",
      readSecrets: "no",
      listConfigMaps: "no",
      bindClusterAdmin: "no",
      bindFlannel: "yes",
      patchBootstrapRbac: "no",
      deleteNamespaces: "no",
    });
    const subjects = readdirSync(pki)
      // this folder also holds the operator's admin.crt (pki init's output); a master never fetches it
      .filter((name) => name.endsWith(".crt") && !/ca\.crt$/.test(name) && name !== "admin.crt")
      .map(
        (name) =>
          spawnSync("openssl", ["x509", "-in", join(pki, name), "-noout", "-subject"], { encoding: "utf8" })
            .stdout,
      );
    expect(subjects.length).toBeGreaterThan(5);
    expect(subjects.filter((subject) => subject.includes("system:masters"))).toEqual([]);
  });

  test("join-token's identity may get, create and delete Secrets in kube-system, and nothing else", () => {
    const joinKubeconfig = join(work, "join-token-can.kubeconfig");
    kubeconfigFor(joinKubeconfig, `${pki}/join-token.crt`, `${pki}/join-token.key`);
    const can = (...args: string[]) => canIAs(joinKubeconfig, ...args);
    expect({
      createTokens: can("create", "secrets", "-n", "kube-system"),
      deleteTokens: can("delete", "secrets", "-n", "kube-system"),
      listSecrets: can("list", "secrets", "-n", "kube-system"),
      otherNamespace: can("get", "secrets", "-n", "default"),
      pods: can("create", "pods", "-n", "kube-system"),
    }).toEqual({
      createTokens: "yes",
      deleteTokens: "yes",
      listSecrets: "no",
      otherNamespace: "no",
      pods: "no",
    });
  });
});

describe("a node joins with the real API server: join-node asks, approve-kubelet-certs checks the machine, the controller manager signs", () => {
  let moto: Moto;
  let sts: FakeSts;
  const region = "eu-west-1";
  const account = "123456789012";
  const tokenId = "joinme";
  const token = `${tokenId}.0123456789abcdef`;
  const store = join(work, "join-store");
  const approverKubeconfig = join(work, "join-approver.kubeconfig");
  const masterCredentials = { accessKeyId: "AKIDMASTER", secretAccessKey: "master-secret" };
  const role = (cluster: string, acct = account) =>
    `arn:aws:sts::${acct}:assumed-role/kubebake-${cluster}-${region}-minions`;
  /** EC2 instances on moto, tagged with their cluster; each signs with a session of its own. */
  const instances: Record<string, { id: string; dns: string; ip: string; session: StsSession }> = {};

  /** A node's folders and settings, as node-config leaves them: the role file, node.env, ca.crt. */
  const nodeBox = (label: string, provider: "none" | "aws", nodeName: string) => {
    const dir = join(work, `join-${label}`);
    for (const sub of ["sysconfig", "pki", "config", "kubelet-pki"])
      mkdirSync(join(dir, sub), { recursive: true });
    writeFileSync(
      join(dir, "sysconfig", "kubernetes-minions"),
      provider === "none"
        ? `CLUSTER_NAME=demo\nSECRET_SOURCE=files:${store}\n`
        : "CLUSTER_NAME=demo\nCLOUD_PROVIDER=aws\nSECRET_SOURCE=ssm:/kubebake/demo\n",
    );
    writeFileSync(join(dir, "pki", "ca.crt"), readFileSync(join(pki, "ca.crt")));
    writeFileSync(
      join(dir, "node.env"),
      `NODE_NAME=${nodeName}\nKUBEBAKE_API_URL=https://127.0.0.1:${apiPort}\n`,
    );
    writeFileSync(
      join(dir, "image.env"),
      [
        "DISCOVERY_DOMAIN=k8s",
        `KUBEBAKE_PKI_DIR=${join(dir, "pki")}`,
        `KUBEBAKE_CONFIG_DIR=${join(dir, "config")}`,
        `KUBEBAKE_NODE_ENV=${join(dir, "node.env")}`,
        `KUBEBAKE_LIBEXEC=${join(repoRoot, "src", "node")}`,
        "",
      ].join("\n"),
    );
    return dir;
  };

  /** The masters' approver, one pass, with the master's role file for PROVIDER. */
  const approve = (provider: "none" | "aws") => {
    writeFileSync(
      join(work, "sysconfig", "kubernetes-masters"),
      provider === "none"
        ? "CLUSTER_NAME=demo\n"
        : `CLUSTER_NAME=demo\nCLOUD_PROVIDER=aws\nJOIN_IDENTITIES="${role("demo")} arn:aws:sts::${account}:assumed-role/kubebake-demo-${region}-masters"\n`,
    );
    return masterScriptAsync("approve-kubelet-certs", ["once"], {
      KUBEBAKE_APPROVER_KUBECONFIG: approverKubeconfig,
      AWS_ACCESS_KEY_ID: masterCredentials.accessKeyId,
      AWS_SECRET_ACCESS_KEY: masterCredentials.secretAccessKey,
      AWS_REGION: region,
      AWS_ENDPOINT_URL_STS: sts.endpoint,
      AWS_ENDPOINT_URL_EC2: moto.endpoint,
    });
  };

  /** join-node on a node (its session's keys for aws), with the masters' approver passing every second. */
  const join_ = async (dir: string, provider: "none" | "aws", session?: StsSession) => {
    const child = spawn("bash", [join(repoRoot, "src", "node", "join-node")], {
      env: {
        PATH: [programs(), process.env.PATH].join(":"),
        HOME: work,
        KUBEBAKE_IMAGE_ENV: join(dir, "image.env"),
        KUBEBAKE_SYSCONFIG_DIR: join(dir, "sysconfig"),
        KUBELET_CERT_DIR: join(dir, "kubelet-pki"),
        KUBEBAKE_JOIN_SECONDS: "20",
        KUBEBAKE_JOIN_INTERVAL_SECONDS: "1",
        AWS_REGION: region,
        AWS_ENDPOINT_URL_STS: sts.endpoint,
        AWS_ENDPOINT_URL_SSM: moto.endpoint,
        ...(session
          ? {
              AWS_ACCESS_KEY_ID: session.accessKeyId,
              AWS_SECRET_ACCESS_KEY: session.secretAccessKey,
              AWS_SESSION_TOKEN: session.sessionToken,
            }
          : {}),
      },
      stdio: ["ignore", "pipe", "pipe"],
    });
    let output = "";
    child.stdout.on("data", (d) => (output += d));
    child.stderr.on("data", (d) => (output += d));
    const exited = new Promise<number | null>((resolve) => child.on("close", resolve));
    let approver = "";
    while (child.exitCode === null) {
      await new Promise((resolve) => setTimeout(resolve, 1000));
      const pass = await approve(provider);
      approver += pass.stdout + pass.stderr;
    }
    return { status: await exited, output, approver };
  };
  const whoami = (dir: string) =>
    spawnSync(
      join(programs(), "kubectl"),
      [
        `--kubeconfig=${join(dir, "config", "kubelet.kubeconfig")}`,
        "auth",
        "whoami",
        "-o",
        "jsonpath={.status.userInfo.username} {.status.userInfo.groups}",
      ],
      { encoding: "utf8", env: { PATH: process.env.PATH!, HOME: work } },
    );
  const conditionOf = (name: string) => {
    const [c] = JSON.parse(
      kubectl("get", "csr", name, "-o", "jsonpath={.status.conditions}").stdout || "[]",
    ) as {
      type: string;
      reason: string;
      message: string;
    }[];
    return c ? `${c.type} (${c.reason}): ${c.message}` : "pending";
  };
  /** A request sent with the join token by hand, as a kubelet would or an attacker might. */
  const requestAsToken = (
    name: string,
    subject: string,
    annotate: (pem: Buffer) => Record<string, string> = () => ({}),
  ) => {
    certificateRequest(work, name, subject);
    const pem = readFileSync(join(work, `${name}.csr`));
    const annotations = annotate(pem);
    const file = join(work, `${name}.json`);
    writeFileSync(
      file,
      JSON.stringify({
        apiVersion: "certificates.k8s.io/v1",
        kind: "CertificateSigningRequest",
        metadata: { name, annotations },
        spec: {
          signerName: "kubernetes.io/kube-apiserver-client-kubelet",
          usages: ["digital signature", "client auth"],
          request: pem.toString("base64"),
        },
      }),
    );
    const tokenKubeconfig = join(work, "join-token-holder.kubeconfig");
    writeFileSync(
      tokenKubeconfig,
      `apiVersion: v1\nkind: Config\nusers: [{name: t, user: {token: ${token}}}]\nclusters: [{name: c, cluster: {server: 'https://127.0.0.1:${apiPort}', certificate-authority: '${pki}/ca.crt'}}]\ncontexts: [{name: x, context: {cluster: c, user: t}}]\ncurrent-context: x\n`,
      { mode: 0o600 },
    );
    const created = spawnSync(
      join(programs(), "kubectl"),
      [`--kubeconfig=${tokenKubeconfig}`, "create", "-f", file],
      {
        encoding: "utf8",
        env: { PATH: process.env.PATH!, HOME: work },
      },
    );
    expect({ status: created.status, stderr: created.stderr }).toEqual({ status: 0, stderr: "" });
  };
  const proofOf = (csr: string) =>
    kubectl("get", "csr", csr, "-o", "jsonpath={.metadata.annotations.kubebake\\.io/join-proof}").stdout;

  beforeAll(async () => {
    moto = await startMoto();
    mkdirSync(store, { recursive: true });
    writeFileSync(join(store, "bootstrap-token"), `${token}\n`);
    const ssm = new SSMClient({ region, endpoint: moto.endpoint, credentials: masterCredentials });
    await ssm.send(
      new PutParameterCommand({ Name: "/kubebake/demo/bootstrap-token", Value: token, Type: "SecureString" }),
    );
    const ec2 = new EC2Client({ region, endpoint: moto.endpoint, credentials: masterCredentials });
    const image = await ec2.send(
      new RegisterImageCommand({
        Name: "kubebake-join",
        Architecture: "x86_64",
        RootDeviceName: "/dev/xvda",
        VirtualizationType: "hvm",
      }),
    );
    const sessions: StsSession[] = [];
    for (const [name, cluster, acct] of [
      ["a", "demo", account],
      ["b", "demo", account],
      ["other", "other", account],
      ["foreign", "demo", "999999999999"],
    ] as const) {
      const run = await ec2.send(
        new RunInstancesCommand({
          ImageId: image.ImageId!,
          MinCount: 1,
          MaxCount: 1,
          InstanceType: "t3.small",
          TagSpecifications: [
            { ResourceType: "instance", Tags: [{ Key: "KubernetesCluster", Value: cluster }] },
          ],
        }),
      );
      const instance = run.Instances![0]!;
      const session = {
        accessKeyId: `ASIA${name.toUpperCase()}`,
        secretAccessKey: `secret-of-${name}`,
        sessionToken: `token/of+${name}=`,
        arn: `${role(cluster, acct)}/${instance.InstanceId}`,
      };
      sessions.push(session);
      instances[name] = {
        id: instance.InstanceId!,
        dns: instance.PrivateDnsName!,
        ip: instance.PrivateIpAddress!,
        session,
      };
    }
    sts = await startFakeSts(sessions, region);
    expect(kubectl("apply", "-f", join(golden, "usr/lib/kubebake/addons/bootstrap-rbac.yaml")).status).toBe(
      0,
    );
    const expiration = new Date(Date.now() + 3600_000).toISOString().replace(/\.\d+Z$/, "Z");
    writeFileSync(
      join(work, "join-token-secret.json"),
      JSON.stringify({
        apiVersion: "v1",
        kind: "Secret",
        metadata: { name: `bootstrap-token-${tokenId}`, namespace: "kube-system" },
        type: "bootstrap.kubernetes.io/token",
        stringData: {
          "token-id": tokenId,
          "token-secret": token.split(".")[1],
          expiration,
          "usage-bootstrap-authentication": "true",
          "auth-extra-groups": "system:bootstrappers:kubebake",
        },
      }),
    );
    expect(kubectl("apply", "-f", join(work, "join-token-secret.json")).status).toBe(0);
    kubeconfigFor(approverKubeconfig, `${pki}/kubelet-cert-approver.crt`, `${pki}/kubelet-cert-approver.key`);
  });
  afterAll(async () => {
    writeFileSync(join(work, "sysconfig", "kubernetes-masters"), "CLUSTER_NAME=demo\n");
    await sts?.stop();
    await moto?.stop();
  });

  test("provider none: a node joins with the token alone (no machine identity there) and is system:node:<its name>", async () => {
    await withControllerManager(async () => {
      const dir = nodeBox("none", "none", "n-none");
      const joined = await join_(dir, "none");
      expect({ status: joined.status, output: joined.output }).toEqual({
        status: 0,
        output: expect.stringContaining("joined as system:node:n-none"),
      });
      expect(joined.approver).toMatch(
        /approved kubebake-join-n-none-\w+: system:bootstrap:joinme for node n-none: provider none has no machine identity/,
      );
      const who = whoami(dir);
      expect({ status: who.status, stdout: who.stdout }).toEqual({
        status: 0,
        stdout: 'system:node:n-none ["system:nodes","system:authenticated"]',
      });
      // Joined: nothing more to do, nothing asked again.
      const again = await join_(dir, "none");
      expect(again.output).toContain("already joined");
    });
  });

  test("the controller manager no longer approves a join token's request: without a machine's proof it is denied", async () => {
    await withControllerManager(async () => {
      requestAsToken("no-proof", "/O=system:nodes/CN=system:node:n-victim");
      // The controller manager's approver runs (csrapproving) and leaves it alone.
      await new Promise((resolve) => setTimeout(resolve, 6000));
      expect(conditionOf("no-proof")).toBe("pending");
      const pass = await approve("aws");
      expect({ status: pass.status, stderr: pass.stderr }).toEqual({ status: 0, stderr: "" });
      expect(conditionOf("no-proof")).toBe(
        "Denied (KubebakeNodeIdentity): system:bootstrap:joinme for node n-victim: the request carries no proof of its instance (annotation kubebake.io/join-proof)",
      );
    });
  });

  test("aws: an instance of the cluster joins under its own private DNS name, proved through STS, and under no other", async () => {
    await withControllerManager(async () => {
      const a = instances.a!;
      const own = nodeBox("aws-a", "aws", a.dns);
      const joined = await join_(own, "aws", a.session);
      expect({ status: joined.status, output: joined.output }).toEqual({
        status: 0,
        output: expect.stringContaining(`joined as system:node:${a.dns}`),
      });
      expect(joined.approver).toContain(
        `${a.id} of this cluster, whose private DNS name is ${a.dns}, signed the request`,
      );
      expect(whoami(own).stdout).toBe(`system:node:${a.dns} ["system:nodes","system:authenticated"]`);
      expect(sts.answers).toContain(`ok ${a.session.arn}`);

      // The same machine, asking for another member's name.
      const b = instances.b!;
      const other = await join_(nodeBox("aws-a-as-b", "aws", b.dns), "aws", a.session);
      expect(other.status).toBe(1);
      expect(other.output).toContain(
        `Denied: system:bootstrap:joinme for node ${b.dns}: ${a.id} is not a pending or running instance of cluster demo named ${b.dns}`,
      );
      // Another cluster's node role, and this cluster's role name in another account.
      for (const name of ["other", "foreign"]) {
        const i = instances[name]!;
        const refused = await join_(nodeBox(`aws-${name}`, "aws", i.dns), "aws", i.session);
        expect({ name, status: refused.status }).toEqual({ name, status: 1 });
        expect(refused.output).toContain(
          `signed by ${i.session.arn}, not by an instance of this cluster's node roles`,
        );
      }
    });
  });

  test("aws: a proof taken from another request, or altered, is refused", async () => {
    const proofs = kubectl("get", "csr", "-o", "json");
    const made = (JSON.parse(proofs.stdout) as { items: { metadata: { name: string } }[] }).items
      .map((i) => i.metadata.name)
      .filter((n) => proofOf(n) !== "");
    expect(made.length).toBeGreaterThan(0);
    const proof = proofOf(made[0]!);
    // Replayed on a request with a key of the replayer's: the digest it was made for is another's.
    requestAsToken("replayed", `/O=system:nodes/CN=system:node:${instances.a!.dns}`, () => ({
      "kubebake.io/join-proof": proof,
    }));
    // The digest rewritten to the new request's: STS finds that the signature does not match.
    requestAsToken("altered", `/O=system:nodes/CN=system:node:${instances.a!.dns}`, (pem) => ({
      "kubebake.io/join-proof": JSON.stringify({
        ...(JSON.parse(proof) as Record<string, string>),
        "x-kubebake-csr-sha256": createHash("sha256").update(pem).digest("hex"),
      }),
    }));
    const pass = await approve("aws");
    // The journal says what STS said.
    expect({ status: pass.status, stderr: pass.stderr }).toEqual({
      status: 0,
      stderr: expect.stringContaining("HTTP 403 The request signature we calculated does not match"),
    });
    expect(conditionOf("replayed")).toBe(
      `Denied (KubebakeNodeIdentity): system:bootstrap:joinme for node ${instances.a!.dns}: the proof was made for another certificate request`,
    );
    expect(conditionOf("altered")).toBe(
      `Denied (KubebakeNodeIdentity): system:bootstrap:joinme for node ${instances.a!.dns}: STS refused the proof: expired, altered, or not signed by an AWS identity`,
    );
    expect(sts.answers).toContain("SignatureDoesNotMatch");
  });

  test("aws: a serving certificate names only addresses EC2 gives the instance, whatever its Node object claims", async () => {
    const a = instances.a!;
    // The Node as a compromised node could write it (NodeRestriction lets it write its own): one address more.
    writeFileSync(
      join(work, "node-a.json"),
      JSON.stringify({ apiVersion: "v1", kind: "Node", metadata: { name: a.dns } }),
    );
    expect(kubectl("create", "-f", join(work, "node-a.json")).stderr).toBe("");
    const status = kubectl(
      ...["patch", "node", a.dns, "--subresource=status", "--type=merge", "-p"],
      JSON.stringify({
        status: {
          addresses: [
            { type: "InternalIP", address: a.ip },
            { type: "InternalIP", address: "10.9.9.9" },
            { type: "Hostname", address: a.dns },
          ],
        },
      }),
    );
    expect(status.stderr).toBe("");
    signCertificate(work, "node-a-client", {
      subject: `/O=system:nodes/CN=system:node:${a.dns}`,
      ca: `${pki}/ca`,
    });
    const nodeKubeconfig = join(work, "node-a.kubeconfig");
    kubeconfigFor(nodeKubeconfig, join(work, "node-a-client.crt"), join(work, "node-a-client.key"));
    const serving = (name: string, sans: string) => {
      certificateRequest(work, name, `/O=system:nodes/CN=system:node:${a.dns}`, sans);
      writeFileSync(
        join(work, `${name}.json`),
        JSON.stringify({
          apiVersion: "certificates.k8s.io/v1",
          kind: "CertificateSigningRequest",
          metadata: { name },
          spec: {
            signerName: "kubernetes.io/kubelet-serving",
            usages: ["digital signature", "server auth"],
            request: readFileSync(join(work, `${name}.csr`)).toString("base64"),
          },
        }),
      );
      const created = spawnSync(
        join(programs(), "kubectl"),
        [`--kubeconfig=${nodeKubeconfig}`, "create", "-f", join(work, `${name}.json`)],
        { encoding: "utf8", env: { PATH: process.env.PATH!, HOME: work } },
      );
      expect({ status: created.status, stderr: created.stderr }).toEqual({ status: 0, stderr: "" });
    };
    serving("serving-own", `DNS:${a.dns},IP:${a.ip}`);
    serving("serving-claimed", `DNS:${a.dns},IP:10.9.9.9`);
    const pass = await approve("aws");
    expect({ status: pass.status, stderr: pass.stderr }).toEqual({ status: 0, stderr: "" });
    expect(conditionOf("serving-own")).toBe(
      "Approved (KubebakeNodeAddresses): every name is an address of the requesting node",
    );
    expect(conditionOf("serving-claimed")).toBe(
      `Denied (KubebakeNodeAddresses): IP:10.9.9.9 is not an address aws gives node ${a.dns} (it gives: IP:${a.ip} DNS:${a.dns})`,
    );
  });
});

describe("a CA rotation with the real API server (kubebake pki ca add|use|retire, each followed by what a replaced master does)", () => {
  const rotation = join(work, "ca-rotation");
  const username = (config: string) => {
    const result = spawnSync(
      join(programs(), "kubectl"),
      [
        `--kubeconfig=${config}`,
        "--request-timeout=20s",
        "auth",
        "whoami",
        "-o",
        "jsonpath={.status.userInfo.username}",
      ],
      { encoding: "utf8", env: { PATH: process.env.PATH!, HOME: work } },
    );
    return result.status === 0 ? result.stdout : result.stderr.trim();
  };
  /** A client certificate of CA (a path without .crt/.key) and a kubeconfig that trusts the cluster's ca.crt. */
  const clientOf = (name: string, ca: string) => {
    signCertificate(rotation, name, { subject: `/CN=${name}`, ca });
    const config = join(rotation, `${name}.kubeconfig`);
    kubeconfigFor(config, join(rotation, `${name}.crt`), join(rotation, `${name}.key`));
    return config;
  };
  /** The second pair of the cluster CA's bundle (the new CA after add), as files of their own. */
  const secondPair = (name: string) => {
    for (const [ext, label] of [
      ["crt", "CERTIFICATE"],
      ["key", "PRIVATE KEY"],
    ] as const) {
      const blocks = readFileSync(join(pki, `ca.${ext}`), "utf8").match(
        new RegExp(`-----BEGIN ${label}-----[\\s\\S]+?-----END ${label}-----\\n`, "g"),
      )!;
      expect(blocks).toHaveLength(2);
      writeFileSync(join(rotation, `${name}.${ext}`), blocks[1]!, { mode: 0o600 });
    }
    return join(rotation, name);
  };
  /** The API server's certificate as it serves it: its issuer, and whether the cluster's ca.crt verifies it. */
  const served = () => {
    const s = spawnSync(
      "openssl",
      ["s_client", "-connect", `127.0.0.1:${apiPort}`, "-servername", "masters.demo.k8s"],
      {
        input: "",
        encoding: "utf8",
      },
    );
    const pem = /-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----\n/.exec(s.stdout)![0];
    writeFileSync(join(rotation, "served.crt"), pem);
    const issuer = spawnSync("openssl", ["x509", "-noout", "-issuer"], {
      input: pem,
      encoding: "utf8",
    }).stdout.trim();
    const verified = spawnSync(
      "openssl",
      ["verify", "-CAfile", join(pki, "ca.crt"), join(rotation, "served.crt")],
      {
        encoding: "utf8",
      },
    ).status;
    return `${issuer}, ${verified === 0 ? "verified" : "not verified"} by ca.crt`;
  };
  /** A kubelet's client certificate as the controller manager signs it once its request is approved. */
  const kubeletClientCertificate = async () => {
    certificateRequest(rotation, "kubelet-n9", "/O=system:nodes/CN=system:node:n9");
    const csr = {
      apiVersion: "certificates.k8s.io/v1",
      kind: "CertificateSigningRequest",
      metadata: { name: "rotation-kubelet-n9" },
      spec: {
        signerName: "kubernetes.io/kube-apiserver-client-kubelet",
        usages: ["digital signature", "client auth"],
        request: readFileSync(join(rotation, "kubelet-n9.csr")).toString("base64"),
      },
    };
    writeFileSync(join(rotation, "kubelet-n9.json"), JSON.stringify(csr));
    expect(kubectl("create", "-f", join(rotation, "kubelet-n9.json")).stderr).toBe("");
    expect(kubectl("certificate", "approve", "rotation-kubelet-n9").stderr).toBe("");
    const issued = await eventually(
      "signed certificate",
      () => kubectl("get", "csr", "rotation-kubelet-n9", "-o", "jsonpath={.status.certificate}").stdout,
    );
    return Buffer.from(issued, "base64").toString();
  };
  const issuerOf = (pem: string) =>
    spawnSync("openssl", ["x509", "-noout", "-issuer"], { input: pem, encoding: "utf8" }).stdout.trim();

  /** One step on the PKI folder, then a master replaced after it: its certificates issued at boot, a fresh start. */
  const step = async (name: "add" | "use" | "retire") => {
    const result = runCli("kubebake", ["pki", "ca", name, "--ca", "ca", "--dir", pki, "--json"]);
    expect({ code: result.code, stderr: result.stderr }).toEqual({ code: 0, stderr: "" });
    const boot = masterScript("issue-certs", ["boot"], { NODE_NAME: "m1", NODE_IP: "127.0.0.1" });
    expect({ status: boot.status, stderr: boot.stderr }).toEqual({ status: 0, stderr: "" });
    // The operator takes the rewritten admin kubeconfig (this test's copy reaches the API by its port).
    writeFileSync(kubeconfig, readFileSync(join(pki, "admin.kubeconfig")), { mode: 0o600 });
    await stopApiserver();
    await startApiserver();
    return (JSON.parse(result.stdout) as { cas: { subject: string }[] }).cas.map((c) => c.subject);
  };

  beforeAll(() => {
    mkdirSync(rotation, { recursive: true });
    writeFileSync(join(work, "sysconfig", "kubernetes-masters"), "CLUSTER_NAME=demo\n");
    for (const ext of ["crt", "key"])
      writeFileSync(join(rotation, `old-ca.${ext}`), readFileSync(join(pki, `ca.${ext}`)));
  });

  test("both CAs' client certificates are accepted during the overlap, the new CA serves after use, and the old CA's clients are refused after retire", async () => {
    const admin = join(work, "admin-direct-rotation.kubeconfig");
    const adminNow = () => {
      writeFileSync(
        admin,
        readFileSync(kubeconfig, "utf8").replace(/server: .*/, `server: https://127.0.0.1:${apiPort}`),
        {
          mode: 0o600,
        },
      );
      return username(admin);
    };
    const oldClient = clientOf("rotation-old", join(rotation, "old-ca"));

    // add: the new CA is trusted, nothing is signed with it yet.
    const [oldName, newName] = await step("add");
    expect(oldName).toBe("CN=kubebake-demo-ca");
    expect(served()).toBe(`issuer=CN = kubebake-demo-ca, verified by ca.crt`);
    const newIssuer = `issuer=${newName!.replace("CN=", "CN = ")}`;
    const newClient = clientOf("rotation-new", secondPair("new-ca"));
    expect([username(oldClient), username(newClient), adminNow()]).toEqual([
      "rotation-old",
      "rotation-new",
      "kubebake-admin",
    ]);

    // use: the master's certificates come from the new CA; both CAs' clients still get in, the operator
    // with a certificate of the new one.
    expect(await step("use")).toEqual([newName, oldName]);
    expect(served()).toBe(`${newIssuer}, verified by ca.crt`);
    expect([username(oldClient), username(newClient), adminNow()]).toEqual([
      "rotation-old",
      "rotation-new",
      "kubebake-admin",
    ]);
    expect(issuerOf(readFileSync(join(pki, "admin.crt"), "utf8"))).toBe(newIssuer);
    // The controller manager signs a kubelet's client certificate with the new CA alone (its signing pair)
    // and gives pods the whole bundle (kube-root-ca.crt, from --root-ca-file).
    const [kubeletCert, rootCA] = await withControllerManager(async () => [
      await kubeletClientCertificate(),
      await eventually("kube-root-ca.crt with both CAs", () => {
        const data = kubectl(
          "get",
          "configmap",
          "kube-root-ca.crt",
          "-n",
          "default",
          "-o",
          "jsonpath={.data.ca\\.crt}",
        ).stdout;
        return data.split("BEGIN CERTIFICATE").length === 3 ? data : "";
      }),
    ]);
    expect(issuerOf(kubeletCert!)).toBe(newIssuer);
    expect(rootCA).toBe(readFileSync(join(pki, "ca.crt"), "utf8"));

    // retire: only the new CA is left; a client of the old one is refused.
    expect(await step("retire")).toEqual([newName]);
    expect(username(oldClient)).toBe("error: You must be logged in to the server (Unauthorized)");
    expect([username(newClient), adminNow()]).toEqual(["rotation-new", "kubebake-admin"]);
  });
});
