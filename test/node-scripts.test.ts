import { spawn, spawnSync } from "node:child_process";
import { mkdirSync, readFileSync, statSync, writeFileSync } from "node:fs";
import { createServer } from "node:https";
import type { AddressInfo } from "node:net";
import { join } from "node:path";
import { parse } from "yaml";
import { repoRoot, tempDir } from "./helpers";

// The node scripts run here as they run on a node, with every path they use moved into a sandbox.
const nodeDir = join(repoRoot, "src", "node");
const openssl = (args: string[], cwd: string) => {
  const result = spawnSync("openssl", args, { cwd, encoding: "utf8" });
  if (result.status !== 0) throw new Error(`openssl ${args.join(" ")}: ${result.stderr}`);
  return result.stdout;
};

const work = tempDir("node");
let boxes = 0;

function sandbox(label: string, role: "masters" | "minions", roleFile: string) {
  const dir = join(work, `${label}-${++boxes}`);
  mkdirSync(dir);
  const paths = {
    sysconfig: join(dir, "sysconfig"),
    pki: join(dir, "pki"),
    config: join(dir, "kubernetes"),
    secrets: join(dir, "secrets"),
    nodeEnv: join(dir, "run", "node.env"),
  };
  mkdirSync(paths.sysconfig);
  mkdirSync(paths.secrets);
  writeFileSync(join(paths.sysconfig, `kubernetes-${role}`), roleFile.replaceAll("@SECRETS@", paths.secrets));
  const imageEnv = join(dir, "image.env");
  writeFileSync(
    imageEnv,
    [
      "CLUSTER_DOMAIN=cluster.local",
      "DISCOVERY_DOMAIN=k8s",
      `KUBEBAKE_CONFIG_DIR=${paths.config}`,
      `KUBEBAKE_PKI_DIR=${paths.pki}`,
      `KUBEBAKE_NODE_ENV=${paths.nodeEnv}`,
      `KUBEBAKE_LIBEXEC=${nodeDir}`,
      `KUBEBAKE_ADDONS_DIR=${join(dir, "addons")}`,
      "",
    ].join("\n"),
  );
  const env = {
    PATH: process.env.PATH!,
    KUBEBAKE_IMAGE_ENV: imageEnv,
    KUBEBAKE_SYSCONFIG_DIR: paths.sysconfig,
  };
  const run = (script: string, extra: Record<string, string> = {}) =>
    spawnSync("bash", [join(nodeDir, script)], { encoding: "utf8", env: { ...env, ...extra } });
  return { dir, paths, env, run };
}

/** A CA and a certificate it signs, made with openssl in dir. */
function makeCA(dir: string, name: string) {
  openssl(
    [
      "req",
      "-x509",
      "-newkey",
      "ec",
      "-pkeyopt",
      "ec_paramgen_curve:prime256v1",
      "-nodes",
      "-days",
      "2",
      "-subj",
      `/CN=${name}`,
      "-keyout",
      `${name}.key`,
      "-out",
      `${name}.crt`,
    ],
    dir,
  );
}

const minionSecrets = (dir: string) => {
  makeCA(dir, "ca");
  writeFileSync(join(dir, "bootstrap-token"), "abcdef.0123456789abcdef");
};

