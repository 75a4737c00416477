/**
 * The Secrets encryption config, its rotation steps, and the file they rewrite (the real API server reads
 * them in test/control-plane.test.ts).
 */
import { mkdirSync, readdirSync, readFileSync, rmdirSync, statSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { parse } from "yaml";
import { ExitCode } from "../../src/errors";
import {
  encryptionConfig,
  encryptionKeys,
  newKey,
  rotate,
  type EncryptionKey,
} from "../../src/pki/encryption";
import { rewriteEncryptionConfig } from "../../src/pki/write";
import { tempDir } from "../helpers";

const day1 = new Date("2026-12-01T10:00:00Z");
const day2 = new Date("2026-12-09T23:59:59Z");
const bytes = (fill: number) => Buffer.alloc(32, fill);
const key = (name: string, fill: number): EncryptionKey => ({ name, secret: bytes(fill).toString("base64") });

describe("a key", () => {
  test("is named by its UTC day, numbered when that name is taken", () => {
    expect(newKey(day1, [], bytes(1))).toEqual({ name: "key-20261201", secret: bytes(1).toString("base64") });
    expect(newKey(day1, ["key-20261201"]).name).toBe("key-20261201-2");
    expect(newKey(day1, ["key-20261201", "key-20261201-2"]).name).toBe("key-20261201-3");
    expect(newKey(day1, ["key-20261130"]).name).toBe("key-20261201");
  });

  test("is 32 fresh random bytes by default", () => {
    const a = Buffer.from(newKey(day1).secret, "base64");
    const b = Buffer.from(newKey(day1).secret, "base64");
    expect(a).toHaveLength(32);
    expect(a.equals(b)).toBe(false);
  });
});

describe("the config", () => {
  test("writes with the first key, reads with every key, and falls back to identity only to read", () => {
    const text = encryptionConfig([key("key-b", 2), key("key-a", 1)]);
    expect(parse(text)).toEqual({
      apiVersion: "apiserver.config.k8s.io/v1",
      kind: "EncryptionConfiguration",
      resources: [
        {
          resources: ["secrets"],
          providers: [
            {
              secretbox: {
                keys: [
                  { name: "key-b", secret: bytes(2).toString("base64") },
                  { name: "key-a", secret: bytes(1).toString("base64") },
                ],
              },
            },
            { identity: {} },
          ],
        },
      ],
    });
    expect(encryptionKeys(text, "f.yaml")).toEqual([key("key-b", 2), key("key-a", 1)]);
  });

  test.each([
    // the parser's first line only, in the message
    ["not: [yaml", /^f\.yaml: not YAML \([^\n)]{12,}/],
    ["", /^f\.yaml: kind: expected EncryptionConfiguration$/],
    ["kind: Other\n", /^f\.yaml: kind: expected EncryptionConfiguration$/],
    [
      "kind: EncryptionConfiguration\nresources: [{resources: [configmaps]}]\n",
      /^f\.yaml: resources: expected one entry for \[secrets\]/,
    ],
    [
      "kind: EncryptionConfiguration\nresources: [{resources: [secrets]}, {resources: [secrets]}]\n",
      /^f\.yaml: resources: expected one entry/,
    ],
    [
      "kind: EncryptionConfiguration\nresources: [{resources: [secrets], providers: [{identity: {}}]}]\n",
      /^f\.yaml: resources\[0\]\.providers\[0\]\.secretbox\.keys: expected at least one key$/,
    ],
    [
      "kind: EncryptionConfiguration\nresources: [{resources: [secrets], providers: [{secretbox: {keys: []}}]}]\n",
      /secretbox\.keys: expected at least one key$/,
    ],
    [
      `kind: EncryptionConfiguration\nresources: [{resources: [secrets], providers: [{secretbox: {keys: [{name: Key_1, secret: ${bytes(1).toString("base64")}}]}}]}]\n`,
      /secretbox\.keys\[0\]\.name: expected lowercase letters, digits and '-'$/,
    ],
    [
      `kind: EncryptionConfiguration\nresources: [{resources: [secrets], providers: [{secretbox: {keys: [{name: key_1, secret: ${bytes(1).toString("base64")}}]}}]}]\n`,
      /secretbox\.keys\[0\]\.name: expected lowercase letters, digits and '-'$/,
    ],
    [
      `kind: EncryptionConfiguration\nresources: [{resources: [secrets], providers: [{secretbox: {keys: [~]}}]}]\n`,
      /secretbox\.keys\[0\]\.name: expected lowercase letters, digits and '-'$/,
    ],
    [
      `kind: EncryptionConfiguration\nresources: [{resources: [secrets], providers: [{secretbox: {keys: [{name: k, secret: ${Buffer.alloc(16).toString("base64")}}]}}]}]\n`,
      /secretbox\.keys\[0\]\.secret: expected base64 of 32 bytes$/,
    ],
    [
      `kind: EncryptionConfiguration\nresources: [{resources: [secrets], providers: [{secretbox: {keys: [{name: k}]}}]}]\n`,
      /secretbox\.keys\[0\]\.secret: expected base64 of 32 bytes$/,
    ],
  ])("a config kubebake did not write is refused naming the field: %s", (text, message) => {
    let thrown: unknown;
    try {
      encryptionKeys(text, "f.yaml");
    } catch (error) {
      thrown = error;
    }
    expect(thrown).toMatchObject({
      exitCode: ExitCode.invalidInput,
      message: expect.stringMatching(message),
    });
  });
});

describe("rotation", () => {
  const first = [key("key-20261201", 1)];

  test("add → use → retire: learn to read, then write with the new key, then forget the old one", () => {
    const added = rotate(first, "add", day2);
    expect(added.map((k) => k.name)).toEqual(["key-20261201", "key-20261209"]);
    expect(added[0]).toEqual(first[0]); // the writing key is unchanged until "use"
    const used = rotate(added, "use", day2);
    expect(used).toEqual([added[1], added[0]]);
    expect(rotate(used, "retire", day2)).toEqual([added[1]]);
  });

  test("use puts the newest (last) key first and keeps the others in order, however many a hand-made file has", () => {
    const three = [key("a", 1), key("b", 2), key("c", 3)];
    expect(rotate(three, "use", day1)).toEqual([three[2], three[0], three[1]]);
    expect(rotate(three, "retire", day1)).toEqual([three[0]]);
  });

  test("retire right after add cancels the rotation: the key nothing wrote with goes", () => {
    expect(rotate(rotate(first, "add", day2), "retire", day2)).toEqual(first);
  });

  test("a new key on the same day gets its own name", () => {
    expect(rotate(first, "add", day1).map((k) => k.name)).toEqual(["key-20261201", "key-20261201-2"]);
  });

  test.each([
    [
      [key("a", 1), key("b", 2)],
      "add",
      /a rotation is under way \(keys a, b\): finish it with "use" and "retire" first/,
    ],
    [[key("a", 1)], "use", /only key a: "add" a key before using it/],
    [[key("a", 1)], "retire", /only key a: nothing to retire/],
  ] as const)("a step out of order is refused: %j %s", (keys, step, message) => {
    expect(() => rotate(keys, step, day1)).toThrow(message);
  });
});

describe("rewriting the file", () => {
  const work = tempDir("encryption-file");
  const file = join(work, "encryption-config.yaml");

  test("one step replaces the file whole, 0600, and returns the key names, the writing key first", async () => {
    writeFileSync(file, encryptionConfig([key("key-20261201", 1)]), { mode: 0o644 });
    expect(await rewriteEncryptionConfig(file, "add", day2)).toEqual(["key-20261201", "key-20261209"]);
    expect(statSync(file).mode & 0o777).toBe(0o600);
    expect(encryptionKeys(readFileSync(file, "utf8"), file).map((k) => k.name)).toEqual([
      "key-20261201",
      "key-20261209",
    ]);
    expect(await rewriteEncryptionConfig(file, "use", day2)).toEqual(["key-20261209", "key-20261201"]);
    expect(readdirSync(work)).toEqual(["encryption-config.yaml"]); // no temporary file left
  });

  test("a refused step or a file that is not a config changes nothing and exits 2, naming the file", async () => {
    writeFileSync(file, encryptionConfig([key("key-20261201", 1)]));
    const before = readFileSync(file, "utf8");
    await expect(rewriteEncryptionConfig(file, "retire", day2)).rejects.toMatchObject({
      exitCode: ExitCode.invalidInput,
      message: "only key key-20261201: nothing to retire",
    });
    expect(readFileSync(file, "utf8")).toBe(before);
    writeFileSync(file, "kind: Other\n");
    await expect(rewriteEncryptionConfig(file, "add", day2)).rejects.toMatchObject({
      message: `${file}: kind: expected EncryptionConfiguration`,
    });
    await expect(rewriteEncryptionConfig(join(work, "absent.yaml"), "add", day2)).rejects.toMatchObject({
      exitCode: ExitCode.invalidInput,
      message: `--file ${join(work, "absent.yaml")}: cannot read it (ENOENT)`,
    });
    expect(readdirSync(work)).toEqual(["encryption-config.yaml"]);
  });

  test("a file that cannot be written is an output error naming --file, and the config stays as it was", async () => {
    writeFileSync(file, encryptionConfig([key("key-20261201", 1)]));
    const before = readFileSync(file, "utf8");
    // The temporary file's name is taken (by a folder): the new config cannot be written beside it.
    const blocker = join(work, `.encryption-config.yaml.${process.pid}.tmp`);
    mkdirSync(blocker);
    await expect(rewriteEncryptionConfig(file, "add", day2)).rejects.toMatchObject({
      message: expect.stringContaining(`--file ${file}`),
    });
    expect(readFileSync(file, "utf8")).toBe(before);
    rmdirSync(blocker);
  });
});
