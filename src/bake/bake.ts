import { existsSync } from "node:fs";
import { chmod, cp, mkdir, readdir, rename, rm, utimes, writeFile } from "node:fs/promises";
import { basename, dirname, join, resolve } from "node:path";
import { invalidInput } from "../errors";
import { ArtifactCache } from "../fetch/cache";
import { defaultDownloadOptions, type DownloadOptions } from "../fetch/download";
import { takeFiles } from "../fetch/extract";
import { ArtifactFetcher } from "../fetch/fetcher";
import { parseMirror } from "../fetch/mirror";
import { displayPath, loadImageSpec } from "../spec/load";
import type { Arch } from "../spec/schema";
import { buildDisk, diskRecipe } from "../image/disk";
import { BLOCKS_DIR } from "../publish/record";
import { sha256Hex } from "../util/hash";
import { removeOnExit } from "../util/cleanup";
import { makeFolders, outputError, removeFolders } from "../util/output";
import { packageRoot } from "../util/package-root";
import type { Progress } from "../util/progress";
import { IMAGES_DIR, layoutIndex, specImages, writeLayout } from "../images/layout";
import { pullImage, type PulledImage } from "../images/pull";
import { RegistryClient } from "../images/registry";
import {
  MANIFEST_KIND,
  type Manifest,
  type ManifestComponent,
  type ManifestImage,
  type Target,
} from "./manifest";
import { planArtifacts, type ArtifactPlan } from "./plan";
import { inputsDigest, reusable } from "./reuse";
import { renderTree, type TreeEntry } from "./render";
import { describeTree, imageIdOf, inTree, TREE_EPOCH, writeEntries } from "./tree";

export interface BakeOptions {
  /** dir: the image tree only; raw and qcow2: also a bootable disk (needs root and the disk host tools). */
  target?: Target;
  specPath: string;
  out: string;
  arch: Arch;
  cacheDir: string;
  mirror?: string;
  progress: Progress;
  download?: DownloadOptions;
  /** Parallel downloads. */
  concurrency?: number;
}

export interface BakeResult {
  manifest: Manifest;
  reused: boolean;
  /** Network requests and apt calls this bake made. */
  requests: number;
}

/**
 * Bakes the image tree into OUT/rootfs (and for raw/qcow2 a bootable OUT/disk.*) with OUT/manifest.json;
 * replaces OUT only once all went well.
 */
export async function bake(options: BakeOptions): Promise<BakeResult> {
  const { progress } = options;
  const out = resolve(options.out);
  const loaded = loadImageSpec(options.specPath);
  const spec = loaded.spec;
  const artifacts = planArtifacts(spec, displayPath(options.specPath), options.arch);
  const specJson = JSON.stringify(spec, null, 2) + "\n";
  const rendered: TreeEntry[] = [
    ...renderTree(spec, packageRoot()),
    { path: "/etc/kubebake/image-spec.json", kind: "file", mode: 0o644, content: Buffer.from(specJson) },
  ];
  checkNoOverlap(artifacts, rendered);
  const target = options.target ?? "dir";
  const disk = target === "dir" ? undefined : diskRecipe(spec, options.arch);
  const inputs = inputsDigest({ arch: options.arch, target, specJson, rendered, artifacts, disk });

  await guardOutput(out);
  const previous = await reusable(out, inputs);
  if (previous) {
    progress.step(`nothing changed: ${previous.imageId} is reused`);
    return { manifest: previous, reused: true, requests: 0 };
  }

  // The staging folder sits beside OUT (same file system: the swap is a rename); making it first tells at
  // once, before any download, whether OUT can be written at all.
  const staging = join(dirname(out), `.${basename(out)}.kubebake-${process.pid}-${Date.now()}`);
  let created: string[] = [];
  // Interrupted (Ctrl-C) or ended before the swap: the staging folder, and the folders made for it, go.
  const forget: (() => void)[] = [];
  try {
    created = await makeFolders(dirname(out));
    forget.push(...created.map((dir) => removeOnExit(dir, { folderIfEmpty: true })), removeOnExit(staging));
    await mkdir(staging);
  } catch (error) {
    await removeFolders(created);
    throw outputError("--out", out, error);
  }
  const cache = new ArtifactCache(options.cacheDir);
  const mirror = options.mirror ? parseMirror(options.mirror) : undefined;
  const fetcher = new ArtifactFetcher({
    cache,
    mirror,
    download: options.download ?? defaultDownloadOptions,
    progress,
  });
  try {
    const tree = join(staging, "rootfs");
    await mkdir(tree);
    // Images first: a missing architecture there is a spec error, found before the big downloads.
    const images = specImages(spec);
    progress.step(`pulling ${images.length} add-on images for linux/${options.arch}`);
    const client = new RegistryClient();
    const pullContext = {
      cache,
      client,
      mirror,
      download: options.download ?? defaultDownloadOptions,
      progress,
    };
    const pulled = await mapLimited(images, 2, ({ name, image }) =>
      pullImage(name, image, options.arch, pullContext),
    );
    await writeLayout(inTree(tree, IMAGES_DIR), pulled, cache);
    progress.step(`fetching ${artifacts.length} components for ${options.arch}`);
    const components = await mapLimited(artifacts, options.concurrency ?? 4, async (plan) => {
      const fetched = await fetcher.fetch(plan);
      const label = `${displayPath(options.specPath)}: component ${plan.component}`;
      const takes = plan.install.map((i) => ({ from: i.from, dest: inTree(tree, i.to), mode: i.mode }));
      await takeFiles(fetched.path, formatOf(plan), takes, label);
      for (const t of takes) await chmod(t.dest, t.mode);
      progress.info(`${plan.component} ${plan.version} ${fetched.fromCache ? "(cached)" : "(fetched)"}`);
      const component: ManifestComponent = {
        name: plan.component,
        version: plan.version,
        arch: plan.arch,
        roles: spec.components.find((c) => c.name === plan.component)!.roles,
        url: fetched.origin,
        sha256: fetched.sha256,
      };
      return component;
    });
    progress.step(`rendering ${rendered.length} units, config files and node scripts`);
    const componentsJson = JSON.stringify(components, null, 2) + "\n";
    await writeEntries(tree, [
      ...rendered,
      {
        path: "/etc/kubebake/components.json",
        kind: "file",
        mode: 0o644,
        content: Buffer.from(componentsJson),
      },
      { path: `${IMAGES_DIR}/oci-layout`, kind: "file", mode: 0o644, content: Buffer.from(OCI_LAYOUT) },
      {
        path: `${IMAGES_DIR}/index.json`,
        kind: "file",
        mode: 0o644,
        content: Buffer.from(layoutIndex(pulled)),
      },
    ]);
    progress.step("hashing the tree");
    const files = await describeTree(tree, true);
    const imageId = imageIdOf(files);
    const diskInfo =
      target === "dir"
        ? undefined
        : await buildDisk({
            spec,
            arch: options.arch,
            tree,
            imageId,
            staging,
            cacheDir: options.cacheDir,
            format: target,
            progress,
          });
    const manifest: Manifest = {
      kind: MANIFEST_KIND,
      manifestVersion: 1,
      imageId,
      name: spec.name,
      arch: options.arch,
      target,
      rootfs: "rootfs",
      inputs,
      spec: { path: displayPath(options.specPath), sha256: sha256Hex(loaded.raw) },
      components,
      images: pulled.map(manifestImage),
      files,
      ...(diskInfo ? { disk: diskInfo } : {}),
    };
    await writeFile(join(staging, "manifest.json"), JSON.stringify(manifest, null, 2) + "\n");
    for (const path of [tree, join(staging, "manifest.json")]) await utimes(path, TREE_EPOCH, TREE_EPOCH);
    // The previous disk's block digests: the next publish uploads only what differs from it.
    if (existsSync(join(out, BLOCKS_DIR)))
      await cp(join(out, BLOCKS_DIR), join(staging, BLOCKS_DIR), { recursive: true });
    await swapInto(staging, out).catch((error: unknown) => {
      throw outputError("--out", out, error);
    });
    for (const f of forget) f(); // OUT now lives in those folders
    progress.step(`baked ${manifest.imageId} into ${out}`);
    return { manifest, reused: false, requests: fetcher.requests + client.requests };
  } catch (error) {
    await rm(staging, { recursive: true, force: true });
    await removeFolders(created);
    for (const f of forget) f();
    throw error;
  }
}

