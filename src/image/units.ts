import { lstat, readdir, readFile, readlink } from "node:fs/promises";
import { join, posix } from "node:path";
import type { Violation } from "./hygiene";

/** Where systemd reads unit files from (the image's own, the admin's, and the packages'). */
const UNIT_DIRS = [
  "etc/systemd/system",
  "usr/local/lib/systemd/system",
  "usr/lib/systemd/system",
  "lib/systemd/system",
];
/** The lines that start a process whose failure fails the unit (a '-' prefix makes a failure harmless). */
const EXEC_LINE = /^(ExecStart|ExecStartPre|ExecStartPost)=(.*)$/;
/** systemd's search path for an ExecStart= command given without a folder. */
const SEARCH_PATH = ["usr/local/sbin", "usr/local/bin", "usr/sbin", "usr/bin", "sbin", "bin"];

/** Units whose commands are not in the image: the unit would fail at boot (a misspelt component, a missing file). */
export async function checkUnitCommands(root: string): Promise<Violation[]> {
  const found: Violation[] = [];
  const seen = new Set<string>();
  for (const dir of UNIT_DIRS) {
    const real = await resolveInRoot(root, dir);
    if (real === undefined || seen.has(real)) continue; // /lib is /usr/lib on merged-/usr systems
    seen.add(real);
    for (const name of (await readdir(join(root, real)).catch(() => [])).sort()) {
      if (!name.endsWith(".service")) continue;
      const info = await lstat(join(root, real, name));
      if (!info.isFile()) continue; // links in *.wants/ and aliases point at units checked here
      const text = await readFile(join(root, real, name), "utf8");
      for (const command of commandsOf(text)) {
        const candidates = command.startsWith("/")
          ? [command.slice(1)]
          : SEARCH_PATH.map((d) => `${d}/${command}`);
        let present = false;
        for (const candidate of candidates) {
          if ((await resolveInRoot(root, candidate)) !== undefined) present = true;
        }
        if (!present) {
          found.push({
            path: `/${dir}/${name}`,
            rule: `the command ${command} of this unit is not in the image`,
          });
        }
      }
    }
  }
  return found;
}

/** The programs a unit runs (continuation lines joined), without systemd's prefixes; skips what may fail. */
export function commandsOf(unitText: string): string[] {
  const joined = unitText.replace(/\\\r?\n/g, " ");
  // A unit that runs only if its command exists (rc-local: ConditionFileIsExecutable=/etc/rc.local) is fine.
  const conditioned = new Set(
    [...joined.matchAll(/^\s*(?:Condition|Assert)\w+=\|?([^!\s]\S*)\s*$/gm)].map((m) => m[1]!),
  );
  const commands: string[] = [];
  for (const line of joined.split(/\r?\n/)) {
    const match = EXEC_LINE.exec(line.trim());
    if (!match) continue;
    const value = match[2]!.trim();
    const prefix = /^[-@:+!]*/.exec(value)![0];
    if (prefix.includes("-")) continue;
    const program = value.slice(prefix.length).split(/\s+/)[0] ?? "";
    // Empty (a reset) or built from specifiers and variables: nothing to look up.
    if (program === "" || /[%$]/.test(program) || conditioned.has(program)) continue;
    commands.push(program);
  }
  return commands;
}

/**
 * A path inside the image with its symlinks followed inside the image (an absolute link target is the
 * image's, not the host's); the resolved relative path, or undefined when it does not exist.
 */
async function resolveInRoot(root: string, path: string): Promise<string | undefined> {
  const pending = path.split("/").filter((p) => p !== "" && p !== ".");
  const done: string[] = [];
  for (let hops = 0; pending.length > 0;) {
    const part = pending.shift()!;
    if (part === "..") {
      done.pop();
      continue;
    }
    const here = [...done, part].join("/");
    const info = await lstat(join(root, here)).catch(() => undefined);
    if (!info) return undefined;
    if (info.isSymbolicLink()) {
      if (++hops > 40) return undefined;
      const target = await readlink(join(root, here));
      if (target.startsWith("/")) done.length = 0;
      pending.unshift(
        ...posix
          .normalize(target)
          .split("/")
          .filter((p) => p !== "" && p !== "."),
      );
      continue;
    }
    done.push(part);
  }
  return done.join("/");
}
