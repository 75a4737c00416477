/** The `kubebake cluster` and `kubebake dns` commands on Azure as a user runs them, against the fake cloud. */
import { mkdirSync, mkdtempSync, writeFileSync } from "node:fs";
import { once } from "node:events";
import { createServer, type AddressInfo } from "node:net";
import { join } from "node:path";
import { IMAGE_ID_TAG } from "../../src/publish/azure/plan";
import { loadImageSpec } from "../../src/spec/load";
import { armError } from "../fakes/azure/arm-fake";
import { FAKE_TENANT_ID } from "../fakes/azure/arm-models";
import type { AzureCloud } from "../fakes/azure/cloud";
import { realSpec, runCliAsync, tempDir } from "../helpers";
import { addImage, azureClusterYaml, IMAGE_ID, SUBSCRIPTION, useAzureCloud, writeSpec } from "./fixture";

const dir = tempDir("azure-cli");
const azure = useAzureCloud();
let cloud: AzureCloud;
let caFile: string;
beforeEach(() => {
  cloud = azure.cloud();
  caFile = join(mkdtempSync(join(dir, "ca-")), "ca.pem");
  writeFileSync(caFile, cloud.ca);
});

const kubebake = (...args: string[]) =>
  runCliAsync("kubebake", args, {
    KUBEBAKE_AZURE_ENDPOINT: cloud.endpoint,
    KUBEBAKE_AZURE_CA: caFile,
    AZURE_TENANT_ID: FAKE_TENANT_ID,
    KUBEBAKE_POLL_MS: "5",
  });
const changeLines = (output: string) =>
  output.split("\n").filter((l) => /^[+~±-] (create|update|delete|replace) /.test(l));

/** A bake's manifest and tree beside the cluster file, its managed image published (tagged with its id). */
function bakeBeside(dir: string): string {
  const imageId = `sha256:${"7f".repeat(32)}`;
  const id = IMAGE_ID.replace(/kubebake-1$/, "kubebake-baked");
  addImage(cloud, id, { [IMAGE_ID_TAG]: imageId });
  writeFileSync(join(dir, "manifest.json"), JSON.stringify({ imageId, rootfs: "rootfs" }));
  const baked = loadImageSpec(realSpec).spec;
  baked.cluster.discoveryDomain = "internal";
  mkdirSync(join(dir, "rootfs/etc/kubebake"), { recursive: true });
  writeFileSync(join(dir, "rootfs/etc/kubebake/image-spec.json"), JSON.stringify(baked));
  return writeSpec(azureClusterYaml({ image: { manifest: "manifest.json" } }), dir);
}

test("plan, apply (asks: exit 9 off a terminal), apply --yes --json, a no-op apply, dns sync and deploy, destroy --yes", async () => {
  const spec = bakeBeside(mkdtempSync(join(dir, "bake-")));
  const plan = await kubebake("cluster", "plan", "-f", spec);
  expect(plan.stderr).toBe("");
  expect(plan.code).toBe(0);
  expect(changeLines(plan.stdout)).toContain("+ create virtual-network kubebake-demo (10.0.0.0/16)");
  expect(plan.stdout).toMatch(/change\(s\) planned/);

  const unasked = await kubebake("cluster", "apply", "-f", spec, "--json");
  expect(unasked.code).toBe(9);
  expect(cloud.groups.get(SUBSCRIPTION, "kubebake-demo")).toBeUndefined();

  const applied = await kubebake("cluster", "apply", "-f", spec, "--yes", "--json");
  expect(applied.stderr).toBe("");
  expect(applied.code).toBe(0);
  const made = JSON.parse(applied.stdout) as { changes: { kind: string }[] };
  expect(made.changes.map((c) => c.kind)).toEqual(
    expect.arrayContaining(["virtual-network", "scale-set", "private-dns-zone", "function-app"]),
  );
  expect([...cloud.dns.zones.values()].map((z) => z.name)).toEqual(["demo.internal"]);
  expect(cloud.vmss.vms.every((vm) => vm.imageId.endsWith("/kubebake-baked"))).toBe(true);

  const again = await kubebake("cluster", "apply", "-f", spec, "--yes");
  expect({ code: again.code, stdout: again.stdout }).toEqual({ code: 0, stdout: "no changes\n" });
  const redeploy = await kubebake("dns", "deploy", "-f", spec);
  expect({ code: redeploy.code, stdout: redeploy.stdout }).toEqual({ code: 0, stdout: "no changes\n" });

  // The scale sets' VMs run; discovery publishes them from here.
  const sync = await kubebake("dns", "sync", "-f", spec, "--json");
  expect(sync.stderr).toBe("");
  const result = JSON.parse(sync.stdout) as {
    via: string;
    desired: { masters: string[]; minions: string[]; etcd: string[] };
  };
  expect(result.via).toBe("local");
  expect(result.desired.masters).toHaveLength(3);
  expect(result.desired.minions).toHaveLength(2);
  const masters = cloud.vmss.vms.filter((vm) => vm.name.includes("-masters_")).map((vm) => vm.privateIp);
  expect([...result.desired.masters].sort()).toEqual(masters.sort());

  const destroyed = await kubebake("cluster", "destroy", "-f", spec, "--yes", "--json");
  expect(destroyed.stderr).toBe("");
  expect(destroyed.code).toBe(0);
  expect(cloud.groups.get(SUBSCRIPTION, "kubebake-demo")).toBeUndefined();
  expect(cloud.vmss.vms).toEqual([]);
}, 180_000);

test("an Azure failure exits 7 naming the call, without a stack trace; a rerun converges", async () => {
  const spec = writeSpec(azureClusterYaml(), mkdtempSync(join(dir, "fail-")));
  const create = cloud.fake.handler("UserAssignedIdentities_CreateOrUpdate")!;
  let refused = false;
  cloud.fake.on("UserAssignedIdentities_CreateOrUpdate", (request) => {
    if (refused) return create(request);
    refused = true;
    return armError(
      403,
      "AuthorizationFailed",
      "the client may not perform action 'Microsoft.ManagedIdentity/userAssignedIdentities/write'",
    );
  });
  const failed = await kubebake("cluster", "apply", "-f", spec, "--yes");
  expect(failed.code).toBe(7);
  expect(failed.stderr).toMatch(/msi\.userAssignedIdentities\.createOrUpdate failed \(403/);
  expect(failed.stderr).not.toMatch(/\n\s+at /);
  expect((await kubebake("cluster", "apply", "-f", spec, "--yes")).code).toBe(0);
  expect((await kubebake("cluster", "plan", "-f", spec)).stdout).toBe("no changes\n");
}, 180_000);

test("Azure out of reach exits 7 naming the call, without a stack trace", async () => {
  const spec = writeSpec(azureClusterYaml(), mkdtempSync(join(dir, "unreachable-")));
  const server = createServer().listen(0, "127.0.0.1");
  await once(server, "listening");
  const { port } = server.address() as AddressInfo;
  server.close();
  const result = await runCliAsync("kubebake", ["cluster", "plan", "-f", spec], {
    KUBEBAKE_AZURE_ENDPOINT: `https://127.0.0.1:${port}`,
    AZURE_TENANT_ID: FAKE_TENANT_ID,
  });
  expect(result.code).toBe(7);
  expect(result.stderr).toMatch(/failed.*ECONNREFUSED/);
  expect(result.stderr).not.toMatch(/\n\s+at /);
});
