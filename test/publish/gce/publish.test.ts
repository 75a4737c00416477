import { execFileSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { ExitCode } from "../../../src/errors";
import { publishGce, type GcePublishOptions } from "../../../src/publish/gce";
import { IMAGE_ID_LABEL } from "../../../src/publish/gce/names";
import { writeGceTarball } from "../../../src/publish/gce/tarball";
import { silentProgress } from "../../../src/util/progress";
import { manifestFor, MiB, startGcpFake, syntheticDisk, testAuth } from "./helpers";

let work: string;
let disk: string;
beforeAll(() => {
  work = mkdtempSync(join(tmpdir(), "kubebake-gce-"));
  disk = join(work, "disk.img");
  syntheticDisk(disk);
});
afterAll(() => rmSync(work, { recursive: true, force: true }));

describe("the GCE archive", () => {
  it("is byte-identical for the same disk bytes, whatever their holes, and untars to the same bytes", async () => {
    const copy = join(work, "copy.img");
    execFileSync("cp", ["--sparse=never", disk, copy]); // the same bytes with every zero written out
    expect(statSync(copy).blocks).toBeGreaterThan(statSync(disk).blocks * 4);
    const a = join(work, "a.tar.gz");
    const b = join(work, "b.tar.gz");
    await writeGceTarball(disk, a);
    await writeGceTarball(copy, b);
    expect(readFileSync(a).equals(readFileSync(b))).toBe(true);
    expect(statSync(a).size).toBeLessThan(2 * MiB); // sparse: the holes are not in the archive

    const listing = execFileSync("tar", ["-tvzf", a], { encoding: "utf8" }).trim();
    expect(listing).toMatch(/^-rw-r--r-- 0\/0 +50331648 1980-01-01 00:00 disk\.raw$/);
    const out = join(work, "untar");
    execFileSync("mkdir", ["-p", out]);
    execFileSync("tar", ["-xSzf", a, "-C", out]);
    expect(readFileSync(join(out, "disk.raw")).equals(readFileSync(disk))).toBe(true);
    rmSync(copy);
  });
});

describe("publishGce against the Google API fake", () => {
  let gcp: Awaited<ReturnType<typeof startGcpFake>>;
  let options: GcePublishOptions;
  beforeEach(async () => {
    gcp = await startGcpFake();
    options = {
      project: "kb-project",
      bucket: gcp.bucket,
      authClient: testAuth,
      endpoints: gcp.endpoints,
      chunkSize: 256 * 1024,
      backoff: () => 0,
      workDir: work,
    };
  });
  afterEach(async () => {
    await gcp.fake.stop();
    // Every request the publish sent is one the real APIs accept.
    expect(gcp.fake.invalid).toEqual([]);
  });

  const request = (imageId?: string) => ({
    disk,
    manifest: manifestFor(disk, imageId),
    progress: silentProgress,
  });
  const calls = () => gcp.fake.log.map((entry) => entry.methodId);
  /** The archive as Cloud Storage held it when the publish deleted it. */
  function keepDeletedObjects(): Buffer[] {
    const kept: Buffer[] = [];
    const remove = gcp.fake.handler("storage.objects.delete")!;
    gcp.fake.on("storage.objects.delete", (req) => {
      const object = gcp.storage.objects(req.params.bucket).find((o) => o.name === req.params.object);
      if (object) kept.push(object.data);
      return remove(req);
    });
    return kept;
  }

  it("uploads the archive, creates the image with its fields, and deletes the archive", async () => {
    const kept = keepDeletedObjects();
    const [published] = await publishGce(request(), options);

    const image = gcp.compute.images.get(published.artifact_id)!;
    expect(image).toMatchObject({
      status: "READY",
      family: "kb-test",
      architecture: "X86_64",
      guestOsFeatures: [{ type: "UEFI_COMPATIBLE" }, { type: "GVNIC" }],
      labels: {
        [IMAGE_ID_LABEL]: "ab12".repeat(16).slice(0, 63),
        "kubebake-disk-sha256": "cd34".repeat(16).slice(0, 63),
      },
      rawDisk: {
        source: `https://storage.googleapis.com/kb-bucket/kubebake-publish/${published.artifact_id}.tar.gz`,
      },
    });
    expect(published).toMatchObject({
      builder_type: "googlecompute",
      artifact_id: "kb-test-ab12ab12ab12",
      custom_data: { imageId: manifestFor(disk).imageId, project: "kb-project", family: "kb-test" },
    });
    const local = join(work, "expected.tar.gz");
    await writeGceTarball(disk, local);
    expect(kept).toHaveLength(1);
    expect(kept[0].equals(readFileSync(local))).toBe(true);
    expect(gcp.storage.objects("kb-bucket")).toEqual([]);
    expect(gcp.storage.sessions.size).toBe(0);

    const sequence = calls();
    const chunks = sequence.filter((id) => id === "storage.objects.insert").length;
    expect(chunks).toBe(1 + Math.ceil(kept[0].length / (256 * 1024))); // the session, then one PUT a chunk
    expect(sequence.slice(0, 3)).toEqual([
      "storage.buckets.get",
      "compute.images.list",
      "storage.objects.insert",
    ]);
    expect(sequence.slice(2 + chunks)).toEqual([
      "compute.images.insert",
      ...sequence.slice(3 + chunks, -1).map(() => "compute.globalOperations.wait"),
      "storage.objects.delete",
    ]);
    expect(sequence.length).toBeGreaterThan(chunks + 4); // the operation was polled until DONE
  });

  it("does nothing when an image already holds the image id", async () => {
    const [first] = await publishGce(request(), options);
    gcp.fake.log.length = 0;
    const [again] = await publishGce(request(), options);
    expect(again.artifact_id).toBe(first.artifact_id);
    expect(calls()).toEqual(["storage.buckets.get", "compute.images.list"]);
    expect(gcp.compute.images.size).toBe(1);
  });

  it("publishes another image id as another image in the same family", async () => {
    await publishGce(request(), options);
    const [second] = await publishGce(request("sha256:" + "ef56".repeat(16)), options);
    expect(second.artifact_id).toBe("kb-test-ef56ef56ef56");
    expect([...gcp.compute.images.values()].map((i) => i.family)).toEqual(["kb-test", "kb-test"]);
  });

  it("removes the archive when the image creation fails inside its operation", async () => {
    gcp.compute.failNextImageCreation({ code: "QUOTA_EXCEEDED", message: "Quota 'IMAGES' exceeded" });
    const failure = publishGce(request(), options);
    await expect(failure).rejects.toMatchObject({
      exitCode: ExitCode.cloudFailed,
      message: expect.stringMatching(
        /images.insert kb-test-ab12ab12ab12 failed: QUOTA_EXCEEDED: Quota 'IMAGES' exceeded/,
      ),
    });
    expect(gcp.storage.objects("kb-bucket")).toEqual([]);
    expect(gcp.compute.images.size).toBe(0);
    expect(calls().at(-1)).toBe("storage.objects.delete");
  });

  it("removes the archive when images.insert itself is refused", async () => {
    gcp.fake.on("compute.images.insert", () => ({
      status: 403,
      json: { error: { code: 403, message: "Required 'compute.images.create' permission", errors: [] } },
    }));
    await expect(publishGce(request(), options)).rejects.toMatchObject({
      exitCode: ExitCode.cloudFailed,
      message: expect.stringMatching(/compute.images.create/),
    });
    expect(gcp.storage.objects("kb-bucket")).toEqual([]);
  });

  it.each([
    ["after the chunk arrived", true],
    ["before the chunk arrived", false],
  ])("resumes from the session's offset when a chunk's answer is lost %s", async (_when, applied) => {
    const kept = keepDeletedObjects();
    const insert = gcp.fake.handler("storage.objects.insert")!;
    let puts = 0;
    gcp.fake.on("storage.objects.insert", async (req) => {
      if (req.session && req.body.length > 0 && ++puts === 2) {
        if (applied) await insert(req);
        return { dropAnswer: true };
      }
      return insert(req);
    });
    await publishGce(request(), options);
    const local = join(work, "expected.tar.gz");
    await writeGceTarball(disk, local);
    expect(kept[0].equals(readFileSync(local))).toBe(true);
    const chunkPuts = gcp.fake.log.filter(
      (e) => e.methodId === "storage.objects.insert" && e.httpMethod === "PUT",
    );
    // one extra PUT to ask for the offset, and the lost chunk resent only if it had not arrived
    const chunks = Math.ceil(kept[0].length / (256 * 1024));
    expect(chunkPuts).toHaveLength(chunks + 1 + (applied ? 0 : 1));
    expect(gcp.compute.images.get("kb-test-ab12ab12ab12")?.status).toBe("READY");
  });

  it("stops with one cloud-error line before uploading when the bucket does not exist", async () => {
    await expect(publishGce(request(), { ...options, bucket: "no-such-bucket" })).rejects.toMatchObject({
      exitCode: ExitCode.cloudFailed,
      message:
        "Cloud Storage storage.buckets.get no-such-bucket failed: The specified bucket does not exist.",
    });
    expect(calls()).toEqual(["storage.buckets.get"]);
  });

  it("stops with one cloud-error line before anything else when there are no credentials", async () => {
    const saved = process.env.GOOGLE_APPLICATION_CREDENTIALS;
    process.env.GOOGLE_APPLICATION_CREDENTIALS = join(work, "no-such-key.json");
    try {
      const failure = publishGce(request(), { ...options, authClient: undefined });
      await expect(failure).rejects.toMatchObject({
        exitCode: ExitCode.cloudFailed,
        message: expect.stringMatching(/^GCE credentials: .*no-such-key.json.*application-default login/),
      });
    } finally {
      if (saved === undefined) delete process.env.GOOGLE_APPLICATION_CREDENTIALS;
      else process.env.GOOGLE_APPLICATION_CREDENTIALS = saved;
    }
    expect(calls()).toEqual([]);
  });
});
