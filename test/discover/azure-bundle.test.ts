/**
 * The Azure discovery bundle (dist/lambdas/dns-discovery-azure.zip, built by global-setup): the three files
 * a Function app's package needs, the same bytes on every build, and an index.js that registers the two
 * functions with the worker's @azure/functions-core (a stub here, recording what the host would be told).
 */
import { mkdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { unzipSync } from "fflate";
import { repoRoot } from "../helpers";
import { rebundled } from "./rebundle";

const bundle = join(repoRoot, "dist", "lambdas", "dns-discovery-azure.zip");

/** Records registrations as the Functions worker's built-in module would receive them. */
const CORE_STUB = `
const registered = [];
module.exports = {
  registered,
  setProgrammingModel(model) { module.exports.model = model; },
  registerFunction(metadata, callback) { registered.push({ metadata, callback }); return { dispose() {} }; },
};
`;

test("the bundle holds index.js, a package.json naming it and a host.json with the timeout and the Event Grid bundle", () => {
  const zip = readFileSync(bundle);
  expect(zip.length).toBeLessThan(300 * 1024);
  const files = unzipSync(zip);
  expect(Object.keys(files)).toEqual(["index.js", "package.json", "host.json"]);
  expect(JSON.parse(Buffer.from(files["package.json"]!).toString())).toMatchObject({ main: "index.js" });
  expect(JSON.parse(Buffer.from(files["host.json"]!).toString())).toEqual({
    version: "2.0",
    functionTimeout: "00:01:00",
    extensionBundle: { id: "Microsoft.Azure.Functions.ExtensionBundle", version: "[4.0.0, 5.0.0)" },
  });
});

test("index.js registers the timer and the Event Grid function; a run without its settings logs and throws", async () => {
  const files = unzipSync(readFileSync(bundle));
  // Its own folder per run: several test runs share this checkout.
  const dir = join(repoRoot, "dist", `.bundle-check-azure-${process.pid}`);
  const core = join(dir, "node_modules", "@azure", "functions-core");
  mkdirSync(core, { recursive: true });
  const saved = process.env.CLUSTER_NAME;
  try {
    writeFileSync(join(core, "index.js"), CORE_STUB);
    writeFileSync(join(dir, "index.js"), files["index.js"]!);
    const loaded = require(join(dir, "index.js"));
    expect(typeof loaded.createAzureHandler).toBe("function");
    const { registered, model } = require(core) as {
      registered: {
        metadata: { name: string; bindings: object; retryOptions?: object };
        callback: (...args: unknown[]) => Promise<unknown>;
      }[];
      model?: { name: string };
    };
    expect(model?.name).toBe("@azure/functions");
    const byName = Object.fromEntries(registered.map((r) => [r.metadata.name, r]));
    expect(Object.keys(byName)).toEqual(["reconcile-schedule", "reconcile-events"]);
    expect(Object.values(byName["reconcile-schedule"]!.metadata.bindings)).toEqual([
      expect.objectContaining({ type: "timerTrigger", direction: "in", schedule: "0 * * * * *" }),
    ]);
    expect(byName["reconcile-schedule"]!.metadata.retryOptions).toMatchObject({
      retryStrategy: "fixedDelay",
      maxRetryCount: 2,
    });
    expect(Object.values(byName["reconcile-events"]!.metadata.bindings)).toEqual([
      expect.objectContaining({ type: "eventGridTrigger", direction: "in" }),
    ]);

    delete process.env.CLUSTER_NAME;
    const lines: string[] = [];
    const context = { info: () => {}, warn: () => {}, error: (line: string) => lines.push(line) };
    await expect(byName["reconcile-schedule"]!.callback({ isPastDue: false }, context)).rejects.toThrow(
      /CLUSTER_NAME is not set/,
    );
    expect(lines.map((line) => JSON.parse(line).msg)).toEqual(["bad configuration"]);
  } finally {
    if (saved !== undefined) process.env.CLUSTER_NAME = saved;
    rmSync(dir, { recursive: true, force: true });
  }
});

test("the bundle is reproducible: building twice, in another time zone, gives the same bytes", () => {
  expect(rebundled("bundleAzureDiscovery").equals(readFileSync(bundle))).toBe(true);
});
