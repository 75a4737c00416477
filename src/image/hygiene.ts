import { lstat, readdir, readFile, readlink } from "node:fs/promises";
import { join } from "node:path";
import { checkUnitCommands } from "./units";

/**
 * What a clean machine image must not carry: per-instance identity, instance state, caches, logs,
 * histories and secrets. Each rule is a path check on the root filesystem.
 */
export interface Violation {
  path: string;
  rule: string;
}

const SECRET_MARKERS = [/-----BEGIN [A-Z ]*PRIVATE KEY-----/, /^[a-z0-9]{6}\.[a-z0-9]{16}\s*$/];
/** Where secret material would be a leak; binaries and docs elsewhere are not scanned. */
const SECRET_SCAN_ROOTS = ["etc", "root", "home", "var/lib/kubebake", "var/lib/kubelet", "usr/lib/kubebake"];

async function exists(path: string): Promise<boolean> {
  return lstat(path).then(
    () => true,
    () => false,
  );
}

async function list(dir: string): Promise<string[]> {
  return readdir(dir).catch(() => []);
}

async function walkFiles(dir: string, rel: string, out: string[]): Promise<void> {
  for (const name of await list(join(dir, rel))) {
    const path = rel ? `${rel}/${name}` : name;
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
    if (/^ssh_host_.*key(\.pub)?$/.test(name))
      add(`etc/ssh/${name}`, "SSH host keys must be made at first boot");
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
  for (const dir of SECRET_SCAN_ROOTS) await walkFiles(root, dir, candidates);
  for (const path of candidates) {
    const info = await lstat(join(root, path));
    if (info.size > 1_000_000) continue;
    const text = await readFile(join(root, path), "latin1");
    if (SECRET_MARKERS.some((marker) => marker.test(text)))
      add(path, "no secret material (private keys, tokens)");
  }
  found.push(...(await checkUnitCommands(root)));
  return found.sort((a, b) => a.path.localeCompare(b.path));
}

/** Removes what checkHygiene forbids, for the disk builder. */
export const CLEANUP_SCRIPT = `
set -eu
rm -f etc/ssh/ssh_host_*
: > etc/machine-id
rm -f var/lib/dbus/machine-id
rm -rf var/lib/cloud/*
find var/lib/apt/lists -mindepth 1 -maxdepth 1 ! -name partial ! -name lock ! -name auxfiles -exec rm -rf {} +
rm -f var/cache/apt/*.bin var/cache/apt/archives/*.deb
find var/log -type f -exec rm -f {} +
rm -f root/.bash_history root/.lesshst root/.viminfo root/.wget-hsts
rm -f etc/ssl/private/ssl-cert-snakeoil.key etc/ssl/certs/ssl-cert-snakeoil.pem
rm -rf tmp/* var/tmp/*
`;