describe("node-config", () => {
  test("--cloud-provider=external only when the role file opts in with CLOUD_CONTROLLER=external", () => {
    for (const [extra, expected] of [
      ["", "KUBELET_CLOUD_ARGS=\n"],
      ["CLOUD_CONTROLLER=external\n", "KUBELET_CLOUD_ARGS=--cloud-provider=external\n"],
    ]) {
      const box = sandbox(
        "minion",
        "minions",
        `CLUSTER_NAME=demo\nSECRET_SOURCE=files:@SECRETS@\nNODE_NAME=m\nNODE_IP=10.1.2.3\n${extra}`,
      );
      minionSecrets(box.paths.secrets);
      expect(box.run("node-config").status).toBe(0);
      expect(readFileSync(box.paths.nodeEnv, "utf8")).toContain(expected);
    }
  });

  test("a minion gets its node env and a bootstrap kubeconfig that finds masters by DNS", () => {
    const box = sandbox(
      "minion",
      "minions",
      "CLUSTER_NAME=demo\nSECRET_SOURCE=files:@SECRETS@\nNODE_NAME=minion-7\nNODE_IP=10.1.2.3\n",
    );
    minionSecrets(box.paths.secrets);
    const result = box.run("node-config");
    expect(result.stderr).toBe("");
    expect(result.status).toBe(0);
    expect(result.stdout).toContain("role minions, cluster demo, provider none, node minion-7 (10.1.2.3)");
    const env = readFileSync(box.paths.nodeEnv, "utf8");
    expect(env).toContain("NODE_NAME=minion-7\nNODE_IP=10.1.2.3\nMASTERS_FQDN=masters.demo.k8s\n");
    expect(env).toContain("KUBELET_CLOUD_ARGS=\n");
    const kubeconfig = parse(readFileSync(join(box.paths.config, "bootstrap-kubelet.kubeconfig"), "utf8"));
    expect(kubeconfig.clusters[0].cluster.server).toBe("https://masters.demo.k8s:6443");
    expect(kubeconfig.users[0].user.token).toBe("abcdef.0123456789abcdef");
    for (const file of ["ca.crt", "bootstrap-token"]) {
      expect((statSync(join(box.paths.pki, file)).mode & 0o777).toString(8)).toBe("600");
    }
    expect((statSync(join(box.paths.config, "bootstrap-kubelet.kubeconfig")).mode & 0o777).toString(8)).toBe(
      "600",
    );
  });

  test("the none provider finds the node name and address itself", () => {
    const box = sandbox(
      "cloud",
      "minions",
      "CLUSTER_NAME=demo\nSECRET_SOURCE=files:@SECRETS@\nCLOUD_PROVIDER=none\n",
    );
    minionSecrets(box.paths.secrets);
    const result = box.run("node-config");
    expect(result.status).toBe(0);
    const env = readFileSync(box.paths.nodeEnv, "utf8");
    const hostname = spawnSync("hostname", ["-s"], { encoding: "utf8" }).stdout.trim().toLowerCase();
    expect(env).toContain(`NODE_NAME=${hostname}\n`);
    expect(env).toMatch(/\nNODE_IP=\d+\.\d+\.\d+\.\d+\n/);
  });

  test("a master signs its own etcd certificate for its address and loopback, and gets local kubeconfigs", () => {
    const box = sandbox(
      "master",
      "masters",
      "CLUSTER_NAME=demo\nSECRET_SOURCE=files:@SECRETS@\nNODE_NAME=master-1\nNODE_IP=10.0.0.9\n",
    );
    const s = box.paths.secrets;
    makeCA(s, "ca");
    makeCA(s, "etcd-ca");
    const others = [
      "front-proxy-ca.crt",
      "front-proxy-client.crt",
      "front-proxy-client.key",
      "sa.key",
      "sa.pub",
      "apiserver.crt",
      "apiserver.key",
      "apiserver-kubelet-client.crt",
      "apiserver-kubelet-client.key",
      "apiserver-etcd-client.crt",
      "apiserver-etcd-client.key",
      "controller-manager.crt",
      "controller-manager.key",
      "scheduler.crt",
      "scheduler.key",
      "admin.crt",
      "admin.key",
    ];
    for (const name of others) writeFileSync(join(s, name), `${name} (test material)\n`);
    writeFileSync(join(s, "bootstrap-token"), "abcdef.0123456789abcdef");
    const result = box.run("node-config");
    expect(result.stderr).toBe("");
    expect(result.status).toBe(0);
    const verify = spawnSync(
      "openssl",
      ["verify", "-CAfile", join(box.paths.pki, "etcd-ca.crt"), join(box.paths.pki, "etcd-member.crt")],
      { encoding: "utf8" },
    );
    expect(verify.stdout).toContain(": OK");
    const text = openssl(["x509", "-in", join(box.paths.pki, "etcd-member.crt"), "-noout", "-text"], box.dir);
    // the peers and the other masters' etcd-member reach it on its address, the API server on loopback
    expect(text).toMatch(/IP Address:10\.0\.0\.9, IP Address:127\.0\.0\.1, DNS:master-1, DNS:localhost/);
    expect(text).toMatch(/TLS Web Server Authentication, TLS Web Client Authentication/);
    // the cluster's shared etcd server key is not fetched: each master's certificate is its own
    expect(statSync(join(box.paths.pki, "etcd-ca.key")).mode & 0o777).toBe(0o600);
    expect(() => statSync(join(box.paths.pki, "etcd-server.key"))).toThrow();
    const nodeEnv = readFileSync(box.paths.nodeEnv, "utf8");
    // etcd reads ETCD_* variables as settings and exits when they shadow its flags.
    expect(nodeEnv).not.toMatch(/^ETCD_/m);
    const cm = parse(readFileSync(join(box.paths.config, "controller-manager.kubeconfig"), "utf8"));
    expect(cm.clusters[0].cluster.server).toBe("https://127.0.0.1:6443");
    expect(cm.users[0].user["client-certificate"]).toBe(join(box.paths.pki, "controller-manager.crt"));
  });

  test.each([
    [
      "a missing secret",
      "CLUSTER_NAME=demo\nSECRET_SOURCE=files:@SECRETS@\nNODE_NAME=a\nNODE_IP=10.0.0.1\n",
      false,
      /cannot fetch secret ca\.crt from files:/,
    ],
    [
      "a bad cluster name",
      "CLUSTER_NAME=Demo_1\n",
      true,
      /CLUSTER_NAME 'Demo_1' must be lowercase letters, digits and inner '-'/,
    ],
    [
      "no cluster name",
      "SECRET_SOURCE=files:@SECRETS@\n",
      true,
      /CLUSTER_NAME is not set in .*kubernetes-minions/,
    ],
    [
      "an unknown provider",
      "CLUSTER_NAME=demo\nCLOUD_PROVIDER=openstack\n",
      true,
      /CLOUD_PROVIDER 'openstack' is not one of aws, gce, azure, none/,
    ],
    [
      "a secret source of another provider",
      "CLUSTER_NAME=demo\nSECRET_SOURCE=ssm:/kubebake/demo\nNODE_NAME=a\nNODE_IP=10.0.0.1\n",
      true,
      /SECRET_SOURCE 'ssm:\/kubebake\/demo' is not files:\/path/,
    ],
  ])("%s stops the node with a clear message", (_name, roleFile, withSecrets, message) => {
    const box = sandbox("bad", "minions", roleFile as string);
    if (withSecrets) minionSecrets(box.paths.secrets);
    const result = box.run("node-config");
    expect(result.status).toBe(1);
    expect(result.stderr).toMatch(message as RegExp);
  });

  test("no role file: nothing to assemble, and it says so", () => {
    const box = sandbox("norole", "minions", "");
    spawnSync("rm", [join(box.paths.sysconfig, "kubernetes-minions")]);
    const result = box.run("node-config");
    expect(result.status).toBe(1);
    expect(result.stderr).toMatch(/no role file: expected .*kubernetes-masters or kubernetes-minions/);
  });
});

