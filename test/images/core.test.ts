import { mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { layoutBlobs, layoutIndex, specImages } from "../../src/images/layout";
import type { PulledImage } from "../../src/images/pull";
import { containerdNames, parsePinnedImage, registryEndpoint } from "../../src/images/reference";
import { parseChallenge } from "../../src/images/registry";
import { checkPreloaded, criName, preloadedImages } from "../../src/image/preloaded";
import { loadImageSpec } from "../../src/spec/load";
import { fixtureSpec, tempDir } from "../helpers";

// The pure core of preloading: references, the names containerd gives images, the layout's index, and
// image check's rules, each against what a mistake there would change.
const D = `sha256:${"a1".repeat(32)}`;
const E = `sha256:${"b2".repeat(32)}`;

describe("pinned references", () => {
  test.each([
    [
      `registry.k8s.io/pause:3.10.2@${D}`,
      { registry: "registry.k8s.io", repository: "pause", tag: "3.10.2", digest: D },
    ],
    [`ghcr.io/flannel-io/flannel@${D}`, { registry: "ghcr.io", repository: "flannel-io/flannel", digest: D }],
    [
      `docker.io/busybox:1.36@${D}`,
      { registry: "docker.io", repository: "library/busybox", tag: "1.36", digest: D },
    ],
    [
      `docker.io/bitnami/redis:7@${D}`,
      { registry: "docker.io", repository: "bitnami/redis", tag: "7", digest: D },
    ],
    [
      `127.0.0.1:5000/a/b.c_d-e:v1-x@${D}`,
      { registry: "127.0.0.1:5000", repository: "a/b.c_d-e", tag: "v1-x", digest: D },
    ],
  ])("%s", (reference, parts) => {
    expect(parsePinnedImage(reference)).toEqual({ reference, ...parts });
  });

  test.each([
    ["a tag alone", "registry.k8s.io/pause:3.10.2"],
    ["no registry", `pause:3.10.2@${D}`],
    ["a short digest", "registry.k8s.io/pause@sha256:abc"],
    ["another algorithm", `registry.k8s.io/pause@sha512:${"a".repeat(128)}`],
    ["upper case repository", `registry.k8s.io/Pause@${D}`],
    ["a doubled separator", `registry.k8s.io/a__b@${D}`],
    ["a trailing slash", `registry.k8s.io/pause/@${D}`],
    ["a leading space", ` registry.k8s.io/pause@${D}`],
    ["text after the digest", `registry.k8s.io/pause@${D}x`],
  ])("refused: %s", (_, reference) => {
    expect(parsePinnedImage(reference)).toBeUndefined();
  });

  test("containerd knows each image by repo@digest (the CRI's lookup) and by repo:tag", () => {
    expect(containerdNames(parsePinnedImage(`docker.io/busybox:1.36@${D}`)!)).toEqual([
      `docker.io/library/busybox@${D}`,
      "docker.io/library/busybox:1.36",
    ]);
    expect(containerdNames(parsePinnedImage(`ghcr.io/x/y@${D}`)!)).toEqual([`ghcr.io/x/y@${D}`]);
  });

  test("where each registry's API is: Docker Hub's own host, plain HTTP only on this machine", () => {
    expect(registryEndpoint("docker.io")).toBe("https://registry-1.docker.io");
    expect(registryEndpoint("registry.k8s.io")).toBe("https://registry.k8s.io");
    expect(registryEndpoint("127.0.0.1:5000")).toBe("http://127.0.0.1:5000");
    expect(registryEndpoint("localhost")).toBe("http://localhost");
    expect(registryEndpoint("localhost.example.com")).toBe("https://localhost.example.com");
    expect(registryEndpoint("127.0.0.1.nip.io")).toBe("https://127.0.0.1.nip.io");
  });

  test("challenges as registries send them", () => {
    expect(
      parseChallenge('Bearer realm="https://ghcr.io/token",service="ghcr.io",scope="repository:a/b:pull"'),
    ).toEqual({
      scheme: "bearer",
      params: { realm: "https://ghcr.io/token", service: "ghcr.io", scope: "repository:a/b:pull" },
    });
    expect(parseChallenge('Basic realm="Registry"')).toEqual({
      scheme: "basic",
      params: { realm: "Registry" },
    });
    expect(parseChallenge("Bearer realm=https://x/token, Service=s")).toEqual({
      scheme: "bearer",
      params: { realm: "https://x/token", service: "s" },
    });
    expect(parseChallenge("")).toBeUndefined();
  });
});

const pulled = (
  reference: string,
  blobs: { top: string; manifest: string; config: string; layers: string[] },
): PulledImage => {
  const d = (digest: string) => ({ mediaType: "m", digest, size: 1 });
  return {
    name: "addons.x",
    image: parsePinnedImage(reference)!,
    top: { mediaType: "application/vnd.oci.image.index.v1+json", digest: blobs.top, size: 7 },
    manifest: d(blobs.manifest),
    config: d(blobs.config),
    layers: blobs.layers.map(d),
    size: 0,
    fromCache: false,
  };
};

describe("the layout", () => {
  const h = (n: number) => `sha256:${n.toString(16).padStart(64, "0")}`;
  const a = pulled(`registry.k8s.io/pause:3.10.2@${h(1)}`, {
    top: h(1),
    manifest: h(2),
    config: h(3),
    layers: [h(9)],
  });
  const b = pulled(`ghcr.io/x/y@${h(4)}`, { top: h(4), manifest: h(5), config: h(6), layers: [h(9), h(8)] });

  test("index.json names each image as containerd should know it, pointing at its pinned top descriptor", () => {
    expect(JSON.parse(layoutIndex([a, b]))).toEqual({
      schemaVersion: 2,
      mediaType: "application/vnd.oci.image.index.v1+json",
      manifests: [
        {
          mediaType: "application/vnd.oci.image.index.v1+json",
          digest: h(1),
          size: 7,
          annotations: {
            "io.containerd.image.name": `registry.k8s.io/pause@${h(1)}`,
            "org.opencontainers.image.ref.name": "3.10.2",
          },
        },
        {
          mediaType: "application/vnd.oci.image.index.v1+json",
          digest: h(1),
          size: 7,
          annotations: {
            "io.containerd.image.name": "registry.k8s.io/pause:3.10.2",
            "org.opencontainers.image.ref.name": "3.10.2",
          },
        },
        {
          mediaType: "application/vnd.oci.image.index.v1+json",
          digest: h(4),
          size: 7,
          annotations: {
            "io.containerd.image.name": `ghcr.io/x/y@${h(4)}`,
            "org.opencontainers.image.ref.name": h(4),
          },
        },
      ],
    });
    expect(layoutIndex([a, b]).endsWith("}\n")).toBe(true);
  });

  test("every blob once, sorted: a layer two images share is stored once", () => {
    expect(layoutBlobs([b, a])).toEqual([1, 2, 3, 4, 5, 6, 8, 9].map(h));
  });

  test("the spec's images in a fixed order, named by their field", () => {
    const { spec } = loadImageSpec(fixtureSpec);
    const images = specImages(spec);
    expect(images.map((i) => i.name)).toEqual([
      "addons.pause",
      "addons.flannel",
      "addons.flannelCNIPlugin",
      "addons.coredns",
      "addons.extra[0]",
    ]);
    expect(images.map((i) => i.image.reference)).toEqual([
      spec.addons.pause,
      spec.addons.flannel,
      spec.addons.flannelCNIPlugin,
      spec.addons.coredns,
      spec.addons.extra[0],
    ]);
  });
});

describe("image check's preloading rules", () => {
  test.each([
    ["busybox", "docker.io/library/busybox:latest"],
    ["busybox:1.36", "docker.io/library/busybox:1.36"],
    ["bitnami/redis:7", "docker.io/bitnami/redis:7"],
    [`busybox:1.36@${D}`, `docker.io/library/busybox@${D}`],
    [`registry.k8s.io/pause:3.10.2@${D}`, `registry.k8s.io/pause@${D}`],
    [`localhost/app@${D}`, `localhost/app@${D}`],
    ["127.0.0.1:5000/app", "127.0.0.1:5000/app:latest"],
    ["127.0.0.1:5000/app:v2", "127.0.0.1:5000/app:v2"],
  ])("the CRI looks %s up as %s", (reference, name) => {
    expect(criName(reference)).toBe(name);
  });

  const work = tempDir("preloaded");
  let roots = 0;
  /** A root with an add-on manifest, containerd's config and a layout of the given images and blobs. */
  function root(opts: {
    manifest: string;
    sandbox?: string;
    names?: [string, string][];
    blobs?: Record<string, unknown>;
  }) {
    const dir = join(work, `root-${roots++}`);
    mkdirSync(join(dir, "usr/lib/kubebake/addons"), { recursive: true });
    mkdirSync(join(dir, "usr/lib/kubebake/images/blobs/sha256"), { recursive: true });
    mkdirSync(join(dir, "etc/containerd"), { recursive: true });
    writeFileSync(join(dir, "usr/lib/kubebake/addons/a.yaml"), opts.manifest);
    writeFileSync(join(dir, "usr/lib/kubebake/addons/notes.txt"), `image: not-a-manifest@${E}\n`);
    if (opts.sandbox)
      writeFileSync(join(dir, "etc/containerd/config.toml"), `[x]\n  sandbox_image = "${opts.sandbox}"\n`);
    if (opts.names) {
      const manifests = opts.names.map(([name, digest]) => ({
        digest,
        annotations: { "io.containerd.image.name": name },
      }));
      writeFileSync(join(dir, "usr/lib/kubebake/images/index.json"), JSON.stringify({ manifests }));
    }
    for (const [digest, body] of Object.entries(opts.blobs ?? {})) {
      writeFileSync(join(dir, "usr/lib/kubebake/images/blobs/sha256", digest.slice(7)), JSON.stringify(body));
    }
    return dir;
  }
  const h = (n: number) => `sha256:${n.toString(16).padStart(64, "0")}`;
  const complete = {
    [h(1)]: { manifests: [{ digest: h(9) }, { digest: h(2) }] },
    [h(2)]: { config: { digest: h(3) }, layers: [{ digest: h(4) }] },
    [h(3)]: {},
    [h(4)]: {},
  };
  const manifest = `kind: Pod\nspec:\n  containers:\n    - image: registry.k8s.io/pause:3.10.2@${h(1)}\n  initContainers:\n    - { name: i, image: "ghcr.io/x/y@${h(2)}" }\n---\nkind: ConfigMap\ndata: { image: "" }\n`;

  test("a complete layout naming every referenced image by digest: no violation; the list is what index.json names", async () => {
    const dir = root({
      manifest,
      sandbox: `registry.k8s.io/pause:3.10.2@${h(1)}`,
      names: [
        [`registry.k8s.io/pause@${h(1)}`, h(1)],
        [`ghcr.io/x/y@${h(2)}`, h(2)],
      ],
      blobs: complete,
    });
    expect(await checkPreloaded(dir)).toEqual([]);
    expect(await preloadedImages(dir)).toEqual([
      { name: `registry.k8s.io/pause@${h(1)}`, digest: h(1) },
      { name: `ghcr.io/x/y@${h(2)}`, digest: h(2) },
    ]);
  });

  test("each way a node would end up pulling is named with its file", async () => {
    const dir = root({
      manifest: manifest.replace(`ghcr.io/x/y@${h(2)}`, "ghcr.io/x/y:v1"),
      sandbox: `registry.k8s.io/pause:3.10.3@${h(7)}`,
      names: [[`registry.k8s.io/pause@${h(1)}`, h(1)]],
      blobs: { [h(1)]: complete[h(1)], [h(2)]: complete[h(2)], [h(3)]: {} },
    });
    expect(await checkPreloaded(dir)).toEqual([
      {
        path: "/usr/lib/kubebake/images/blobs/sha256",
        rule: `preloaded image registry.k8s.io/pause@${h(1)} lacks blob(s) ${h(4)}`,
      },
      {
        path: "/usr/lib/kubebake/addons/a.yaml",
        rule: "image ghcr.io/x/y:v1 is not pinned by digest: a node would pull it",
      },
      {
        path: "/etc/containerd/config.toml",
        rule: `image registry.k8s.io/pause:3.10.3@${h(7)} is not preloaded: a node would pull it`,
      },
    ]);
  });

  test("a layout whose index names a missing top blob, or no platform manifest, is a violation", async () => {
    const missingTop = root({ manifest: "kind: List\n", names: [[`a.io/b@${h(5)}`, h(5)]] });
    expect(await checkPreloaded(missingTop)).toEqual([
      {
        path: "/usr/lib/kubebake/images/blobs/sha256",
        rule: `preloaded image a.io/b@${h(5)} lacks blob(s) ${h(5)}`,
      },
    ]);
    const noPlatform = root({
      manifest: "kind: List\n",
      names: [[`a.io/b@${h(1)}`, h(1)]],
      blobs: { [h(1)]: complete[h(1)] },
    });
    expect(await checkPreloaded(noPlatform)).toEqual([
      {
        path: "/usr/lib/kubebake/images/blobs/sha256",
        rule: `preloaded image a.io/b@${h(1)} lacks blob(s) a platform manifest of ${h(1)}`,
      },
    ]);
  });

  test("add-on manifests without any preloaded image: every node would pull", async () => {
    const dir = root({ manifest });
    const violations = await checkPreloaded(dir);
    expect(violations[0]).toEqual({
      path: "/usr/lib/kubebake/images/index.json",
      rule: "no preloaded images: nodes would pull every add-on image",
    });
    expect(violations.slice(1).map((v) => v.rule)).toEqual([
      `image registry.k8s.io/pause:3.10.2@${h(1)} is not preloaded: a node would pull it`,
      `image ghcr.io/x/y@${h(2)} is not preloaded: a node would pull it`,
    ]);
  });

  test("a root that is not a kubebake image (no add-on manifests) is not held to these rules", async () => {
    const dir = join(work, "plain");
    mkdirSync(join(dir, "etc"), { recursive: true });
    expect(await checkPreloaded(dir)).toEqual([]);
    expect(await preloadedImages(dir)).toEqual([]);
  });
});