const OCI_LAYOUT = JSON.stringify({ imageLayoutVersion: "1.0.0" }) + "\n";

function manifestImage(p: PulledImage): ManifestImage {
  return {
    name: p.name,
    reference: p.image.reference,
    digest: p.top.digest,
    manifest: p.manifest.digest,
    size: p.size,
  };
}

const formatOf = (plan: ArtifactPlan) => (plan.source.kind === "debian" ? "deb" : plan.source.format);

function checkNoOverlap(artifacts: ArtifactPlan[], rendered: TreeEntry[]): void {
  const renderedPaths = new Set(rendered.map((e) => e.path));
  for (const plan of artifacts) {
    for (const entry of plan.install) {
      if (renderedPaths.has(entry.to)) {
        throw invalidInput(
          `component ${plan.component}: install.to ${entry.to} is a file kubebake renders itself`,
        );
      }
    }
  }
}

/** Never replace a folder that is not a previous bake: OUT is removed and rewritten as a whole. */
async function guardOutput(out: string): Promise<void> {
  if (!existsSync(out)) return;
  const names = await readdir(out).catch((error: NodeJS.ErrnoException) => {
    if (error.code === "ENOTDIR") throw invalidInput(`--out ${out}: exists and is not a folder`);
    throw outputError("--out", out, error);
  });
  const ours = names.every((n) =>
    ["manifest.json", "rootfs", "disk.raw", "disk.qcow2", BLOCKS_DIR].includes(n),
  );
  if (names.length > 0 && !(ours && names.includes("manifest.json"))) {
    throw invalidInput(
      `--out ${out}: exists and is not a kubebake image folder; choose an empty or new folder`,
    );
  }
}

async function swapInto(staging: string, out: string): Promise<void> {
  if (existsSync(out)) {
    const old = `${staging}.old`;
    await rename(out, old);
    await rename(staging, out);
    await rm(old, { recursive: true, force: true });
  } else {
    await rename(staging, out);
  }
}

async function mapLimited<T, R>(items: T[], limit: number, fn: (item: T) => Promise<R>): Promise<R[]> {
  const results: R[] = new Array(items.length);
  let next = 0;
  // The failure of the earliest item started wins, so the same bad input always gives the same message.
  const failures = new Map<number, unknown>();
  const worker = async () => {
    while (next < items.length && failures.size === 0) {
      const index = next++;
      try {
        results[index] = await fn(items[index]!);
      } catch (error) {
        failures.set(index, error);
      }
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
  if (failures.size > 0) throw failures.get(Math.min(...failures.keys()));
  return results;
}
