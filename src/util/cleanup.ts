import { rmdirSync, rmSync } from "node:fs";

/**
 * Temporary files and folders (download scratch files, staging trees, work folders) that must not
 * outlive the process: removed when it exits, and on Ctrl-C or a termination signal, which then end the
 * process with the shell's code for the signal (128 + its number: 130 for SIGINT).
 */
const pending = new Map<string, { folderIfEmpty: boolean }>();

const SIGNALS = { SIGINT: 130, SIGTERM: 143, SIGHUP: 129 } as const;
let installed = false;

/**
 * Removes `path` (a file or a folder with its contents; with folderIfEmpty only an empty folder) if the
 * process ends before `forget()` is called. Paths go in the reverse order of their registration.
 */
export function removeOnExit(path: string, options = { folderIfEmpty: false }): () => void {
  install();
  pending.set(path, options);
  return () => pending.delete(path);
}

function removeAll(): void {
  for (const [path, { folderIfEmpty }] of [...pending].reverse()) {
    try {
      if (folderIfEmpty) rmdirSync(path);
      else rmSync(path, { recursive: true, force: true });
    } catch {
      // best effort: the process is ending
    }
  }
  pending.clear();
}

function install(): void {
  if (installed) return;
  installed = true;
  process.once("exit", removeAll);
  for (const [signal, code] of Object.entries(SIGNALS)) {
    process.once(signal, () => {
      removeAll();
      process.stderr.write(`\ninterrupted (${signal}); temporary files removed\n`);
      process.exit(code);
    });
  }
}
