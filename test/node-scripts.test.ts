import { spawn, spawnSync } from "node:child_process";
import { mkdirSync, readdirSync, readFileSync, statSync, writeFileSync } from "node:fs";
import { createServer } from "node:https";
import type { AddressInfo } from "node:net";
import { join } from "node:path";
import { parse } from "yaml";
import { repoRoot, tempDir } from "./helpers";
import { signCertificate } from "./openssl";

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
      "FIRST_SERVICE_IP=10.32.0.1",
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
  const run = (script: string, extra: Record<string, string> = {}, args: string[] = []) =>
    spawnSync("bash", [join(nodeDir, script), ...args], { encoding: "utf8", env: { ...env, ...extra } });
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

/** Each certificate a master issues itself: its CA, subject and extended key usages as openssl prints them. */
const LEAVES: [string, string, string, string][] = [
  ["apiserver", "ca", "CN = kube-apiserver", "TLS Web Server Authentication"],
  ["apiserver-kubelet-client", "ca", "CN = kube-apiserver-kubelet-client", "TLS Web Client Authentication"],
  ["apiserver-etcd-client", "etcd-ca", "CN = kube-apiserver-etcd-client", "TLS Web Client Authentication"],
  ["front-proxy-client", "front-proxy-ca", "CN = front-proxy-client", "TLS Web Client Authentication"],
  ["controller-manager", "ca", "CN = system:kube-controller-manager", "TLS Web Client Authentication"],
  ["scheduler", "ca", "CN = system:kube-scheduler", "TLS Web Client Authentication"],
  ["addons", "ca", "CN = kubebake:addons", "TLS Web Client Authentication"],
  ["join-token", "ca", "CN = kubebake:join-token", "TLS Web Client Authentication"],
  ["kubelet-cert-approver", "ca", "CN = kubebake:kubelet-cert-approver", "TLS Web Client Authentication"],
  ["node-gc", "ca", "CN = kubebake:node-gc", "TLS Web Client Authentication"],
  ["etcd-member", "etcd-ca", "CN = master-1", "TLS Web Server Authentication, TLS Web Client Authentication"],
];

/** A master's sandbox with the secrets the store holds for masters: real CAs, placeholders for the rest. */
function masterBox(label: string) {
  const box = sandbox(
    label,
    "masters",
    "CLUSTER_NAME=demo\nSECRET_SOURCE=files:@SECRETS@\nNODE_NAME=master-1\nNODE_IP=10.0.0.9\n",
  );
  const s = box.paths.secrets;
  for (const ca of ["ca", "etcd-ca", "front-proxy-ca"]) makeCA(s, ca);
  for (const name of ["sa.key", "sa.pub", "encryption-config.yaml"])
    writeFileSync(join(s, name), `${name} (test material)\n`);
  writeFileSync(join(s, "bootstrap-token"), "abcdef.0123456789abcdef");
  return box;
}

