// Bundles the CLI into dist/cli.js (one CommonJS file of kubebake's own code; dependencies are required
// from node_modules when a command needs them) for bin/, and the
// DNS-discovery Lambda into dist/lambdas/dns-discovery.zip (deterministic bytes: same code, same CodeSha256).
// npm runs it on `npm install` in a checkout (the `prepare` script), so a fresh clone's bins work.
import { execFileSync } from "node:child_process";
import { mkdirSync, readFileSync, realpathSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { build } from "esbuild";
import { bundleAzureDiscovery, bundleDiscovery, bundleGceDiscovery } from "./bundle-lambda.mjs";

const root = join(dirname(new URL(import.meta.url).pathname), "..");

/** The commit this checkout is at (with -dirty for uncommitted changes), or nothing outside its own git. */
function gitCommit() {
  const git = (...args) => execFileSync("git", args, { cwd: root, encoding: "utf8", stdio: "pipe" }).trim();
  try {
    // A package unpacked inside some other repository must not take that repository's commit.
    if (realpathSync(git("rev-parse", "--show-toplevel")) !== realpathSync(root)) return undefined;
    const dirty = git("status", "--porcelain", "--untracked-files=no") !== "";
    return git("rev-parse", "--short", "HEAD") + (dirty ? "-dirty" : "");
  } catch {
    return undefined; // no git, or not a checkout
  }
}

const { version } = JSON.parse(readFileSync(join(root, "package.json"), "utf8"));
const commit = gitCommit();

await build({
  entryPoints: [join(root, "src/cli/index.ts")],
  outfile: join(root, "dist/cli.js"),
  bundle: true,
  platform: "node",
  target: "node20",
  format: "cjs",
  sourcemap: "linked",
  logLevel: "warning",
  // Dependencies are required from node_modules, the cloud SDKs only by the commands that use them:
  // bundled, they made an 85 MB file that node took about 2 s to parse, even for `--version`.
  packages: "external",
  // An import() of a package becomes require(), so each package loads once, in its CommonJS build (an ES
  // module copy beside the CommonJS one would fail instanceof checks, e.g. Azure's shared-key credential).
  supported: { "dynamic-import": false },
  define: {
    KUBEBAKE_VERSION: JSON.stringify(commit ? `${version} (commit ${commit})` : version),
  },
});

mkdirSync(join(root, "dist/lambdas"), { recursive: true });
writeFileSync(join(root, "dist/lambdas/dns-discovery.zip"), await bundleDiscovery());
writeFileSync(join(root, "dist/lambdas/dns-discovery-gce.zip"), await bundleGceDiscovery());
writeFileSync(join(root, "dist/lambdas/dns-discovery-azure.zip"), await bundleAzureDiscovery());
