/**
 * bake → publish → apply without hand-copied ids: the publish step records builds[] and the block digests
 * in the bake folder, `cluster apply`'s image.manifest finds the AMI, the next publish of a changed disk in
 * the same folder (as a rebake leaves it) uploads only what changed. And the CLI checks the cloud first.
 */
import { existsSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { preparePublish } from "../../../src/cli/publish";
import type { Manifest } from "../../../src/bake/manifest";
import { resolveInputs } from "../../../src/launch/aws/inputs";
import { awsClusterSpecSchema } from "../../../src/cluster/schema";
import { knownDigests, previousDigests } from "../../../src/publish/record";
import { silentProgress } from "../../../src/util/progress";
import { runCli, tempDir } from "../../helpers";
import { clientsFor, clusterYaml, REGION } from "../../aws/fixture";
import { startMoto, type Moto } from "../../aws/moto";
import { manifestFor, sparseDisk } from "./fixture";

let moto: Moto;
beforeAll(async () => (moto = await startMoto()), 60_000);
afterAll(() => moto?.stop());
const dir = tempDir("publish-pipeline");

/** A bake folder as `--target raw` leaves it: manifest.json, disk.raw, and whatever blocks/ it carried. */
function bakeFolder(out: string, version: string, filled: Record<number, string>): Manifest {
  mkdirSync(out, { recursive: true });
  const disk = sparseDisk(out, "disk.raw", 24, filled);
  const manifest = manifestFor(disk, version);
  writeFileSync(join(out, "manifest.json"), JSON.stringify(manifest, null, 2));
  return manifest;
}

test("publish records builds[] and block digests; cluster apply finds the AMI; the next disk uploads only changes", async () => {
  Object.assign(process.env, {
    AWS_ENDPOINT_URL: moto.endpoint,
    AWS_ACCESS_KEY_ID: "testing",
    AWS_SECRET_ACCESS_KEY: "testing",
    KUBEBAKE_POLL_MS: "5",
  });
  const out = join(dir, "out");
  const first = bakeFolder(out, "v1", { 0: "a", 3: "b", 20: "c" });
  const publish = await preparePublish({ target: "aws", region: REGION, regions: [], shareWith: [] });
  const published = await publish(out, first, silentProgress);

  const written = JSON.parse(readFileSync(join(out, "manifest.json"), "utf8")) as Manifest;
  expect(written.builds).toEqual(published.builds);
  expect(written.builds).toHaveLength(1);
  expect(written.builds![0]!.artifact_id).toMatch(new RegExp(`^${REGION}:ami-`));
  expect(written.blockDigests).toBe(`blocks/${first.disk!.sha256}.json`);
  expect(existsSync(join(out, written.blockDigests!))).toBe(true);

  // cluster apply's image.manifest: the AMI by its image-id tag.
  const specPath = join(dir, "cluster.yaml");
  const spec = awsClusterSpecSchema.parse(
    clusterYaml({
      image: { manifest: "out/manifest.json", spec: join(__dirname, "../../fixtures/image.yaml") },
    }),
  );
  const inputs = await resolveInputs(clientsFor(moto.endpoint), spec, specPath);
  expect(`${REGION}:${inputs.ami}`).toBe(written.builds![0]!.artifact_id);

  // A rebake replaced the disk and the manifest, and carried blocks/ over.
  const second = bakeFolder(out, "v2", { 0: "a", 3: "B", 20: "c" });
  const calls: string[] = [];
  const again = await preparePublish({ target: "aws", region: REGION, regions: [], shareWith: [] });
  const before = (await knownDigests(out)).map((d) => d.diskSha256);
  expect(before).toEqual([first.disk!.sha256]);
  const republished = await again(out, second, { step: (m) => calls.push(m), info: (m) => calls.push(m) });
  expect(calls.join("\n")).toMatch(/1 block\(s\) written, 47 skipped/);
  expect(republished.blockDigests).toBe(`blocks/${second.disk!.sha256}.json`);
  expect((await knownDigests(out)).map((d) => d.diskSha256)).toEqual([second.disk!.sha256]);

  // --previous-manifest: the digests beside another folder's manifest.
  expect(
    (await knownDigests(join(dir, "elsewhere"), await previousDigests(join(out, "manifest.json")))).length,
  ).toBeGreaterThan(0);
});

describe("bake-image --target aws checks the cloud before baking: exit 7, one line, nothing made", () => {
  const out = () => join(dir, `never-${Math.random().toString(36).slice(2)}`);
  test.each([
    [
      "a region that does not exist",
      ["--region", "eu-wset-1"],
      {},
      /--region eu-wset-1: .*did you mean "eu-west-1"/,
    ],
    [
      "no credentials",
      ["--region", "eu-west-1"],
      {
        AWS_ACCESS_KEY_ID: "",
        AWS_SECRET_ACCESS_KEY: "",
        AWS_PROFILE: "",
        AWS_SHARED_CREDENTIALS_FILE: "/nonexistent",
        AWS_CONFIG_FILE: "/nonexistent",
        AWS_EC2_METADATA_DISABLED: "true",
      },
      /^error: no AWS credentials/,
    ],
    [
      "no region",
      [],
      { AWS_REGION: "", AWS_DEFAULT_REGION: "", AWS_CONFIG_FILE: "/nonexistent" },
      /no AWS region/,
    ],
  ])("%s", (_, args, env, message) => {
    const target = out();
    const result = runCli("bake-image", ["--target", "aws", "--out", target, ...args], env);
    expect(result.code).toBe(7);
    expect(result.stderr).toMatch(message);
    expect(result.stderr.trim().split("\n")).toHaveLength(1);
    expect(existsSync(target)).toBe(false);
  });

  test("an unreadable --previous-manifest is refused before the bake (exit 2, nothing made)", () => {
    const target = out();
    const missing = join(dir, "no-such-manifest.json");
    const env = {
      AWS_ENDPOINT_URL: moto.endpoint,
      AWS_ACCESS_KEY_ID: "testing",
      AWS_SECRET_ACCESS_KEY: "testing",
    };
    const args = ["--target", "aws", "--out", target, "--region", REGION, "--previous-manifest", missing];
    const result = runCli("bake-image", args, env);
    expect(result.code).toBe(2);
    expect(result.stderr).toMatch(
      new RegExp(`^error: --previous-manifest ${missing}: cannot read it as a bake manifest \\(ENOENT`),
    );
    expect(existsSync(target)).toBe(false);
  });

  test("cloud options without a cloud target are refused (exit 2)", () => {
    const result = runCli("bake-image", ["--target", "raw", "--out", out(), "--share-with", "111122223333"]);
    expect(result.code).toBe(2);
    expect(result.stderr).toMatch(/--share-with applies to --target aws only/);
  });
});
