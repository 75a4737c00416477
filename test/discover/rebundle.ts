/** A discovery bundle built again into memory (not over dist/, which other tests read), in another time zone. */
import { spawnSync } from "node:child_process";
import { repoRoot } from "../helpers";

export function rebundled(
  exportName: "bundleDiscovery" | "bundleAzureDiscovery" | "bundleGceDiscovery",
): Buffer {
  const script = `import('./scripts/bundle-lambda.mjs').then(async (m) => process.stdout.write(Buffer.from(await m.${exportName}()).toString('base64')))`;
  const result = spawnSync("node", ["-e", script], {
    cwd: repoRoot,
    encoding: "utf8",
    env: { ...process.env, TZ: "Pacific/Auckland" },
  });
  if (result.status !== 0) throw new Error(`${exportName} failed: ${result.stderr}`);
  return Buffer.from(result.stdout, "base64");
}
