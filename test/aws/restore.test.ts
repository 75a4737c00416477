/** `kubebake cluster restore --snapshot`, as a user runs it, against moto. */
import { DescribeAutoScalingGroupsCommand } from "@aws-sdk/client-auto-scaling";
import { GetObjectCommand, ListObjectsV2Command, PutObjectCommand } from "@aws-sdk/client-s3";
import { createHash, randomBytes } from "node:crypto";
import { snapshotBucketName } from "../../src/launch/aws/desired";
import { snapshotProblem } from "../../src/launch/aws/restore";
import { runCli, tempDir } from "../helpers";
import { apply, clientsFor, clusterYaml, REGION, registerAmi, writeSpec } from "./fixture";
import { startMoto, type Moto } from "./moto";

let moto: Moto;
beforeAll(async () => (moto = await startMoto()), 60_000);
afterAll(() => moto?.stop());
const dir = tempDir("aws-restore");
const sha256 = (data: Buffer) => createHash("sha256").update(data).digest("hex");
/** A file in etcd's snapshot format: the database, then the SHA-256 of it. */
const etcdSnapshot = (db: Buffer) => Buffer.concat([db, createHash("sha256").update(db).digest()]);

describe("the integrity check (the same two the masters make)", () => {
  const good = etcdSnapshot(randomBytes(4096));
  test("passes a snapshot whose bytes match the recorded digest and etcd's appended one", () => {
    expect(snapshotProblem(good, sha256(good))).toBeUndefined();
  });
  test("refuses bytes that differ from what the store recorded", () => {
    expect(snapshotProblem(good, sha256(Buffer.from("other")))).toBe(
      `its SHA-256 is ${sha256(good)}, the store recorded ${sha256(Buffer.from("other"))}`,
    );
    expect(snapshotProblem(good, undefined)).toMatch(/the store recorded none$/);
  });
  test("refuses a snapshot whose content does not match etcd's own digest, even when the store's matches", () => {
    const corrupt = Buffer.from(good);
    corrupt[100] ^= 0xff;
    expect(snapshotProblem(corrupt, sha256(corrupt))).toBe(
      "the digest etcd appended to it does not match its content",
    );
    const short = Buffer.from("tiny");
    expect(snapshotProblem(short, sha256(short))).toBe("it holds 4 bytes, too few for an etcd snapshot");
  });
});

test("restore: checks the name and the snapshot (exit 2, exit 3, nothing changed), asks (exit 9), then writes the request and replaces every master", async () => {
  await moto.reset();
  const clients = clientsFor(moto.endpoint);
  const ami = await registerAmi(clients, "kubebake-1");
  const spec = writeSpec(
    dir,
    clusterYaml({
      image: { ami },
      groups: {
        masters: { count: 3, instanceType: "t3.medium" },
        minions: { min: 1, max: 3, desired: 1, instanceType: "t3.large" },
      },
    }),
  );
  await apply(clients, spec);
  const bucket = snapshotBucketName("123456789012", REGION, "demo");
  const put = (name: string, body: Buffer, recorded: string) =>
    clients.s3.send(
      new PutObjectCommand({
        Bucket: bucket,
        Key: `demo/etcd/${name}`,
        Body: body,
        Metadata: { sha256: recorded },
      }),
    );
  const good = etcdSnapshot(randomBytes(8192));
  const corrupt = Buffer.from(good);
  corrupt[10] ^= 0xff;
  await put("20261201T010000Z-r100.db", good, sha256(good));
  await put("20261201T020000Z-r200.db", corrupt, sha256(good));
  await put("20261201T030000Z-r300.db", corrupt, sha256(corrupt));
  const masters = async () =>
    (
      await clients.autoScaling.send(
        new DescribeAutoScalingGroupsCommand({ AutoScalingGroupNames: ["kubebake-demo-masters"] }),
      )
    )
      .AutoScalingGroups![0]!.Instances!.map((i) => i.InstanceId!)
      .sort();
  const before = await masters();
  expect(before).toHaveLength(3);
  const requestExists = async () =>
    ((
      await clients.s3.send(new ListObjectsV2Command({ Bucket: bucket, Prefix: "demo/etcd/restore-request" }))
    ).Contents?.length ?? 0) > 0;
  const env = {
    AWS_ENDPOINT_URL: moto.endpoint,
    AWS_ACCESS_KEY_ID: "testing",
    AWS_SECRET_ACCESS_KEY: "testing",
    KUBEBAKE_POLL_MS: "10",
  };
  const kubebake = (...args: string[]) =>
    runCli("kubebake", ["cluster", "restore", "-f", spec, ...args], env);

  const badName = kubebake("--snapshot", "latest", "--yes");
  expect(badName.code).toBe(2);
  expect(badName.stderr).toContain(
    '--snapshot "latest": expected a snapshot name such as 20261201T010000Z-r1234.db',
  );
  const absent = kubebake("--snapshot", "20261130T000000Z-r1.db", "--yes");
  expect(absent.code).toBe(2);
  expect(absent.stderr).toContain(
    `--snapshot 20261130T000000Z-r1.db: s3://${bucket}/demo/etcd/ holds no such snapshot; the newest: 20261201T030000Z-r300.db, 20261201T020000Z-r200.db, 20261201T010000Z-r100.db`,
  );
  const mismatched = kubebake("--snapshot", "20261201T020000Z-r200.db", "--yes");
  expect(mismatched.code).toBe(3);
  expect(mismatched.stderr).toContain(
    `snapshot 20261201T020000Z-r200.db failed its integrity check (its SHA-256 is ${sha256(corrupt)}, the store recorded ${sha256(good)}): refused; nothing was changed`,
  );
  const badDigest = kubebake("--snapshot", "20261201T030000Z-r300.db", "--yes");
  expect(badDigest.code).toBe(3);
  expect(badDigest.stderr).toContain(
    "snapshot 20261201T030000Z-r300.db failed its integrity check (the digest etcd appended to it does not match its content)",
  );
  for (const r of [badName, absent, mismatched, badDigest]) expect(r.stderr).not.toMatch(/\n\s+at /);
  expect(await requestExists()).toBe(false);
  expect(await masters()).toEqual(before);

  // Off a terminal, the plan and exit 9; nothing changes.
  const unasked = kubebake("--snapshot", "20261201T010000Z-r100.db");
  expect(unasked.code).toBe(9);
  expect(unasked.stdout).toContain(
    `+ create restore-request s3://${bucket}/demo/etcd/restore-request (the new masters restore 20261201T010000Z-r100.db)`,
  );
  expect(unasked.stdout).toContain(
    `± replace instances kubebake-demo-masters (every master at once (${before.join(", ")}); the API is down until the new ones vote)`,
  );
  expect(await requestExists()).toBe(false);
  expect(await masters()).toEqual(before);

  const done = kubebake("--snapshot", "20261201T010000Z-r100.db", "--yes", "--json");
  expect(done.stderr).toBe("");
  expect(done.code).toBe(0);
  expect(JSON.parse(done.stdout)).toMatchObject({ snapshot: "20261201T010000Z-r100.db", masters: before });
  const request = await clients.s3.send(
    new GetObjectCommand({ Bucket: bucket, Key: "demo/etcd/restore-request" }),
  );
  expect(await request.Body!.transformToString()).toBe("20261201T010000Z-r100.db\n");
  const after = await masters();
  expect(after).toHaveLength(3);
  expect(after.filter((id) => before.includes(id))).toEqual([]);
}, 120_000);
