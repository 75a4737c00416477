/** The `kubebake cluster` and `kubebake dns` commands on GCE as a user runs them, against the fake cloud. */
import { mkdirSync, mkdtempSync, writeFileSync } from "node:fs";
import { once } from "node:events";
import { createServer, type AddressInfo } from "node:net";
import { join } from "node:path";
import { digestLabel, IMAGE_ID_LABEL } from "../../src/publish/gce/names";
import { loadImageSpec } from "../../src/spec/load";
import type { GoogleCloud } from "../fakes/gcp/cloud";
import { realSpec, runCliAsync, tempDir } from "../helpers";
import { addImage, gceClusterYaml, startCloud, writeSpec } from "./fixture";

const dir = tempDir("gce-cli");
let cloud: GoogleCloud;
beforeEach(async () => {
  cloud = await startCloud();
});
afterEach(async () => {
  expect(cloud.fake.invalid).toEqual([]);
  await cloud.stop();
});

const kubebake = (...args: string[]) =>
  runCliAsync("kubebake", args, {
    KUBEBAKE_GCE_ENDPOINT: cloud.url,
    KUBEBAKE_GCE_TEST_TOKEN: "cli-token",
    KUBEBAKE_POLL_MS: "5",
  });
const changeLines = (output: string) =>
  output.split("\n").filter((l) => /^[+~±-] (create|update|delete|replace) /.test(l));

/** A bake's manifest and tree beside the cluster file, its image published (labelled with its id). */
function bakeBeside(dir: string): string {
  const imageId = `sha256:${"7f".repeat(32)}`;
  addImage(cloud, "kubebake-baked", { [IMAGE_ID_LABEL]: digestLabel(imageId) });
  writeFileSync(join(dir, "manifest.json"), JSON.stringify({ imageId, rootfs: "rootfs" }));
  const baked = loadImageSpec(realSpec).spec;
  baked.cluster.discoveryDomain = "internal";
  mkdirSync(join(dir, "rootfs/etc/kubebake"), { recursive: true });
  writeFileSync(join(dir, "rootfs/etc/kubebake/image-spec.json"), JSON.stringify(baked));
  return writeSpec(gceClusterYaml({ image: { manifest: "manifest.json" } }), dir);
}

test("plan, apply (asks: exit 9 off a terminal), apply --yes --json, a no-op apply, dns sync, destroy --yes", async () => {
  const spec = bakeBeside(mkdtempSync(join(dir, "bake-")));
  const plan = await kubebake("cluster", "plan", "-f", spec);
  expect(plan.stderr).toBe("");
  expect(plan.code).toBe(0);
  expect(changeLines(plan.stdout)).toContain("+ create network kubebake-demo");
  expect(plan.stdout).toMatch(/change\(s\) planned/);
  expect(plan.stdout).toContain("projects/kb-test-project/global/images/kubebake-baked");

  const unasked = await kubebake("cluster", "apply", "-f", spec, "--json");
  expect(unasked.code).toBe(9);
  expect(cloud.resources.remaining("kubebake-demo")).toEqual([]);

  const applied = await kubebake("cluster", "apply", "-f", spec, "--yes", "--json");
  expect(applied.code).toBe(0);
  const made = JSON.parse(applied.stdout) as { changes: { kind: string }[] };
  expect(made.changes.map((c) => c.kind)).toEqual(
    expect.arrayContaining(["network", "instance-group", "dns-zone"]),
  );
  expect([...cloud.dns.managedZones.values()].map((z) => z.dnsName)).toEqual(["demo.internal."]);

  const again = await kubebake("cluster", "apply", "-f", spec, "--yes");
  expect({ code: again.code, stdout: again.stdout }).toEqual({ code: 0, stdout: "no changes\n" });

  // The groups' instances run (the fake settles them); discovery publishes them from here.
  const sync = await kubebake("dns", "sync", "-f", spec, "--json");
  expect(sync.stderr).toBe("");
  const result = JSON.parse(sync.stdout) as {
    via: string;
    desired: { masters: string[]; minions: string[] };
  };
  expect(result.via).toBe("local");
  expect(result.desired.masters).toHaveLength(3);
  expect(result.desired.minions).toHaveLength(2);
  expect(cloud.dns.values("kubebake-demo", "masters.demo.internal.")).toEqual(
    [...result.desired.masters].sort(),
  );

  const destroyed = await kubebake("cluster", "destroy", "-f", spec, "--yes", "--json");
  expect(destroyed.code).toBe(0);
  expect(cloud.resources.remaining("kubebake-demo")).toEqual([]);
  expect([...cloud.dns.managedZones.keys()]).toEqual([]);
}, 120_000);

test("a Google failure exits 7 naming the call, without a stack trace; a rerun converges", async () => {
  const spec = writeSpec(gceClusterYaml(), mkdtempSync(join(dir, "fail-")));
  cloud.fake.failNext("iam.projects.serviceAccounts.create", 403);
  const failed = await kubebake("cluster", "apply", "-f", spec, "--yes");
  expect(failed.code).toBe(7);
  expect(failed.stderr).toMatch(/iam POST v1\/projects\/kb-test-project\/serviceAccounts failed \(403\)/);
  expect(failed.stderr).not.toMatch(/\n\s+at /);
  expect((await kubebake("cluster", "apply", "-f", spec, "--yes")).code).toBe(0);
  expect((await kubebake("cluster", "plan", "-f", spec)).stdout).toBe("no changes\n");
}, 120_000);

test("Google out of reach exits 7 naming the call, without a stack trace", async () => {
  const spec = writeSpec(gceClusterYaml(), mkdtempSync(join(dir, "unreachable-")));
  // A port that was free a moment ago: nothing listens there.
  const server = createServer().listen(0, "127.0.0.1");
  await once(server, "listening");
  const { port } = server.address() as AddressInfo;
  server.close();
  const result = await runCliAsync("kubebake", ["cluster", "plan", "-f", spec], {
    KUBEBAKE_GCE_ENDPOINT: `http://127.0.0.1:${port}`,
    KUBEBAKE_GCE_TEST_TOKEN: "cli-token",
  });
  expect(result.code).toBe(7);
  expect(result.stderr).toMatch(/failed: ECONNREFUSED/);
  expect(result.stderr).not.toMatch(/\n\s+at /);
});
