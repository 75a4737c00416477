// The DNS-discovery Lambda as zip bytes: deterministic, so the same code gives the same CodeSha256 and a
// second `kubebake dns deploy` changes nothing.
import { build } from "esbuild";
import { zipSync } from "fflate";

export async function bundleDiscovery() {
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
  // Local midnight: DOS dates in a zip have no time zone, so this gives the same bytes everywhere.
  return zipSync({ "index.js": [code, { mtime: new Date(1980, 0, 1) }] }, { level: 9 });
}

// The same discovery core as a Cloud Function (2nd gen, Node.js): index.js and a package.json naming it,
// deterministic too. No dependency to install: it calls Google's APIs over fetch (src/discover/gce-rest.ts),
// and the runtime adds the Functions Framework itself.
export async function bundleGceDiscovery() {
  const built = await build({
    entryPoints: ["lambdas/dns-discovery-gce/index.ts"],
    bundle: true,
    platform: "node",
    target: "node20",
    format: "cjs",
    minify: true,
    write: false,
    logLevel: "warning",
  });
  const packageJson =
    JSON.stringify({ name: "kubebake-dns-discovery", private: true, main: "index.js" }) + "\n";
  const at = { mtime: new Date(1980, 0, 1) };
  return zipSync(
    {
      "index.js": [built.outputFiles[0].contents, at],
      "package.json": [Buffer.from(packageJson), at],
    },
    { level: 9 },
  );
}

// The same core as an Azure Function app (Node.js v4 programming model): index.js registers the two
// functions, package.json names it, host.json sets the runtime's version, the timeout and the extension
// bundle that brings the Event Grid trigger (the timer is built in). @azure/functions is bundled; its
// @azure/functions-core is the worker's own module, present only in the host. Deterministic too.
export async function bundleAzureDiscovery() {
  const built = await build({
    entryPoints: ["lambdas/dns-discovery-azure/index.ts"],
    bundle: true,
    platform: "node",
    target: "node20",
    format: "cjs",
    minify: true,
    external: ["@azure/functions-core"],
    write: false,
    logLevel: "warning",
  });
  const packageJson =
    JSON.stringify({ name: "kubebake-dns-discovery", private: true, main: "index.js" }) + "\n";
  const hostJson =
    JSON.stringify(
      {
        version: "2.0",
        functionTimeout: "00:01:00",
        extensionBundle: { id: "Microsoft.Azure.Functions.ExtensionBundle", version: "[4.0.0, 5.0.0)" },
      },
      null,
      2,
    ) + "\n";
  const at = { mtime: new Date(1980, 0, 1) };
  return zipSync(
    {
      "index.js": [built.outputFiles[0].contents, at],
      "package.json": [Buffer.from(packageJson), at],
      "host.json": [Buffer.from(hostJson), at],
    },
    { level: 9 },
  );
}
