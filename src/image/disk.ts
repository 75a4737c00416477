import { existsSync } from "node:fs";
import { chmod, copyFile, mkdir, readdir, rename, rm, stat, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { ExitCode, KubebakeError, invalidInput } from "../errors";
import type { Arch, ImageSpec } from "../spec/schema";
import { sha256File, sha256Hex } from "../util/hash";
import type { Progress } from "../util/progress";
import { removeOnExit } from "../util/cleanup";
import { run } from "../util/run";
import { TREE_EPOCH } from "../bake/tree";
import { checkHygiene, CLEANUP_SCRIPT } from "./hygiene";
import { ext4Bytes, pinExt4Times } from "./reproducible";

export type DiskFormat = "raw" | "qcow2";

export interface DiskInfo {
  format: DiskFormat;
  file: string;
  sha256: string;
  size: number;
  /** The cached base layer this disk was built on. */
  baseLayer: string;
  /**
   * The raw disk's SHA-256 (for raw, the same as sha256): the same inputs give the same raw disk, byte for
   * byte, whatever the format it was delivered in; what a publish uploads is this raw disk. Absent in
   * manifests written before it was recorded.
   */
  rawSha256?: string;
}

/** Packages every bootable image needs, whatever the spec adds. */
const BOOT_PACKAGES = [
  "systemd-sysv",
  "systemd-timesyncd",
  "dbus",
  "cloud-init",
  "cloud-guest-utils",
  "ifupdown",
  "isc-dhcp-client",
  "netbase",
  "openssh-server",
];
/** Bump when the way the base layer is made changes, so old cached layers are not reused. */
const BASE_LAYER_VERSION = 3;
/** Bump when the way the disk is assembled changes, so earlier bakes of the same spec are not reused. */
const DISK_LAYOUT_VERSION = 2;
const ROOT_LABEL = "kubebake-root";
const ESP_TYPE = "C12A7328-F81F-11D2-BA4B-00A0C93EC93B";
const ROOT_TYPE_AMD64 = "4F68BCE3-E8CD-4DB1-96E7-FBCAF984B709";
const MiB = 1024 * 1024;
const TOOLS = [
  "mmdebstrap",
  "tar",
  "mkfs.ext4",
  "debugfs",
  "dumpe2fs",
  "mkfs.vfat",
  "mcopy",
  "mmd",
  "mlabel",
  "sfdisk",
  "dd",
  "qemu-img",
];
export const DISK_HOST_PACKAGES = "mmdebstrap qemu-utils dosfstools mtools fdisk e2fsprogs systemd-boot-efi";
const SYSTEMD_BOOT = "/usr/lib/systemd/boot/efi/systemd-bootx64.efi";
/**
 * mkfs.ext4's settings, instead of the build host's /etc/mke2fs.conf (newer releases turn on more
 * features, e.g. orphan_file): Debian 12's ext4 choices, the same for every root file system size.
 */
const MKE2FS_CONF = `[defaults]
\tbase_features = sparse_super,large_file,filetype,resize_inode,dir_index,ext_attr
\tdefault_mntopts = acl,user_xattr
\tenable_periodic_fsck = 0
\tblocksize = 4096
\tinode_size = 256
\tinode_ratio = 16384

[fs_types]
\text4 = {
\t\tfeatures = has_journal,extent,huge_file,flex_bg,metadata_csum,64bit,dir_nlink,extra_isize
\t}
`;

/** A UUID derived from the image id, so the same image gets the same disk, byte for byte. */
export function derivedUuid(imageId: string, purpose: string): string {
  const h = sha256Hex(`${imageId}/${purpose}`);
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-4${h.slice(13, 16)}-${((parseInt(h[16]!, 16) & 3) | 8).toString(16)}${h.slice(17, 20)}-${h.slice(20, 32)}`;
}

export function basePackages(spec: ImageSpec, arch: Arch): string[] {
  return [
    ...new Set([...BOOT_PACKAGES, ...spec.base.packages, ...(spec.base.archPackages[arch] ?? [])]),
  ].sort();
}

export function baseLayerKey(spec: ImageSpec, arch: Arch): string {
  return sha256Hex(
    JSON.stringify({
      v: BASE_LAYER_VERSION,
      suite: spec.base.suite,
      arch,
      packages: basePackages(spec, arch),
    }),
  );
}

/** How a disk of this spec is built, for the bake's reuse key: the base layer and the assembly. */
export function diskRecipe(spec: ImageSpec, arch: Arch): string {
  return `layout ${DISK_LAYOUT_VERSION}, base layer ${baseLayerKey(spec, arch)}`;
}

async function preflight(arch: Arch): Promise<void> {
  if (arch !== "amd64") throw invalidInput(`--arch ${arch}: bootable disks are built for amd64 only so far`);
  if (process.getuid?.() !== 0) {
    throw new KubebakeError(
      "bootable disks need root: the root filesystem is assembled with its owners intact (run as root, e.g. in CI or with sudo)",
      ExitCode.missingTool,
    );
  }
  const missing = [];
  for (const tool of TOOLS) {
    const found = await run("sh", ["-c", `command -v ${tool}`]).then(
      () => true,
      () => false,
    );
    if (!found) missing.push(tool);
  }
  if (!existsSync(SYSTEMD_BOOT)) missing.push(SYSTEMD_BOOT);
  if (missing.length > 0) {
    throw new KubebakeError(
      `missing host tools for a disk: ${missing.join(", ")}; install with: apt-get install -y --no-install-recommends ${DISK_HOST_PACKAGES}`,
      ExitCode.missingTool,
    );
  }
}

/** The Debian base layer, made by mmdebstrap once per set of inputs and kept in the cache as a tarball. */
async function baseLayer(
  spec: ImageSpec,
  arch: Arch,
  cacheDir: string,
  progress: Progress,
): Promise<{ key: string; tar: string }> {
  const key = baseLayerKey(spec, arch);
  const tar = join(cacheDir, "base", `${key}.tar`);
  if (existsSync(tar)) return { key, tar };
  await mkdir(join(cacheDir, "base"), { recursive: true });
  const partial = `${tar}.partial-${process.pid}`;
  const forget = removeOnExit(partial);
  progress.step(
    `making the Debian ${spec.base.suite} base layer with mmdebstrap (about a minute; cached after)`,
  );
  try {
    await run(
      "mmdebstrap",
      [
        "--variant=apt",
        `--architectures=${arch}`,
        `--include=${basePackages(spec, arch).join(",")}`,
        "--format=tar",
        // What mmdebstrap leaves that is not the same from one run (or build machine) to the next: the
        // SSH host keys openssh-server's postinst makes (never wanted in an image: per-instance secrets,
        // made at first boot by cloud-init) and the build host's resolv.conf and hostname (dhclient
        // writes resolv.conf at boot; the hostname is set below). With SOURCE_DATE_EPOCH the rest of
        // the tarball is the same, byte for byte, for the same packages from the mirror.
        '--customize-hook=rm -f "$1"/etc/ssh/ssh_host_*',
        '--customize-hook=: > "$1"/etc/resolv.conf',
        '--customize-hook=echo localhost > "$1"/etc/hostname',
        // etcd runs as its own system user (the CIS benchmark's etcd:etcd data folder); useradd takes
        // the change date it writes into /etc/shadow from SOURCE_DATE_EPOCH, so the layer stays the same.
        '--customize-hook=chroot "$1" useradd --system --user-group --no-create-home --home-dir /var/lib/etcd --shell /usr/sbin/nologin --comment "etcd, the cluster store" etcd',
        spec.base.suite,
        partial,
      ],
      {
        env: { SOURCE_DATE_EPOCH: String(TREE_EPOCH) },
      },
    );
    await rename(partial, tar);
  } finally {
    await rm(partial, { force: true });
    forget();
  }
  return { key, tar };
}

const roundUp = (n: number, unit: number) => Math.ceil(n / unit) * unit;

/**
 * Builds a GPT disk (EFI system partition with systemd-boot, ext4 root from the base layer with the
 * image tree laid over it) without loop devices or mounts: mkfs.ext4 -d, mtools, sfdisk and dd.
 */
export async function buildDisk(params: {
  spec: ImageSpec;
  arch: Arch;
  tree: string;
  imageId: string;
  staging: string;
  cacheDir: string;
  format: DiskFormat;
  progress: Progress;
}): Promise<DiskInfo> {
  const { spec, arch, tree, imageId, staging, progress } = params;
  await preflight(arch);
  const base = await baseLayer(spec, arch, params.cacheDir, progress);
  const work = join(staging, "disk-work");
  const root = join(work, "root");
  await mkdir(root, { recursive: true });
  try {
    progress.step("laying the image tree over the base layer");
    await run("tar", ["--numeric-owner", "-xpf", base.tar, "-C", root]);
    await run("cp", ["-a", "--no-preserve=ownership", `${tree}/.`, `${root}/`]);
    await writeFile(join(root, "etc/fstab"), `LABEL=${ROOT_LABEL} / ext4 defaults,errors=remount-ro 0 1\n`);
    await writeFile(join(root, "etc/hostname"), "localhost\n");
    // Modes the process umask would otherwise decide (mkfs.ext4 -d copies them into the image).
    await chmod(root, 0o755);
    for (const file of ["etc/fstab", "etc/hostname"]) await chmod(join(root, file), 0o644);
    await run("sh", ["-c", CLEANUP_SCRIPT], { cwd: root });
    const violations = await checkHygiene(root);
    if (violations.length > 0) {
      throw new KubebakeError(
        `image hygiene:\n${violations.map((v) => `  ${v.path}: ${v.rule}`).join("\n")}`,
        ExitCode.hygiene,
      );
    }
    const boot = (await readdir(join(root, "boot"))).sort();
    const kernel = boot.filter((f) => f.startsWith("vmlinuz-")).pop();
    const initrd = boot.filter((f) => f.startsWith("initrd.img-")).pop();
    if (!kernel || !initrd)
      throw invalidInput("the base layer has no kernel: add a linux-image package to base.archPackages");

    progress.step("making the root filesystem (mkfs.ext4 -d)");
    const rootImg = join(work, "root.ext4");
    const rootSize = roundUp((await ext4Bytes(root)) * 1.2 + 256 * MiB, MiB);
    const rootUuid = derivedUuid(imageId, "root");
    await run("truncate", ["-s", String(rootSize), rootImg]);
    const mke2fsConf = join(work, "mke2fs.conf");
    await writeFile(mke2fsConf, MKE2FS_CONF);
    await run(
      "mkfs.ext4",
      [
        "-q",
        "-F",
        "-L",
        ROOT_LABEL,
        "-U",
        rootUuid,
        "-E",
        `hash_seed=${derivedUuid(imageId, "hash")},root_owner=0:0`,
        "-d",
        root,
        rootImg,
      ],
      {
        // FAKE_TIME: the superblock's and the new inodes' times; LC_ALL=C: -d adds each folder's entries
        // in alphasort order (strcoll), so the same names give the same inode numbers on any host.
        env: { E2FSPROGS_FAKE_TIME: String(TREE_EPOCH), LC_ALL: "C", MKE2FS_CONFIG: mke2fsConf },
      },
    );
    // The times mkfs.ext4 copied from the host folder (atime, ctime) are the build's, not the inputs'.
    await pinExt4Times(rootImg, join(work, "pin-times.debugfs"), TREE_EPOCH);

    progress.step("making the EFI system partition (systemd-boot)");
    const espImg = join(work, "esp.vfat");
    const espSize = 256 * MiB;
    const volumeId = derivedUuid(imageId, "esp").slice(0, 8);
    await run("truncate", ["-s", String(espSize), espImg]);
    // mkfs.vfat 4.2 stamps the volume label's directory entry with the clock (it reads no
    // SOURCE_DATE_EPOCH); --invariant fixes the time but also the serial, so mlabel (mtools, which
    // does read SOURCE_DATE_EPOCH) then writes the label entry and the image's own serial.
    await run("mkfs.vfat", ["-F", "32", "--invariant", espImg]);
    const files = join(work, "esp-files");
    await mkdir(join(files, "loader/entries"), { recursive: true });
    await copyFile(SYSTEMD_BOOT, join(files, "BOOTX64.EFI"));
    await copyFile(join(root, "boot", kernel), join(files, "vmlinuz"));
    await copyFile(join(root, "boot", initrd), join(files, "initrd.img"));
    await writeFile(join(files, "loader/loader.conf"), "default kubebake.conf\ntimeout 0\n");
    await writeFile(
      join(files, "loader/entries/kubebake.conf"),
      `title kubebake ${spec.name}\nlinux /vmlinuz\ninitrd /initrd.img\noptions root=LABEL=${ROOT_LABEL} ro console=tty0 console=ttyS0,115200n8\n`,
    );
    await run("find", [files, "-exec", "touch", "-h", "-d", `@${TREE_EPOCH}`, "{}", "+"]);
    const mtools = { env: { MTOOLS_SKIP_CHECK: "1", SOURCE_DATE_EPOCH: String(TREE_EPOCH) } };
    await run("mlabel", ["-N", volumeId, "-i", espImg, "::ESP"], mtools);
    await run("mmd", ["-i", espImg, "::/EFI", "::/EFI/BOOT", "::/loader", "::/loader/entries"], mtools);
    await run("mcopy", ["-m", "-i", espImg, join(files, "BOOTX64.EFI"), "::/EFI/BOOT/BOOTX64.EFI"], mtools);
    await run(
      "mcopy",
      ["-m", "-i", espImg, join(files, "vmlinuz"), join(files, "initrd.img"), "::/"],
      mtools,
    );
    await run("mcopy", ["-m", "-i", espImg, join(files, "loader/loader.conf"), "::/loader/"], mtools);
    await run(
      "mcopy",
      ["-m", "-i", espImg, join(files, "loader/entries/kubebake.conf"), "::/loader/entries/"],
      mtools,
    );

    progress.step(`assembling the GPT disk (${params.format})`);
    const raw = join(work, "disk.raw");
    const espStart = MiB;
    const rootStart = espStart + espSize;
    const total = rootStart + rootSize + MiB; // the backup GPT lives in the last MiB
    await run("truncate", ["-s", String(total), raw]);
    const sectors = (n: number) => n / 512;
    const table = [
      "label: gpt",
      `label-id: ${derivedUuid(imageId, "disk")}`,
      "unit: sectors",
      `start=${sectors(espStart)}, size=${sectors(espSize)}, type=${ESP_TYPE}, uuid=${derivedUuid(imageId, "esp-part")}, name="ESP"`,
      `start=${sectors(rootStart)}, size=${sectors(rootSize)}, type=${ROOT_TYPE_AMD64}, uuid=${derivedUuid(imageId, "root-part")}, name="root"`,
      "",
    ].join("\n");
    await run("sfdisk", ["--quiet", "--no-reread", "--no-tell-kernel", raw], { input: table });
    await run("dd", [
      `if=${espImg}`,
      `of=${raw}`,
      "bs=1M",
      `seek=${espStart / MiB}`,
      "conv=notrunc,sparse",
      "status=none",
    ]);
    await run("dd", [
      `if=${rootImg}`,
      `of=${raw}`,
      "bs=1M",
      `seek=${rootStart / MiB}`,
      "conv=notrunc,sparse",
      "status=none",
    ]);

    progress.step(`hashing the disk`);
    const rawSha256 = await sha256File(raw);
    const file = `disk.${params.format}`;
    const dest = join(staging, file);
    if (params.format === "qcow2") await run("qemu-img", ["convert", "-f", "raw", "-O", "qcow2", raw, dest]);
    else await rename(raw, dest);
    return {
      format: params.format,
      file,
      sha256: params.format === "raw" ? rawSha256 : await sha256File(dest),
      size: (await stat(dest)).size,
      baseLayer: base.key,
      rawSha256,
    };
  } finally {
    await rm(work, { recursive: true, force: true });
  }
}
