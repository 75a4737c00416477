import { lstat, readdir, readFile, readlink } from "node:fs/promises";
import { join } from "node:path";
import { checkPreloaded } from "./preloaded";
import { checkUnitCommands } from "./units";

/**
 * What a clean machine image must not carry: per-instance identity, instance state, caches, logs,
 * histories and secrets. Each rule is a path check on the root filesystem.
 */
export interface Violation {
  path: string;
  rule: string;
}

/**
 * Files up to this size are searched for secrets anywhere in the image. Keys, kubeconfigs and credential
 * files are a few KB; what is larger is binaries, archives and data, read only at a cost.
 */
export const SECRET_SCAN_MAX_BYTES = 1024 * 1024;
/** Mount points of a running system: empty in an image, never searched. */
const NOT_SCANNED = new Set(["proc", "sys", "dev", "run"]);

/**
 * A PEM private key block — PKCS#1 RSA, SEC1 EC, DSA, PKCS#8, encrypted PKCS#8, OpenSSH, PGP — with its
 * headers (Proc-Type, Version…) and a base64 body up to the matching END line, also inside JSON strings
 * (\n escapes). Programs that only name the markers (ssh-keygen, libssh2) have no body between them.
 */
const NEWLINE = String.raw`(?:\r?\n|(?:\\r)?\\n)`;
const PEM_PRIVATE_KEY = new RegExp(
  String.raw`-----BEGIN ((?:RSA |EC |DSA |OPENSSH |ENCRYPTED |PGP )?PRIVATE KEY(?: BLOCK)?)-----[ \t]*${NEWLINE}` +
    String.raw`(?:[ \t]*[A-Za-z][A-Za-z-]*: [^\r\n\\]*${NEWLINE})*(?:[ \t]*${NEWLINE})?` +
    String.raw`(?:[ \t]*[A-Za-z0-9+/=]{4,}[ \t]*${NEWLINE})+` +
    String.raw`[ \t]*-----END \1-----`,
);

