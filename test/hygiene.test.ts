import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { spawnSync } from "node:child_process";
import { generateKeyPairSync } from "node:crypto";
import { checkHygiene, CLEANUP_SCRIPT, SECRET_SCAN_MAX_BYTES } from "../src/image/hygiene";
import { tempDir } from "./helpers";
import { cleanRoot, dirty, rootWith as rootAt, unitsExpected, unitsRoot } from "./hygiene-fixtures";
import { cachedRsaKey } from "./keys";

// In-process only: mutation testing runs this file once per mutant (test/image-check.test.ts has the CLI).
const work = tempDir("hygiene");
const rootWith = (name: string, files: Record<string, string>) => rootAt(join(work, name), files);

describe("image hygiene", () => {
  test("lists every violation, with the path and the rule", async () => {
    const violations = await checkHygiene(rootWith("dirty", dirty));
    expect(violations.map((v) => `${v.path}: ${v.rule}`)).toEqual([
      "/etc/kubebake/secrets/bootstrap-token: no secret material (a bootstrap token)",
      "/etc/kubernetes/pki/ca.key: no secret material (a private key)",
      "/etc/machine-id: machine-id must be empty",
      "/etc/ssh/ssh_host_ed25519_key: SSH host keys must be made at first boot",
      "/etc/ssh/ssh_host_ed25519_key.pub: SSH host keys must be made at first boot",
      "/home/admin/.bash_history: no shell histories",
      "/root/.bash_history: no shell histories",
      "/var/cache/apt/archives/curl_8_amd64.deb: no apt caches",
      "/var/cache/apt/pkgcache.bin: no apt caches",
      "/var/lib/apt/lists/deb.example_dists_bookworm_InRelease: no apt lists",
      "/var/lib/cloud/instance: no cloud-init instance state",
      "/var/lib/dbus/machine-id: the D-Bus machine-id must be absent or a link to /etc/machine-id",
      "/var/log/syslog: no logs",
    ]);
  });

  test("the disk builder's cleanup leaves only what a clean image may have", async () => {
    const root = rootWith("cleaned", { ...dirty });
    for (const path of [
      "etc/kubernetes/pki/ca.key",
      "etc/kubebake/secrets/bootstrap-token",
      "home/admin/.bash_history",
    ]) {
      writeFileSync(join(root, path), "");
    }
    const result = spawnSync("sh", ["-c", CLEANUP_SCRIPT], { cwd: root, encoding: "utf8" });
    expect(result.status).toBe(0);
    expect(await checkHygiene(root)).toEqual([
      { path: "/home/admin/.bash_history", rule: "no shell histories" }, // only root's is removed: images have no users
    ]);
    expect(readFileSync(join(root, "etc/machine-id"), "utf8")).toBe("");
    expect(readFileSync(join(root, "etc/ssh/sshd_config"), "utf8")).toBe("PermitRootLogin no\n");
  });

  test("a D-Bus machine-id linked to /etc/machine-id is fine; a clean tree passes", async () => {
    expect(await checkHygiene(cleanRoot(join(work, "clean")))).toEqual([]);
  });
});

describe("units whose command is not in the image", () => {
  test("a folder: each unit that would fail names its missing command", async () => {
    expect(await checkHygiene(unitsRoot(join(work, "units")))).toEqual(unitsExpected);
  });
});

