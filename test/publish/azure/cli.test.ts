/**
 * `bake-image --target azure` end to end against azurite and the ARM fake, on a bake folder a raw bake
 * left: the bake is reused, its disk published once as a managed image, the manifest gains builds[]; the
 * same command again publishes nothing. And the checks made before any bake.
 */
import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { ExitCode } from "../../../src/errors";
import { startComputeFake, type ComputeFake } from "../../fakes/azure/compute";
import { fixtureMirror, fixtureSpec, tempDir } from "../../helpers";
import { fixtureRawBake, noCredentials, runCliAsync } from "../cli-run";
import { ACCOUNT_KEY, startAzurite, type Azurite } from "./azurite";

jest.mock("../../../src/image/disk", () => ({
  ...jest.requireActual("../../../src/image/disk"),
  buildDisk: (params: { staging: string; imageId: string }) =>
    jest.requireActual("../cli-run").standInDisk(params),
}));

const SUBSCRIPTION = "00000000-1111-2222-3333-444444444444";
const work = tempDir("publish-azure-cli");
const out = join(work, "out");
const cache = join(work, "cache");
const bakeArgs = ["--spec", fixtureSpec, "--mirror", fixtureMirror, "--cache", cache, "--arch", "amd64"];

let azurite: Azurite;
let compute: ComputeFake;
beforeAll(async () => {
  [azurite, compute] = await Promise.all([startAzurite(), startComputeFake()]);
}, 60_000);
afterAll(async () => {
  await azurite?.stop();
  await compute?.fake.stop();
});

test("bake-image --target azure --json: reuses the raw bake, publishes it once, records builds[]", async () => {
  const baked = await fixtureRawBake(out, cache);
  const caFile = join(work, "arm-ca.pem");
  writeFileSync(caFile, compute.fake.ca);
  const env = {
    KUBEBAKE_AZURE_ENDPOINTS: JSON.stringify({
      resourceManager: compute.fake.endpoint,
      blob: azurite.blobUrl,
      caFile,
    }),
    KUBEBAKE_AZURE_TEST_TOKEN: "test-token",
    KUBEBAKE_POLL_MS: "10",
    AZURE_SUBSCRIPTION_ID: SUBSCRIPTION,
    // azurite's fixed, publicly documented development key.
    AZURE_STORAGE_KEY: ACCOUNT_KEY,
  };
  const options = ["--resource-group", "rg-images", "--location", "westeurope"];
  const storage = ["--storage-account", azurite.account, "--container", "images"];
  const run = () =>
    runCliAsync(["--target", "azure", ...bakeArgs, "--out", out, ...options, ...storage, "--json"], env);

  const first = await run();
  expect(first.stderr).toBe("");
  expect(first.code).toBe(0);
  const printed = JSON.parse(first.stdout);
  expect(printed.reused).toBe(true);
  expect(printed.builds).toHaveLength(1);
  expect(printed.builds[0]).toMatchObject({
    builder_type: "azure-arm",
    custom_data: { imageId: baked.manifest.imageId, diskSha256: baked.manifest.disk!.sha256 },
  });
  expect(printed.builds[0].artifact_id).toMatch(
    new RegExp(
      `^/subscriptions/${SUBSCRIPTION}/resourceGroups/rg-images/providers/Microsoft.Compute/images/`,
      "i",
    ),
  );
  const onDisk = JSON.parse(readFileSync(join(out, "manifest.json"), "utf8"));
  expect(onDisk.builds).toEqual(printed.builds);
  expect(compute.store.all()).toHaveLength(1);
  // The VHD was only the image's source.
  const blobs: string[] = [];
  for await (const blob of azurite.service.getContainerClient("images").listBlobsFlat())
    blobs.push(blob.name);
  expect(blobs).toEqual([]);

  const calls = compute.fake.log.length;
  const second = await run();
  expect(second.code).toBe(0);
  expect(JSON.parse(second.stdout).builds[0].artifact_id).toBe(printed.builds[0].artifact_id);
  expect(compute.fake.log.slice(calls).map((e) => e.method)).not.toContain("PUT");
  expect(compute.store.all()).toHaveLength(1);
  expect(compute.fake.violations).toEqual([]);
});

describe("checked before the bake", () => {
  const bare = (args: string[]) =>
    runCliAsync([...bakeArgs, "--out", join(work, "never"), ...args], {
      ...noCredentials(join(work, "home")),
      AZURE_SUBSCRIPTION_ID: "",
    });
  const complete = ["--subscription", SUBSCRIPTION, "--resource-group", "rg", "--location", "westeurope"];

  test("no credentials: one line, exit 7", async () => {
    const result = await bare(["--target", "azure", ...complete, "--storage-account", "kbimages"]);
    expect(result.code).toBe(ExitCode.cloudFailed);
    expect(result.stderr).toMatch(/^error: Azure: no usable credentials .*az login.*\n$/);
    expect(result.stderr.split("\n")).toHaveLength(2);
  }, 60_000);

  test("no --resource-group, no subscription: exit 2 naming the option", async () => {
    const noGroup = await bare(["--target", "azure", "--subscription", SUBSCRIPTION, "--location", "x"]);
    expect(noGroup.code).toBe(ExitCode.invalidInput);
    expect(noGroup.stderr).toMatch(/^error: --target azure needs --resource-group\n/);
    const noSubscription = await bare(["--target", "azure", "--resource-group", "rg"]);
    expect(noSubscription.code).toBe(ExitCode.invalidInput);
    expect(noSubscription.stderr).toMatch(/needs --subscription \(or AZURE_SUBSCRIPTION_ID\)/);
  });

  test("an azure option with --target gce: exit 2 naming its target", async () => {
    const result = await bare(["--target", "gce", "--bucket", "b", "--keep-blob"]);
    expect(result.code).toBe(ExitCode.invalidInput);
    expect(result.stderr).toMatch(/^error: --keep-blob applies to --target azure only\n/);
  });
});
