import { mkdirSync } from "node:fs";
import { join } from "node:path";
import { spawnSync } from "node:child_process";
import { cleanRoot, dirty, rootWith, unitsExpected, unitsRoot } from "./hygiene-fixtures";
import { runCli, tempDir } from "./helpers";

// The CLI over the hygiene check (test/hygiene.test.ts has the rules, in-process): apart so that mutation
// testing, which cannot see into a spawned CLI, does not run them once per mutant.
const work = tempDir("image-check");

test("kubebake image check: exit 6 with the list, 0 when clean, 2 for what is not an image", () => {
  const dirtyRoot = rootWith(join(work, "dirty"), dirty);
  const bad = runCli("kubebake", ["image", "check", dirtyRoot]);
  expect(bad.code).toBe(6);
  expect(bad.stdout).toContain("/root/.bash_history: no shell histories\n");
  expect(bad.stderr).toBe(`error: ${dirtyRoot}: 13 hygiene violation(s)\n`);
  const json = runCli("kubebake", ["image", "check", "--json", dirtyRoot]);
  expect(JSON.parse(json.stdout).violations).toHaveLength(13);
  const good = runCli("kubebake", ["image", "check", cleanRoot(join(work, "clean"))]);
  expect(good.code).toBe(0);
  const none = runCli("kubebake", ["image", "check", join(work, "nothing-here")]);
  expect(none.code).toBe(2);
  expect(none.stderr).toMatch(/nothing-here: no such file or folder/);
});

test("raw and qcow2 disks (read with debugfs) are checked the same way as a folder", () => {
  const root = unitsRoot(join(work, "units"));
  const disk = join(work, "units-disk");
  mkdirSync(disk);
  const sh = (script: string) => {
    const result = spawnSync("sh", ["-ec", script], { cwd: disk, encoding: "utf8" });
    expect(result.stderr).not.toMatch(/error|failed/i);
    expect(result.status).toBe(0);
  };
  // A GPT disk with one x86-64 root partition at 1 MiB holding an ext4 made from the tree.
  sh(
    `truncate -s 20M root.ext4 && mkfs.ext4 -q -F -d ${root} root.ext4 && truncate -s 22M disk.raw && ` +
      `echo 'label: gpt\nstart=2048, size=40960, type=4F68BCE3-E8CD-4DB1-96E7-FBCAF984B709' | sfdisk -q disk.raw && ` +
      `dd if=root.ext4 of=disk.raw bs=1M seek=1 conv=notrunc status=none && qemu-img convert -O qcow2 disk.raw disk.qcow2`,
  );
  for (const file of ["disk.raw", "disk.qcow2"]) {
    const result = runCli("kubebake", ["image", "check", "--json", join(disk, file)]);
    expect({ file, code: result.code }).toEqual({ file, code: 6 });
    expect(JSON.parse(result.stdout).violations).toEqual(unitsExpected);
  }
});
