import { existsSync, mkdirSync, readdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { ArtifactCache } from "../../src/fetch/cache";
import { defaultDownloadOptions } from "../../src/fetch/download";
import { pullImage, type PullContext } from "../../src/images/pull";
import { parsePinnedImage } from "../../src/images/reference";
import { dockerCredentials, RegistryClient } from "../../src/images/registry";
import { silentProgress } from "../../src/util/progress";
import { tempDir } from "../helpers";
import { makeImage, pushImage, startRegistry, type TestRegistry } from "../registry";

// The bake's registry path against a real distribution server behind a front that answers as public
// registries do (bearer challenge, token service, blobs redirected to another origin).
const work = tempDir("pull");
process.env.KUBEBAKE_TEST_SCRATCH = join(work, "scratch");
let registry: TestRegistry;
let pauseDigest: string;
let pauseImage: ReturnType<typeof makeImage>;

beforeAll(async () => {
  registry = await startRegistry(join(work, "registry"));
  pauseImage = makeImage({ pause: "#!/bin/true\n" }, ["amd64"]);
  pauseDigest = await pushImage(registry.direct, "pause", "3.10.2", pauseImage);
  // The same image under the name a URL mirror holds it by: <upstream host>/<repository>.
  await pushImage(registry.direct, "registry.k8s.io/pause", "3.10.2", pauseImage);
}, 30_000);
afterAll(() => registry?.stop());

const pinned = (host: string, repo: string, digest: string) =>
  parsePinnedImage(`${host}/${repo}:3.10.2@${digest}`)!;

function context(name: string, extra: Partial<PullContext> = {}): PullContext & { cache: ArtifactCache } {
  const cache = new ArtifactCache(join(work, name));
  return {
    cache,
    client: new RegistryClient(() => undefined),
    download: { ...defaultDownloadOptions, attempts: 1 },
    progress: silentProgress,
    ...extra,
  };
}

/** Runs fn while the registry serves the bytes of digest altered. */
async function whileTampered(digest: string, fn: () => Promise<void>): Promise<void> {
  registry.tamper.add(digest);
  try {
    await fn();
  } finally {
    registry.tamper.delete(digest);
  }
}

const cached = (cache: ArtifactCache) =>
  existsSync(join(cache.dir, "sha256")) ? readdirSync(join(cache.dir, "sha256")).sort() : [];
const leftovers = (cache: ArtifactCache) =>
  existsSync(join(cache.dir, "tmp")) ? readdirSync(join(cache.dir, "tmp")) : [];

test("pulls through the bearer-token flow and storage redirects; every blob verified into the cache; a second pull asks nothing", async () => {
  const ctx = context("cache-anon");
  const before = { ...registry.counts };
  const image = pinned(registry.host, "pause", pauseDigest);
  const pulled = await pullImage("addons.pause", image, "amd64", ctx);
  expect(pulled.top).toEqual({
    mediaType: pauseImage.index.mediaType,
    digest: pauseDigest,
    size: pauseImage.index.size,
  });
  expect(pulled.manifest.digest).toBe(pauseImage.manifests[0]!.digest);
  expect(pulled.config.digest).toBe(pauseImage.blobs[1]!.digest);
  expect(pulled.layers.map((l) => l.digest)).toEqual([pauseImage.blobs[0]!.digest]);
  expect(pulled.fromCache).toBe(false);
  const all = [pauseImage.index, pauseImage.manifests[0]!, ...pauseImage.blobs];
  expect(pulled.size).toBe(all.reduce((n, b) => n + b.size, 0));
  expect(cached(ctx.cache)).toEqual(all.map((b) => b.digest.slice(7)).sort());
  expect(registry.counts.ping - before.ping).toBe(1);
  expect(registry.counts.token - before.token).toBe(1);
  expect(registry.counts.manifest - before.manifest).toBe(2); // the index, the amd64 manifest
  expect(registry.counts.storage - before.storage).toBe(2); // config and layer, redirected
  expect(registry.storageAuthorizations).toEqual([]); // the token never leaves the registry's origin

  const again = context("cache-anon");
  const second = await pullImage("addons.pause", image, "amd64", again);
  expect(second.fromCache).toBe(true);
  expect(again.client.requests).toBe(0);
  expect(second.layers).toEqual(pulled.layers);
});

test("a blob whose bytes do not match its digest fails with exit 3 and is not cached", async () => {
  const ctx = context("cache-tamper");
  const layer = pauseImage.blobs[0]!.digest;
  await whileTampered(layer, async () => {
    await expect(
      pullImage("addons.pause", pinned(registry.host, "pause", pauseDigest), "amd64", ctx),
    ).rejects.toMatchObject({
      exitCode: 3,
      message: expect.stringMatching(
        new RegExp(
          `^SHA-256 mismatch for http://127\\.0\\.0\\.1:\\d+/v2/pause/blobs/${layer}: expected ${layer.slice(7)}, got [0-9a-f]{64}; the blob was discarded$`,
        ),
      ),
    });
  });
  expect(cached(ctx.cache)).not.toContain(layer.slice(7));
  expect(leftovers(ctx.cache)).toEqual([]);
});

test("a manifest that is not what its digest says: exit 3, nothing cached; a digest the registry lacks: exit 4", async () => {
  const ctx = context("cache-wrong-pin");
  await whileTampered(pauseDigest, async () => {
    await expect(
      pullImage("addons.pause", pinned(registry.host, "pause", pauseDigest), "amd64", ctx),
    ).rejects.toMatchObject({
      exitCode: 3,
      message: expect.stringContaining(
        `/v2/pause/manifests/${pauseDigest}: expected ${pauseDigest.slice(7)}, got `,
      ),
    });
  });
  const unknown = `sha256:${"ab".repeat(32)}`;
  await expect(
    pullImage("addons.pause", pinned(registry.host, "pause", unknown), "amd64", ctx),
  ).rejects.toMatchObject({
    exitCode: 4,
    message: expect.stringContaining(`/v2/pause/manifests/${unknown} failed: HTTP 404`),
  });
  expect(cached(ctx.cache)).toEqual([]);
  expect(leftovers(ctx.cache)).toEqual([]);
});

test("an index without the image's architecture: exit 2 naming the add-on and what the index has", async () => {
  const ctx = context("cache-arch");
  await expect(
    pullImage("addons.pause", pinned(registry.host, "pause", pauseDigest), "arm64", ctx),
  ).rejects.toMatchObject({
    exitCode: 2,
    message: `addons.pause: ${registry.host}/pause:3.10.2@${pauseDigest} has no linux/arm64 image (its index lists linux/amd64)`,
  });
});

test("a multi-arch index gives the platform's manifest only", async () => {
  const image = makeImage({ coredns: "x" }, ["amd64", "arm64"]);
  const digest = await pushImage(registry.direct, "coredns", "v1", image);
  const ctx = context("cache-multi");
  const arm = await pullImage("addons.coredns", pinned(registry.host, "coredns", digest), "arm64", ctx);
  expect(arm.manifest.digest).toBe(image.manifests[1]!.digest);
  expect(arm.manifest.platform).toEqual({ architecture: "arm64", os: "linux" });
  expect(cached(ctx.cache)).not.toContain(image.manifests[0]!.digest.slice(7));
});

test("private repositories: credentials from the Docker config file; without them a clear exit 4", async () => {
  const locked = await startRegistry(join(work, "registry-private"), {
    credentials: { username: "ci", password: "s3cret:x" },
  });
  try {
    const digest = await pushImage(locked.direct, "pause", "3.10.2", pauseImage);
    const image = pinned(locked.host, "pause", digest);
    await expect(pullImage("addons.pause", image, "amd64", context("cache-denied"))).rejects.toMatchObject({
      exitCode: 4,
      message: expect.stringMatching(
        /refused a pull token for pause: HTTP 401 \(anonymous; credentials come from the Docker config file\)$/,
      ),
    });
    const dockerConfig = join(work, "docker");
    mkdirSync(dockerConfig, { recursive: true });
    writeFileSync(
      join(dockerConfig, "config.json"),
      JSON.stringify({ auths: { [locked.host]: { auth: Buffer.from("ci:s3cret:x").toString("base64") } } }),
    );
    const env = { DOCKER_CONFIG: dockerConfig };
    expect(dockerCredentials(locked.host, env)).toEqual({ username: "ci", password: "s3cret:x" });
    expect(dockerCredentials("other.example", env)).toBeUndefined();
    const ctx = context("cache-private", {
      client: new RegistryClient((host) => dockerCredentials(host, env)),
    });
    expect((await pullImage("addons.pause", image, "amd64", ctx)).fromCache).toBe(false);
  } finally {
    await locked.stop();
  }
});

test("a URL mirror is a registry holding each upstream under <host>/<repository>", async () => {
  const ctx = context("cache-url-mirror", { mirror: { kind: "url", base: registry.url } });
  const image = parsePinnedImage(`registry.k8s.io/pause:3.10.2@${pauseDigest}`)!;
  const pulled = await pullImage("addons.pause", image, "amd64", ctx);
  expect(pulled.image.registry).toBe("registry.k8s.io");
  expect(cached(ctx.cache)).toHaveLength(4);
});

test("a folder mirror holds blobs by digest under oci/blobs/sha256; a missing one is exit 4 naming it", async () => {
  const mirror = join(work, "dir-mirror");
  mkdirSync(join(mirror, "oci", "blobs", "sha256"), { recursive: true });
  const image = parsePinnedImage(`registry.k8s.io/pause:3.10.2@${pauseDigest}`)!;
  await expect(
    pullImage(
      "addons.pause",
      image,
      "amd64",
      context("cache-dir-0", { mirror: { kind: "dir", dir: mirror } }),
    ),
  ).rejects.toMatchObject({
    exitCode: 4,
    message: expect.stringContaining(
      `the mirror has no registry.k8s.io/pause@${pauseDigest}: cannot read ${mirror}/oci/blobs/sha256/`,
    ),
  });
  for (const b of [pauseImage.index, pauseImage.manifests[0]!, ...pauseImage.blobs]) {
    writeFileSync(join(mirror, "oci", "blobs", "sha256", b.digest.slice(7)), b.body);
  }
  const ctx = context("cache-dir", { mirror: { kind: "dir", dir: mirror } });
  expect((await pullImage("addons.pause", image, "amd64", ctx)).layers).toHaveLength(1);
  expect(ctx.client.requests).toBe(0);
});
