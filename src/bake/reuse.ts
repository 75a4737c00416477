import { readFile } from "node:fs/promises";
import { join } from "node:path";
import type { Arch } from "../spec/schema";
import { sha256File, sha256Hex } from "../util/hash";
import { MANIFEST_KIND, type Manifest, type Target } from "./manifest";
import type { ArtifactPlan } from "./plan";
import type { TreeEntry } from "./render";
import { describeTree } from "./tree";

/** Everything a bake's result depends on; a rebake whose inputs digest matches the manifest's may reuse it. */
export interface BakeInputs {
  arch: Arch;
  target: Target;
  /** The spec as the bake read it (normalized JSON). */
  specJson: string;
  /** The rendered units, config files and node scripts. */
  rendered: TreeEntry[];
  /** What is fetched, from where, with which digest, and where its files go. */
  artifacts: ArtifactPlan[];
  /** For raw and qcow2: how the disk is built (see diskRecipe); a new way gives a new disk. */
  disk?: string;
}

/** The reuse key: a digest over every input (each rendered file by path, mode and content digest). */
export function inputsDigest(inputs: BakeInputs): string {
  const { arch, target, specJson, rendered, artifacts, disk } = inputs;
  const renderedDigest = rendered.map((e) =>
    e.kind === "symlink" ? [e.path, e.target] : [e.path, e.mode, sha256Hex(e.content)],
  );
  return sha256Hex(JSON.stringify({ arch, target, specJson, renderedDigest, artifacts, disk }));
}

/**
 * The previous bake in OUT when it can stand for a new one: same kind, same inputs digest, and the tree (and
 * disk) still exactly what its manifest says. A hand-edited tree or disk is baked again.
 */
export async function reusable(out: string, inputs: string): Promise<Manifest | undefined> {
  let manifest: Manifest;
  try {
    manifest = JSON.parse(await readFile(join(out, "manifest.json"), "utf8")) as Manifest;
  } catch {
    return undefined;
  }
  if (manifest.kind !== MANIFEST_KIND || manifest.inputs !== inputs) return undefined;
  const files = await describeTree(join(out, "rootfs"), false).catch(() => undefined);
  if (!files || JSON.stringify(files) !== JSON.stringify(manifest.files)) return undefined;
  if (manifest.disk) {
    const digest = await sha256File(join(out, manifest.disk.file)).catch(() => undefined);
    if (digest !== manifest.disk.sha256) return undefined;
  }
  return manifest;
}
