/** The cluster PKI cross-checked with openssl and a real etcd (test/pki/ reads it back in-process). */
import "reflect-metadata";
import { spawn, spawnSync } from "node:child_process";
import { readdirSync, readFileSync, statSync } from "node:fs";
import { createServer } from "node:net";
import { join } from "node:path";
import * as x509 from "@peculiar/x509";
import { parse } from "yaml";
import { generateClusterPki, type PkiFile } from "../src/pki/pki";
import { writePki } from "../src/pki/write";
import { ExitCode } from "../src/errors";
import { runCli, tempDir, upstreamPrograms } from "./helpers";
import { signCertificate } from "./openssl";

const work = tempDir("pki");
const now = new Date("2026-11-01T00:00:00Z");
let files: PkiFile[];
let dir: string;
const file = (name: string) => files.find((f) => f.name === name)!.content;
const cert = (name: string) => new x509.X509Certificate(file(`${name}.crt`));
const openssl = (args: string[]) => spawnSync("openssl", args, { encoding: "utf8" });
/**
 * `openssl verify` at a fixed time inside the certificates' validity (a day after they were made), so
 * that neither answer changes once they expire: without it a refusal could be "certificate has
 * expired" rather than the wrong issuer.
 */
const verifyAtIssue = (caFile: string, leafFile: string) =>
  openssl(["verify", "-attime", String(now.getTime() / 1000 + 86_400), "-CAfile", caFile, leafFile]);

beforeAll(async () => {
  files = await generateClusterPki({
    cluster: "demo",
    discoveryDomain: "k8s",
    now,
  });
  dir = join(work, "pki");
  await writePki(dir, files);
});

describe("cluster PKI", () => {
  // The operator's admin certificate; masters issue theirs at boot (test/node/issue-certs.test.ts).
  const chains: [string, string][] = [["admin", "ca"]];

  test.each(chains)("%s is signed by %s, and only by it (library and openssl)", async (leaf, ca) => {
    expect(await cert(leaf).verify({ publicKey: await cert(ca).publicKey.export(), date: now })).toBe(true);
    const ok = verifyAtIssue(join(dir, `${ca}.crt`), join(dir, `${leaf}.crt`));
    expect(ok.stdout).toBe(`${join(dir, `${leaf}.crt`)}: OK\n`);
    expect(ok.status).toBe(0);
    for (const other of ["ca", "etcd-ca", "front-proxy-ca"].filter((c) => c !== ca)) {
      const refused = verifyAtIssue(join(dir, `${other}.crt`), join(dir, `${leaf}.crt`));
      expect(refused.status).not.toBe(0);
      // refused for its issuer, not for its dates
      expect(refused.stdout + refused.stderr).toMatch(/unable to get local issuer certificate/);
      expect(refused.stdout + refused.stderr).not.toMatch(/expired|not yet valid/);
    }
  });

  test.each(chains)("%s.key belongs to its certificate (issued by %s)", (leaf) => {
    const fromKey = openssl(["pkey", "-in", join(dir, `${leaf}.key`), "-pubout"]).stdout;
    const fromCert = openssl(["x509", "-in", join(dir, `${leaf}.crt`), "-noout", "-pubkey"]).stdout;
    expect(fromKey).toBe(fromCert);
    expect(fromKey).toMatch(/^-----BEGIN PUBLIC KEY-----/);
  });

  test("CAs are CAs, valid from just before now for ten years; leaves for one", () => {
    const ca = openssl(["x509", "-in", join(dir, "ca.crt"), "-noout", "-text"]).stdout;
    expect(ca).toMatch(/CA:TRUE, pathlen:0/);
    expect(ca).toMatch(/Certificate Sign, CRL Sign/);
    expect(cert("ca").notBefore.getTime()).toBe(now.getTime() - 5 * 60_000);
    expect(cert("ca").notAfter.getTime() - cert("ca").notBefore.getTime()).toBe(3650 * 86_400_000);
    expect(cert("admin").notAfter.getTime() - cert("admin").notBefore.getTime()).toBe(365 * 86_400_000);
  });

  test("keys and secrets are never world-readable; the folder is private", () => {
    expect((statSync(dir).mode & 0o777).toString(8)).toBe("700");
    for (const name of readdirSync(dir)) {
      const mode = (statSync(join(dir, name)).mode & 0o777).toString(8);
      const secret =
        name.endsWith(".key") ||
        ["bootstrap-token", "admin.kubeconfig", "encryption-config.yaml"].includes(name);
      expect(`${name} ${mode}`).toBe(`${name} ${secret ? "600" : "644"}`);
    }
  });

  test("Secrets are sealed with a fresh 32-byte secretbox key named by its day; identity only reads old data", async () => {
    const config = parse(file("encryption-config.yaml")) as {
      kind: string;
      resources: {
        resources: string[];
        providers: Record<string, { keys?: { name: string; secret: string }[] }>[];
      }[];
    };
    expect(config.kind).toBe("EncryptionConfiguration");
    expect(config.resources).toHaveLength(1);
    const [{ resources, providers }] = config.resources as [(typeof config.resources)[0]];
    expect(resources).toEqual(["secrets"]);
    // The first provider writes: secretbox. identity, last, only reads Secrets from before the key.
    expect(providers.map((p) => Object.keys(p)[0])).toEqual(["secretbox", "identity"]);
    const [key] = providers[0]!.secretbox!.keys!;
    expect(key!.name).toBe("key-20261101");
    expect(Buffer.from(key!.secret, "base64")).toHaveLength(32);
    const again = parse(
      (
        await generateClusterPki({
          cluster: "demo",
          discoveryDomain: "k8s",
          now,
        })
      ).find((f) => f.name === "encryption-config.yaml")!.content,
    ) as typeof config;
    expect(again.resources[0]!.providers[0]!.secretbox!.keys![0]!.secret).not.toBe(key!.secret);
    expect(files.find((f) => f.name === "encryption-config.yaml")!.secret).toBe(true);
  });

  test("an existing PKI is never overwritten", async () => {
    const before = readFileSync(join(dir, "ca.key"), "utf8");
    await expect(writePki(dir, files)).rejects.toMatchObject({ exitCode: ExitCode.invalidInput });
    expect(readFileSync(join(dir, "ca.key"), "utf8")).toBe(before);
  });

  test("kubebake pki init writes it; bad names exit 2", () => {
    const out = join(work, "cli");
    const ok = runCli("kubebake", ["pki", "init", "--cluster", "prod-1", "--out", out]);
    expect(ok.code).toBe(0);
    expect(readdirSync(out)).toHaveLength(files.length);
    const bad = runCli("kubebake", ["pki", "init", "--cluster", "Prod_1", "--out", join(work, "bad")]);
    expect(bad.code).toBe(2);
    expect(bad.stderr).toBe(
      `error: --cluster "Prod_1": expected 1 to 40 lowercase letters, digits and inner '-'\n`,
    );
  });
});

