import { spawn, spawnSync, type ChildProcess } from "node:child_process";
import { existsSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { ArtifactCache } from "../../src/fetch/cache";
import { layoutIndex, writeLayout } from "../../src/images/layout";
import type { PulledImage } from "../../src/images/pull";
import { parsePinnedImage } from "../../src/images/reference";
import { fixtureMirror, repoRoot, tempDir, upstreamContainerd, upstreamPrograms } from "../helpers";
import { makeImage } from "../registry";

// The node side of preloading with the real programs: the fixture's containerd (v2.3.4, built from its module) runs here with
// its own root, state and socket; the image's import-images script loads a layout written by the bake's
// code; the real crictl then sees every image by the names the kubelet asks for, with nothing pulled.
const work = tempDir("import");
process.env.KUBEBAKE_TEST_SCRATCH = join(work, "scratch");
const bin = join(work, "bin");
const socket = join(work, "containerd.sock");
let containerd: ChildProcess;
let containerdLog = "";

function sh(cmd: string, args: string[], env: NodeJS.ProcessEnv = {}) {
  const result = spawnSync(cmd, args, {
    encoding: "utf8",
    env: { ...process.env, PATH: `${bin}:${process.env.PATH}`, ...env },
  });
  // containerd 2.2+ warns every client of a cgroup v1 host (this test host may be one; nodes are cgroup v2).
  const stderr = result.stderr
    .split("\n")
    .filter((line) => !/level=warning msg="DEPRECATION: The support for cgroup v1 is deprecated/.test(line))
    .join("\n");
  return { code: result.status, stdout: result.stdout, stderr };
}

beforeAll(async () => {
  const runc = readdirSync(join(fixtureMirror, "debian")).find((f) => f.startsWith("runc_"))!;
  mkdirSync(join(work, "pkg"), { recursive: true });
  expect(sh("dpkg-deb", ["-x", join(fixtureMirror, "debian", runc), join(work, "pkg")]).code).toBe(0);
  mkdirSync(bin, { recursive: true });
  for (const program of ["containerd", "ctr", "containerd-shim-runc-v2"])
    expect(sh("cp", [join(upstreamContainerd(), program), bin]).code).toBe(0);
  expect(sh("cp", [join(work, "pkg", "usr", "sbin", "runc"), bin]).code).toBe(0);
  expect(sh("cp", [join(upstreamPrograms(), "crictl"), bin]).code).toBe(0);
  writeFileSync(
    join(work, "config.toml"),
    [
      "version = 4",
      `root = "${join(work, "root")}"`,
      `state = "${join(work, "state")}"`,
      `[plugins.'io.containerd.server.v1.grpc']`,
      `  address = "${socket}"`,
      `[plugins.'io.containerd.server.v1.ttrpc']`,
      `  address = "${socket}.ttrpc"`,
      `[plugins.'io.containerd.cri.v1.images'.pinned_images]`,
      `  sandbox = "registry.k8s.io/pause:3.10.2@sha256:${"0".repeat(64)}"`,
      "",
    ].join("\n"),
  );
  containerd = spawn(join(bin, "containerd"), ["--config", join(work, "config.toml")], {
    stdio: ["ignore", "ignore", "pipe"],
    env: { ...process.env, PATH: `${bin}:${process.env.PATH}` },
  });
  containerd.stderr!.on("data", (d: Buffer) => (containerdLog += d.toString()));
  for (let i = 0; i < 100 && !existsSync(socket); i++) await new Promise((r) => setTimeout(r, 100));
  expect(existsSync(socket)).toBe(true);
}, 60_000);

afterAll(async () => {
  if (containerd && containerd.exitCode === null) {
    containerd.kill();
    await new Promise((r) => containerd.once("exit", r));
  }
  spawnSync("umount", ["-R", join(work, "root")], { stdio: "ignore" });
});

/** A layout as the bake writes it, from images made here (their blobs put into a cache first). */
async function bakedLayout(dir: string): Promise<{ images: PulledImage[]; names: string[] }> {
  const cache = new ArtifactCache(join(work, "cache"));
  const made = [
    ["registry.k8s.io/pause", "3.10.2", makeImage({ pause: "p" })],
    ["ghcr.io/flannel-io/flannel", "v0.28.4", makeImage({ "opt/bin/flanneld": "f" })],
  ] as const;
  const images: PulledImage[] = [];
  for (const [repo, tag, image] of made) {
    for (const b of [image.index, ...image.manifests, ...image.blobs]) {
      const scratch = await cache.scratch("blob");
      writeFileSync(scratch, b.body);
      await cache.put(scratch, b.digest.slice(7));
    }
    const strip = (b: { mediaType: string; digest: string; size: number }) => ({
      mediaType: b.mediaType,
      digest: b.digest,
      size: b.size,
    });
    images.push({
      name: repo,
      image: parsePinnedImage(`${repo}:${tag}@${image.index.digest}`)!,
      top: strip(image.index),
      manifest: strip(image.manifests[0]!),
      config: strip(image.blobs[1]!),
      layers: [strip(image.blobs[0]!)],
      size: 0,
      fromCache: true,
    });
  }
  await writeLayout(dir, images, cache);
  writeFileSync(join(dir, "oci-layout"), '{"imageLayoutVersion":"1.0.0"}\n');
  writeFileSync(join(dir, "index.json"), layoutIndex(images));
  const names = images.flatMap((p) => [
    `${p.image.registry}/${p.image.repository}@${p.top.digest}`,
    `${p.image.registry}/${p.image.repository}:${p.image.tag}`,
  ]);
  return { images, names };
}

test("import-images loads the baked layout into containerd's k8s.io namespace once; the CRI finds every image by digest", async () => {
  const layout = join(work, "layout");
  mkdirSync(layout);
  const { images, names } = await bakedLayout(layout);
  const imageEnv = join(work, "image.env");
  writeFileSync(
    imageEnv,
    `KUBEBAKE_LIBEXEC=${join(repoRoot, "src", "node")}\nKUBEBAKE_IMAGES_DIR=${layout}\n`,
  );
  const env = {
    KUBEBAKE_IMAGE_ENV: imageEnv,
    KUBEBAKE_STATE_DIR: join(work, "state-kubebake"),
    CONTAINERD_ADDRESS: socket,
  };
  const first = sh("bash", [join(repoRoot, "src", "node", "import-images")], env);
  expect({ code: first.code, stderr: first.stderr }).toEqual({ code: 0, stderr: "" });
  expect(first.stdout).toMatch(/imported 4 image names from .* \(index sha256:[0-9a-f]{64}\)\n$/);

  const listed = sh("ctr", ["--address", socket, "--namespace", "k8s.io", "images", "list", "--quiet"]);
  // The CRI plugin adds each image's id (its config digest) as one more name, as it does for a pull.
  const ids = images.map((p) => p.config.digest);
  expect(listed.stdout.trim().split("\n").sort()).toEqual([...names, ...ids].sort());

  // Each is labelled pinned, which containerd 1.7+ reports to the kubelet so that its image GC keeps it.
  const labels = sh("ctr", ["--address", socket, "--namespace", "k8s.io", "images", "list"])
    .stdout.split("\n")
    .slice(1)
    .filter(Boolean);
  for (const name of names) {
    expect(labels.find((l) => l.startsWith(`${name} `))).toContain("io.cri-containerd.pinned=pinned");
  }
  // What the kubelet does before it would pull: ImageStatus by the reference in the manifest (tag@digest).
  writeFileSync(
    join(work, "crictl.yaml"),
    `runtime-endpoint: unix://${socket}\nimage-endpoint: unix://${socket}\n`,
  );
  const crictl = (...args: string[]) => sh("crictl", ["--config", join(work, "crictl.yaml"), ...args]);
  for (const p of images) {
    const status = crictl("inspecti", "-o", "json", p.image.reference);
    expect({ ref: p.image.reference, code: status.code, stderr: status.stderr }).toEqual({
      ref: p.image.reference,
      code: 0,
      stderr: "",
    });
    const info = JSON.parse(status.stdout) as { status: { id: string; repoDigests: string[] } };
    expect(info.status.id).toBe(p.config.digest);
    expect(info.status.repoDigests).toContain(`${p.image.registry}/${p.image.repository}@${p.top.digest}`);
  }
  // Unpacked for the CRI's snapshotter: a container could start from it without another step.
  const snapshots = sh("ctr", [
    "--address",
    socket,
    "--namespace",
    "k8s.io",
    "snapshots",
    "--snapshotter",
    "overlayfs",
    "list",
  ]);
  expect(snapshots.stdout.trim().split("\n").length).toBeGreaterThanOrEqual(1 + images.length);

  const second = sh("bash", [join(repoRoot, "src", "node", "import-images")], env);
  expect(second.stdout).toMatch(/preloaded images already imported/);
  // An image removed since (the kubelet's image GC does that under disk pressure) is imported again.
  expect(sh("ctr", ["--address", socket, "--namespace", "k8s.io", "images", "rm", names[0]!]).code).toBe(0);
  const third = sh("bash", [join(repoRoot, "src", "node", "import-images")], env);
  expect(third.stdout).toMatch(/imported 4 image names/);
  expect(
    sh("ctr", ["--address", socket, "--namespace", "k8s.io", "images", "list", "--quiet"]).stdout,
  ).toContain(`${names[0]}\n`);
  // A store emptied under a stamp that still matches (a wiped /var/lib/containerd) is filled again too.
  const all = sh("ctr", ["--address", socket, "--namespace", "k8s.io", "images", "list", "--quiet"])
    .stdout.trim()
    .split("\n");
  expect(sh("ctr", ["--address", socket, "--namespace", "k8s.io", "images", "rm", ...all]).code).toBe(0);
  expect(sh("bash", [join(repoRoot, "src", "node", "import-images")], env).stdout).toMatch(
    /imported 4 image names/,
  );
  expect(readFileSync(join(work, "state-kubebake", "images-imported"), "utf8").trim()).toMatch(
    /^[0-9a-f]{64}$/,
  );
  expect(containerdLog).not.toMatch(/PullImage/);
}, 120_000);