/** A secret's kind and how to recognise it (a whole PEM block, a credential with a value, not a mention). */
const SECRET_KINDS: { kind: string; needles: string[]; test: (text: string) => boolean }[] = [
  {
    kind: "cloud credentials",
    // Stryker disable StringLiteral: each test needs one of its needles; an emptied needle (always found) changes nothing
    needles: [
      "ws_secret_access_key",
      "WS_SECRET_ACCESS_KEY",
      "service_account",
      "lientSecret",
      "lient_secret",
      "AZURE_CLIENT_SECRET",
      "AccessToken",
      "RefreshToken",
    ],
    // Stryker restore StringLiteral
    test: (text) =>
      // AWS credentials files and environment files; AWS's documented example key is not a secret.
      // Only the two spellings the needles let through (credentials files, environment variables).
      /(?:aws_secret_access_key|AWS_SECRET_ACCESS_KEY)\s*[=:]\s*["']?(?![^\s"']*EXAMPLE)[A-Za-z0-9/+]{40}/.test(
        text,
      ) ||
      // GCP service-account keys
      (/"type"\s*:\s*"service_account"/.test(text) && /"private_key"\s*:\s*"-----BEGIN/.test(text)) ||
      // Azure: SDK auth files, service principal entries, AZURE_CLIENT_SECRET, the CLI's MSAL token cache
      /"(clientSecret|client_secret)"\s*:\s*"[^"\s$]{8,}"/.test(text) ||
      /AZURE_CLIENT_SECRET\s*[=:]\s*["']?[^\s"'$]{8,}/.test(text) ||
      /"(AccessToken|RefreshToken)"\s*:\s*\{[\s\S]*"secret"\s*:\s*"[^"]{16,}"/.test(text),
  },
  {
    kind: "a private key",
    // Stryker disable next-line StringLiteral: each test needs one of its needles (see above)
    needles: ["PRIVATE KEY", "PuTTY-User-Key-File"],
    test: (text) =>
      // PKCS#1 RSA, SEC1 EC, DSA, PKCS#8, encrypted PKCS#8, OpenSSH, PGP: a BEGIN line with its END line
      PEM_PRIVATE_KEY.test(text) || /PuTTY-User-Key-File-\d+:[\s\S]*Private-Lines:/.test(text),
  },
  {
    kind: "kubeconfig credentials",
    // Stryker disable next-line StringLiteral: each test needs one of its needles (see above)
    needles: ["client-key-data", "token", "password"],
    test: (text) =>
      // YAML (the usual form) or JSON (kubectl config view -o json); OIDC and auth-provider users carry id-, refresh- and access-tokens
      (/^(users:|kind:\s*Config\b)/m.test(text) &&
        /^\s*(?:-\s+)?["']?(client-key-data|(?:id-|refresh-|access-)?token|password)["']?\s*:\s*["']?[A-Za-z0-9+/=._~-]{6,}/m.test(
          text,
        )) ||
      (/"kind"\s*:\s*"Config"/.test(text) &&
        /"(client-key-data|(?:id-|refresh-|access-)?token|password)"\s*:\s*"[A-Za-z0-9+/=._~-]{6,}"/.test(
          text,
        )),
  },
  {
    kind: "a bootstrap token",
    // Stryker disable next-line StringLiteral: each test needs one of its needles (see above)
    needles: ["."],
    test: (text) => /^[a-z0-9]{6}\.[a-z0-9]{16}\s*$/.test(text),
  },
];

/** What kind of secret a file's content is, if any. */
export function secretKindOf(content: Buffer): string | undefined {
  let text: string | undefined;
  for (const { kind, needles, test } of SECRET_KINDS) {
    // A byte search first: most files contain none of the words, and decoding them all would be slow.
    // Stryker disable next-line ConditionalExpression: never skipping only reads more; the test decides alone
    if (!needles.some((needle) => content.includes(needle))) continue;
    text ??= content.toString("latin1");
    if (test(text)) return kind;
  }
  return undefined;
}

async function exists(path: string): Promise<boolean> {
  return lstat(path).then(
    () => true,
    () => false,
  );
}

async function list(dir: string): Promise<string[]> {
  return readdir(dir).catch(() => []);
}

/** Adds the regular files below dir/rel (rel a folder, never "") to out, as paths relative to dir. */
async function walkFiles(dir: string, rel: string, out: string[]): Promise<void> {
  for (const name of await list(join(dir, rel))) {
    const path = `${rel}/${name}`;
    const info = await lstat(join(dir, path));
    if (info.isDirectory()) await walkFiles(dir, path, out);
    else if (info.isFile()) out.push(path);
  }
}

/** Checks a root filesystem folder; returns every violation (empty when clean). */
export async function checkHygiene(root: string): Promise<Violation[]> {
  const found: Violation[] = [];
  const add = (path: string, rule: string) => found.push({ path: `/${path}`, rule });

  for (const name of await list(join(root, "etc/ssh"))) {
    // keys, their .pub and host certificates alike: what the cleanup's ssh_host_* removes
    if (name.startsWith("ssh_host_")) add(`etc/ssh/${name}`, "SSH host keys must be made at first boot");
  }
  const machineId = join(root, "etc/machine-id");
  if (await exists(machineId)) {
    if ((await readFile(machineId, "utf8")).trim() !== "") add("etc/machine-id", "machine-id must be empty");
  }
  const dbusId = join(root, "var/lib/dbus/machine-id");
  if (
    (await exists(dbusId)) &&
    !((await lstat(dbusId)).isSymbolicLink() && (await readlink(dbusId)) === "/etc/machine-id")
  ) {
    add("var/lib/dbus/machine-id", "the D-Bus machine-id must be absent or a link to /etc/machine-id");
  }
  for (const name of await list(join(root, "var/lib/cloud"))) {
    add(`var/lib/cloud/${name}`, "no cloud-init instance state");
  }
  for (const name of await list(join(root, "var/lib/apt/lists"))) {
    if (name !== "partial" && name !== "lock" && name !== "auxfiles")
      add(`var/lib/apt/lists/${name}`, "no apt lists");
  }
  for (const name of await list(join(root, "var/cache/apt"))) {
    if (name.endsWith(".bin")) add(`var/cache/apt/${name}`, "no apt caches");
  }
  for (const name of await list(join(root, "var/cache/apt/archives"))) {
    if (name.endsWith(".deb")) add(`var/cache/apt/archives/${name}`, "no apt caches");
  }
  const logs: string[] = [];
  await walkFiles(root, "var/log", logs);
  for (const path of logs) {
    if ((await lstat(join(root, path))).size > 0) add(path, "no logs");
  }
  const homes = ["root", ...(await list(join(root, "home"))).map((h) => `home/${h}`)];
  for (const home of homes) {
    for (const name of [".bash_history", ".lesshst", ".viminfo", ".python_history", ".wget-hsts"]) {
      if (await exists(join(root, home, name))) add(`${home}/${name}`, "no shell histories");
    }
  }
  const candidates: string[] = [];
  for (const top of await list(root)) {
    if (NOT_SCANNED.has(top)) continue;
    const info = await lstat(join(root, top));
    if (info.isDirectory()) await walkFiles(root, top, candidates);
    else if (info.isFile()) candidates.push(top);
  }
  for (const path of candidates) {
    const info = await lstat(join(root, path));
    if (info.size > SECRET_SCAN_MAX_BYTES) continue;
    const kind = secretKindOf(await readFile(join(root, path)));
    if (kind) add(path, `no secret material (${kind})`);
  }
  found.push(...(await checkUnitCommands(root)));
  found.push(...(await checkPreloaded(root)));
  return found.sort((a, b) => a.path.localeCompare(b.path));
}

/** Removes what checkHygiene forbids, for the disk builder. */
export const CLEANUP_SCRIPT = `
set -eu
rm -f etc/ssh/ssh_host_*
# Empty, not "uninitialized": systemd makes each instance its own id at its first boot and keeps it, and
# does not treat that boot as a "first boot", which would re-apply Debian's enable-everything presets over
# the units the image enabled or left off. A fixed id would be shared by every machine of the image.
: > etc/machine-id
rm -f var/lib/dbus/machine-id
rm -rf var/lib/cloud/*
find var/lib/apt/lists -mindepth 1 -maxdepth 1 ! -name partial ! -name lock ! -name auxfiles -exec rm -rf {} +
rm -f var/cache/apt/*.bin var/cache/apt/archives/*.deb
find var/log -type f -exec rm -f {} +
rm -f root/.bash_history root/.lesshst root/.viminfo root/.wget-hsts
rm -f etc/ssl/private/ssl-cert-snakeoil.key etc/ssl/certs/ssl-cert-snakeoil.pem
# cloud-init's documentation carries a sample SSH host key: a private key all the same
rm -f usr/share/doc/cloud-init/examples/cloud-config-ssh-keys.txt
rm -rf tmp/* var/tmp/*
`;
