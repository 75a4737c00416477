/** `cloud: gce` cluster specs: defaults, and every bad field named with its line, exit 2, no cloud call. */
import { mkdirSync, mkdtempSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { loadCloudSpec } from "../../src/cluster/load";
import { ExitCode, KubebakeError } from "../../src/errors";
import { resolveGceSpec } from "../../src/launch/gce/defaults";
import { repoRoot, runCli, tempDir } from "../helpers";
import { refusal, writeIn } from "../cluster/refusals";
import { gceClusterYaml, writeSpec } from "./fixture";

const dir = tempDir("gce-spec");
const write = (spec: Record<string, unknown>) => writeIn(dir, spec);
const problems = (spec: Record<string, unknown>) => refusal(dir, spec);

const groups = (masters: Record<string, unknown>, minions: Record<string, unknown> = {}) => ({
  masters: { count: 3, machineType: "e2-standard-2", ...masters },
  minions: { min: 1, max: 10, desired: 2, machineType: "e2-standard-4", ...minions },
});

test("a GCE spec gets the documented defaults", () => {
  const spec = loadCloudSpec(
    write(gceClusterYaml({ network: {}, labels: undefined, project: undefined })),
    "gce",
  );
  expect(spec.network).toEqual({ cidr: "10.0.0.0/16", apiAccess: [], sshAccess: [] });
  expect(spec.labels).toEqual({});
  expect(spec.project).toBeUndefined();
  expect(spec.discovery).toEqual({ ttl: 30, emptyGroup: "delete" });
  expect(spec.rollout).toEqual({ batchPercent: 25, timeoutSeconds: 900 });
  expect(() => loadCloudSpec(write(gceClusterYaml()), "aws")).toThrow(/cloud: expected aws, got gce/);
});

test.each<[string, Record<string, unknown>, RegExp]>([
  [
    "a project id too short",
    { project: "p1" },
    /:\d+: project: expected a project id such as my-project-123/,
  ],
  [
    "a region in AWS's words",
    { region: "eu-west-1" },
    /:\d+: region: expected a GCE region such as europe-west1/,
  ],
  [
    "an AWS instance type",
    { groups: groups({ machineType: "t3.medium" }) },
    /groups\.masters\.machineType: expected a machine type/,
  ],
  [
    "AWS's field for it",
    { groups: groups({ instanceType: "e2-small" }) },
    /groups\.masters: unknown key "instanceType"|groups\.masters.*instanceType/,
  ],
  ["two masters", { groups: groups({ count: 2 }) }, /groups\.masters\.count: expected 1, 3 or 5/],
  [
    "desired above max",
    { groups: groups({}, { desired: 11 }) },
    /groups\.minions\.desired: expected between min and max/,
  ],
  [
    "a label kubebake sets",
    { labels: { kubernetescluster: "x" } },
    /labels\.kubernetescluster: expected a key of your own/,
  ],
  ["a label value in capitals", { labels: { team: "Platform" } }, /labels\.team: expected a label value/],
  [
    "a zone of another region",
    { network: { zones: ["us-central1-a"] } },
    /network\.zones\[0\]: expected a zone of europe-west1/,
  ],
  [
    "a network without its subnetwork",
    { network: { name: "shared" } },
    /network\.subnetwork: expected name and subnetwork together/,
  ],
  [
    "a subnetwork range too small",
    { network: { cidr: "10.0.0.0/28" } },
    /network\.cidr: expected a \/8 to \/24/,
  ],
  [
    "SSH from anywhere unasked",
    { network: { sshAccess: ["0.0.0.0/0"] } },
    /network\.sshAccess\[0\]: 0\.0\.0\.0\/0 opens SSH to the whole internet/,
  ],
  [
    "a private network open to anywhere",
    { network: { internet: false, apiAccess: ["0.0.0.0/0"], allowApiFromAnywhere: true } },
    /network\.apiAccess\[0\]: 0\.0\.0\.0\/0 is the whole internet, which cannot reach a private network .* reach the VPC network/,
  ],
  [
    "both image forms",
    { image: { name: "kubebake-1", manifest: "out/manifest.json" } },
    /image: expected exactly one of name and manifest/,
  ],
  ["an image name in capitals", { image: { name: "Kubebake" } }, /image\.name: expected an image name/],
  ["AWS's etcd snapshots", { etcd: { snapshotRetentionDays: 7 } }, /unknown key "etcd"|etcd/],
])("%s is refused, naming the field", (_, override, expected) => {
  expect(problems(gceClusterYaml(override))).toMatch(expected);
});

test("the CLI: a bad GCE spec exits 2 with the problem and no stack trace, before any Google call", () => {
  const bad = writeSpec(gceClusterYaml({ region: "nowhere" }), dir);
  // An endpoint nobody listens on: had the CLI called Google, the exit code would be 7, not 2.
  for (const command of ["validate", "plan", "apply", "destroy"]) {
    const result = runCli("kubebake", ["cluster", command, "-f", bad], {
      KUBEBAKE_GCE_ENDPOINT: "http://127.0.0.1:9",
    });
    expect({ command, code: result.code }).toEqual({ command, code: 2 });
    expect(result.stderr).toMatch(/cluster\.yaml:\d+: region: expected a GCE region/);
    expect(result.stderr).not.toMatch(/\n\s+at /);
  }
  expect(join(dir, "cluster.yaml")).toBe(bad);
});

describe("project and region from gcloud's defaults", () => {
  const bare = () => gceClusterYaml({ project: undefined, region: undefined, network: {} });
  function gcloudConfig(active: string, properties: string): string {
    const config = mkdtempSync(join(dir, "gcloud-"));
    mkdirSync(join(config, "configurations"));
    writeFileSync(join(config, "active_config"), `${active}\n`);
    writeFileSync(join(config, "configurations", `config_${active}`), properties);
    return config;
  }

  test("the active configuration's core/project and compute/region, unless the file or the environment says", () => {
    const path = write(bare());
    const config = gcloudConfig(
      "work",
      "[core]\naccount = me@example.com\nproject = from-gcloud-1\n\n[compute]\nregion = us-east4\nzone = us-east4-a\n",
    );
    const spec = loadCloudSpec(path, "gce");
    expect(resolveGceSpec(spec, path, { CLOUDSDK_CONFIG: config }, "/nonexistent")).toMatchObject({
      project: "from-gcloud-1",
      region: "us-east4",
    });
    expect(
      resolveGceSpec(
        spec,
        path,
        {
          CLOUDSDK_CONFIG: config,
          CLOUDSDK_COMPUTE_REGION: "asia-east1",
          CLOUDSDK_CORE_PROJECT: "from-env-22",
        },
        "/x",
      ),
    ).toMatchObject({ project: "from-env-22", region: "asia-east1" });
    const own = loadCloudSpec(write(gceClusterYaml()), "gce");
    expect(resolveGceSpec(own, path, { CLOUDSDK_CONFIG: config }, "/x")).toMatchObject({
      project: "kb-test-project",
      region: "europe-west1",
    });
  });

  test("without either, or with a zone of another region than gcloud's, exit 2 naming the field", () => {
    const path = write(bare());
    const empty = mkdtempSync(join(dir, "no-gcloud-"));
    const spec = loadCloudSpec(path, "gce");
    const refused = (env: NodeJS.ProcessEnv, s = spec) => {
      try {
        resolveGceSpec(s, path, env, empty);
      } catch (error) {
        expect((error as KubebakeError).exitCode).toBe(ExitCode.invalidInput);
        return (error as Error).message;
      }
      throw new Error("expected a refusal");
    };
    expect(refused({ CLOUDSDK_CONFIG: empty })).toMatch(
      /cluster\.yaml: project: not set, and gcloud has no default/,
    );
    expect(refused({ CLOUDSDK_CONFIG: empty, GOOGLE_CLOUD_PROJECT: "adc-project-1" })).toMatch(
      /cluster\.yaml: region: not set, and gcloud has no default/,
    );
    const zoned = loadCloudSpec(write({ ...bare(), network: { zones: ["europe-west1-b"] } }), "gce");
    expect(
      refused(
        { CLOUDSDK_CORE_PROJECT: "p-123456", CLOUDSDK_COMPUTE_REGION: "us-east4", CLOUDSDK_CONFIG: empty },
        zoned,
      ),
    ).toMatch(/network\.zones\[0\]: expected a zone of us-east4 .* \(gcloud's region\)/);
  });
});

test("the documented GCE example is valid", () => {
  const example = join(repoRoot, "docs", "examples", "cluster-gce.yaml");
  const spec = loadCloudSpec(example, "gce");
  expect(spec).toMatchObject({
    project: "my-project-123",
    region: "europe-west1",
    labels: { team: "platform" },
  });
  expect(spec.groups.masters).toEqual({ count: 3, machineType: "e2-standard-2" });
  expect(runCli("kubebake", ["cluster", "validate", "-f", example]).code).toBe(0);
});
