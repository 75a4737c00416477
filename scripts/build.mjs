// Bundles the CLI into dist/cli.js (one CommonJS file, dependencies included) for bin/, and the
// DNS-discovery Lambda into dist/lambdas/dns-discovery.zip (deterministic bytes: same code, same CodeSha256).
// npm runs it on `npm install` in a checkout (the `prepare` script), so a fresh clone's bins work.
import { execFileSync } from "node:child_process";
import { mkdirSync, readFileSync, realpathSync, writeFileSync } from "node:fs";
import { createRequire } from "node:module";
import { dirname, join } from "node:path";
import { build } from "esbuild";
import { bundleDiscovery } from "./bundle-lambda.mjs";

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

// yargs's ES module build brings cliui's stand-in line breaker, which cuts words in half; its CommonJS build
// (what require() finds) breaks lines between words.
const requireCliui = {
  name: "cliui-commonjs",
  setup(b) {
    b.onResolve({ filter: /^cliui$/ }, (args) => ({
      path: createRequire(join(args.resolveDir, "index.js")).resolve("cliui"),
    }));
  },
};

await build({
  entryPoints: [join(root, "src/cli/index.ts")],
  outfile: join(root, "dist/cli.js"),
  bundle: true,
  platform: "node",
  target: "node20",
  format: "cjs",
  sourcemap: "linked",
  logLevel: "warning",
  plugins: [requireCliui],
  define: {
    KUBEBAKE_VERSION: JSON.stringify(commit ? `${version} (commit ${commit})` : version),
    // ES module builds bundled as CommonJS have no import.meta (the Azure storage SDK's createRequire needs
    // its url): the bundle's own file URL stands in.
    "import.meta.url": "__bundleFileUrl",
  },
  // ("use strict" first, so the bundle stays strict code.)
  banner: {
    js: '"use strict";\nconst __bundleFileUrl = require("node:url").pathToFileURL(__filename).href;',
  },
});

mkdirSync(join(root, "dist/lambdas"), { recursive: true });
writeFileSync(join(root, "dist/lambdas/dns-discovery.zip"), await bundleDiscovery());