describe("etcd-member", () => {
  test("a masters count etcd cannot keep a quorum with is refused, naming the role file's field; nothing is written", () => {
    const box = sandbox("count", "masters", "CLUSTER_NAME=demo\nMASTERS_COUNT=4\n");
    const result = box.run("etcd-member", { KUBEBAKE_ETCD_ENV: join(box.dir, "etcd.env") });
    expect({ status: result.status, stderr: result.stderr }).toEqual({
      status: 1,
      stderr: "kubebake etcd-member: error: MASTERS_COUNT '4' in the role file is not 1, 3 or 5\n",
    });
    expect(() => statSync(join(box.dir, "etcd.env"))).toThrow();
  });
});

describe("wait-for-masters", () => {
  test("is bounded and logs every attempt while the masters' name does not resolve", () => {
    const box = sandbox("wait", "minions", "CLUSTER_NAME=nowhere-to-be-found\n");
    mkdirSync(join(box.dir, "run"), { recursive: true });
    const started = Date.now();
    const result = box.run("wait-for-masters", {
      WAIT_FOR_MASTERS_SECONDS: "2",
      WAIT_FOR_MASTERS_INTERVAL: "1",
    });
    expect(result.status).toBe(1);
    expect(result.stdout).toContain("attempt 1: masters.nowhere-to-be-found.k8s does not resolve yet");
    expect(result.stdout).toMatch(/gave up after [2-4] attempts in 2s/);
    expect(Date.now() - started).toBeLessThan(15_000);
  });

  // The masters' name is made to resolve with a private /etc/hosts in a mount namespace of its own.
  test("proceeds once the name resolves and /readyz answers over TLS with the cluster CA, not before", async () => {
    const box = sandbox("ready", "minions", "CLUSTER_NAME=demo\n");
    const pki = box.paths.pki;
    mkdirSync(pki);
    mkdirSync(join(box.dir, "run"));
    makeCA(pki, "ca");
    makeCA(box.dir, "other-ca");
    openssl(
      [
        "req",
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:prime256v1",
        "-nodes",
        "-subj",
        "/CN=kube-apiserver",
        "-keyout",
        "server.key",
        "-out",
        "server.csr",
      ],
      box.dir,
    );
    writeFileSync(join(box.dir, "ext"), "subjectAltName=DNS:masters.demo.k8s\n");
    openssl(
      [
        "x509",
        "-req",
        "-in",
        "server.csr",
        "-CA",
        join(pki, "ca.crt"),
        "-CAkey",
        join(pki, "ca.key"),
        "-CAcreateserial",
        "-days",
        "2",
        "-extfile",
        "ext",
        "-out",
        "server.crt",
      ],
      box.dir,
    );
    const server = createServer(
      { key: readFileSync(join(box.dir, "server.key")), cert: readFileSync(join(box.dir, "server.crt")) },
      (req, res) => (req.url === "/readyz" ? res.end("ok") : res.writeHead(404).end()),
    );
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
    const port = String((server.address() as AddressInfo).port);
    writeFileSync(join(box.dir, "hosts"), "127.0.0.1 localhost\n127.0.0.1 masters.demo.k8s\n");
    const inNamespace = (extra: Record<string, string>) =>
      new Promise<{ code: number | null; stdout: string }>((resolve) => {
        const userns = process.getuid?.() === 0 ? [] : ["-r"];
        const script = `mount --bind ${join(box.dir, "hosts")} /etc/hosts && exec bash ${join(nodeDir, "wait-for-masters")}`;
        const child = spawn("unshare", [...userns, "-m", "sh", "-c", script], {
          env: { ...box.env, KUBEBAKE_API_PORT: port, WAIT_FOR_MASTERS_INTERVAL: "1", ...extra },
        });
        let stdout = "";
        child.stdout.on("data", (d) => (stdout += d));
        child.on("close", (code) => resolve({ code, stdout }));
      });
    try {
      const ready = await inNamespace({ WAIT_FOR_MASTERS_SECONDS: "20" });
      expect(ready.stdout).toContain(
        `attempt 1: https://masters.demo.k8s:${port}/readyz is ready (masters: 127.0.0.1)`,
      );
      expect(ready.code).toBe(0);
      // With another CA the answer is not trusted, so the wait goes on until its bound.
      writeFileSync(join(pki, "ca.crt"), readFileSync(join(box.dir, "other-ca.crt")));
      const untrusted = await inNamespace({ WAIT_FOR_MASTERS_SECONDS: "1" });
      expect(untrusted.stdout).toMatch(
        /attempt 1: masters\.demo\.k8s resolves to 127\.0\.0\.1 but .* is not ready: curl: \(60\)/,
      );
      expect(untrusted.code).toBe(1);
    } finally {
      server.closeAllConnections();
      await new Promise((resolve) => server.close(resolve));
    }
  });
});
