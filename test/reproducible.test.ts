import { spawnSync } from "node:child_process";
import {
  chmodSync,
  linkSync,
  mkdirSync,
  readFileSync,
  statSync,
  symlinkSync,
  utimesSync,
  writeFileSync,
} from "node:fs";
import { join } from "node:path";
import {
  debugfsErrors,
  ext4Bytes,
  pinExt4Times,
  pinTimesScript,
  usedInodes,
} from "../src/image/reproducible";
import { writeEntries } from "../src/bake/tree";
import { tempDir } from "./helpers";

// The pieces that make the root file system the same from one bake to the next. The whole disk, baked
// twice (once on an empty cache), is compared in boot.test.ts, which already pays for a bake.

const work = tempDir("reproducible");
const EPOCH = 315532800;

const dumpe2fs = `Filesystem volume name:   root
Inodes per group:         8
Inode size:	          256

Group 0: (Blocks 0-32767) csum 0xe81f [ITABLE_ZEROED]
  Inode table at 140-631 (+140)
  0 free blocks, 0 free inodes, 974 directories
  Free blocks: 
  Free inodes: 
Group 1: (Blocks 32768-65535) csum 0x2383 [ITABLE_ZEROED]
  Free blocks: 40000-40010
  Free inodes: 10, 12-14
Group 2: (Blocks 65536-98303) csum 0x86a8 [INODE_UNINIT, ITABLE_ZEROED]
  Free blocks: 65536-98303
  Free inodes: 17-24
`;

describe("usedInodes", () => {
  test("every inode of a group with no free ones, the complement of the free list elsewhere", () => {
    expect(usedInodes(dumpe2fs)).toEqual([1, 2, 3, 4, 5, 6, 7, 8, 9, 11, 15, 16]);
  });

  test("an answer that is not dumpe2fs's is an error, not an empty list", () => {
    expect(() => usedInodes("Inodes per group: 8\n")).toThrow("no groups");
    expect(() => usedInodes("Group 0: (Blocks 0-1)\n  Free inodes: \n")).toThrow("Inodes per group");
  });
});

test("pinTimesScript sets the three times a host gives (atime, ctime, mtime) on each inode", () => {
  expect(pinTimesScript([2, 11], 42)).toBe(
    "sif <2> atime @42\nsif <2> ctime @42\nsif <2> mtime @42\n" +
      "sif <11> atime @42\nsif <11> ctime @42\nsif <11> mtime @42\n",
  );
});

test("debugfsErrors keeps what follows the banner", () => {
  expect(debugfsErrors("debugfs 1.47.0 (5-Feb-2023)\n")).toEqual([]);
  expect(debugfsErrors("debugfs 1.47.0 (5-Feb-2023)\nsif: Bad inode - <99999>\n")).toEqual([
    "sif: Bad inode - <99999>",
  ]);
});

describe("ext4Bytes", () => {
  test("counts 4 KiB blocks of files, folders and long symlinks, hard links once", async () => {
    const root = join(work, "sized");
    mkdirSync(join(root, "sub"), { recursive: true });
    writeFileSync(join(root, "one-byte"), "x");
    writeFileSync(join(root, "sub", "two-blocks"), Buffer.alloc(4097));
    linkSync(join(root, "sub", "two-blocks"), join(root, "hard-link"));
    symlinkSync("short", join(root, "short-link"));
    symlinkSync("x".repeat(60), join(root, "long-link"));
    writeFileSync(join(root, "empty"), "");
    // the folders root and sub (2) + one-byte (1) + two-blocks once (2) + long-link (1); the rest none
    expect(await ext4Bytes(root)).toBe(4096 * (2 + 1 + 2 + 1));
  });
});

describe("pinExt4Times", () => {
  const hasE2fsprogs = spawnSync("sh", ["-c", "command -v mkfs.ext4 && command -v debugfs"]).status === 0;
  const withTools = hasE2fsprogs ? test : test.skip;

  const mkfs = (from: string, image: string) => {
    writeFileSync(image, "");
    const result = spawnSync(
      "mkfs.ext4",
      [
        "-q",
        "-F",
        "-U",
        "8f3c7d2e-1b4a-4c5d-9e6f-0a1b2c3d4e5f",
        "-E",
        "hash_seed=0b6c1f0e-7c2d-4a8b-9d3e-5f6a7b8c9d0e",
        "-d",
        from,
        image,
        "8M",
      ],
      { env: { ...process.env, E2FSPROGS_FAKE_TIME: String(EPOCH), LC_ALL: "C" }, encoding: "utf8" },
    );
    if (result.status !== 0) throw new Error(result.stderr);
  };

  withTools(
    "two file systems from the same files whose host times differ are the same once pinned, every time at the epoch",
    async () => {
      const tree = join(work, "tree");
      mkdirSync(join(tree, "etc"), { recursive: true });
      writeFileSync(join(tree, "etc", "motd"), "hello\n");
      writeFileSync(join(tree, "script"), "#!/bin/sh\n");
      const first = join(work, "first.ext4");
      const second = join(work, "second.ext4");
      mkfs(tree, first);
      // What a second bake's host gives the same files: other access and modification times, and a
      // later change time (chmod after a second).
      for (const path of ["etc", "etc/motd", "script", "."]) utimesSync(join(tree, path), 1e9, 1e9);
      await new Promise((r) => setTimeout(r, 1100));
      for (const path of ["etc/motd", "script"]) chmodSync(join(tree, path), 0o755);
      for (const path of ["etc/motd", "script"]) chmodSync(join(tree, path), 0o644);
      mkfs(tree, second);
      expect(readFileSync(first).equals(readFileSync(second))).toBe(false);

      await pinExt4Times(first, join(work, "first.script"), EPOCH);
      await pinExt4Times(second, join(work, "second.script"), EPOCH);
      expect(readFileSync(first).equals(readFileSync(second))).toBe(true);
      const stat = spawnSync("debugfs", ["-R", "stat /etc/motd", first], { encoding: "utf8" }).stdout;
      for (const field of ["ctime", "atime", "mtime", "crtime"])
        expect(stat).toMatch(
          new RegExp(`^ *${field}: 0x12cea600:00000000 -- Tue Jan  1 00:00:00 1980$`, "m"),
        );
      const fsck = spawnSync("e2fsck", ["-fn", first], { encoding: "utf8" });
      expect(fsck.status).toBe(0);
    },
  );
});

test("rendered files get their modes whatever the umask of the bake", async () => {
  const old = process.umask(0o077);
  try {
    const tree = join(work, "umask");
    await writeEntries(tree, [
      { path: "/usr/bin/tool", kind: "file", mode: 0o755, content: Buffer.from("#!/bin/sh\n") },
      { path: "/etc/tool.conf", kind: "file", mode: 0o644, content: Buffer.from("x\n") },
    ]);
    expect(statSync(join(tree, "usr/bin/tool")).mode & 0o7777).toBe(0o755);
    expect(statSync(join(tree, "etc/tool.conf")).mode & 0o7777).toBe(0o644);
  } finally {
    process.umask(old);
  }
});
