import { mkdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { unzipSync } from "fflate";
import { repoRoot } from "../helpers";
import { rebundled } from "./rebundle";

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
  expect(rebundled("bundleDiscovery").equals(readFileSync(bundle))).toBe(true);
});
