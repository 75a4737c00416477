/**
 * Rotating a CA (kubebake pki ca add|use|retire) on a real generated PKI: the bundles and their order, the
 * operator's admin credential, the refusals, and the files they rewrite. The real API server meets the
 * result in test/control-plane.test.ts, a master's scripts in test/node-scripts.test.ts.
 */
import "reflect-metadata";
import { spawnSync } from "node:child_process";
import * as crypto from "node:crypto";
import { chmodSync, mkdirSync, readdirSync, readFileSync, rmdirSync, statSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import * as x509 from "@peculiar/x509";
import { parse } from "yaml";
import { ExitCode } from "../../src/errors";
import { adminFiles, caPairs, caSubject, readAdminKubeconfig, rotateCa, type CaPair } from "../../src/pki/ca";
import { generateClusterPki, keyPem, selfSignedCA, type PkiFile } from "../../src/pki/pki";
import { rewriteCa, writePki } from "../../src/pki/write";
import { tempDir } from "../helpers";

const work = tempDir("pki-ca");
const made = new Date("2026-11-01T00:00:00Z");
const later = new Date("2026-12-09T10:00:00Z");
const MINUTE = 60_000;
const DAY = 86_400_000;
let pki: PkiFile[];
beforeAll(async () => {
  pki = await generateClusterPki({
    cluster: "demo",
    discoveryDomain: "k8s",
    now: made,
  });
});
const content = (name: string) => pki.find((f) => f.name === name)!.content;
const files = { cert: "dir/ca.crt", key: "dir/ca.key" };
const pairsOf = (name = "ca") => caPairs(content(`${name}.crt`), content(`${name}.key`), files);
const subjects = (pairs: readonly CaPair[]) => pairs.map((p) => p.certificate.subject);
/** A copy of the generated PKI in a folder of its own. */
let folders = 0;
async function pkiFolder(): Promise<string> {
  const dir = join(work, `pki-${++folders}`);
  await writePki(dir, pki);
  return dir;
}
const read = (dir: string, name: string) => readFileSync(join(dir, name), "utf8");
const mode = (dir: string, name: string) => (statSync(join(dir, name)).mode & 0o777).toString(8);
const pemCount = (text: string, label: string) => text.split(`-----BEGIN ${label}-----`).length - 1;
const openssl = (args: string[]) => spawnSync("openssl", args, { encoding: "utf8" });

describe("the files of a CA", () => {
  test("one pair: the CA's certificate and key as pki init wrote them", () => {
    const [pair, ...rest] = pairsOf();
    expect(rest).toEqual([]);
    expect(pair!.cert).toBe(content("ca.crt"));
    expect(pair!.key).toBe(content("ca.key"));
    expect(pair!.certificate.subject).toBe("CN=kubebake-demo-ca");
  });

  test("two pairs, in the order of the files; blank lines between blocks are fine", () => {
    const [ca, etcd] = [pairsOf()[0]!, pairsOf("etcd-ca")[0]!];
    const pairs = caPairs(`${etcd.cert}\n${ca.cert}`, `${etcd.key}\n\n${ca.key}`, files);
    expect(subjects(pairs)).toEqual(["CN=kubebake-demo-etcd-ca", "CN=kubebake-demo-ca"]);
    expect(pairs.map((p) => p.key)).toEqual([etcd.key, ca.key]);
  });

  const ca = () => pairsOf()[0]!;
  const etcd = () => pairsOf("etcd-ca")[0]!;
  test.each([
    [
      "no certificate",
      () => ["", ca().key],
      "dir/ca.crt: expected one or two CA certificates (the signing one first), found 0",
    ],
    [
      "three certificates",
      () => [ca().cert + etcd().cert + ca().cert, ca().key + etcd().key + ca().key],
      "dir/ca.crt: expected one or two CA certificates (the signing one first), found 3",
    ],
    [
      "fewer keys than certificates",
      () => [ca().cert + etcd().cert, ca().key],
      "dir/ca.key: expected 2 key(s), one for each certificate of dir/ca.crt in the same order, found 1",
    ],
    [
      "more keys than certificates",
      () => [ca().cert, ca().key + etcd().key],
      "dir/ca.key: expected 1 key(s), one for each certificate of dir/ca.crt in the same order, found 2",
    ],
    [
      "a key among the certificates",
      () => [ca().cert + ca().key, ca().key],
      "dir/ca.crt: expected PEM certificates only, found a PRIVATE KEY",
    ],
    [
      "a key that is not PKCS#8",
      () => [ca().cert, ca().key.replaceAll("PRIVATE KEY", "EC PRIVATE KEY")],
      "dir/ca.key: expected PKCS#8 PEM private keys only, found a EC PRIVATE KEY",
    ],
    [
      "text beside the blocks",
      () => [`subject=CN = x\n${ca().cert}`, ca().key],
      "dir/ca.crt: expected PEM certificates only (-----BEGIN CERTIFICATE-----), found other text",
    ],
    [
      "a block that is no certificate",
      () => ["-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n", ca().key],
      "dir/ca.crt: certificate 1: not an X.509 certificate",
    ],
    [
      "a block that is no key",
      () => [ca().cert, "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n"],
      "dir/ca.key: key 1: not a private key",
    ],
    [
      "a certificate that is not a CA",
      () => [ca().cert + content("admin.crt"), ca().key + content("admin.key")],
      "dir/ca.crt: certificate 2 (CN=kubebake-admin, O=system:masters): expected a CA certificate",
    ],
    [
      "keys in another order than their certificates",
      () => [ca().cert + etcd().cert, etcd().key + ca().key],
      "dir/ca.key: key 1 does not belong to certificate 1 of dir/ca.crt (CN=kubebake-demo-ca)",
    ],
  ])("%s is refused, naming the file and what was expected", (_what, texts, message) => {
    const [certText, keyText] = texts();
    let error: unknown;
    try {
      caPairs(certText!, keyText!, files);
    } catch (e) {
      error = e;
    }
    expect(error).toMatchObject({ exitCode: ExitCode.invalidInput, message });
  });
});

describe("the steps", () => {
  test("add → use → retire: trust the new CA, then sign with it, then forget the old one", async () => {
    const [old] = pairsOf();
    const added = await rotateCa(pairsOf(), "add", later, "f");
    expect(subjects(added)).toEqual(["CN=kubebake-demo-ca", "CN=kubebake-demo-ca-20261209"]);
    expect(added[0]!.cert).toBe(old!.cert);
    const used = await rotateCa(added, "use", later, "f");
    expect(used).toEqual([added[1], added[0]]);
    expect(await rotateCa(used, "retire", later, "f")).toEqual([added[1]]);
  });

  test("retire right after add cancels the rotation: the CA nothing signed with goes", async () => {
    const added = await rotateCa(pairsOf(), "add", later, "f");
    expect(await rotateCa(added, "retire", later, "f")).toEqual([added[0]]);
  });

  test("the new CA is made as pki init makes CAs: a self-signed P-256 CA for ten years from five minutes ago", async () => {
    const [, fresh] = await rotateCa(pairsOf(), "add", later, "f");
    const ca = fresh!.certificate;
    expect(ca.issuer).toBe(ca.subject);
    expect(await ca.verify({ publicKey: await ca.publicKey.export(), date: later })).toBe(true);
    expect(ca.notBefore.getTime()).toBe(later.getTime() - 5 * MINUTE);
    expect(ca.notAfter.getTime() - ca.notBefore.getTime()).toBe(3650 * DAY);
    const basic = ca.getExtension(x509.BasicConstraintsExtension)!;
    expect([basic.ca, basic.pathLength, basic.critical]).toEqual([true, 0, true]);
    expect(ca.getExtension(x509.KeyUsagesExtension)!.usages).toBe(
      x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign | x509.KeyUsageFlags.digitalSignature,
    );
    const key = crypto.createPrivateKey(fresh!.key);
    expect(key.asymmetricKeyDetails?.namedCurve).toBe("prime256v1");
    expect(fresh!.cert).toMatch(/^-----BEGIN CERTIFICATE-----\n[\s\S]+-----END CERTIFICATE-----\n$/);
    expect(fresh!.key).toMatch(/^-----BEGIN PRIVATE KEY-----\n[\s\S]+-----END PRIVATE KEY-----\n$/);
  });

  test("a new CA starts a second after the current one when the clock says otherwise, so use can tell them apart", async () => {
    const [old] = pairsOf();
    const [, same] = await rotateCa(pairsOf(), "add", made, "f");
    expect(same!.certificate.notBefore.getTime()).toBe(old!.certificate.notBefore.getTime() + 1000);
    const [, behind] = await rotateCa(pairsOf(), "add", new Date(made.getTime() - DAY), "f");
    expect(behind!.certificate.notBefore.getTime()).toBe(old!.certificate.notBefore.getTime() + 1000);
    expect(subjects(await rotateCa([old!, same!], "use", made, "f"))[0]).toBe(same!.certificate.subject);
  });

  test.each([
    [
      "add",
      2,
      'f: a rotation is under way (CN=kubebake-demo-ca, CN=kubebake-demo-ca-20261209): finish it with "use" and "retire" first',
    ],
    ["use", 1, 'f: only CN=kubebake-demo-ca: "add" a CA before using it'],
    ["retire", 1, "f: only CN=kubebake-demo-ca: nothing to retire"],
  ] as const)("%s with %i CA(s) is refused: %s", async (step, count, message) => {
    const pairs = count === 1 ? pairsOf() : await rotateCa(pairsOf(), "add", later, "f");
    await expect(rotateCa(pairs, step, later, "f")).rejects.toMatchObject({
      exitCode: ExitCode.invalidInput,
      message,
    });
  });

  test("use with two CAs of the same second is refused: which one is newer cannot be told", async () => {
    const [a, b] = [await selfSignedCA("CN=a", made, 10), await selfSignedCA("CN=b", made, 10)];
    const pem = async (ca: typeof a) => [
      ca.cert.toString("pem") + "\n",
      (await keyPem(ca.keys.privateKey)) + "\n",
    ];
    const [[certA, keyA], [certB, keyB]] = [await pem(a), await pem(b)];
    const pairs = caPairs(certA! + certB!, keyA! + keyB!, files);
    await expect(rotateCa(pairs, "use", later, "f")).rejects.toMatchObject({
      message: 'f: already signs with the newer CA CN=a: "retire" the older one',
    });
  });

  test("use when the newer CA already signs is refused: it would sign with the older one again", async () => {
    const used = await rotateCa(await rotateCa(pairsOf(), "add", later, "f"), "use", later, "f");
    await expect(rotateCa(used, "use", later, "f")).rejects.toMatchObject({
      exitCode: ExitCode.invalidInput,
      message: 'f: already signs with the newer CA CN=kubebake-demo-ca-20261209: "retire" the older one',
    });
  });
});

describe("a new CA's name", () => {
  const named = async (subject: string) => (await selfSignedCA(subject, made, 1)).cert;

  test("the current name, without a day it may carry, with the new CA's day; numbered when taken", async () => {
    expect(caSubject(await named("CN=kubebake-demo-ca"), later)).toBe("CN=kubebake-demo-ca-20261209");
    expect(caSubject(await named("CN=kubebake-demo-ca-20261101"), later)).toBe(
      "CN=kubebake-demo-ca-20261209",
    );
    expect(caSubject(await named("CN=kubebake-demo-ca-20261101-3"), later)).toBe(
      "CN=kubebake-demo-ca-20261209",
    );
    expect(caSubject(await named("CN=kubebake-demo-ca-20261209"), later)).toBe(
      "CN=kubebake-demo-ca-20261209-2",
    );
    // only the current CA's name is taken: a bundle that may add holds no other
    expect(caSubject(await named("CN=kubebake-demo-ca-20261209-2"), later)).toBe(
      "CN=kubebake-demo-ca-20261209",
    );
    expect(caSubject(await named("CN=kubebake-demo-ca-20261101-12"), later)).toBe(
      "CN=kubebake-demo-ca-20261209",
    );
    // only a whole day at the end is the CA's day
    expect(caSubject(await named("CN=kubebake-x-12345678-ca"), later)).toBe(
      "CN=kubebake-x-12345678-ca-20261209",
    );
    expect(caSubject(await named("CN=kubebake-x-2026120-ca"), later)).toBe(
      "CN=kubebake-x-2026120-ca-20261209",
    );
  });

  test("a CA without a common name gets kubebake's", async () => {
    expect(caSubject(await named("O=someone"), later)).toBe("CN=kubebake-ca-20261209");
  });
});

describe("the operator's admin credential", () => {
  const admin = () => readAdminKubeconfig(content("admin.kubeconfig"), "admin.kubeconfig");
  const kubeconfig = (f: PkiFile[]) =>
    parse(f.find((x) => x.name === "admin.kubeconfig")!.content) as {
      clusters: { name: string; cluster: Record<string, string> }[];
      users: { user: Record<string, string> }[];
    };
  const b64 = (text: string) => Buffer.from(text, "base64").toString();

  test("is read back from the kubeconfig pki init wrote", () => {
    expect(admin()).toEqual({
      cluster: "demo",
      server: "https://masters.demo.k8s:6443",
      cert: content("admin.crt"),
      key: content("admin.key"),
    });
  });

  test.each([
    ["not: [yaml", /^k: not YAML \(.{12,}\)$/],
    ["", /^k: clusters\[0\]\.name: expected the cluster's name$/],
    ["clusters: [{name: demo}]", /^k: clusters\[0\]\.cluster\.server: expected the API server's URL$/],
    [
      "clusters: [{name: demo, cluster: {server: 'https://x'}}]",
      /^k: users\[0\]\.user\.client-certificate-data: expected base64 of PEM$/,
    ],
    [
      "clusters: [{name: demo, cluster: {server: 'https://x'}}]\nusers: [{user: {client-certificate-data: QQ==, client-key-data: ''}}]",
      /^k: users\[0\]\.user\.client-key-data: expected base64 of PEM$/,
    ],
    ["clusters: [{name: 7, cluster: {server: 'https://x'}}]", /^k: clusters\[0\]\.name: expected/],
    [
      "clusters: [{name: demo, cluster: {server: 'https://x'}}]\nusers: []",
      /^k: users\[0\]\.user\.client-certificate-data: expected base64 of PEM$/,
    ],
  ])("%j is refused, naming the field", (text, message) => {
    expect(() => readAdminKubeconfig(text, "k")).toThrow(message);
    try {
      readAdminKubeconfig(text, "k");
    } catch (error) {
      expect((error as { exitCode: number }).exitCode).toBe(ExitCode.invalidInput);
    }
  });

  test("add and retire: only the kubeconfig changes, to trust the bundle; the credential stays", async () => {
    const added = await rotateCa(pairsOf(), "add", later, "f");
    for (const pairs of [added, [added[0]!]]) {
      const written = await adminFiles(admin(), pairs, pairs.length > 1 ? "add" : "retire", later, "f");
      expect(written.map((f) => [f.name, f.secret])).toEqual([["admin.kubeconfig", true]]);
      const config = kubeconfig(written);
      expect(b64(config.clusters[0]!.cluster["certificate-authority-data"]!)).toBe(
        pairs.map((p) => p.cert).join(""),
      );
      expect(b64(config.users[0]!.user["client-certificate-data"]!)).toBe(content("admin.crt"));
      expect(b64(config.users[0]!.user["client-key-data"]!)).toBe(content("admin.key"));
      expect(config.clusters[0]!.cluster.server).toBe("https://masters.demo.k8s:6443");
      expect(config.clusters[0]!.name).toBe("demo");
    }
  });

  test("use: a new certificate and key from the new CA, for a year; the kubeconfig trusts both CAs", async () => {
    const used = await rotateCa(await rotateCa(pairsOf(), "add", later, "f"), "use", later, "f");
    const written = await adminFiles(admin(), used, "use", later, "f");
    expect(written.map((f) => [f.name, f.secret])).toEqual([
      ["admin.crt", false],
      ["admin.key", true],
      ["admin.kubeconfig", true],
    ]);
    const [crt, key] = [written[0]!.content, written[1]!.content];
    const cert = new x509.X509Certificate(crt);
    expect(cert.subject).toBe("CN=kubebake-admin, O=system:masters");
    expect(cert.issuer).toBe(used[0]!.certificate.subject);
    expect(await cert.verify({ publicKey: await used[0]!.certificate.publicKey.export(), date: later })).toBe(
      true,
    );
    expect(cert.getExtension(x509.AuthorityKeyIdentifierExtension)!.keyId).toBe(
      used[0]!.certificate.getExtension(x509.SubjectKeyIdentifierExtension)!.keyId,
    );
    expect(cert.notBefore.getTime()).toBe(later.getTime() - 5 * MINUTE);
    expect(cert.notAfter.getTime() - cert.notBefore.getTime()).toBe(365 * DAY);
    expect(
      crypto.createPublicKey(crypto.createPrivateKey(key)).export({ type: "spki", format: "der" }),
    ).toEqual(Buffer.from(cert.publicKey.rawData));
    expect(key).not.toBe(content("admin.key"));
    const config = kubeconfig(written);
    expect(b64(config.clusters[0]!.cluster["certificate-authority-data"]!)).toBe(
      used[0]!.cert + used[1]!.cert,
    );
    expect(b64(config.users[0]!.user["client-certificate-data"]!)).toBe(crt);
    expect(b64(config.users[0]!.user["client-key-data"]!)).toBe(key);
    expect(crt).toMatch(/^-----BEGIN CERTIFICATE-----\n[\s\S]+-----\n$/);
    expect(key).toMatch(/^-----BEGIN PRIVATE KEY-----\n[\s\S]+-----\n$/);
  });

  test("use with a signing key kubebake cannot sign with (not P-256) is refused, naming the file", async () => {
    const keys = (await crypto.webcrypto.subtle.generateKey({ name: "ECDSA", namedCurve: "P-384" }, true, [
      "sign",
      "verify",
    ])) as crypto.webcrypto.CryptoKeyPair;
    const cert = await x509.X509CertificateGenerator.createSelfSigned({
      name: "CN=p384",
      keys,
      notBefore: made,
      notAfter: later,
      signingAlgorithm: { name: "ECDSA", hash: "SHA-384" },
      extensions: [new x509.BasicConstraintsExtension(true, 0, true)],
    });
    const key = x509.PemConverter.encode(
      await crypto.webcrypto.subtle.exportKey("pkcs8", keys.privateKey),
      "PRIVATE KEY",
    );
    const [p384] = caPairs(cert.toString("pem"), key, files);
    await expect(adminFiles(admin(), [p384!], "use", later, "dir/ca.key")).rejects.toMatchObject({
      exitCode: ExitCode.invalidInput,
      message: "dir/ca.key: key 1: expected an ECDSA P-256 key, as kubebake makes them, to sign with",
    });
  });
});

describe("rewriting a PKI folder", () => {
  test("ca: add, use, retire, each rewriting the bundle, its keys and the admin credential; modes as pki init's", async () => {
    const dir = await pkiFolder();
    const oldAdmin = read(dir, "admin.crt");
    const added = await rewriteCa(dir, "ca", "add", later);
    expect(added.files).toEqual(["ca.crt", "ca.key", "admin.kubeconfig"]);
    expect(added.cas.map((c) => c.subject)).toEqual(["CN=kubebake-demo-ca", "CN=kubebake-demo-ca-20261209"]);
    expect(added.cas[1]).toEqual({
      subject: "CN=kubebake-demo-ca-20261209",
      notBefore: "2026-12-09T09:55:00.000Z",
      notAfter: "2036-12-06T09:55:00.000Z",
    });
    expect(read(dir, "ca.crt").startsWith(content("ca.crt"))).toBe(true);
    expect(pemCount(read(dir, "ca.crt"), "CERTIFICATE")).toBe(2);
    expect(pemCount(read(dir, "ca.key"), "PRIVATE KEY")).toBe(2);
    expect(read(dir, "admin.crt")).toBe(oldAdmin);

    const used = await rewriteCa(dir, "ca", "use", later);
    expect(used.files).toEqual(["ca.crt", "ca.key", "admin.crt", "admin.key", "admin.kubeconfig"]);
    expect(used.cas.map((c) => c.subject)).toEqual(["CN=kubebake-demo-ca-20261209", "CN=kubebake-demo-ca"]);
    // Every key belongs to its certificate, in order; the admin certificate verifies with the bundle
    // (openssl, as kubectl's peers do), and with the new CA alone.
    const pairs = caPairs(read(dir, "ca.crt"), read(dir, "ca.key"), files);
    expect(subjects(pairs)).toEqual(used.cas.map((c) => c.subject));
    const newCa = join(work, "new-ca.crt");
    writeFileSync(newCa, pairs[0]!.cert);
    for (const trusted of [join(dir, "ca.crt"), newCa]) {
      const attime = String(later.getTime() / 1000 + 3600); // inside the certificates' validity, whatever the clock
      const verified = openssl(["verify", "-attime", attime, "-CAfile", trusted, join(dir, "admin.crt")]);
      expect(verified.stdout).toBe(`${join(dir, "admin.crt")}: OK\n`);
    }
    expect(openssl(["pkey", "-in", join(dir, "admin.key"), "-pubout"]).stdout).toBe(
      openssl(["x509", "-in", join(dir, "admin.crt"), "-noout", "-pubkey"]).stdout,
    );
    const config = readAdminKubeconfig(read(dir, "admin.kubeconfig"), "k");
    expect([config.cert, config.key]).toEqual([read(dir, "admin.crt"), read(dir, "admin.key")]);

    const retired = await rewriteCa(dir, "ca", "retire", later);
    expect(retired.cas.map((c) => c.subject)).toEqual(["CN=kubebake-demo-ca-20261209"]);
    expect(read(dir, "ca.crt")).toBe(pairs[0]!.cert);
    expect(read(dir, "ca.key")).toBe(pairs[0]!.key);
    const retiredConfig = parse(read(dir, "admin.kubeconfig"));
    expect(
      Buffer.from(retiredConfig.clusters[0].cluster["certificate-authority-data"], "base64").toString(),
    ).toBe(pairs[0]!.cert);
    const modes = Object.fromEntries(
      ["ca.crt", "ca.key", "admin.crt", "admin.key", "admin.kubeconfig"].map((n) => [n, mode(dir, n)]),
    );
    expect(modes).toEqual({
      "ca.crt": "644",
      "ca.key": "600",
      "admin.crt": "644",
      "admin.key": "600",
      "admin.kubeconfig": "600",
    });
    expect(readdirSync(dir).filter((n) => n.startsWith("."))).toEqual([]); // no temporary file left
  });

  test("etcd-ca and front-proxy-ca: only their own two files; the admin credential is not theirs", async () => {
    const dir = await pkiFolder();
    const before = read(dir, "admin.kubeconfig");
    for (const ca of ["etcd-ca", "front-proxy-ca"] as const) {
      const added = await rewriteCa(dir, ca, "add", later);
      expect(added.files).toEqual([`${ca}.crt`, `${ca}.key`]);
      expect(added.cas.map((c) => c.subject)).toEqual([
        `CN=kubebake-demo-${ca}`,
        `CN=kubebake-demo-${ca}-20261209`,
      ]);
      expect(mode(dir, `${ca}.key`)).toBe("600");
      expect(mode(dir, `${ca}.crt`)).toBe("644");
    }
    expect(read(dir, "admin.kubeconfig")).toBe(before);
    expect(read(dir, "ca.crt")).toBe(content("ca.crt"));
  });

  test("the modes do not depend on the umask, nor on the files' modes before", async () => {
    const dir = await pkiFolder();
    chmodSync(join(dir, "front-proxy-ca.crt"), 0o600);
    chmodSync(join(dir, "front-proxy-ca.key"), 0o640);
    const old = process.umask(0o077);
    try {
      await rewriteCa(dir, "front-proxy-ca", "add", later);
    } finally {
      process.umask(old);
    }
    expect([mode(dir, "front-proxy-ca.crt"), mode(dir, "front-proxy-ca.key")]).toEqual(["644", "600"]);
  });

  test("a refused step changes no file, byte for byte, and exits 2 naming the file", async () => {
    const dir = await pkiFolder();
    const snapshot = () => Object.fromEntries(readdirSync(dir).map((n) => [n, read(dir, n)]));
    const before = snapshot();
    await expect(rewriteCa(dir, "ca", "retire", later)).rejects.toMatchObject({
      exitCode: ExitCode.invalidInput,
      message: `${join(dir, "ca.crt")}: only CN=kubebake-demo-ca: nothing to retire`,
    });
    await expect(rewriteCa(dir, "etcd-ca", "use", later)).rejects.toMatchObject({
      message: `${join(dir, "etcd-ca.crt")}: only CN=kubebake-demo-etcd-ca: "add" a CA before using it`,
    });
    expect(snapshot()).toEqual(before);
    await rewriteCa(dir, "ca", "add", later);
    const added = snapshot();
    await expect(rewriteCa(dir, "ca", "add", later)).rejects.toMatchObject({
      exitCode: ExitCode.invalidInput,
    });
    expect(snapshot()).toEqual(added);
  });

  test("a missing or unreadable file is refused before anything is written, naming it", async () => {
    const dir = join(work, "partial");
    mkdirSync(dir);
    for (const name of ["ca.crt", "ca.key"]) writeFileSync(join(dir, name), content(name));
    await expect(rewriteCa(dir, "ca", "add", later)).rejects.toMatchObject({
      exitCode: ExitCode.invalidInput,
      message: `${join(dir, "admin.kubeconfig")}: cannot read it (ENOENT)`,
    });
    await expect(rewriteCa(dir, "etcd-ca", "add", later)).rejects.toMatchObject({
      message: `${join(dir, "etcd-ca.crt")}: cannot read it (ENOENT)`,
    });
    writeFileSync(join(dir, "etcd-ca.crt"), content("etcd-ca.crt"));
    await expect(rewriteCa(dir, "etcd-ca", "add", later)).rejects.toMatchObject({
      message: `${join(dir, "etcd-ca.key")}: cannot read it (ENOENT)`,
    });
    expect(readdirSync(dir).sort()).toEqual(["ca.crt", "ca.key", "etcd-ca.crt"]);
    expect(read(dir, "ca.crt")).toBe(content("ca.crt"));
  });

  test("a file that cannot be written: an output error naming it; every file stays as it was, no temporary is left", async () => {
    const dir = await pkiFolder();
    const before = readdirSync(dir).map((n) => [n, read(dir, n)]);
    // The admin kubeconfig's temporary name is taken (by a folder): the step fails after two temporaries.
    const blocker = join(dir, `.admin.kubeconfig.${process.pid}.tmp`);
    mkdirSync(blocker);
    await expect(rewriteCa(dir, "ca", "add", later)).rejects.toMatchObject({
      exitCode: ExitCode.invalidInput,
      message: `--dir ${join(dir, "admin.kubeconfig")}: exists and is not a folder (EEXIST)`,
    });
    rmdirSync(blocker);
    expect(readdirSync(dir).map((n) => [n, read(dir, n)])).toEqual(before);
  });
});
