/**
 * `bake-image --target aws` end to end against moto, on a bake folder a raw bake left (its disk a stand-in:
 * a real disk needs root and minutes): the unchanged bake is reused, its disk published, the manifest
 * gains builds[]; the same command again publishes nothing new.
 */
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { DescribeImagesCommand } from "@aws-sdk/client-ec2";
import { fixtureMirror, fixtureSpec, runCli, tempDir } from "../../helpers";
import { fixtureRawBake } from "../cli-run";
import { clientsFor, REGION } from "../../aws/fixture";
import { startMoto, type Moto } from "../../aws/moto";

jest.mock("../../../src/image/disk", () => ({
  ...jest.requireActual("../../../src/image/disk"),
  buildDisk: (params: { staging: string; imageId: string }) =>
    jest.requireActual("../cli-run").standInDisk(params),
}));

let moto: Moto;
beforeAll(async () => (moto = await startMoto()), 60_000);
afterAll(() => moto?.stop());
const work = tempDir("publish-cli");

test("bake-image --target aws --json: reuses the raw bake, publishes it once, records builds[]", async () => {
  const out = join(work, "out");
  const cache = join(work, "cache");
  const baked = await fixtureRawBake(out, cache);
  const env = {
    AWS_ENDPOINT_URL: moto.endpoint,
    AWS_ACCESS_KEY_ID: "testing",
    AWS_SECRET_ACCESS_KEY: "testing",
    KUBEBAKE_POLL_MS: "5",
  };
  const args = ["--target", "aws", "--spec", fixtureSpec, "--mirror", fixtureMirror, "--cache", cache];
  const run = () =>
    runCli("bake-image", [...args, "--arch", "amd64", "--out", out, "--region", REGION, "--json"], env);

  const first = run();
  expect(first.stderr).toBe("");
  expect(first.code).toBe(0);
  const printed = JSON.parse(first.stdout);
  expect(printed.reused).toBe(true);
  expect(printed.imageId).toBe(baked.manifest.imageId);
  expect(printed.builds).toHaveLength(1);
  const [region, ami] = printed.builds[0].artifact_id.split(":");
  expect(region).toBe(REGION);
  const onDisk = JSON.parse(readFileSync(join(out, "manifest.json"), "utf8"));
  expect(onDisk.builds).toEqual(printed.builds);
  expect(onDisk.blockDigests).toBe(`blocks/${baked.manifest.disk!.sha256}.json`);

  const second = run();
  expect(second.code).toBe(0);
  expect(JSON.parse(second.stdout).builds.map((b: { artifact_id: string }) => b.artifact_id)).toEqual([
    `${REGION}:${ami}`,
  ]);
  const images = await clientsFor(moto.endpoint).ec2.send(new DescribeImagesCommand({ Owners: ["self"] }));
  expect(images.Images!.map((i) => i.ImageId)).toEqual([ami]);
});
