// Bundles the CLI into dist/cli.js (one CommonJS file, dependencies included) for bin/, and the
// DNS-discovery Lambda into dist/lambdas/dns-discovery.zip (deterministic bytes: same code, same CodeSha256).
import { mkdirSync, writeFileSync } from "node:fs";
import { build } from "esbuild";
import { zipSync } from "fflate";

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

const lambda = await build({
  entryPoints: ["lambdas/dns-discovery/index.ts"],
  bundle: true,
  platform: "node",
  target: "node20",
  format: "cjs",
  minify: true,
  // Lambda's Node.js runtimes ship AWS SDK v3; bundling its EC2 client alone would pass 1 MB.
  external: ["@aws-sdk/*"],
  write: false,
  logLevel: "warning",
});
const code = lambda.outputFiles[0].contents;
const zip = zipSync(
  { "index.js": [code, { mtime: new Date(1980, 0, 1) } /* local time: DOS dates have no zone */] },
  { level: 9 },
);
mkdirSync("dist/lambdas", { recursive: true });
writeFileSync("dist/lambdas/dns-discovery.zip", zip);
