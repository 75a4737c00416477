/**
 * What a publish leaves in the bake folder for the next one: the disk's block digests in OUT/blocks/
 * (named by the disk's SHA-256, referenced from the manifest as `blockDigests`) and the published images in
 * the manifest's `builds[]` (Packer's manifest post-processor shape). A rebake carries OUT/blocks/ over, so
 * the next publish of the new disk finds the digests of the one the last AMI holds.
 */
import { existsSync } from "node:fs";
import { mkdir, readdir, readFile, rename, rm, writeFile } from "node:fs/promises";
import { dirname, join } from "node:path";
import { invalidInput } from "../errors";
import type { Manifest } from "../bake/manifest";
import { parseBlockDigests, type BlockDigests } from "./blocks";
import type { PublishedImage } from "./types";

export const BLOCKS_DIR = "blocks";
const blocksFile = (diskSha256: string) => join(BLOCKS_DIR, `${diskSha256}.json`);

async function readDigests(path: string): Promise<BlockDigests | undefined> {
  try {
    return parseBlockDigests(JSON.parse(await readFile(path, "utf8")));
  } catch {
    return undefined; // unreadable or not a record: the publish uploads every block instead
  }
}

async function digestsIn(folder: string): Promise<BlockDigests[]> {
  const names = await readdir(join(folder, BLOCKS_DIR)).catch(() => [] as string[]);
  const found = await Promise.all(
    names.filter((n) => n.endsWith(".json")).map((n) => readDigests(join(folder, BLOCKS_DIR, n))),
  );
  return found.filter((d): d is BlockDigests => d !== undefined);
}

/** The block digests beside an earlier manifest (--previous-manifest): read before the bake, so a wrong path fails fast. */
export async function previousDigests(previousManifest: string): Promise<BlockDigests[]> {
  let manifest: Partial<Manifest>;
  try {
    manifest = JSON.parse(await readFile(previousManifest, "utf8")) as Partial<Manifest>;
  } catch (error) {
    throw invalidInput(
      `--previous-manifest ${previousManifest}: cannot read it as a bake manifest (${(error as Error).message})`,
    );
  }
  const base = dirname(previousManifest);
  const named = manifest.blockDigests ? await readDigests(join(base, manifest.blockDigests)) : undefined;
  return [...(named ? [named] : []), ...(await digestsIn(base))];
}

/** The block digests known in OUT, and those read from an earlier manifest. */
export async function knownDigests(out: string, previous: BlockDigests[] = []): Promise<BlockDigests[]> {
  return [...(await digestsIn(out)), ...previous];
}

/** Writes a file by rename, so a reader sees the old or the new content, never half of one. */
async function writeAtomically(path: string, content: string): Promise<void> {
  const temporary = `${path}.${process.pid}.tmp`;
  await writeFile(temporary, content);
  await rename(temporary, path);
}

/** Keeps the digests of the disk just published, and only those (an older disk's are not needed again). */
export async function recordDigests(out: string, digests: BlockDigests): Promise<void> {
  await mkdir(join(out, BLOCKS_DIR), { recursive: true });
  const keep = blocksFile(digests.diskSha256);
  await writeAtomically(join(out, keep), JSON.stringify(digests) + "\n");
  for (const name of await readdir(join(out, BLOCKS_DIR))) {
    if (join(BLOCKS_DIR, name) !== keep) await rm(join(out, BLOCKS_DIR, name), { force: true });
  }
}

/** Adds the published images to OUT/manifest.json: one entry per builder and region, the newest kept. */
export async function recordBuilds(out: string, images: PublishedImage[]): Promise<Manifest> {
  const path = join(out, "manifest.json");
  const manifest = JSON.parse(await readFile(path, "utf8")) as Manifest;
  const key = (image: PublishedImage) => `${image.builder_type} ${image.artifact_id.split(":")[0]}`;
  const replaced = new Set(images.map(key));
  manifest.builds = [...(manifest.builds ?? []).filter((b) => !replaced.has(key(b))), ...images];
  const digests = manifest.disk && blocksFile(manifest.disk.sha256);
  if (digests && existsSync(join(out, digests))) manifest.blockDigests = digests;
  await writeAtomically(path, JSON.stringify(manifest, null, 2) + "\n");
  return manifest;
}
