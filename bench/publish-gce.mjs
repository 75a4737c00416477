#!/usr/bin/env node
// GCE archive figures: the time to turn a synthetic 3 GiB sparse raw disk (256 MiB of data in 32 regions,
// half incompressible, half text-like) into the gzip'd sparse GNU tar that images.insert imports, its size,
// and whether a second run gives the same bytes. Prints figures; asserts nothing. Never bakes a real disk.
//   node bench/publish-gce.mjs [--json]
import { createCipheriv, createHash } from "node:crypto";
import {
  closeSync,
  ftruncateSync,
  mkdirSync,
  mkdtempSync,
  openSync,
  readFileSync,
  rmSync,
  statSync,
  writeSync,
} from "node:fs";
import { createRequire } from "node:module";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { build } from "esbuild";

const repo = resolve(import.meta.dirname ?? new URL(".", import.meta.url).pathname, "..");
const json = process.argv.includes("--json");
const MiB = 1024 * 1024;

// The archive code as the CLI bundles it, for this script to call.
const out = join(repo, "dist", ".bench", "gce-tarball.cjs");
mkdirSync(join(repo, "dist", ".bench"), { recursive: true });
await build({
  entryPoints: [join(repo, "src/publish/gce/tarball.ts")],
  bundle: true,
  platform: "node",
  format: "cjs",
  outfile: out,
  logLevel: "error",
});
const { writeGceTarball } = createRequire(import.meta.url)(out);

const work = mkdtempSync(join(tmpdir(), "kubebake-bench-gce-"));
try {
  const disk = join(work, "disk.img");
  const fd = openSync(disk, "w");
  ftruncateSync(fd, 3 * 1024 * MiB);
  // A fixed AES-CTR key stream: incompressible yet the same bytes every run.
  const stream = createCipheriv("aes-128-ctr", Buffer.alloc(16, 1), Buffer.alloc(16, 2));
  const text = Buffer.from(
    "kubelet containerd etcd /usr/lib/systemd/system\n".repeat(Math.ceil((8 * MiB) / 48)),
  ).subarray(0, 8 * MiB);
  for (let i = 0; i < 32; i++) {
    const region = i % 2 === 0 ? stream.update(Buffer.alloc(8 * MiB)) : text;
    writeSync(fd, region, 0, region.length, i * 96 * MiB + 4096 * i);
  }
  closeSync(fd);

  const figures = {};
  const digests = [];
  for (const run of [1, 2]) {
    const archive = join(work, `disk-${run}.tar.gz`);
    const started = process.hrtime.bigint();
    await writeGceTarball(disk, archive);
    const seconds = Number(process.hrtime.bigint() - started) / 1e9;
    if (run === 1) {
      figures["GCE tarball of a 3 GiB sparse disk, 256 MiB data (s)"] = Number(seconds.toFixed(2));
      figures["GCE tarball size (MiB)"] = Number((statSync(archive).size / MiB).toFixed(1));
    } else figures["GCE tarball again (s)"] = Number(seconds.toFixed(2));
    digests.push(createHash("sha256").update(readFileSync(archive)).digest("hex"));
    rmSync(archive);
  }
  figures["GCE tarball reproducible"] = digests[0] === digests[1];
  if (json) process.stdout.write(`${JSON.stringify(figures, null, 2)}\n`);
  else for (const [name, value] of Object.entries(figures)) process.stdout.write(`${name}: ${value}\n`);
} finally {
  rmSync(work, { recursive: true, force: true });
}