test("node-config: the role file's TIME_SERVERS (else the provider's own) become systemd-timesyncd's servers, and it is restarted to use them", () => {
  const box = sandbox(
    "time",
    "minions",
    'CLUSTER_NAME=demo\nSECRET_SOURCE=files:@SECRETS@\nTIME_SERVERS="10.0.0.2 10.0.0.3"\n',
  );
  minionSecrets(box.paths.secrets);
  const shims = join(box.dir, "shims");
  mkdirSync(shims);
  writeFileSync(join(shims, "systemctl"), `#!/bin/sh\necho "systemctl $*" >> ${join(box.dir, "calls")}\n`, {
    mode: 0o755,
  });
  const timesyncd = join(box.dir, "timesyncd.conf.d");
  const result = box.run("node-config", {
    PATH: `${shims}:${process.env.PATH}`,
    KUBEBAKE_TIMESYNCD_DIR: timesyncd,
    NODE_NAME: "minion-1",
    NODE_IP: "10.0.0.7",
  });
  expect({ status: result.status, stderr: result.stderr }).toEqual({ status: 0, stderr: "" });
  expect(readFileSync(join(timesyncd, "50-kubebake.conf"), "utf8")).toBe("[Time]\nNTP=10.0.0.2 10.0.0.3\n");
  expect(readFileSync(join(box.dir, "calls"), "utf8")).toBe(
    "systemctl try-restart systemd-timesyncd.service\n",
  );
  // Anything but names and addresses is refused, naming the setting; timesyncd's config is left alone.
  writeFileSync(
    join(box.paths.sysconfig, "kubernetes-minions"),
    `CLUSTER_NAME=demo\nSECRET_SOURCE=files:${box.paths.secrets}\nTIME_SERVERS="10.0.0.2\nFallbackNTP=evil"\n`,
  );
  const bad = box.run("node-config", {
    PATH: `${shims}:${process.env.PATH}`,
    KUBEBAKE_TIMESYNCD_DIR: timesyncd,
    NODE_NAME: "minion-1",
    NODE_IP: "10.0.0.7",
  });
  expect(bad.status).not.toBe(0);
  expect(bad.stderr).toContain("TIME_SERVERS in the role file: expected host names or addresses");
  expect(readFileSync(join(timesyncd, "50-kubebake.conf"), "utf8")).toBe("[Time]\nNTP=10.0.0.2 10.0.0.3\n");
});

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

  test("a master fetches only the CAs and shared keys, and issues every certificate it uses itself, for its name and address", () => {
    const box = masterBox("master");
    const result = box.run("node-config");
    expect(result.stderr).toBe("");
    expect(result.status).toBe(0);
    const pki = box.paths.pki;
    // What the store gave: CAs, the service-account pair, the token and the encryption config; no leaf, no admin key.
    const fetched = ["ca", "etcd-ca", "front-proxy-ca"].flatMap((n) => [`${n}.crt`, `${n}.key`]);
    for (const name of [...fetched, "sa.key", "sa.pub", "bootstrap-token", "encryption-config.yaml"])
      expect(`${name} ${(statSync(join(pki, name)).mode & 0o777).toString(8)}`).toBe(`${name} 600`);
    expect(() => statSync(join(pki, "admin.key"))).toThrow();
    for (const [leaf, ca, subject, usages] of LEAVES) {
      const verify = spawnSync(
        "openssl",
        ["verify", "-CAfile", join(pki, `${ca}.crt`), join(pki, `${leaf}.crt`)],
        {
          encoding: "utf8",
        },
      );
      expect(`${leaf}: ${verify.stdout.trim()}`).toBe(`${leaf}: ${join(pki, `${leaf}.crt`)}: OK`);
      const text = openssl(["x509", "-in", join(pki, `${leaf}.crt`), "-noout", "-text"], box.dir);
      expect(`${leaf}: ${/Subject: (.*)/.exec(text)![1]}`).toBe(`${leaf}: ${subject}`);
      expect(`${leaf}: ${/Extended Key Usage: *\n\s*(.*)/.exec(text)![1]}`).toBe(`${leaf}: ${usages}`);
      expect(text).toContain("CA:FALSE");
      expect(`${leaf} ${(statSync(join(pki, `${leaf}.key`)).mode & 0o777).toString(8)}`).toBe(`${leaf} 600`);
      // The key belongs to the certificate.
      expect(openssl(["pkey", "-in", join(pki, `${leaf}.key`), "-pubout"], box.dir)).toBe(
        openssl(["x509", "-in", join(pki, `${leaf}.crt`), "-noout", "-pubkey"], box.dir),
      );
      // 30 days by default.
      const dates = openssl(
        ["x509", "-in", join(pki, `${leaf}.crt`), "-noout", "-startdate", "-enddate"],
        box.dir,
      );
      const [start, end] = [...dates.matchAll(/=(.*)/g)].map((m) => Date.parse(m[1]!));
      expect(`${leaf} ${(end! - start!) / 86_400_000}`).toBe(`${leaf} 30`);
    }
    const sans = (leaf: string) =>
      /X509v3 Subject Alternative Name: *\n\s*(.*)/.exec(
        openssl(["x509", "-in", join(pki, `${leaf}.crt`), "-noout", "-text"], box.dir),
      )![1];
    // Every way the API is reached, this master's own address included.
    expect(sans("apiserver")).toBe(
      "DNS:masters.demo.k8s, DNS:kubernetes, DNS:kubernetes.default, DNS:kubernetes.default.svc, DNS:kubernetes.default.svc.cluster.local, DNS:master-1, IP Address:10.32.0.1, IP Address:127.0.0.1, IP Address:10.0.0.9",
    );
    // the peers and the other masters' etcd-member reach etcd on its address, the API server on loopback
    expect(sans("etcd-member")).toBe(
      "IP Address:10.0.0.9, IP Address:127.0.0.1, DNS:master-1, DNS:localhost",
    );
    // No two certificates share a key.
    const keys = LEAVES.map(([leaf]) => readFileSync(join(pki, `${leaf}.key`), "utf8"));
    expect(new Set(keys).size).toBe(LEAVES.length);
    const nodeEnv = readFileSync(box.paths.nodeEnv, "utf8");
    // etcd reads ETCD_* variables as settings and exits when they shadow its flags.
    expect(nodeEnv).not.toMatch(/^ETCD_/m);
    const cm = parse(readFileSync(join(box.paths.config, "controller-manager.kubeconfig"), "utf8"));
    expect(cm.clusters[0].cluster.server).toBe("https://127.0.0.1:6443");
    expect(cm.users[0].user["client-certificate"]).toBe(join(pki, "controller-manager.crt"));
    const addons = parse(readFileSync(join(box.paths.config, "addons.kubeconfig"), "utf8"));
    expect(addons.users[0].user["client-certificate"]).toBe(join(pki, "addons.crt"));
  });

  test("issue-certs renew: nothing while every certificate has a third of its life left; once due, each is new and each program that reads it restarts once, one at a time, the API server ready before the next", () => {
    const box = masterBox("renew");
    expect(box.run("node-config").status).toBe(0);
    const calls = join(box.dir, "calls");
    const shims = join(box.dir, "shims");
    mkdirSync(shims);
    // systemctl and the readiness probe are recorded, in order, in one file.
    writeFileSync(join(shims, "systemctl"), `#!/bin/sh\necho "systemctl $*" >> ${calls}\n`, { mode: 0o755 });
    writeFileSync(
      join(shims, "curl"),
      `#!/bin/sh\nfor a; do case "$a" in */readyz) echo "readyz $a" >> ${calls}; printf ok; exit 0 ;; esac; done\nexit 7\n`,
      { mode: 0o755 },
    );
    const env = { PATH: `${shims}:${process.env.PATH}`, NODE_NAME: "master-1", NODE_IP: "10.0.0.9" };
    const serials = () =>
      LEAVES.map(([leaf]) =>
        openssl(["x509", "-in", join(box.paths.pki, `${leaf}.crt`), "-noout", "-serial"], box.dir),
      );
    const before = serials();

    const quiet = box.run("issue-certs", { ...env }, ["renew"]);
    expect({ status: quiet.status, stderr: quiet.stderr }).toEqual({ status: 0, stderr: "" });
    expect(quiet.stdout).toContain("every certificate has more than 864000s left: nothing to renew");
    expect(serials()).toEqual(before);
    expect(() => readFileSync(calls)).toThrow(); // nothing restarted

    // Due: the 30-day certificates have less than the 31 days asked for left. The new ones live one day.
    const due = box.run(
      "issue-certs",
      { ...env, KUBEBAKE_CERT_DAYS: "1", KUBEBAKE_CERT_RENEW_BEFORE_SECONDS: String(31 * 86_400) },
      ["renew"],
    );
    expect({ status: due.status, stderr: due.stderr }).toEqual({ status: 0, stderr: "" });
    expect(due.stdout).toContain(`issued ${LEAVES.map(([l]) => l).join(" ")} for 1 days`);
    const after = serials();
    for (let i = 0; i < LEAVES.length; i++) expect(after[i]).not.toBe(before[i]);
    expect(readFileSync(calls, "utf8")).toBe(
      [
        "systemctl try-restart kube-apiserver",
        "readyz https://127.0.0.1:6443/readyz",
        "systemctl try-restart kube-controller-manager",
        "systemctl try-restart kube-scheduler",
        "systemctl try-restart kubebake-csr-approver",
        // etcd reads its certificate as a systemd credential, copied at each start
        "systemctl try-restart etcd",
        "",
      ].join("\n"),
    );
    // A day-long certificate is due in its last third (8 hours): not now.
    const fresh = box.run("issue-certs", { ...env, KUBEBAKE_CERT_DAYS: "1" }, ["renew"]);
    expect(fresh.stdout).toContain("every certificate has more than 28800s left: nothing to renew");
    // A bad lifetime is refused, naming the role file's field.
    const bad = box.run("issue-certs", { ...env, KUBEBAKE_CERT_DAYS: "30d" }, ["renew"]);
    expect({ status: bad.status, stderr: bad.stderr }).toEqual({
      status: 1,
      stderr:
        "kubebake issue-certs: error: KUBEBAKE_CERT_DAYS '30d' in the role file is not a whole number of days\n",
    });
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

describe("a CA rotation on a master (kubebake pki ca)", () => {
  const fingerprint = (file: string, dir: string) =>
    openssl(["x509", "-in", file, "-noout", "-fingerprint", "-sha256"], dir);
  const certificates = (file: string) => readFileSync(file, "utf8").match(/BEGIN CERTIFICATE/g)?.length;
  const issuer = (file: string, dir: string) =>
    openssl(["x509", "-in", file, "-noout", "-issuer"], dir).trim();
  /** The store's cluster CA files as a rotation step leaves them: `add` keeps the old CA first, `use` the new. */
  const storeStep = (secrets: string, step: "add" | "use" | "mixed") => {
    const [first, second] = step === "add" ? ["old-ca", "new-ca"] : ["new-ca", "old-ca"];
    const read = (name: string) => readFileSync(join(secrets, name), "utf8");
    writeFileSync(join(secrets, "ca.crt"), read(`${first}.crt`) + read(`${second}.crt`));
    // "mixed": the keys in the other order than their certificates.
    const keys = step === "mixed" ? [second, first] : [first, second];
    writeFileSync(join(secrets, "ca.key"), keys.map((k) => read(`${k}.key`)).join(""));
  };
  const rotationBox = (label: string) => {
    const box = masterBox(label);
    const s = box.paths.secrets;
    makeCA(s, "old-ca");
    makeCA(s, "new-ca");
    return box;
  };

  test("node-config: every program trusts the bundle, what signs uses its first pair only; after use, renew reissues what the old CA signed", () => {
    const box = rotationBox("rotation");
    const { pki, secrets } = { pki: box.paths.pki, secrets: box.paths.secrets };
    storeStep(secrets, "add");
    const added = box.run("node-config");
    expect({ status: added.status, stderr: added.stderr }).toEqual({ status: 0, stderr: "" });
    // The bundle as fetched, for every program that trusts; one certificate and its key for what signs.
    expect(readFileSync(join(pki, "ca.crt"), "utf8")).toBe(readFileSync(join(secrets, "ca.crt"), "utf8"));
    expect(certificates(join(pki, "ca-signing.crt"))).toBe(1);
    expect(fingerprint(join(pki, "ca-signing.crt"), box.dir)).toBe(
      fingerprint(join(secrets, "old-ca.crt"), box.dir),
    );
    expect(openssl(["pkey", "-in", join(pki, "ca-signing.key"), "-pubout"], box.dir)).toBe(
      openssl(["x509", "-in", join(secrets, "old-ca.crt"), "-noout", "-pubkey"], box.dir),
    );
    for (const [file, mode] of [
      ["ca-signing.crt", "644"],
      ["ca-signing.key", "600"],
      ["etcd-ca-signing.key", "600"],
      ["front-proxy-ca-signing.key", "600"],
    ])
      expect(`${file} ${(statSync(join(pki, file!)).mode & 0o777).toString(8)}`).toBe(`${file} ${mode}`);
    expect(issuer(join(pki, "apiserver.crt"), box.dir)).toBe("issuer=CN = old-ca");
    // The units point each use at the right file: the controller manager signs with the pair, trusts the bundle.
    const unit = readFileSync(
      join(repoRoot, "test", "golden", "etc/systemd/system/kube-controller-manager.service"),
      "utf8",
    );
    const flag = (name: string) => new RegExp(`${name}=/etc/kubernetes/pki/(\\S+)`).exec(unit)?.[1];
    expect([
      flag("--cluster-signing-cert-file"),
      flag("--cluster-signing-key-file"),
      flag("--root-ca-file"),
    ]).toEqual(["ca-signing.crt", "ca-signing.key", "ca.crt"]);

    // use: the store's bundle has the new CA first; the timer's renew finds the cluster CA's leaves signed
    // by the old one and reissues them (and only them), with the restarts a renewal makes.
    storeStep(secrets, "use");
    for (const name of ["ca.crt", "ca.key"])
      writeFileSync(join(pki, name), readFileSync(join(secrets, name)));
    const shims = join(box.dir, "shims");
    mkdirSync(shims);
    writeFileSync(join(shims, "systemctl"), "#!/bin/sh\n", { mode: 0o755 });
    writeFileSync(join(shims, "curl"), "#!/bin/sh\nprintf ok\n", { mode: 0o755 });
    const env = { PATH: `${shims}:${process.env.PATH}`, NODE_NAME: "master-1", NODE_IP: "10.0.0.9" };
    const etcdBefore = fingerprint(join(pki, "etcd-member.crt"), box.dir);
    const renewed = box.run("issue-certs", env, ["renew"]);
    expect({ status: renewed.status, stderr: renewed.stderr }).toEqual({ status: 0, stderr: "" });
    const issued = /issued (.*) for 30 days/.exec(renewed.stdout)![1]!.split(" ");
    expect(issued).toEqual(
      expect.arrayContaining(["apiserver", "apiserver-kubelet-client", "controller-manager"]),
    );
    for (const name of ["apiserver-etcd-client", "front-proxy-client", "etcd-member"])
      expect(issued).not.toContain(name);
    for (const name of issued)
      expect(`${name} ${issuer(join(pki, `${name}.crt`), box.dir)}`).toBe(`${name} issuer=CN = new-ca`);
    expect(fingerprint(join(pki, "etcd-member.crt"), box.dir)).toBe(etcdBefore);
    expect(fingerprint(join(pki, "ca-signing.crt"), box.dir)).toBe(
      fingerprint(join(secrets, "new-ca.crt"), box.dir),
    );
    expect(renewed.stdout).toContain("restarted kube-apiserver with its new certificates");
    expect(box.run("issue-certs", env, ["renew"]).stdout).toContain("nothing to renew");

    // A master replaced after `use` issues everything from the new CA at boot.
    const booted = box.run("node-config");
    expect({ status: booted.status, stderr: booted.stderr }).toEqual({ status: 0, stderr: "" });
    expect(issuer(join(pki, "apiserver.crt"), box.dir)).toBe("issuer=CN = new-ca");
    // Signed by the new CA, and trusted through the bundle the API server's clients read.
    const verify = spawnSync(
      "openssl",
      ["verify", "-CAfile", join(pki, "ca.crt"), join(pki, "apiserver.crt")],
      {
        encoding: "utf8",
      },
    );
    expect(verify.stdout).toBe(`${join(pki, "apiserver.crt")}: OK\n`);
  });

  test("a bundle whose first key is not its first certificate's stops the master, naming both files", () => {
    const box = rotationBox("mixed");
    storeStep(box.paths.secrets, "mixed");
    const result = box.run("node-config");
    const pki = box.paths.pki;
    expect({ status: result.status, stderr: result.stderr }).toEqual({
      status: 1,
      stderr: `kubebake issue-certs: error: the first key of ${pki}/ca.key does not belong to the first certificate of ${pki}/ca.crt\n`,
    });
    expect(readdirSync(pki).filter((f) => f.startsWith(".") || f.startsWith("ca-signing"))).toEqual([]);
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

describe("api-health", () => {
  /**
   * A master whose API server is not ready: curl's /readyz fails; etcdctl answers `endpoint health` for the
   * addresses in `healthy` and lists `voters` voting members; getent answers the etcd record with `peers`.
   */
  function unreadyMaster(
    label: string,
    peers: string[],
    healthy: string[],
    voters: number,
    unreadyFor: number,
  ) {
    const box = sandbox(label, "masters", "CLUSTER_NAME=demo\nNODE_NAME=m1\nNODE_IP=10.0.0.1\n");
    const shims = join(box.dir, "shims");
    mkdirSync(shims);
    mkdirSync(join(box.dir, "run"));
    writeFileSync(join(shims, "curl"), "#!/bin/sh\necho 'connection refused' >&2\nexit 7\n", { mode: 0o755 });
    writeFileSync(
      join(shims, "getent"),
      `#!/bin/sh\n[ "$2" = etcd.demo.k8s ] || exit 2\nfor ip in ${peers.join(" ")}; do echo "$ip STREAM $2"; done\n`,
      { mode: 0o755 },
    );
    const members = JSON.stringify({ members: Array.from({ length: voters }, (_, i) => ({ ID: i + 1 })) });
    writeFileSync(
      join(shims, "etcdctl"),
      `#!/bin/sh\nfor a; do case "$a" in --endpoints=*) ep=\${a#--endpoints=https://}; ep=\${ep%:2379} ;; endpoint) want=health ;; member) want=list ;; esac; done\n` +
        `case " ${healthy.join(" ")} " in *" $ep "*) ;; *) exit 1 ;; esac\n` +
        `[ "$want" = list ] && echo '${members}'\nexit 0\n`,
      { mode: 0o755 },
    );
    writeFileSync(
      join(box.dir, "run", "api-unready-since"),
      `${Math.floor(Date.now() / 1000) - unreadyFor}\n`,
    );
    return box.run("api-health", { PATH: `${shims}:${process.env.PATH}`, NODE_IP: "10.0.0.1" });
  }

  test("unready for less than 10 minutes: it only says how long", () => {
    const result = unreadyMaster(
      "short",
      ["10.0.0.1", "10.0.0.2", "10.0.0.3"],
      ["10.0.0.2", "10.0.0.3"],
      3,
      120,
    );
    expect(result.status).toBe(0);
    expect(result.stdout).toMatch(
      /has not been ready for 12\ds \(replaced after 600s if the others hold quorum\)/,
    );
  });

  test("unready for 10 minutes while the others hold quorum: it asks to be replaced", () => {
    const result = unreadyMaster(
      "own-fault",
      ["10.0.0.1", "10.0.0.2", "10.0.0.3"],
      ["10.0.0.2", "10.0.0.3"],
      3,
      700,
    );
    expect({ status: result.status, stderr: result.stderr }).toEqual({ status: 0, stderr: "" });
    expect(result.stdout).toMatch(
      /2 of 3 etcd voters answer without it: asking the group to replace this master/,
    );
    expect(result.stdout).toContain("provider none cannot ask for this machine's replacement");
  });

  test.each([
    [
      "a lost quorum (one of three others answers)",
      ["10.0.0.1", "10.0.0.2", "10.0.0.3"],
      ["10.0.0.2"],
      3,
      "only 1 other etcd member(s) of 3 voters",
    ],
    [
      "no other member answers",
      ["10.0.0.1", "10.0.0.2", "10.0.0.3"],
      [],
      3,
      "only 0 other etcd member(s) of an unknown number of voters",
    ],
    ["the only master", ["10.0.0.1"], [], 1, "only 0 other etcd member(s) of an unknown number of voters"],
    [
      "two of five answer",
      ["10.0.0.1", "10.0.0.2", "10.0.0.3", "10.0.0.4", "10.0.0.5"],
      ["10.0.0.2", "10.0.0.3"],
      5,
      "only 2 other etcd member(s) of 5 voters",
    ],
  ])("%s: it is not replaced, and says why", (_what, peers, healthy, voters, message) => {
    const result = unreadyMaster("no-quorum", peers, healthy, voters, 700);
    expect(result.status).toBe(0);
    expect(result.stdout).toContain(
      `${message} answer: no quorum without this master, so it is not replaced`,
    );
    expect(result.stdout).not.toContain("asking the group");
  });

  test("a bad wait in the role file stops it, naming the setting", () => {
    const box = sandbox("bad-wait", "masters", "CLUSTER_NAME=demo\nKUBEBAKE_UNHEALTHY_AFTER_SECONDS=10m\n");
    const result = box.run("api-health", { NODE_IP: "10.0.0.1" });
    expect({ status: result.status, stderr: result.stderr }).toEqual({
      status: 1,
      stderr:
        "kubebake api-health: error: KUBEBAKE_UNHEALTHY_AFTER_SECONDS '10m' in the role file is not a whole number of seconds\n",
    });
  });

  test("ready again: the count starts over", () => {
    const box = sandbox("ready", "masters", "CLUSTER_NAME=demo\nNODE_NAME=m1\nNODE_IP=10.0.0.1\n");
    const shims = join(box.dir, "shims");
    mkdirSync(shims);
    mkdirSync(join(box.dir, "run"));
    writeFileSync(join(shims, "curl"), "#!/bin/sh\nprintf ok\n", { mode: 0o755 });
    writeFileSync(join(box.dir, "run", "api-unready-since"), "1\n");
    const result = box.run("api-health", { PATH: `${shims}:${process.env.PATH}`, NODE_IP: "10.0.0.1" });
    expect({ status: result.status, stdout: result.stdout }).toEqual({ status: 0, stdout: "" });
    expect(() => statSync(join(box.dir, "run", "api-unready-since"))).toThrow();
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
    signCertificate(box.dir, "server", {
      subject: "/CN=kube-apiserver",
      ca: join(pki, "ca"),
      usage: "serverAuth",
      sans: "DNS:masters.demo.k8s",
    });
    const server = createServer(
      { key: readFileSync(join(box.dir, "server.key")), cert: readFileSync(join(box.dir, "server.crt")) },
      (req, res) => (req.url === "/readyz" ? res.end("ok") : res.writeHead(404).end()),
    );
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
    const port = String((server.address() as AddressInfo).port);
    writeFileSync(join(box.dir, "hosts"), "127.0.0.1 localhost\n127.0.0.1 masters.demo.k8s\n");
    // A node that joined before: join-node, which follows the wait, finds its client certificate valid.
    const kubeletPki = join(box.dir, "kubelet-pki");
    mkdirSync(kubeletPki);
    signCertificate(box.dir, "kubelet-client", {
      subject: "/O=system:nodes/CN=system:node:n1",
      ca: join(pki, "ca"),
    });
    writeFileSync(
      join(kubeletPki, "kubelet-client-current.pem"),
      readFileSync(join(box.dir, "kubelet-client.crt"), "utf8") +
        readFileSync(join(box.dir, "kubelet-client.key"), "utf8"),
    );
    writeFileSync(box.paths.nodeEnv, "NODE_NAME=n1\nKUBEBAKE_API_URL=https://masters.demo.k8s:6443\n");
    const inNamespace = (extra: Record<string, string>) =>
      new Promise<{ code: number | null; stdout: string }>((resolve) => {
        const userns = process.getuid?.() === 0 ? [] : ["-r"];
        const script = `mount --bind ${join(box.dir, "hosts")} /etc/hosts && exec bash ${join(nodeDir, "wait-for-masters")}`;
        const child = spawn("unshare", [...userns, "-m", "sh", "-c", script], {
          env: {
            ...box.env,
            KUBEBAKE_API_PORT: port,
            WAIT_FOR_MASTERS_INTERVAL: "1",
            KUBELET_CERT_DIR: kubeletPki,
            ...extra,
          },
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
      expect(ready.stdout).toContain(
        "kubebake join-node: the kubelet's client certificate is valid: already joined",
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