/** A free TCP port on 127.0.0.1. */
const freePort = () =>
  new Promise<number>((resolve) => {
    const server = createServer().listen(0, "127.0.0.1", () => {
      const { port } = server.address() as { port: number };
      server.close(() => resolve(port));
    });
  });

describe("the PKI with Debian's real etcd", () => {
  // etcd checks the certificates against the real clock: they are made now, not at the fixed `now`.
  let liveDir: string;
  beforeAll(async () => {
    liveDir = join(work, "pki-live");
    await writePki(
      liveDir,
      await generateClusterPki({
        cluster: "demo",
        discoveryDomain: "k8s",
      }),
    );
  });

  test("etcd serves TLS with client-certificate auth: a client certificate of the etcd CA is healthy, one of the cluster CA refused", async () => {
    const dir = liveDir;
    // The real etcd and etcdctl the fixture image bakes in (test/upstream/build.sh).
    const bin = upstreamPrograms();
    const [client, peer] = [await freePort(), await freePort()];
    // etcd's own certificate is each master's, signed with the etcd CA at boot (node-config); the same here.
    signCertificate(dir, "etcd-member", {
      subject: "/CN=test",
      ca: "etcd-ca",
      usage: "serverAuth,clientAuth",
      sans: "IP:127.0.0.1,DNS:localhost",
    });
    // And the API server's etcd client certificate, as issue-certs makes it on each master.
    signCertificate(dir, "apiserver-etcd-client", {
      subject: "/CN=kube-apiserver-etcd-client",
      ca: "etcd-ca",
    });
    const etcd = spawn(
      join(bin, "etcd"),
      [
        "--name=test",
        `--data-dir=${join(work, "etcd-data")}`,
        `--listen-client-urls=https://127.0.0.1:${client}`,
        `--advertise-client-urls=https://127.0.0.1:${client}`,
        `--listen-peer-urls=http://127.0.0.1:${peer}`,
        `--initial-advertise-peer-urls=http://127.0.0.1:${peer}`,
        `--initial-cluster=test=http://127.0.0.1:${peer}`,
        "--client-cert-auth=true",
        `--trusted-ca-file=${join(dir, "etcd-ca.crt")}`,
        `--cert-file=${join(dir, "etcd-member.crt")}`,
        `--key-file=${join(dir, "etcd-member.key")}`,
      ],
      { stdio: "ignore" },
    );
    const etcdctl = (cert: string, key: string, ca = "etcd-ca.crt") =>
      spawnSync(
        join(bin, "etcdctl"),
        [
          `--endpoints=https://127.0.0.1:${client}`,
          `--cacert=${join(dir, ca)}`,
          `--cert=${join(dir, cert)}`,
          `--key=${join(dir, key)}`,
          "--dial-timeout=2s",
          "--command-timeout=3s",
          "endpoint",
          "health",
        ],
        { encoding: "utf8", env: { PATH: process.env.PATH } },
      );
    try {
      let health = etcdctl("apiserver-etcd-client.crt", "apiserver-etcd-client.key");
      for (let i = 0; i < 20 && health.status !== 0; i++) {
        await new Promise((r) => setTimeout(r, 250));
        health = etcdctl("apiserver-etcd-client.crt", "apiserver-etcd-client.key");
      }
      expect(health.stdout + health.stderr).toMatch(/is healthy: successfully committed proposal/);
      // A certificate of the cluster CA (not the etcd CA) is refused.
      const refused = etcdctl("admin.crt", "admin.key");
      expect(refused.status).not.toBe(0);
    } finally {
      etcd.kill();
    }
  });
});
