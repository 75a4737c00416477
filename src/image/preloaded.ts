import { existsSync } from "node:fs";
import { readdir, readFile } from "node:fs/promises";
import { join } from "node:path";
import { parseAllDocuments } from "yaml";
import { NODE_PATHS } from "../bake/render";
import { ANNOTATION_IMAGE_NAME } from "../images/layout";
import type { Violation } from "./hygiene";

export interface PreloadedImage {
  /** The name containerd knows it by. */
  name: string;
  digest: string;
}

const rel = (path: string) => path.split("/").filter(Boolean);

/** The images of the image's OCI layout, by the names containerd gets at import. Empty when there is none. */
export async function preloadedImages(root: string): Promise<PreloadedImage[]> {
  const index = join(root, ...rel(NODE_PATHS.images), "index.json");
  if (!existsSync(index)) return [];
  const json = JSON.parse(await readFile(index, "utf8")) as {
    manifests?: { digest: string; annotations?: Record<string, string> }[];
  };
  return (json.manifests ?? []).map((m) => ({
    name: m.annotations?.[ANNOTATION_IMAGE_NAME] ?? "",
    digest: m.digest,
  }));
}

/**
 * How containerd's CRI names what a pod asks for: docker.io/library for official images, and a digest
 * wins over a tag (`repo:tag@sha256:…` is looked up as `repo@sha256:…`).
 */
export function criName(reference: string): string {
  let ref = reference;
  const first = ref.split("/")[0]!;
  if (!ref.includes("/") || !(first.includes(".") || first.includes(":") || first === "localhost")) {
    ref = `docker.io/${ref.includes("/") ? ref : `library/${ref}`}`;
  }
  const at = ref.indexOf("@");
  if (at < 0) return /:[^/]+$/.test(ref) ? ref : `${ref}:latest`;
  const name = ref.slice(0, at);
  return `${name.replace(/:[^/]+$/, "")}${ref.slice(at)}`;
}

const CONTAINER_LISTS = new Set(["containers", "initContainers", "ephemeralContainers"]);

/** The image of every container, init container and ephemeral container, wherever a pod template sits. */
function imagesIn(node: unknown, found: string[] = []): string[] {
  if (Array.isArray(node)) for (const item of node) imagesIn(item, found);
  else if (node && typeof node === "object") {
    for (const [key, value] of Object.entries(node)) {
      if (CONTAINER_LISTS.has(key) && Array.isArray(value)) {
        for (const c of value) if (typeof c?.image === "string") found.push(c.image);
      } else imagesIn(value, found);
    }
  }
  return found;
}

/**
 * The preloading rules of a kubebake image (a root with add-on manifests): every image an add-on manifest
 * or containerd's sandbox setting names is pinned by digest and preloaded, with its blobs present.
 */
export async function checkPreloaded(root: string): Promise<Violation[]> {
  const addonsDir = join(root, ...rel(NODE_PATHS.addons));
  if (!existsSync(addonsDir)) return [];
  const violations: Violation[] = [];
  const preloaded = await preloadedImages(root);
  const layout = join(root, ...rel(NODE_PATHS.images));
  if (preloaded.length === 0) {
    violations.push({
      path: `${NODE_PATHS.images}/index.json`,
      rule: "no preloaded images: nodes would pull every add-on image",
    });
  }
  for (const image of preloaded) {
    const missing = await missingBlobs(layout, image.digest);
    if (missing.length > 0) {
      violations.push({
        path: `${NODE_PATHS.images}/blobs/sha256`,
        rule: `preloaded image ${image.name} lacks blob(s) ${missing.join(", ")}`,
      });
    }
  }
  const names = new Set(preloaded.map((p) => p.name));
  const references: { path: string; image: string }[] = [];
  for (const file of (await readdir(addonsDir)).filter((f) => /\.ya?ml$/.test(f)).sort()) {
    const text = await readFile(join(addonsDir, file), "utf8");
    for (const doc of parseAllDocuments(text)) {
      for (const image of imagesIn(doc.toJS()))
        references.push({ path: `${NODE_PATHS.addons}/${file}`, image });
    }
  }
  const containerd = join(root, "etc", "containerd", "config.toml");
  if (existsSync(containerd)) {
    const sandbox = /^\s*sandbox(?:_image)?\s*=\s*"([^"]+)"/m.exec(await readFile(containerd, "utf8"));
    if (sandbox) references.push({ path: "/etc/containerd/config.toml", image: sandbox[1]! });
  }
  for (const { path, image } of references) {
    if (!image.includes("@sha256:")) {
      violations.push({ path, rule: `image ${image} is not pinned by digest: a node would pull it` });
    } else if (!names.has(criName(image))) {
      violations.push({ path, rule: `image ${image} is not preloaded: a node would pull it` });
    }
  }
  return violations;
}

/** The blobs of one preloaded image (its index, one platform's manifest, config, layers) missing from the layout. */
async function missingBlobs(layout: string, digest: string): Promise<string[]> {
  const path = (d: string) => join(layout, "blobs", "sha256", d.replace(/^sha256:/, ""));
  const read = async (d: string) => JSON.parse(await readFile(path(d), "utf8")) as Record<string, unknown>;
  if (!existsSync(path(digest))) return [digest];
  let manifest = await read(digest);
  if (Array.isArray(manifest.manifests)) {
    const present = (manifest.manifests as { digest: string }[]).find((m) => existsSync(path(m.digest)));
    if (!present) return [`a platform manifest of ${digest}`];
    manifest = await read(present.digest);
  }
  const blobs = [manifest.config as { digest: string }, ...((manifest.layers ?? []) as { digest: string }[])];
  return blobs.filter((b) => !b || !existsSync(path(b.digest))).map((b) => b?.digest ?? "config");
}