describe("secrets anywhere in the image", () => {
  // 4096 bits, made once per machine (seconds each time otherwise): its PKCS#1 form is over 3 KB.
  const rsaKey = cachedRsaKey("hygiene-secrets", 4096);
  const ec = generateKeyPairSync("ec", { namedCurve: "P-256" });
  const pkcs1 = rsaKey.export({ format: "pem", type: "pkcs1" }) as string;
  const body =
    "MIIBOgIBAAJBAKj34GkxFhD90vcNLYLInFEX6Ppy1tPf9Cnzj4p4WGeKLs1Pt8Qu\nKUpRKfFLfRYC9AIKjbJTWit+CqvjWYzvQwECAwEAAQ==\n";
  const block = (label: string) => `-----BEGIN ${label}-----\n${body}-----END ${label}-----\n`;
  const kubeconfig = (user: string) =>
    `apiVersion: v1\nkind: Config\nclusters:\n- name: demo\n  cluster: {server: "https://masters.demo.k8s:6443"}\nusers:\n- name: admin\n  user:\n${user}\n`;
  const secrets: Record<string, string> = {
    "opt/app/id_rsa": pkcs1, // PKCS#1 RSA, 4096 bits: over 3 KB
    "srv/ec.key": ec.privateKey.export({ format: "pem", type: "sec1" }) as string,
    "var/lib/app/pkcs8.pem": rsaKey.export({ format: "pem", type: "pkcs8" }) as string,
    "usr/local/share/enc.pem": rsaKey.export({
      format: "pem",
      type: "pkcs8",
      cipher: "aes-256-cbc",
      passphrase: "x",
    }) as string,
    "home/admin/.ssh/id_ed25519": block("OPENSSH PRIVATE KEY"),
    "root/dsa.key": block("DSA PRIVATE KEY"),
    "tmp/secring.asc":
      "-----BEGIN PGP PRIVATE KEY BLOCK-----\nVersion: GnuPG v2\n\nlQOYBGVxM3ABCADc0aFYd2K1\nqL8xW0QbXg==\n=hT3k\n-----END PGP PRIVATE KEY BLOCK-----\n",
    "usr/share/admin.kubeconfig": kubeconfig(
      "    client-certificate-data: TUlJQg==\n    client-key-data: LS0tLS1CRUdJTiBFQyBQUklWQVRFIEtFWS0tLS0t",
    ),
    "opt/kube/token.conf": kubeconfig("    token: abcdef.0123456789abcdef"),
    "opt/kube/json.conf": JSON.stringify({
      kind: "Config",
      users: [{ name: "a", user: { token: "abcdef.0123456789abcdef" } }],
    }),
    "opt/kube/basic.conf": kubeconfig("    username: admin\n    password: s3cretpassw0rd"),
    "root/.aws/credentials":
      "[default]\naws_access_key_id = AKIAIOSFODNN7REALKEY\naws_secret_access_key = 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\n",
    "etc/default/app": "AWS_SECRET_ACCESS_KEY=kJalrXUtnFEMIK7MDENGbPxRfiCYzzzzzzzzzzzz\n",
    "opt/gcp/sa.json": JSON.stringify({
      type: "service_account",
      project_id: "p",
      private_key_id: "1",
      private_key: ec.privateKey.export({ format: "pem", type: "pkcs8" }) as string,
      client_email: "x@p.iam.gserviceaccount.com",
    }),
    "opt/azure/sdk-auth.json": JSON.stringify({
      clientId: "0000",
      clientSecret: "Qw8Q~abcdefghijklmnop",
      tenantId: "1",
    }),
    "root/.azure/service_principal_entries.json": JSON.stringify([
      { client_id: "0", client_secret: "Qw8Q~abcdefghijklmnop" },
    ]),
    "root/.azure/msal_token_cache.json": JSON.stringify({
      AccessToken: {
        k: { credential_type: "AccessToken", secret: "eyJ0eXAiOiJKV1QiLCJhbGciOiJSUzI1NiJ9.x" },
      },
    }),
    "etc/environment.d/azure.conf": "AZURE_CLIENT_SECRET=Qw8Q~abcdefghijklmnop\n",
  };
  const notSecrets: Record<string, string> = {
    "usr/share/doc/ssl/README":
      "Keys start with -----BEGIN RSA PRIVATE KEY----- and end with its END line.\n",
    // what ssh-keygen and libssh2 carry: the markers as strings, no key between them
    "usr/bin/ssh-keygen":
      "\u0000-----BEGIN OPENSSH PRIVATE KEY-----\n\u0000-----END OPENSSH PRIVATE KEY-----\n",
    "usr/lib/kubebake/providers/aws.sh":
      'secret="$AWS_SECRET_ACCESS_KEY"\ncurl -H "X-aws-ec2-metadata-token: $TOKEN"\n',
    "usr/lib/kubebake/node-config":
      'credentials="      token: $5"\ncat <<EOF\nusers:\n- name: x\n  user:\n    client-key: /etc/kubernetes/pki/x.key\nEOF\n',
    "usr/share/doc/aws/example": "aws_secret_access_key = wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY\n",
    "etc/kubernetes/empty.kubeconfig": kubeconfig('    token: ""'),
    "opt/app/config.yaml": "database:\n  password: hunter22222\n", // not a kubeconfig
  };

  test("every private key form, kubeconfig secret and cloud credential file is found, wherever it is", async () => {
    const root = rootWith("secrets", { ...secrets, ...notSecrets });
    expect(rsaKey.asymmetricKeyDetails?.modulusLength).toBe(4096);
    expect(pkcs1.length).toBeGreaterThan(3000);
    const found = (await checkHygiene(root)).map((v) => `${v.path}: ${v.rule}`);
    const kindOf = (path: string) =>
      /kube|token|basic/.test(path) && !path.endsWith(".json")
        ? "kubeconfig credentials"
        : /aws|gcp|azure|environment\.d|etc\/default/.test(path)
          ? "cloud credentials"
          : "a private key";
    expect(found).toEqual(
      Object.keys(secrets)
        .map((path) => `/${path}: no secret material (${kindOf(path)})`)
        .sort((a, b) => a.localeCompare(b)),
    );
  });

  // The documented cap is a literal here: a cap lowered in the source must fail this test, not move with it.
  const MIB = 1024 * 1024;
  test("files up to 1 MiB are searched whole; larger ones are not read", async () => {
    expect(SECRET_SCAN_MAX_BYTES).toBe(MIB);
    const padded = (size: number) => " ".repeat(size - pkcs1.length) + pkcs1; // the key at the very end
    const root = rootWith("boundary", {
      "opt/at-limit.pem": padded(MIB),
      "opt/half-limit.pem": padded(MIB / 2),
      "opt/over-limit.bin": padded(MIB + 1),
    });
    expect(await checkHygiene(root)).toEqual([
      { path: "/opt/at-limit.pem", rule: "no secret material (a private key)" },
      { path: "/opt/half-limit.pem", rule: "no secret material (a private key)" },
    ]);
  });
});
