/**
 * Ctrl-C during a publish: the process waits for the clean-up hook (the CLI's aborts the upload and deletes
 * the pending snapshot) before it removes its temporary files and exits 130.
 */
import { spawn } from "node:child_process";
import { existsSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { buildSync } from "esbuild";
import { repoRoot, tempDir } from "../helpers";

const work = tempDir("interrupt-hook");

test("SIGINT runs the onInterrupt hooks to their end, then removes temporary files and exits 130", async () => {
  const entry = join(work, "entry.ts");
  const cleaned = join(work, "cleaned");
  const scratch = join(work, "scratch");
  writeFileSync(scratch, "temporary");
  writeFileSync(
    entry,
    `import { onInterrupt, removeOnExit } from ${JSON.stringify(join(repoRoot, "src/util/cleanup"))};
     import { existsSync, writeFileSync } from "node:fs";
     removeOnExit(${JSON.stringify(scratch)});
     onInterrupt(async () => {
       await new Promise((r) => setTimeout(r, 300));
       // The hook ran before the temporary files went.
       writeFileSync(${JSON.stringify(cleaned)}, String(existsSync(${JSON.stringify(scratch)})));
     });
     setInterval(() => {}, 1000);
     process.stdout.write("ready\\n");`,
  );
  const bundle = join(work, "entry.js");
  buildSync({ entryPoints: [entry], bundle: true, platform: "node", outfile: bundle, logLevel: "error" });
  const child = spawn("node", [bundle], { stdio: ["ignore", "pipe", "pipe"] });
  let stderr = "";
  child.stderr.on("data", (d) => (stderr += d));
  await new Promise<void>((resolve) => child.stdout.on("data", () => resolve()));
  const exited = new Promise<number | null>((resolve) => child.on("exit", (code) => resolve(code)));
  child.kill("SIGINT");
  expect(await exited).toBe(130);
  expect(existsSync(cleaned) && readFileSync(cleaned, "utf8")).toBe("true");
  expect(existsSync(scratch)).toBe(false);
  expect(stderr).toMatch(/interrupted \(SIGINT\)/);
});
