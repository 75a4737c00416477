/**
 * `bake-image --target gce` end to end against the Google API fake, on a bake folder a raw bake left: the
 * bake is reused, its disk published once, the manifest gains builds[]; the same command again publishes
 * nothing. And the checks made before any bake: options, credentials, options of another cloud.
 */
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { ExitCode } from "../../../src/errors";
import { fixtureMirror, fixtureSpec, tempDir } from "../../helpers";
import { fixtureRawBake, noCredentials, runCliAsync } from "../cli-run";
import { startGcpFake } from "./helpers";

jest.mock("../../../src/image/disk", () => ({
  ...jest.requireActual("../../../src/image/disk"),
  buildDisk: (params: { staging: string; imageId: string }) =>
    jest.requireActual("../cli-run").standInDisk(params),
}));

const work = tempDir("publish-gce-cli");
const out = join(work, "out");
const cache = join(work, "cache");
const bakeArgs = ["--spec", fixtureSpec, "--mirror", fixtureMirror, "--cache", cache, "--arch", "amd64"];

let gcp: Awaited<ReturnType<typeof startGcpFake>>;
beforeAll(async () => (gcp = await startGcpFake()));
afterAll(async () => {
  await gcp.fake.stop();
  // Every request the CLI sent is one the real APIs accept.
  expect(gcp.fake.invalid).toEqual([]);
});

test("bake-image --target gce --json: reuses the raw bake, publishes it once, records builds[]", async () => {
  const baked = await fixtureRawBake(out, cache);
  const env = {
    KUBEBAKE_GCE_ENDPOINTS: JSON.stringify({
      compute: `http://127.0.0.1:${gcp.fake.port}`,
      storage: gcp.endpoints.storage,
    }),
    KUBEBAKE_GCE_TEST_TOKEN: "test-token",
    GOOGLE_CLOUD_PROJECT: "kb-project",
  };
  const run = () =>
    runCliAsync(["--target", "gce", ...bakeArgs, "--out", out, "--bucket", gcp.bucket, "--json"], env);

  const first = await run();
  expect(first.stderr).toBe("");
  expect(first.code).toBe(0);
  const printed = JSON.parse(first.stdout);
  expect(printed.reused).toBe(true);
  expect(printed.imageId).toBe(baked.manifest.imageId);
  expect(printed.builds).toHaveLength(1);
  expect(printed.builds[0]).toMatchObject({
    builder_type: "googlecompute",
    custom_data: {
      imageId: baked.manifest.imageId,
      diskSha256: baked.manifest.disk!.sha256,
      project: "kb-project",
    },
  });
  const onDisk = JSON.parse(readFileSync(join(out, "manifest.json"), "utf8"));
  expect(onDisk.builds).toEqual(printed.builds);
  const inserts = () => gcp.fake.log.filter((e) => e.methodId === "compute.images.insert").length;
  expect(inserts()).toBe(1);
  expect(gcp.fake.log.map((e) => e.methodId)).toContain("storage.objects.insert");
  // The archive was only the import's input.
  expect(gcp.storage.objects(gcp.bucket)).toEqual([]);

  const uploads = gcp.fake.log.length;
  const second = await run();
  expect(second.code).toBe(0);
  expect(JSON.parse(second.stdout).builds.map((b: { artifact_id: string }) => b.artifact_id)).toEqual([
    printed.builds[0].artifact_id,
  ]);
  expect(inserts()).toBe(1);
  const secondCalls = gcp.fake.log.slice(uploads).map((e) => e.methodId);
  expect(secondCalls).not.toContain("storage.objects.insert");
});

describe("checked before the bake", () => {
  const bare = (args: string[], env: NodeJS.ProcessEnv = {}) =>
    runCliAsync([...bakeArgs, "--out", join(work, "never"), ...args], {
      ...noCredentials(join(work, "home")),
      GOOGLE_CLOUD_PROJECT: "",
      CLOUDSDK_CORE_PROJECT: "",
      ...env,
    });

  test("no credentials: one line, exit 7", async () => {
    const result = await bare(["--target", "gce", "--project", "p", "--bucket", "b"]);
    expect(result.code).toBe(ExitCode.cloudFailed);
    expect(result.stderr).toMatch(/^error: GCE credentials: .*application-default login.*\n$/);
    expect(result.stderr.split("\n")).toHaveLength(2);
  });

  test("no --bucket, no project: exit 2 naming the option", async () => {
    const noBucket = await bare(["--target", "gce", "--project", "p"]);
    expect(noBucket.code).toBe(ExitCode.invalidInput);
    expect(noBucket.stderr).toMatch(/^error: --target gce needs --bucket\n/);
    const noProject = await bare(["--target", "gce", "--bucket", "b"]);
    expect(noProject.code).toBe(ExitCode.invalidInput);
    expect(noProject.stderr).toMatch(/needs --project \(or GOOGLE_CLOUD_PROJECT or CLOUDSDK_CORE_PROJECT\)/);
  });

  test("a gce option with --target aws or dir: exit 2 naming its target", async () => {
    for (const target of ["aws", "dir"]) {
      const result = await bare(["--target", target, "--bucket", "b"]);
      expect(result.code).toBe(ExitCode.invalidInput);
      expect(result.stderr).toMatch(/^error: --bucket applies to --target gce only\n/);
    }
  });
});
