import { readFileSync } from "node:fs";
import { join } from "node:path";
import { loadClusterSpec } from "../../src/cluster/load";
import { ExitCode, KubebakeError } from "../../src/errors";
import { repoRoot, runCli, tempDir } from "../helpers";
import { clusterYaml, writeSpec } from "../aws/fixture";

const dir = tempDir("cluster-spec");
const example = join(repoRoot, "docs", "examples", "cluster.yaml");

function problems(spec: Record<string, unknown>): string {
  const path = writeSpec(dir, spec, "bad.yaml");
  try {
    loadClusterSpec(path);
  } catch (error) {
    expect(error).toBeInstanceOf(KubebakeError);
    expect((error as KubebakeError).exitCode).toBe(ExitCode.invalidInput);
    return (error as Error).message;
  }
  throw new Error("expected the spec to be refused");
}

describe("cluster spec", () => {
  test("the documented example is valid and gets the documented defaults", () => {
    const { spec } = loadClusterSpec(example);
    expect(spec.name).toBe("demo");
    expect(spec.groups.masters.count).toBe(3);
    const { spec: minimal } = loadClusterSpec(writeSpec(dir, clusterYaml({ network: {}, tags: undefined })));
    expect(minimal.network).toEqual({ cidr: "10.0.0.0/16", apiAccess: [], sshAccess: [] });
    expect(minimal.discovery).toEqual({ ttl: 30, emptyGroup: "delete" });
    expect(minimal.rollout).toEqual({ batchPercent: 25, timeoutSeconds: 900 });
    expect(minimal.etcd).toEqual({ snapshotRetentionDays: 7 });
    expect(spec.etcd).toEqual({ snapshotRetentionDays: 7 });
  });

  test("each bad field is named with its line and what was expected", () => {
    const cases: [Record<string, unknown>, RegExp][] = [
      [clusterYaml({ name: "Demo_1" }), /bad\.yaml:\d+: name: expected 1 to 40 lowercase/],
      [clusterYaml({ cloud: "gcp" }), /cloud: expected "aws"|cloud: .*aws/],
      [clusterYaml({ region: "europe" }), /region: expected an AWS region/],
      [
        clusterYaml({ network: { vpc: "vpc-0123456789abcdef0" } }),
        /network\.subnets: expected vpc and subnets together/,
      ],
      [
        clusterYaml({ network: { apiAccess: ["0.0.0.0/33"] } }),
        /network\.apiAccess\[0\]: expected an IPv4 CIDR/,
      ],
      [clusterYaml({ image: {} }), /image: expected exactly one of ami and manifest/],
      [clusterYaml({ image: { ami: "ami-1", manifest: "m.json" } }), /image\.ami: expected an AMI id/],
      [
        clusterYaml({
          groups: {
            masters: { count: 2, instanceType: "t3.medium" },
            minions: { min: 1, max: 3, desired: 2, instanceType: "t3.large" },
          },
        }),
        /groups\.masters\.count: expected 1, 3 or 5: the masters form one etcd cluster, which an even size makes no safer/,
      ],
      ...[4, 7].map(
        (count) =>
          [
            clusterYaml({
              groups: {
                masters: { count, instanceType: "t3.medium" },
                minions: { min: 1, max: 3, desired: 2, instanceType: "t3.large" },
              },
            }),
            /groups\.masters\.count: expected 1, 3 or 5/,
          ] as [Record<string, unknown>, RegExp],
      ),
      [
        clusterYaml({
          groups: {
            masters: { count: 1, instanceType: "t3.medium" },
            minions: { min: 1, max: 3, desired: 5, instanceType: "t3.large" },
          },
        }),
        /groups\.minions\.desired: expected between min and max/,
      ],
      [
        clusterYaml({ tags: { KubernetesCluster: "x" } }),
        /tags\.KubernetesCluster: expected a key of your own/,
      ],
      [clusterYaml({ extra: 1 }), /bad\.yaml:\d+: unknown field extra/],
      ...[0, 3651, 1.5, "seven"].map(
        (days) =>
          [
            clusterYaml({ etcd: { snapshotRetentionDays: days } }),
            /bad\.yaml:\d+: etcd\.snapshotRetentionDays: expected a whole number of days from 1 to 3650(, got .*)?$/,
          ] as [Record<string, unknown>, RegExp],
      ),
      [clusterYaml({ etcd: { retention: 7 } }), /bad\.yaml:\d+: etcd: unknown field retention/],
      [clusterYaml({ network: { cidr: "10.0.0.0/24" } }), /network\.cidr: expected a \/20 or larger/],
      [
        clusterYaml({ network: { cidr: "10.0.0.0/19", zones: ["eu-west-1a", "eu-west-1b", "eu-west-1c"] } }),
        /network\.zones: expected at most 2 zones in a \/19/,
      ],
    ];
    for (const [spec, expected] of cases) expect(problems(spec)).toMatch(expected);
  });

  test("the CLI: exit 2 with the problem and no stack trace; nothing is contacted", () => {
    const bad = writeSpec(dir, clusterYaml({ region: "nowhere" }), "cli-bad.yaml");
    // An endpoint nobody listens on: had the CLI tried AWS, the exit code would be 7, not 2.
    for (const command of ["validate", "plan", "apply", "destroy"]) {
      const result = runCli("kubebake", ["cluster", command, "-f", bad], {
        AWS_ENDPOINT_URL: "http://127.0.0.1:9",
      });
      expect({ command, code: result.code }).toEqual({ command, code: 2 });
      expect(result.stderr).toMatch(/cli-bad\.yaml:\d+: region: expected an AWS region/);
      expect(result.stderr).not.toMatch(/\n\s+at /);
    }
    const missing = runCli("kubebake", ["cluster", "plan", "-f", join(dir, "absent.yaml")]);
    expect(missing.code).toBe(2);
    expect(missing.stderr).toMatch(/absent\.yaml: cannot read the file \(ENOENT\)/);
  });

  test("masters: 1, 3 or 5 are valid; 2 or 4 are refused with the reason, exit 2, before any cloud call (validate, plan, apply)", () => {
    const withMasters = (count: number) =>
      clusterYaml({
        groups: {
          masters: { count, instanceType: "t3.medium" },
          minions: { min: 1, max: 3, desired: 2, instanceType: "t3.large" },
        },
      });
    for (const count of [1, 3, 5])
      expect(
        loadClusterSpec(writeSpec(dir, withMasters(count), `ok-${count}.yaml`)).spec.groups.masters.count,
      ).toBe(count);
    for (const count of [2, 4]) {
      expect(problems(withMasters(count))).toMatch(
        /bad\.yaml:\d+: groups\.masters\.count: expected 1, 3 or 5: the masters form one etcd cluster, which an even size makes no safer/,
      );
      const file = writeSpec(dir, withMasters(count), `masters-${count}.yaml`);
      for (const command of ["validate", "plan", "apply"]) {
        const result = runCli("kubebake", ["cluster", command, "-f", file], {
          AWS_ENDPOINT_URL: "http://127.0.0.1:9",
        });
        expect({ count, command, code: result.code }).toEqual({ count, command, code: 2 });
        expect(result.stderr).toContain("groups.masters.count: expected 1, 3 or 5");
        expect(result.stderr).not.toMatch(/\n\s+at /);
      }
    }
    const three = writeSpec(dir, withMasters(3), "masters-3.yaml");
    expect(runCli("kubebake", ["cluster", "validate", "-f", three]).code).toBe(0);
  });

  test("regions come from the list in the code, with a suggestion; zones must be the region's", () => {
    expect(problems(clusterYaml({ region: "eu-wset-1", network: {} }))).toMatch(
      /region: expected an AWS region such as eu-west-1, got "eu-wset-1"; did you mean "eu-west-1"\?$/,
    );
    expect(problems(clusterYaml({ region: "eu-west-7", network: {} }))).toMatch(
      /region: expected an AWS region such as eu-west-1, got "eu-west-7"; did you mean "eu-west-\d"\?$/,
    );
    expect(problems(clusterYaml({ region: "europe", network: {} }))).toMatch(/got "europe"$/);
    expect(problems(clusterYaml({ region: "cn-north-1", network: {} }))).toMatch(
      /region: expected a region of the standard AWS partition; cn-north-1 is in another partition/,
    );
    expect(problems(clusterYaml({ region: "us-east-1" }))).toBe(
      [0, 1]
        .map(
          (i) =>
            `${join(dir, "bad.yaml")}:${i + 8}: network.zones[${i}]: expected a zone of us-east-1 (us-east-1a, us-east-1b…), got "eu-west-1${"ab"[i]}"`,
        )
        .join("\n"),
    );
    for (const region of ["us-east-1", "ap-southeast-2", "eu-central-2"]) {
      const { spec } = loadClusterSpec(
        writeSpec(dir, clusterYaml({ region, network: { zones: [`${region}a`, `${region}c`] } }), "ok.yaml"),
      );
      expect(spec.region).toBe(region);
    }
  });

  test("SSH or the API open to the whole internet only when the spec says so", () => {
    expect(problems(clusterYaml({ network: { sshAccess: ["10.1.0.0/16", "0.0.0.0/0"] } }))).toMatch(
      /network\.sshAccess\[1\]: 0\.0\.0\.0\/0 opens SSH to the whole internet; list your own networks, or set network\.allowSshFromAnywhere: true if you mean it$/,
    );
    expect(problems(clusterYaml({ network: { apiAccess: ["192.0.2.0/0"] } }))).toMatch(
      /network\.apiAccess\[0\]: 192\.0\.2\.0\/0 opens the API server to the whole internet; .*network\.allowApiFromAnywhere: true/,
    );
    // The other flag does not do: each opening is said on its own.
    expect(
      problems(clusterYaml({ network: { sshAccess: ["0.0.0.0/0"], allowApiFromAnywhere: true } })),
    ).toMatch(/network\.sshAccess\[0\]: 0\.0\.0\.0\/0 opens SSH/);
    const open = loadClusterSpec(
      writeSpec(
        dir,
        clusterYaml({
          network: {
            sshAccess: ["0.0.0.0/0"],
            allowSshFromAnywhere: true,
            apiAccess: ["0.0.0.0/0"],
            allowApiFromAnywhere: true,
          },
        }),
        "open.yaml",
      ),
    ).spec;
    expect(open.network.sshAccess).toEqual(["0.0.0.0/0"]);
    expect(open.network.apiAccess).toEqual(["0.0.0.0/0"]);
    const schema = JSON.parse(readFileSync(join(repoRoot, "docs", "cluster.schema.json"), "utf8"));
    expect(schema.properties.network.properties.allowSshFromAnywhere.description).toMatch(/\/0/);
    expect(schema.properties.sshKey.description).toMatch(/key pair/);
  });

  test("the JSON Schema in docs/ is current", () => {
    const result = runCli("kubebake", ["cluster", "schema"]);
    expect(result.code).toBe(0);
    expect(result.stdout).toBe(readFileSync(join(repoRoot, "docs", "cluster.schema.json"), "utf8"));
  });
});
