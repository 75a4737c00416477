/** A rebake that replaces OUT keeps OUT/blocks/, so the next publish can diff against the last one. */
import { createHash } from "node:crypto";
import { existsSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { parse, stringify } from "yaml";
import { bake } from "../../src/bake/bake";
import { BLOCK_DIGESTS_KIND, BLOCK_SIZE } from "../../src/publish/blocks";
import { knownDigests, recordBuilds, recordDigests } from "../../src/publish/record";
import { silentProgress } from "../../src/util/progress";
import { fixtureMirror, fixtureSpec, tempDir } from "../helpers";

// A disk needs root and the disk tools; here only its presence in OUT matters.
jest.mock("../../src/image/disk", () => ({
  ...jest.requireActual("../../src/image/disk"),
  buildDisk: async (params: { staging: string; imageId: string }) => {
    const content = `stand-in disk of ${params.imageId}\n`;
    writeFileSync(join(params.staging, "disk.raw"), content);
    const sha256 = createHash("sha256").update(content).digest("hex");
    return { format: "raw", file: "disk.raw", sha256, size: content.length, baseLayer: "stand-in" };
  },
}));

const work = tempDir("carry-over");
const out = join(work, "out");
const bakeWith = (specPath: string) =>
  bake({
    specPath,
    out,
    arch: "amd64",
    cacheDir: join(work, "cache"),
    mirror: fixtureMirror,
    progress: silentProgress,
    target: "raw",
  });

test("a rebake carries the block digests over; the publish record names the current disk's", async () => {
  const first = await bakeWith(fixtureSpec);
  const digests = {
    kind: BLOCK_DIGESTS_KIND,
    diskSha256: first.manifest.disk!.sha256,
    size: 100,
    blockSize: BLOCK_SIZE,
    blocks: { 0: "a".repeat(64) },
  } as const;
  await recordDigests(out, digests);
  const images = [
    {
      builder_type: "kubebake-aws-ebs",
      artifact_id: "eu-west-1:ami-1",
      build_time: 1,
      custom_data: { imageId: first.manifest.imageId, diskSha256: digests.diskSha256 },
    },
  ];
  const recorded = await recordBuilds(out, images);
  expect(recorded.builds).toEqual(images);
  expect(recorded.blockDigests).toBe(`blocks/${digests.diskSha256}.json`);
  // The same bake again is reused as it is: builds[] stays.
  expect((await bakeWith(fixtureSpec)).reused).toBe(true);
  expect(JSON.parse(readFileSync(join(out, "manifest.json"), "utf8")).builds).toEqual(images);

  const spec = parse(readFileSync(fixtureSpec, "utf8"));
  spec.cluster.clusterDomain = "other.local";
  const changed = join(work, "changed.yaml");
  writeFileSync(changed, stringify(spec));
  const second = await bakeWith(changed);
  expect(second.reused).toBe(false);
  expect(second.manifest.builds).toBeUndefined();
  expect(existsSync(join(out, "blocks", `${digests.diskSha256}.json`))).toBe(true);
  expect(await knownDigests(out)).toEqual([digests]);
});
