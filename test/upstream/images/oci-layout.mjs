// Writes one OCI image layout for test/upstream/build-images.sh, and its entry in images.json beside it.
//   node oci-layout.mjs OUT FINAL '{"name": …, "version": …, "config": {…}, "layers": ["FILE.tar.gz", …]}'
// FINAL is where OUT is moved once the build is done (images.json holds final paths). OUT/NAME/ gets
// oci-layout, index.json and blobs/sha256/: index.json names one image index (registries serve multi-arch
// indexes) that lists the linux/amd64 manifest. Layers are hard-linked, not copied, so a layer two images
// share is stored once. The bytes depend on the inputs alone: JSON in a fixed key order, `created` from
// SOURCE_DATE_EPOCH (0 unless set).
import { createHash } from "node:crypto";
import { chmodSync, copyFileSync, createReadStream, existsSync, linkSync, mkdirSync } from "node:fs";
import { readFileSync, renameSync, statSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { pipeline } from "node:stream/promises";
import { createGunzip } from "node:zlib";

const media = {
  index: "application/vnd.oci.image.index.v1+json",
  manifest: "application/vnd.oci.image.manifest.v1+json",
  config: "application/vnd.oci.image.config.v1+json",
  layer: "application/vnd.oci.image.layer.v1.tar+gzip",
};
const [out, final, specText] = process.argv.slice(2);
if (!out || !final || !specText) {
  console.error("usage: node oci-layout.mjs OUT FINAL SPEC-JSON");
  process.exit(2);
}
const spec = JSON.parse(specText);
const dir = join(out, spec.name);
const blobs = join(dir, "blobs", "sha256");
mkdirSync(blobs, { recursive: true });
const epoch = Number(process.env.SOURCE_DATE_EPOCH ?? 0);
const created = new Date(epoch * 1000).toISOString().replace(/\.000Z$/, "Z");

async function sha256(stream) {
  const hash = createHash("sha256");
  await pipeline(stream, hash);
  return `sha256:${hash.digest("hex")}`;
}

/** A file's blob, linked into the layout (copied across file systems), and its descriptor. */
async function fileBlob(path, mediaType) {
  const digest = await sha256(createReadStream(path));
  const target = join(blobs, digest.slice("sha256:".length));
  if (!existsSync(target)) {
    try {
      linkSync(path, target);
    } catch (error) {
      if (error.code !== "EXDEV") throw error;
      copyFileSync(path, `${target}.part`);
      renameSync(`${target}.part`, target);
    }
    chmodSync(target, 0o444);
  }
  return { mediaType, digest, size: statSync(path).size };
}

/** A JSON document's blob and its descriptor. */
function jsonBlob(value, mediaType) {
  const bytes = Buffer.from(JSON.stringify(value));
  const digest = `sha256:${createHash("sha256").update(bytes).digest("hex")}`;
  const target = join(blobs, digest.slice("sha256:".length));
  if (!existsSync(target)) writeFileSync(target, bytes, { mode: 0o444 });
  return { mediaType, digest, size: bytes.length };
}

const layers = [];
const diffIds = [];
for (const path of spec.layers) {
  layers.push(await fileBlob(path, media.layer));
  diffIds.push(await sha256(createReadStream(path).pipe(createGunzip())));
}
const config = jsonBlob(
  {
    created,
    architecture: "amd64",
    os: "linux",
    config: { Env: ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"], ...spec.config },
    rootfs: { type: "layers", diff_ids: diffIds },
  },
  media.config,
);
const manifest = jsonBlob({ schemaVersion: 2, mediaType: media.manifest, config, layers }, media.manifest);
const index = jsonBlob(
  {
    schemaVersion: 2,
    mediaType: media.index,
    manifests: [{ ...manifest, platform: { architecture: "amd64", os: "linux" } }],
  },
  media.index,
);
const ref = { annotations: { "org.opencontainers.image.ref.name": spec.version } };
writeFileSync(join(dir, "oci-layout"), JSON.stringify({ imageLayoutVersion: "1.0.0" }));
writeFileSync(
  join(dir, "index.json"),
  JSON.stringify({ schemaVersion: 2, mediaType: media.index, manifests: [{ ...index, ...ref }] }),
);

const listing = join(out, "images.json");
const images = existsSync(listing) ? JSON.parse(readFileSync(listing, "utf8")) : {};
images[spec.name] = {
  version: spec.version,
  index: index.digest,
  manifest: manifest.digest,
  config: config.digest,
  layout: join(final, spec.name),
};
const sorted = Object.fromEntries(
  Object.keys(images)
    .sort()
    .map((name) => [name, images[name]]),
);
writeFileSync(listing, `${JSON.stringify(sorted, null, 2)}\n`);
