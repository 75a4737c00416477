// Bundles the CLI into dist/cli.js (one CommonJS file, dependencies included) for bin/, and the
// DNS-discovery Lambda into dist/lambdas/dns-discovery.zip (deterministic bytes: same code, same CodeSha256).
import { mkdirSync, writeFileSync } from "node:fs";
import { build } from "esbuild";
import { bundleDiscovery } from "./bundle-lambda.mjs";

await build({
  entryPoints: ["src/cli/index.ts"],
  outfile: "dist/cli.js",
  bundle: true,
  platform: "node",
  target: "node20",
  format: "cjs",
  sourcemap: "linked",
  logLevel: "warning",
});

mkdirSync("dist/lambdas", { recursive: true });
writeFileSync("dist/lambdas/dns-discovery.zip", await bundleDiscovery());
