import { mkdirSync, readFileSync, symlinkSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { spawnSync } from "node:child_process";
import { generateKeyPairSync } from "node:crypto";
import { checkHygiene, CLEANUP_SCRIPT, SECRET_SCAN_MAX_BYTES, secretKindOf } from "../src/image/hygiene";
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

describe("what each rule lets through", () => {
  const key =
    "-----BEGIN EC PRIVATE KEY-----\nMHcCAQEEIBkg4LVWM9nuwNSk3yByxZpYRTBnVJk5oSn0zUhGnQ1g\n-----END EC PRIVATE KEY-----\n";
  const violations = async (name: string, files: Record<string, string>) =>
    (await checkHygiene(rootWith(name, files))).map((v) => `${v.path}: ${v.rule}`);

  test("a machine-id of only a newline is empty; no machine-id at all is fine too", async () => {
    expect(await violations("id-newline", { "etc/machine-id": "\n" })).toEqual([]);
    expect(await violations("id-none", {})).toEqual([]);
  });

  test("a D-Bus machine-id linked anywhere but /etc/machine-id is a violation", async () => {
    const root = rootWith("dbus-elsewhere", { "etc/machine-id": "" });
    mkdirSync(join(root, "var/lib/dbus"), { recursive: true });
    symlinkSync("/var/lib/dbus/id", join(root, "var/lib/dbus/machine-id"));
    expect(await checkHygiene(root)).toEqual([
      {
        path: "/var/lib/dbus/machine-id",
        rule: "the D-Bus machine-id must be absent or a link to /etc/machine-id",
      },
    ]);
  });

  test("host keys, their .pub and host certificates go (as the cleanup removes them); the rest of /etc/ssh stays", async () => {
    expect(
      await violations("ssh", {
        "etc/ssh/ssh_host_rsa_key": "k",
        "etc/ssh/ssh_host_rsa_key.pub": "p",
        "etc/ssh/ssh_host_rsa_key-cert.pub": "c",
        "etc/ssh/moduli": "m",
        "etc/ssh/known_ssh_host_keys": "m",
      }),
    ).toEqual([
      "/etc/ssh/ssh_host_rsa_key: SSH host keys must be made at first boot",
      "/etc/ssh/ssh_host_rsa_key-cert.pub: SSH host keys must be made at first boot",
      "/etc/ssh/ssh_host_rsa_key.pub: SSH host keys must be made at first boot",
    ]);
  });

  test("apt's lock, partial and auxfiles stay; nested logs count; every shell history of every home", async () => {
    expect(
      await violations("apt-logs-homes", {
        "var/lib/apt/lists/lock": "",
        "var/lib/apt/lists/partial/.keep": "",
        "var/lib/apt/lists/auxfiles/.keep": "",
        "var/cache/apt/archives/lock": "",
        "var/cache/apt/archives/partial/.keep": "",
        "var/cache/apt/srcpkgcache.bin": "x",
        "var/log/apt/history.log": "install\n",
        "var/log/journal/.keep": "",
        "root/.lesshst": "x",
        "root/.viminfo": "x",
        "root/.python_history": "x",
        "root/.wget-hsts": "x",
        "home/dev/.viminfo": "x",
      }),
    ).toEqual([
      "/home/dev/.viminfo: no shell histories",
      "/root/.lesshst: no shell histories",
      "/root/.python_history: no shell histories",
      "/root/.viminfo: no shell histories",
      "/root/.wget-hsts: no shell histories",
      "/var/cache/apt/srcpkgcache.bin: no apt caches",
      "/var/log/apt/history.log: no logs",
    ]);
  });

  test("secrets are searched in files at the top, not in mount points nor through links", async () => {
    const root = rootWith("secret-places", {
      "key.pem": key,
      "proc/key.pem": key,
      "sys/key.pem": key,
      "dev/key.pem": key,
      "run/key.pem": key,
      "opt/key.pem": key,
    });
    symlinkSync("opt/key.pem", join(root, "top-link.pem"));
    symlinkSync("key.pem", join(root, "opt/link.pem"));
    expect((await checkHygiene(root)).map((v) => v.path)).toEqual(["/key.pem", "/opt/key.pem"]);
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

describe("what is a secret and what only looks like one", () => {
  const kind = (text: string) => secretKindOf(Buffer.from(text));
  const aws = "kJalrXUtnFEMIK7MDENGbPxRfiCYzzzzzzzzzzzz"; // 40 characters
  const body = "MHcCAQEEIBkg4LVWM9nuwNSk3yByxZpYRTBnVJk5oSn0zUhGnQ1g\n";

  test("PEM keys with Windows line ends, indented lines, headers or inside a JSON string", () => {
    const crlf = `-----BEGIN RSA PRIVATE KEY-----\r\n${body.trim()}\r\n-----END RSA PRIVATE KEY-----\r\n`;
    expect(kind(crlf)).toBe("a private key");
    const indented = `key: |\n  -----BEGIN EC PRIVATE KEY-----  \n  ${body.trim()}  \n  -----END EC PRIVATE KEY-----\n`;
    expect(kind(indented)).toBe("a private key");
    const headers = `-----BEGIN RSA PRIVATE KEY-----\nProc-Type: 4,ENCRYPTED\nDEK-Info: AES-256-CBC,0A1B\n\n${body}-----END RSA PRIVATE KEY-----\n`;
    expect(kind(headers)).toBe("a private key");
    const json = JSON.stringify({
      tls: { key: `-----BEGIN PRIVATE KEY-----\n${body}-----END PRIVATE KEY-----\n` },
    });
    expect(kind(json)).toBe("a private key");
    expect(kind(json.replace(/\\n/g, "\\r\\n"))).toBe("a private key");
  });

  test("a PEM block needs its own END line and a base64 body", () => {
    const mismatched = `-----BEGIN RSA PRIVATE KEY-----\n${body}-----END EC PRIVATE KEY-----\n`;
    expect(kind(mismatched)).toBeUndefined();
    expect(kind(`-----BEGIN PRIVATE KEY-----\n-----END PRIVATE KEY-----\n`)).toBeUndefined();
    expect(kind(`-----BEGIN PRIVATE KEY-----\n<the key here>\n-----END PRIVATE KEY-----\n`)).toBeUndefined();
    expect(kind(`-----BEGIN PUBLIC KEY-----\n${body}-----END PUBLIC KEY-----\n`)).toBeUndefined();
  });

  test("a PuTTY key with its private lines; not a mention of the format", () => {
    const ppk =
      "PuTTY-User-Key-File-3: ssh-ed25519\nEncryption: none\nComment: admin\nPublic-Lines: 2\n" +
      "AAAAC3NzaC1lZDI1NTE5AAAAIB\nAAAA\nPrivate-Lines: 1\nAAAAIHh0ZXN0\nPrivate-MAC: 0a1b\n";
    expect(kind(ppk)).toBe("a private key");
    expect(kind(ppk.replace("File-3", "File-10"))).toBe("a private key"); // any format version
    expect(kind("PuTTY-User-Key-File-3 is the format of .ppk files\n")).toBeUndefined();
    expect(kind("PuTTY-User-Key-File-N: with Private-Lines:\n")).toBeUndefined();
  });

  test("AWS keys quoted or not; placeholders and variables are not secrets", () => {
    expect(kind(`aws_secret_access_key = "${aws}"\n`)).toBe("cloud credentials");
    expect(kind(`AWS_SECRET_ACCESS_KEY='${aws}'\n`)).toBe("cloud credentials");
    expect(kind(`aws_secret_access_key: ${aws}\n`)).toBe("cloud credentials");
    expect(kind(`aws_secret_access_key=${aws.slice(1)}\n`)).toBeUndefined(); // 39: not a key
    expect(kind(`aws_secret_access_key = changeme\n`)).toBeUndefined();
    expect(kind(`aws_secret_access_key = $AWS_SECRET\n`)).toBeUndefined();
    expect(kind(`aws_secret_access_key = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"\n`)).toBeUndefined();
  });

  test("GCP and Azure credential files as the tools write them: indented JSON", () => {
    const pretty = (value: unknown) => JSON.stringify(value, null, 2);
    const gcpKey = `-----BEGIN PRIVATE KEY-----\n${body}-----END PRIVATE KEY-----\n`;
    expect(kind(pretty({ type: "service_account", private_key: gcpKey }))).toBe("cloud credentials");
    expect(kind(pretty({ type: "authorized_user", private_key: gcpKey }))).toBe("a private key");
    expect(kind(pretty({ type: "service_account", private_key_id: "1" }))).toBeUndefined();
    expect(kind(pretty({ clientId: "0", clientSecret: "Qw8Q~abc" }))).toBe("cloud credentials"); // 8
    expect(kind(pretty({ clientId: "0", clientSecret: "Qw8Q~ab" }))).toBeUndefined(); // 7
    expect(kind(pretty({ client_secret: "${CLIENT_SECRET}" }))).toBeUndefined();
    expect(kind(pretty({ client_secret: "not a secret" }))).toBeUndefined();
    const cache = (secret: string) =>
      pretty({ RefreshToken: { k: { credential_type: "RefreshToken", secret } } });
    expect(kind(cache("eyJ0eXAiOiJKV1Qi"))).toBe("cloud credentials"); // 16
    expect(kind(cache("eyJ0eXAiOiJKV1Q"))).toBeUndefined(); // 15
  });

  test("kubeconfig credentials in YAML however quoted, and in kubectl's indented JSON", () => {
    const yaml = (user: string) => `apiVersion: v1\nkind: Config\nusers:\n- name: admin\n  user:\n${user}\n`;
    expect(kind(yaml(`    token: "abcdef.0123456789abcdef"`))).toBe("kubeconfig credentials");
    expect(kind(yaml(`    'password' : 's3cret'`))).toBe("kubeconfig credentials"); // 6
    expect(kind(yaml(`    password: s3cre`))).toBeUndefined(); // 5
    expect(kind(yaml(`    password:   s3cret`))).toBe("kubeconfig credentials"); // aligned values
    const oidc = `    auth-provider:\n      name: oidc\n      config:\n        client-id: kubernetes\n`;
    expect(kind(yaml(`${oidc}        id-token: eyJhbGciOiJSUzI1NiJ9.e30.c2ln`))).toBe(
      "kubeconfig credentials",
    );
    expect(kind(yaml(`${oidc}        refresh-token: Cgl0ZXN0LXRva2Vu`))).toBe("kubeconfig credentials");
    expect(kind(yaml(`${oidc}        idp-issuer-url: https://issuer.example`))).toBeUndefined();
    const gcp = `    auth-provider:\n      name: gcp\n      config:\n        token-key: '{.credential.access_token}'\n`;
    expect(kind(yaml(`${gcp}        access-token: ya29.a0AfH6SMB`))).toBe("kubeconfig credentials");
    expect(kind(yaml(gcp))).toBeUndefined();
    expect(kind(yaml(`  -   token: abcdef.0123456789abcdef`))).toBe("kubeconfig credentials"); // wide list indent
    expect(kind(yaml(`  - token: abcdef.0123456789abcdef`))).toBe("kubeconfig credentials");
    // quoted top-level keys (as some YAML writers emit them): `kind: Config` says what the file is
    const quoted = `apiVersion: v1\nkind:       Config\n'users':\n- 'name': admin\n  'user':\n    'token': abcdef.0123456789abcdef\n`;
    expect(kind(quoted)).toBe("kubeconfig credentials");
    expect(kind(quoted.replace("Config", "ConfigMap"))).toBeUndefined();
    const json = (token: string) =>
      JSON.stringify({ kind: "Config", users: [{ name: "a", user: { token } }] }, null, 2);
    expect(kind(json("abcdef"))).toBe("kubeconfig credentials");
    expect(kind(json("abcde"))).toBeUndefined();
    expect(kind(json("abcde").replace('"token"', '"id-token"').replace("abcde", "eyJhbGciOi"))).toBe(
      "kubeconfig credentials",
    );
    expect(
      kind(JSON.stringify({ kind: "Secret", data: { token: "abcdef.0123456789abcdef" } }, null, 2)),
    ).toBeUndefined();
  });

  test("an application's own users: and password: are not a kubeconfig", () => {
    expect(kind("app:\n  users: 3\n  password: hunter22222\n")).toBeUndefined();
  });

  test("a bootstrap token is a file of only the token", () => {
    expect(kind("abcdef.0123456789abcdef")).toBe("a bootstrap token");
    expect(kind("abcdef.0123456789abcdef \n")).toBe("a bootstrap token");
    expect(kind("token=abcdef.0123456789abcdef\n")).toBeUndefined();
    expect(kind("abcdef.0123456789abcdef0\n")).toBeUndefined();
    expect(kind("abcdef.0123456789abcdef\nmore\n")).toBeUndefined();
    expect(kind("abcdef-0123456789abcdef\n")).toBeUndefined();
  });

  test("hand-written JSON with spaces around its colons", () => {
    const key = `-----BEGIN PRIVATE KEY-----\\n${body.trim()}\\n-----END PRIVATE KEY-----\\n`;
    expect(kind(`{ "type" : "service_account", "private_key" : "${key}" }`)).toBe("cloud credentials");
    expect(kind(`{ "type" : "service_account", "private_key": "${key}" }`)).toBe("cloud credentials");
    expect(kind(`{ "type": "service_account", "private_key" : "${key}" }`)).toBe("cloud credentials");
    expect(kind(`{ "clientSecret" : "Qw8Q~abcdefgh" }`)).toBe("cloud credentials");
    expect(kind(`{ "AccessToken" : { "k": { "secret": "eyJ0eXAiOiJKV1Qi" } } }`)).toBe("cloud credentials");
    expect(kind(`{ "AccessToken": { "k": { "secret" : "eyJ0eXAiOiJKV1Qi" } } }`)).toBe("cloud credentials");
    expect(kind(`{ "kind" : "Config", "users": [{ "user": { "token": "abcdef.0123456789abcdef" } }] }`)).toBe(
      "kubeconfig credentials",
    );
    expect(kind(`{ "kind": "Config", "users": [{ "user": { "token" : "abcdef.0123456789abcdef" } }] }`)).toBe(
      "kubeconfig credentials",
    );
  });

  test("AZURE_CLIENT_SECRET set in an environment file, not one read from a variable", () => {
    expect(kind(`AZURE_CLIENT_SECRET = "Qw8Q~abc"\n`)).toBe("cloud credentials");
    expect(kind(`AZURE_CLIENT_SECRET: Qw8Q~abc\n`)).toBe("cloud credentials");
    expect(kind(`AZURE_CLIENT_SECRET=Qw8Q~ab\n`)).toBeUndefined();
    expect(kind(`AZURE_CLIENT_SECRET="$SECRET_FROM_VAULT"\n`)).toBeUndefined();
    expect(kind(`AZURE_CLIENT_SECRET is read from the environment\n`)).toBeUndefined();
  });
});
