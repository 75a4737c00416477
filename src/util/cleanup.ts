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

const interruptHooks = new Set<() => Promise<void>>();
/** How long a signal waits for the hooks (deleting a half-made cloud resource) before the process ends. */
const HOOK_TIMEOUT_MS = 60_000;

/**
 * Runs `hook` (e.g. abort an upload and delete what it made in a cloud) when a signal arrives, before the
 * temporary files go and the process ends; the returned function unregisters it.
 */
export function onInterrupt(hook: () => Promise<void>): () => void {
  install();
  interruptHooks.add(hook);
  return () => interruptHooks.delete(hook);
}

async function runHooks(): Promise<void> {
  const hooks = [...interruptHooks];
  interruptHooks.clear();
  if (hooks.length === 0) return;
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<void>((resolve) => (timer = setTimeout(resolve, HOOK_TIMEOUT_MS)));
  await Promise.race([Promise.allSettled(hooks.map((hook) => hook())), timeout]);
  clearTimeout(timer);
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
      const end = () => {
        removeAll();
        process.stderr.write(`\ninterrupted (${signal}); temporary files removed\n`);
        process.exit(code);
      };
      if (interruptHooks.size === 0) return end();
      process.stderr.write(`\ninterrupted (${signal}); removing what was made…`);
      void runHooks().then(end);
    });
  }
}
