#!/usr/bin/env node
// Disk figures for the fixture spec (root, disk host tools): cold bake to qcow2 (empty base-layer cache),
// whether a warm bake of the same inputs gives the same raw disk, rebake after a unit change (cached base
// layer), and boot to the role units started under TCG.
//   node bench/disk.mjs [--skip-cold] [--json]
// Targets: unit-change rebake under 30 s; boot to role units under 60 s (TCG).
import { execFileSync, spawn, spawnSync } from "node:child_process";
import {
  copyFileSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  writeFileSync,
} from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { parse, stringify } from "yaml";

const repo = resolve(new URL(".", import.meta.url).pathname, "..");
const json = process.argv.includes("--json");
const skipCold = process.argv.includes("--skip-cold");
execFileSync("node", ["scripts/build.mjs"], { cwd: repo });
execFileSync("node", ["test/fixtures/build-mirror.mjs"], { cwd: repo, stdio: "ignore" });
const work = mkdtempSync(join(tmpdir(), "kubebake-bench-disk-"));
const sharedCache = join(repo, ".cache", "kubebake");

function bake(spec, out, cache) {
  const started = process.hrtime.bigint();
  const args = [
    "bin/bake-image.js",
    "--target",
    "qcow2",
    "--spec",
    spec,
    "--mirror",
    "test/fixtures/mirror",
    "--cache",
    cache,
    "--out",
    out,
    "--json",
  ];
  const result = spawnSync("node", args, { cwd: repo, encoding: "utf8", maxBuffer: 64 * 1024 * 1024 });
  if (result.status !== 0) throw new Error(`bake failed (${result.status}): ${result.stderr}`);
  return { seconds: Number(process.hrtime.bigint() - started) / 1e9, manifest: JSON.parse(result.stdout) };
}

const figures = {};
const cold = skipCold
  ? undefined
  : bake("test/fixtures/image.yaml", join(work, "cold"), join(work, "cold-cache"));
if (cold) figures["cold bake to qcow2, empty cache (s)"] = cold.seconds;
// The unchanged image the change starts from; with the cold bake, the same inputs on another cache.
const unchanged = bake("test/fixtures/image.yaml", join(work, "warm"), sharedCache);
if (cold)
  figures["cold and cached bakes give the same raw disk"] =
    cold.manifest.disk.rawSha256 === unchanged.manifest.disk.rawSha256 ? "yes" : "NO (not reproducible)";
// A unit change: another cluster DNS address changes the rendered kubelet config and the add-ons.
const variant = parse(readFileSync(join(repo, "test/fixtures/image.yaml"), "utf8"));
variant.cluster.clusterDNS = "10.32.0.53";
writeFileSync(join(work, "variant.yaml"), stringify(variant));
const changed = bake(join(work, "variant.yaml"), join(work, "warm"), sharedCache);
figures["rebake after a unit change (s) [target < 30]"] = changed.seconds;
figures["qcow2 size (MB)"] = changed.manifest.disk.size / 1e6;

// Boot a master until systemd reports kube-apiserver started.
const seed = join(work, "seed");
mkdirSync(seed);
writeFileSync(join(seed, "meta-data"), "instance-id: bench\nlocal-hostname: bench\n");
// The master needs its certificates (the `none` secret source): a fresh PKI, delivered with the user data.
execFileSync("node", ["bin/kubebake.js", "pki", "init", "--cluster", "bench", "--out", join(work, "pki")], {
  cwd: repo,
});
const secretFiles = readdirSync(join(work, "pki")).map(
  (name) =>
    `  - path: /etc/kubebake/secrets/${name}\n    permissions: '0600'\n    encoding: b64\n    content: ${readFileSync(join(work, "pki", name)).toString("base64")}\n`,
);
const roleFile = `  - path: /etc/sysconfig/kubernetes-masters\n    content: "CLUSTER_NAME=bench\\n"\n`;
// Reports when kube-apiserver became active, in microseconds since the kernel started.
const report = `runcmd:\n  - [sh, -c, 'until systemctl is-active -q kube-apiserver; do sleep 1; done; echo "KBBENCH $(systemctl show -p ActiveEnterTimestampMonotonic --value kube-apiserver)" > /dev/ttyS0']\n`;
writeFileSync(
  join(seed, "user-data"),
  `#cloud-config\nlocale: C.UTF-8\nwrite_files:\n${roleFile}${secretFiles.join("")}${report}`,
);
execFileSync("cloud-localds", [join(work, "seed.iso"), join(seed, "user-data"), join(seed, "meta-data")]);
execFileSync("qemu-img", [
  "create",
  "-q",
  "-f",
  "qcow2",
  "-b",
  join(work, "warm", "disk.qcow2"),
  "-F",
  "qcow2",
  join(work, "boot.qcow2"),
]);
copyFileSync("/usr/share/OVMF/OVMF_VARS_4M.fd", join(work, "vars.fd"));
const serial = join(work, "serial.log");
const started = Date.now();
const qemu = spawn(
  "qemu-system-x86_64",
  [
    "-machine",
    "q35",
    "-accel",
    "tcg,thread=multi",
    "-cpu",
    "max",
    "-smp",
    "2",
    "-m",
    "1024",
    "-nographic",
    "-no-reboot",
    "-monitor",
    "none",
    "-drive",
    "if=pflash,format=raw,readonly=on,file=/usr/share/OVMF/OVMF_CODE_4M.fd",
    "-drive",
    `if=pflash,format=raw,file=${join(work, "vars.fd")}`,
    "-drive",
    `file=${join(work, "boot.qcow2")},if=virtio`,
    "-drive",
    `file=${join(work, "seed.iso")},if=virtio,media=cdrom,readonly=on`,
    "-netdev",
    "user,id=n0,restrict=on",
    "-device",
    "virtio-net-pci,netdev=n0",
    "-serial",
    `file:${serial}`,
  ],
  { stdio: "ignore" },
);
let booted;
let guest;
while (Date.now() - started < 300_000) {
  const match = existsSync(serial) && /KBBENCH (\d+)/.exec(readFileSync(serial, "latin1"));
  if (match) {
    booted = (Date.now() - started) / 1000;
    guest = Number(match[1]) / 1e6;
    break;
  }
  await new Promise((r) => setTimeout(r, 250));
}
qemu.kill("SIGKILL");
if (booted === undefined && existsSync(serial))
  console.error(readFileSync(serial, "latin1").split("\n").slice(-40).join("\n"));
figures["boot to kube-apiserver active, kernel clock (s) [target < 60]"] = guest ?? "not reached in 300 s";
figures["qemu start to that report, with firmware (s)"] = booted ?? "not reached in 300 s";
if (process.env.KUBEBAKE_BENCH_KEEP) console.error(`kept ${work}`);
else rmSync(work, { recursive: true, force: true });

if (json) console.log(JSON.stringify(figures, null, 2));
else
  for (const [name, value] of Object.entries(figures))
    console.log(`${name.padEnd(52)} ${typeof value === "number" ? value.toFixed(1) : value}`);
