/**
 * The cluster PKI read back in-process (no openssl): every certificate's names, keys, extensions and dates,
 * the files and their modes, and the randomness of serials and tokens. test/pki.test.ts cross-checks the
 * same PKI with openssl and a real etcd.
 */
import "reflect-metadata";
import * as crypto from "node:crypto";
import { mkdirSync, readdirSync, readFileSync, statSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import * as x509 from "@peculiar/x509";
import { parse } from "yaml";
import { ExitCode } from "../../src/errors";
import { bootstrapToken, generateClusterPki, type PkiFile } from "../../src/pki/pki";
import { writePki } from "../../src/pki/write";
import { tempDir } from "../helpers";

// randomBytes stays the real one unless a test scripts its answers.
jest.mock("node:crypto", () => {
  const actual = jest.requireActual("node:crypto");
  return { ...actual, randomBytes: jest.fn(actual.randomBytes) };
});
const randomBytes = crypto.randomBytes as unknown as jest.Mock;
const real = jest.requireActual("node:crypto").randomBytes as typeof crypto.randomBytes;
afterEach(() => randomBytes.mockImplementation(real));

const work = tempDir("pki-certs");
const now = new Date("2026-11-01T00:00:00Z");
const MINUTE = 60_000;
const DAY = 86_400_000;
const params = {
  cluster: "demo",
  discoveryDomain: "k8s",
  now,
};

let files: PkiFile[];
beforeAll(async () => {
  files = await generateClusterPki(params);
});
const content = (name: string) => {
  const found = files.find((f) => f.name === name);
  if (!found) throw new Error(`no ${name} in the PKI`);
  return found.content;
};
const cert = (name: string) => new x509.X509Certificate(content(`${name}.crt`));
const ext = <T extends x509.Extension>(c: x509.X509Certificate, type: new (raw: ArrayBuffer) => T) =>
  c.getExtension(type);

const CAS = ["ca", "front-proxy-ca", "etcd-ca"];
// The operator's certificate only: masters issue their own at boot (src/node/issue-certs, test/node/issue-certs.test.ts).
const LEAVES: Record<
  string,
  { issuer: string; subject: string; eku: string[]; dns?: string[]; ips?: string[] }
> = {
  admin: {
    issuer: "ca",
    subject: "CN=kubebake-admin, O=system:masters",
    eku: [x509.ExtendedKeyUsage.clientAuth],
  },
};

describe("the files of the cluster PKI", () => {
  test("exactly these files, sorted by name, with the secret ones marked", () => {
    const expected = [
      ...[...CAS, ...Object.keys(LEAVES)].flatMap((n) => [`${n}.crt`, `${n}.key`]),
      "sa.key",
      "sa.pub",
      "bootstrap-token",
      "admin.kubeconfig",
      "encryption-config.yaml",
    ].sort((a, b) => a.localeCompare(b));
    expect(files.map((f) => f.name)).toEqual(expected);
    for (const f of files) {
      const secret =
        f.name.endsWith(".key") ||
        ["bootstrap-token", "admin.kubeconfig", "encryption-config.yaml"].includes(f.name);
      expect(`${f.name} secret=${f.secret}`).toBe(`${f.name} secret=${secret}`);
    }
  });

  test("certificates and keys are PEM ending in one newline; the token is bare", () => {
    for (const f of files.filter((f) => /\.(crt|key|pub)$/.test(f.name))) {
      expect(f.content).toMatch(/^-----BEGIN (CERTIFICATE|PRIVATE KEY|PUBLIC KEY)-----\n[\s\S]+-----\n$/);
      expect(f.content.endsWith("-----\n\n")).toBe(false);
    }
    expect(content("bootstrap-token")).toMatch(/^[a-z0-9]{6}\.[a-z0-9]{16}$/);
  });

  test("every key is an EC P-256 private key that matches its certificate", async () => {
    for (const name of [...CAS, ...Object.keys(LEAVES)]) {
      const key = crypto.createPrivateKey(content(`${name}.key`));
      expect(`${name} ${key.asymmetricKeyType} ${key.asymmetricKeyDetails?.namedCurve}`).toBe(
        `${name} ec prime256v1`,
      );
      const fromKey = crypto.createPublicKey(key).export({ type: "spki", format: "der" });
      const fromCert = Buffer.from(cert(name).publicKey.rawData);
      expect(`${name} ${fromKey.equals(fromCert)}`).toBe(`${name} true`);
    }
  });

  test("the service-account keys are a pair: what sa.key signs, sa.pub verifies", () => {
    const signature = crypto.sign("sha256", Buffer.from("token"), crypto.createPrivateKey(content("sa.key")));
    expect(
      crypto.verify("sha256", Buffer.from("token"), crypto.createPublicKey(content("sa.pub")), signature),
    ).toBe(true);
    expect(crypto.createPrivateKey(content("sa.key")).asymmetricKeyDetails?.namedCurve).toBe("prime256v1");
  });

  test("no two keys are the same", () => {
    const keys = files.filter((f) => f.name.endsWith(".key")).map((f) => f.content);
    expect(new Set(keys).size).toBe(keys.length);
  });
});

describe("the three CAs", () => {
  test.each(CAS)(
    "%s: self-signed, named for the cluster, a CA that signs only end certificates",
    async (name) => {
      const ca = cert(name);
      expect(ca.subject).toBe(`CN=kubebake-demo-${name}`);
      expect(ca.issuer).toBe(ca.subject);
      expect(await ca.verify({ publicKey: await ca.publicKey.export(), date: now })).toBe(true);
      const basic = ext(ca, x509.BasicConstraintsExtension)!;
      expect([basic.ca, basic.pathLength, basic.critical]).toEqual([true, 0, true]);
      const usages = ext(ca, x509.KeyUsagesExtension)!;
      expect(usages.usages).toBe(
        x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign | x509.KeyUsageFlags.digitalSignature,
      );
      expect(usages.critical).toBe(true);
      const ski = ext(ca, x509.SubjectKeyIdentifierExtension)!;
      expect(ski.keyId).toBe((await x509.SubjectKeyIdentifierExtension.create(ca.publicKey)).keyId);
    },
  );

  test.each(CAS)(
    "%s: signed with ECDSA SHA-256, valid from five minutes before now for ten years",
    (name) => {
      const ca = cert(name);
      expect(ca.signatureAlgorithm).toMatchObject({ name: "ECDSA", hash: { name: "SHA-256" } });
      expect(ca.notBefore.getTime()).toBe(now.getTime() - 5 * MINUTE);
      expect(ca.notAfter.getTime()).toBe(now.getTime() - 5 * MINUTE + 3650 * DAY);
    },
  );
});

describe("the leaf certificates", () => {
  test.each(Object.keys(LEAVES))("%s: its subject, issued and signed by its CA alone", async (name) => {
    const leaf = cert(name);
    const spec = LEAVES[name]!;
    expect(leaf.subject).toBe(spec.subject);
    expect(leaf.issuer).toBe(cert(spec.issuer).subject);
    for (const ca of CAS) {
      const verified = await leaf.verify({ publicKey: await cert(ca).publicKey.export(), date: now });
      expect(`${ca} ${verified}`).toBe(`${ca} ${ca === spec.issuer}`);
    }
    const aki = ext(leaf, x509.AuthorityKeyIdentifierExtension)!;
    expect(aki.keyId).toBe(ext(cert(spec.issuer), x509.SubjectKeyIdentifierExtension)!.keyId);
    expect(ext(leaf, x509.SubjectKeyIdentifierExtension)!.keyId).toBe(
      (await x509.SubjectKeyIdentifierExtension.create(leaf.publicKey)).keyId,
    );
  });

  test.each(Object.keys(LEAVES))(
    "%s: not a CA; signs and enciphers keys; its extended key usages",
    (name) => {
      const leaf = cert(name);
      const basic = ext(leaf, x509.BasicConstraintsExtension)!;
      expect([basic.ca, basic.pathLength, basic.critical]).toEqual([false, undefined, true]);
      const usages = ext(leaf, x509.KeyUsagesExtension)!;
      expect([usages.usages, usages.critical]).toEqual([
        x509.KeyUsageFlags.digitalSignature | x509.KeyUsageFlags.keyEncipherment,
        true,
      ]);
      expect(ext(leaf, x509.ExtendedKeyUsageExtension)!.usages).toEqual(LEAVES[name]!.eku);
    },
  );

  test.each(Object.keys(LEAVES))(
    "%s: names exactly the hosts and addresses it serves (none for a client)",
    (name) => {
      const san = ext(cert(name), x509.SubjectAlternativeNameExtension);
      const { dns = [], ips = [] } = LEAVES[name]!;
      if (dns.length + ips.length === 0) {
        expect(san).toBeNull();
        return;
      }
      const names = san!.names.toJSON();
      expect(names.filter((n) => n.type === "dns").map((n) => n.value)).toEqual(dns);
      expect(names.filter((n) => n.type === "ip").map((n) => n.value)).toEqual(ips);
      expect(names).toHaveLength(dns.length + ips.length);
    },
  );

  test.each(Object.keys(LEAVES))(
    "%s: valid from five minutes before now for one year, ECDSA SHA-256",
    (name) => {
      const leaf = cert(name);
      expect(leaf.signatureAlgorithm).toMatchObject({ name: "ECDSA", hash: { name: "SHA-256" } });
      expect(leaf.notBefore.getTime()).toBe(now.getTime() - 5 * MINUTE);
      expect(leaf.notAfter.getTime()).toBe(now.getTime() - 5 * MINUTE + 365 * DAY);
    },
  );

  test("the CA is named by its cluster, and the admin kubeconfig reaches the masters by the discovery domain", async () => {
    const other = await generateClusterPki({ ...params, cluster: "prod", discoveryDomain: "kube" });
    expect(new x509.X509Certificate(other.find((f) => f.name === "ca.crt")!.content).subject).toBe(
      "CN=kubebake-prod-ca",
    );
    expect(other.find((f) => f.name === "admin.kubeconfig")!.content).toContain(
      "server: https://masters.prod.kube:6443\n",
    );
  });

  test("the Secrets key: one fresh 32-byte key named by the day the PKI was made", () => {
    const config = parse(content("encryption-config.yaml"));
    const keys = config.resources[0].providers[0].secretbox.keys as { name: string; secret: string }[];
    expect(keys.map((k) => k.name)).toEqual(["key-20261101"]);
    expect(Buffer.from(keys[0]!.secret, "base64")).toHaveLength(32);
  });

  test("no master's certificate is in it: each master issues its own", () => {
    for (const name of [
      "apiserver",
      "apiserver-kubelet-client",
      "apiserver-etcd-client",
      "front-proxy-client",
    ])
      expect(files.map((f) => f.name)).not.toContain(`${name}.crt`);
  });

  test("caDays and leafDays set the validity; without now, certificates start five minutes before the clock", async () => {
    const before = Date.now();
    const short = await generateClusterPki({ ...params, now: undefined, caDays: 30, leafDays: 2 });
    const after = Date.now();
    const ca = new x509.X509Certificate(short.find((f) => f.name === "ca.crt")!.content);
    const leaf = new x509.X509Certificate(short.find((f) => f.name === "admin.crt")!.content);
    // X.509 times have whole seconds.
    expect(ca.notBefore.getTime()).toBeGreaterThanOrEqual(Math.floor((before - 5 * MINUTE) / 1000) * 1000);
    expect(ca.notBefore.getTime()).toBeLessThanOrEqual(after - 5 * MINUTE);
    expect(ca.notAfter.getTime() - ca.notBefore.getTime()).toBe(30 * DAY);
    expect(leaf.notAfter.getTime() - leaf.notBefore.getTime()).toBe(2 * DAY);
  });
});

describe("the admin kubeconfig", () => {
  test("one cluster, one user and one context, reaching the masters by name with the cluster CA", () => {
    const config = parse(content("admin.kubeconfig"));
    const b64 = (text: string) => Buffer.from(text, "base64").toString();
    expect(config).toEqual({
      apiVersion: "v1",
      kind: "Config",
      clusters: [
        {
          name: "demo",
          cluster: {
            server: "https://masters.demo.k8s:6443",
            "certificate-authority-data": expect.any(String),
          },
        },
      ],
      users: [
        {
          name: "kubebake-admin",
          user: { "client-certificate-data": expect.any(String), "client-key-data": expect.any(String) },
        },
      ],
      contexts: [{ name: "kubebake-admin@demo", context: { cluster: "demo", user: "kubebake-admin" } }],
      "current-context": "kubebake-admin@demo",
    });
    expect(b64(config.clusters[0].cluster["certificate-authority-data"])).toBe(content("ca.crt"));
    expect(b64(config.users[0].user["client-certificate-data"])).toBe(content("admin.crt"));
    expect(b64(config.users[0].user["client-key-data"])).toBe(content("admin.key"));
  });
});

describe("randomness", () => {
  test("serials are 16 random bytes with the top bit cleared, so always positive", async () => {
    const serials = [...CAS, ...Object.keys(LEAVES)].map((n) => cert(n).serialNumber);
    expect(new Set(serials).size).toBe(serials.length);
    // The first random draw is the cluster CA's serial.
    randomBytes.mockImplementationOnce((n: number) => Buffer.alloc(n, 0xff));
    const scripted = await generateClusterPki(params);
    const ca = new x509.X509Certificate(scripted.find((f) => f.name === "ca.crt")!.content);
    expect(ca.serialNumber).toBe("7f" + "ff".repeat(15));
  });

  test("bootstrap tokens draw each character from 36 letters and digits, skipping bytes that would bias it", () => {
    const answers = [
      [252, 0, 1, 2, 35, 36], // 252 is skipped: 252..255 would favour the first four characters
      [71, 200, 201, 202, 203, 204], // 71 % 36 = 35; one more was needed, the rest is not used
      Array.from({ length: 16 }, (_, i) => 255 - i), // 255..252 skipped, then 251..240
      [251, 37, 72, 108],
    ];
    let call = 0;
    randomBytes.mockImplementation((n: number) => Buffer.from(answers[call++]!.slice(0, n)));
    expect(bootstrapToken()).toBe("abc9a9.9876543210zy9baa");
    expect(call).toBe(4);
  });

  test("tokens have the form Kubernetes requires and do not repeat", () => {
    const tokens = new Set(Array.from({ length: 200 }, () => bootstrapToken()));
    expect(tokens.size).toBe(200);
    for (const token of tokens) expect(token).toMatch(/^[a-z0-9]{6}\.[a-z0-9]{16}$/);
  });
});

describe("writePki", () => {
  const sample: PkiFile[] = [
    { name: "a.crt", content: "certificate\n", secret: false },
    { name: "a.key", content: "key\n", secret: true },
  ];

  test("a new folder: private (0700), secrets 0600, certificates 0644, contents as given", async () => {
    const dir = join(work, "new", "deeper");
    await writePki(dir, sample);
    expect(statSync(dir).mode & 0o777).toBe(0o700);
    expect(statSync(join(work, "new")).mode & 0o777).toBe(0o700);
    expect(statSync(join(dir, "a.key")).mode & 0o777).toBe(0o600);
    expect(statSync(join(dir, "a.crt")).mode & 0o777).toBe(0o644);
    expect(readFileSync(join(dir, "a.key"), "utf8")).toBe("key\n");
    expect(readFileSync(join(dir, "a.crt"), "utf8")).toBe("certificate\n");
  });

  test("an existing empty folder is made private too", async () => {
    const dir = join(work, "empty");
    mkdirSync(dir, { mode: 0o755 });
    await writePki(dir, sample);
    expect(statSync(dir).mode & 0o777).toBe(0o700);
  });

  test("modes do not depend on the umask", async () => {
    const old = process.umask(0o077);
    try {
      await writePki(join(work, "umask"), sample);
    } finally {
      process.umask(old);
    }
    expect(statSync(join(work, "umask", "a.crt")).mode & 0o777).toBe(0o644);
  });

  test("a folder that holds files is refused, naming the first of them, and left as it was", async () => {
    const dir = join(work, "full");
    mkdirSync(dir);
    for (const name of ["a", "b", "c", "d"]) writeFileSync(join(dir, name), name);
    const error = await writePki(dir, sample).catch((e: unknown) => e);
    expect(error).toMatchObject({
      exitCode: ExitCode.invalidInput,
      message: `--out ${dir}: already holds files (a, b, c…); a cluster PKI is generated once and never overwritten`,
    });
    expect(readdirSync(dir)).toEqual(["a", "b", "c", "d"]);
  });

  test("a file where the folder should be is an invalid --out", async () => {
    const path = join(work, "a-file");
    writeFileSync(path, "");
    await expect(writePki(path, sample)).rejects.toMatchObject({
      exitCode: ExitCode.invalidInput,
      message: `--out ${path}: exists and is not a folder (EEXIST)`,
    });
  });

  test("a path below a file is an invalid --out, and nothing is created", async () => {
    const file = join(work, "plain");
    writeFileSync(file, "");
    await expect(writePki(join(file, "pki"), sample)).rejects.toMatchObject({
      exitCode: ExitCode.invalidInput,
    });
  });

  test("a failure half way removes the files written and the folders made", async () => {
    const root = join(work, "half");
    const broken: PkiFile[] = [...sample, { name: "missing/sub.key", content: "x", secret: true }];
    await expect(writePki(join(root, "pki"), broken)).rejects.toMatchObject({
      exitCode: ExitCode.invalidInput,
      message: `--out ${join(root, "pki")}: cannot be created there (a file system that takes no new files, like /proc) (ENOENT)`,
    });
    expect(() => statSync(root)).toThrow();
  });
});
