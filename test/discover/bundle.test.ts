import { mkdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { unzipSync } from "fflate";
import { repoRoot } from "../helpers";

// global-setup builds dist/ (the CLI and this bundle) before the tests.
const bundle = join(repoRoot, "dist", "lambdas", "dns-discovery.zip");

test("the discovery bundle is one small index.js that loads and exports the handler", async () => {
  const zip = readFileSync(bundle);
  expect(zip.length).toBeLessThan(300 * 1024);
  const files = unzipSync(zip);
  expect(Object.keys(files)).toEqual(["index.js"]);
  // Loaded from inside the repository so that its @aws-sdk imports resolve as the runtime's would.
  const dir = join(repoRoot, "dist", ".bundle-check");
  mkdirSync(dir, { recursive: true });
  try {
    writeFileSync(join(dir, "index.js"), files["index.js"]!);
    const loaded = require(join(dir, "index.js"));
    expect(typeof loaded.handler).toBe("function");
    const saved = process.env.CLUSTER_NAME;
    delete process.env.CLUSTER_NAME;
    await expect(loaded.handler({ source: "aws.events" })).rejects.toThrow(/CLUSTER_NAME is not set/);
    if (saved !== undefined) process.env.CLUSTER_NAME = saved;
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test("the bundle is reproducible: building twice gives the same bytes (and so the same CodeSha256)", () => {
  const { spawnSync } = require("node:child_process") as typeof import("node:child_process");
  // Bundled again into memory (not over dist/, which other tests are using), in another time zone.
  const script =
    "import('./scripts/bundle-lambda.mjs').then(async (m) => process.stdout.write(Buffer.from(await m.bundleDiscovery()).toString('base64')))";
  const result = spawnSync("node", ["-e", script], {
    cwd: repoRoot,
    encoding: "utf8",
    env: { ...process.env, TZ: "Pacific/Auckland" },
  });
  expect(result.status).toBe(0);
  expect(Buffer.from(result.stdout, "base64").equals(readFileSync(bundle))).toBe(true);
});
