import { existsSync, readdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { parse, stringify } from "yaml";
import { fixtureMirror, fixtureSpec, runCli, runCliAsync, tempDir } from "../helpers";
import { makeImage, pushImage, startRegistry, type TestRegistry } from "../registry";

// bake-image against a registry, end to end through the CLI: a --mirror URL that serves both the files
// and (under /v2/<host>/<repository>) the images; the exit codes and messages of the registry's failures.
const work = tempDir("bake-registry");
process.env.KUBEBAKE_TEST_SCRATCH = join(work, "scratch");
let registry: TestRegistry;
const made = {
  pause: ["registry.k8s.io/pause", "3.10.2", makeImage({ pause: "p" })],
  flannel: ["ghcr.io/flannel-io/flannel", "v0.28.4", makeImage({ "opt/bin/flanneld": "f" })],
  flannelCNIPlugin: ["ghcr.io/flannel-io/flannel-cni-plugin", "v1.9.1-flannel1", makeImage({ flannel: "c" })],
  coredns: ["registry.k8s.io/coredns/coredns", "v1.12.1", makeImage({ coredns: "d" })],
} as const;
const refs: Record<string, string> = {};

beforeAll(async () => {
  registry = await startRegistry(join(work, "registry"), { files: fixtureMirror });
  for (const [field, [repository, tag, image]] of Object.entries(made)) {
    refs[field] = `${repository}:${tag}@${await pushImage(registry.direct, repository, tag, image)}`;
  }
}, 30_000);
afterAll(() => registry?.stop());

/** The fixture spec with one small component (Debian's runc, from the mirror) and the pushed add-ons. */
function spec(name: string, addons: Record<string, unknown> = {}): string {
  const doc = parse(readFileSync(fixtureSpec, "utf8"));
  doc.components = doc.components.filter((c: { name: string }) => c.name === "runc");
  doc.addons = { ...refs, ...addons };
  const path = join(work, `${name}.yaml`);
  writeFileSync(path, stringify(doc));
  return path;
}

const bakeArgs = (specPath: string, out: string, cache = "cache", ...more: string[]) => [
  "--spec",
  specPath,
  "--out",
  join(work, out),
  "--mirror",
  registry.url,
  "--cache",
  join(work, cache),
  "--arch",
  "amd64",
  ...more,
];

test("bakes the pushed add-ons into one layout; image check lists them; a manifest naming another image fails the check", async () => {
  const result = await runCliAsync("bake-image", [...bakeArgs(spec("ok"), "ok"), "--json"]);
  expect({ code: result.code, stderr: result.stderr }).toEqual({ code: 0, stderr: "" });
  const manifest = JSON.parse(result.stdout);
  expect(manifest.images.map((i: { name: string; reference: string }) => [i.name, i.reference])).toEqual(
    Object.entries(refs).map(([field, ref]) => [`addons.${field}`, ref]),
  );
  const layout = join(work, "ok", "rootfs", "usr", "lib", "kubebake", "images");
  const index = JSON.parse(readFileSync(join(layout, "index.json"), "utf8"));
  expect(index.manifests).toHaveLength(8); // repo@digest and repo:tag for each
  // index, manifest, config and layer of each (the made images share no blob)
  expect(readdirSync(join(layout, "blobs", "sha256"))).toHaveLength(16);

  // The small spec leaves most units' programs out (7 violations of that rule); no preloading rule fails.
  const preloadRule = /preloaded|pinned by digest/;
  const check = runCli("kubebake", ["image", "check", join(work, "ok")]);
  const lines = check.stdout.split("\n").filter(Boolean);
  expect(
    lines
      .filter((l) => !l.startsWith("preloaded "))
      .every((l) => l.includes("of this unit is not in the image")),
  ).toBe(true);
  expect(lines.filter((l) => preloadRule.test(l) && !l.startsWith("preloaded "))).toEqual([]);
  for (const ref of Object.values(refs)) {
    const [name, digest] = ref.split("@") as [string, string];
    expect(lines).toContain(`preloaded ${name.replace(/:[^:/]+$/, "")}@${digest} ${digest}`);
    expect(lines).toContain(`preloaded ${name} ${digest}`);
  }
  const json = JSON.parse(runCli("kubebake", ["image", "check", "--json", join(work, "ok")]).stdout);
  expect(json.violations.filter((v: { rule: string }) => preloadRule.test(v.rule))).toEqual([]);
  expect(json.images).toHaveLength(8);

  const coredns = join(work, "ok", "rootfs", "usr", "lib", "kubebake", "addons", "coredns.yaml");
  const text = readFileSync(coredns, "utf8");
  writeFileSync(coredns, text.replace(refs.coredns!, "registry.k8s.io/coredns/coredns:v1.12.1"));
  const byTag = runCli("kubebake", ["image", "check", join(work, "ok")]);
  expect(byTag.code).toBe(6);
  expect(byTag.stdout).toContain(
    "/usr/lib/kubebake/addons/coredns.yaml: image registry.k8s.io/coredns/coredns:v1.12.1 is not pinned by digest: a node would pull it\n",
  );
  const other = `registry.k8s.io/coredns/coredns:v1.12.1@sha256:${"e".repeat(64)}`;
  writeFileSync(coredns, text.replace(refs.coredns!, other));
  const notPreloaded = runCli("kubebake", ["image", "check", join(work, "ok")]);
  expect(notPreloaded.code).toBe(6);
  expect(notPreloaded.stdout).toContain(
    `/usr/lib/kubebake/addons/coredns.yaml: image ${other} is not preloaded: a node would pull it\n`,
  );
});

test("the same inputs give the same image id with nothing fetched; another add-on digest gives another id", async () => {
  const first = JSON.parse(
    (await runCliAsync("bake-image", [...bakeArgs(spec("same"), "same-1", "cache-same"), "--json"])).stdout,
  );
  const before = { ...registry.counts };
  const second = JSON.parse(
    (await runCliAsync("bake-image", [...bakeArgs(spec("same"), "same-2", "cache-same"), "--json"])).stdout,
  );
  expect(second.imageId).toBe(first.imageId);
  expect(registry.counts).toEqual(before); // every blob and file came from the cache
  // A rebuilt pause under the same tag: only its digest differs.
  const rebuilt = await pushImage(
    registry.direct,
    "registry.k8s.io/pause",
    "3.10.2",
    makeImage({ pause: "p2" }),
  );
  const changedSpec = spec("changed", { pause: `registry.k8s.io/pause:3.10.2@${rebuilt}` });
  const changed = JSON.parse(
    (await runCliAsync("bake-image", [...bakeArgs(changedSpec, "changed", "cache-same"), "--json"])).stdout,
  );
  expect(changed.imageId).not.toBe(first.imageId);
});

test("a registry serving a blob that does not match its digest: exit 3, one line, nothing left behind", async () => {
  const layer = made.flannel[2].blobs[0]!.digest;
  registry.tamper.add(layer);
  try {
    const result = await runCliAsync("bake-image", bakeArgs(spec("tamper"), "tamper", "cache-tamper"));
    expect(result.code).toBe(3);
    expect(result.stderr).toMatch(
      new RegExp(
        `^error: SHA-256 mismatch for ${registry.url}/v2/ghcr\\.io/flannel-io/flannel/blobs/${layer}: expected ${layer.slice(7)}, got [0-9a-f]{64}; the blob was discarded\\n$`,
      ),
    );
  } finally {
    registry.tamper.delete(layer);
  }
  expect(existsSync(join(work, "tamper"))).toBe(false);
  expect(existsSync(join(work, "cache-tamper", "sha256", layer.slice(7)))).toBe(false);
  expect(readdirSync(join(work, "cache-tamper", "tmp"))).toEqual([]);
});

test("an add-on whose index lacks the image's architecture: exit 2 naming the add-on, before any component is fetched", async () => {
  const before = registry.counts.file;
  const result = await runCliAsync("bake-image", [
    ...bakeArgs(spec("arm"), "arm", "cache-arm").slice(0, -2),
    "--arch",
    "arm64",
  ]);
  expect(result.code).toBe(2);
  expect(result.stderr).toBe(
    `error: addons.pause: ${refs.pause} has no linux/arm64 image (its index lists linux/amd64)\n`,
  );
  expect(registry.counts.file).toBe(before);
  expect(existsSync(join(work, "arm"))).toBe(false);
});
