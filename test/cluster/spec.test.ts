import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { loadCloudSpec, loadClusterSpec } from "../../src/cluster/load";
import { NODE_CIDR_MASK_SIZE, podCapacity, podCapacityProblem } from "../../src/cluster/pods";
import { loadImageSpec } from "../../src/spec/load";
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

/** The AWS branch of the published JSON Schema (one per cloud, chosen by `cloud`). */
const awsSchemaOf = (schema: { oneOf: { properties: { cloud: { const: string } } }[] }) =>
  schema.oneOf.find((branch) => branch.properties.cloud.const === "aws") as unknown as {
    properties: Record<string, { description?: string; properties: Record<string, { description: string }> }>;
  };

describe("cluster spec", () => {
  test("the documented example is valid and gets the documented defaults", () => {
    const spec = loadCloudSpec(example, "aws");
    expect(spec.name).toBe("demo");
    expect(spec.groups.masters.count).toBe(3);
    const minimal = loadCloudSpec(writeSpec(dir, clusterYaml({ network: {}, tags: undefined })), "aws");
    expect(minimal.network).toEqual({ cidr: "10.0.0.0/16", apiAccess: [], sshAccess: [] });
    expect(minimal.discovery).toEqual({ ttl: 30, emptyGroup: "delete" });
    expect(minimal.rollout).toEqual({ batchPercent: 25, timeoutSeconds: 900 });
    expect(minimal.etcd).toEqual({ snapshotRetentionDays: 7 });
    expect(spec.etcd).toEqual({ snapshotRetentionDays: 7 });
  });

  test("each bad field is named with its line and what was expected", () => {
    const cases: [Record<string, unknown>, RegExp][] = [
      [clusterYaml({ name: "Demo_1" }), /bad\.yaml:\d+: name: expected 1 to 40 lowercase/],
      [clusterYaml({ cloud: "gcp" }), /cloud: expected one of "aws", "gce", "azure", got "gcp"/],
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
      const spec = loadCloudSpec(
        writeSpec(dir, clusterYaml({ region, network: { zones: [`${region}a`, `${region}c`] } }), "ok.yaml"),
        "aws",
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
    const schema = awsSchemaOf(
      JSON.parse(readFileSync(join(repoRoot, "docs", "cluster.schema.json"), "utf8")),
    );
    expect(schema.properties.network.properties.allowSshFromAnywhere.description).toMatch(/\/0/);
    expect(schema.properties.sshKey.description).toMatch(/key pair/);
  });

  test("network.internet: a boolean, only for kubebake's own VPC; a private network refuses any /0", () => {
    expect(problems(clusterYaml({ network: { internet: "no" } }))).toMatch(
      /bad\.yaml:\d+: network\.internet: expected true or false, got a string$/,
    );
    expect(
      problems(
        clusterYaml({
          network: { vpc: "vpc-0123456789abcdef0", subnets: ["subnet-0123456789abcdef0"], internet: false },
        }),
      ),
    ).toMatch(
      /bad\.yaml:\d+: network\.internet: expected no internet with an existing VPC: its subnets and routes are yours \(give the nodes VPC endpoints for ssm, autoscaling and s3, or a NAT gateway\)$/,
    );
    // allowApiFromAnywhere does not help: the whole internet cannot reach nodes without public addresses.
    expect(
      problems(
        clusterYaml({ network: { internet: false, apiAccess: ["0.0.0.0/0"], allowApiFromAnywhere: true } }),
      ),
    ).toMatch(
      /bad\.yaml:\d+: network\.apiAccess\[0\]: 0\.0\.0\.0\/0 is the whole internet, which cannot reach a private network \(network\.internet: false\): set network\.internet: true, or list the networks that reach the VPC/,
    );
    expect(
      problems(clusterYaml({ network: { internet: false, sshAccess: ["10.1.0.0/16", "0.0.0.0/0"] } })),
    ).toMatch(
      /network\.sshAccess\[1\]: 0\.0\.0\.0\/0 is the whole internet, which cannot reach a private network/,
    );
    for (const internet of [true, false]) {
      const { spec } = loadClusterSpec(
        writeSpec(dir, clusterYaml({ network: { internet, apiAccess: ["192.0.2.0/24"] } }), "internet.yaml"),
      );
      expect(spec.network.internet).toBe(internet);
    }
    const schema = awsSchemaOf(
      JSON.parse(readFileSync(join(repoRoot, "docs", "cluster.schema.json"), "utf8")),
    );
    expect(schema.properties.network.properties.internet.description).toMatch(/VPC endpoints/);
  });

  test("the CLI refuses network.internet with an existing VPC: exit 2, the field named, nothing contacted", () => {
    const file = writeSpec(
      dir,
      clusterYaml({
        network: { vpc: "vpc-0123456789abcdef0", subnets: ["subnet-0123456789abcdef0"], internet: true },
      }),
      "internet-existing.yaml",
    );
    for (const command of ["validate", "plan"]) {
      const result = runCli("kubebake", ["cluster", command, "-f", file], {
        AWS_ENDPOINT_URL: "http://127.0.0.1:9",
      });
      expect({ command, code: result.code }).toEqual({ command, code: 2 });
      expect(result.stderr).toMatch(
        /internet-existing\.yaml:\d+: network\.internet: expected no internet with an existing VPC/,
      );
    }
  });

  test("the JSON Schema in docs/ is current", () => {
    const result = runCli("kubebake", ["cluster", "schema"]);
    expect(result.code).toBe(0);
    expect(result.stdout).toBe(readFileSync(join(repoRoot, "docs", "cluster.schema.json"), "utf8"));
  });
});

describe("the pod network holds every node the groups may grow to", () => {
  const groups = (masters: number, max: number) => ({
    masters: { count: masters, instanceType: "t3.medium" },
    minions: { min: 0, max, desired: 0, instanceType: "t3.large" },
  });

  test("capacity: 2^(24 - prefix) nodes at /24 per node, none when the CIDR is smaller than one range", () => {
    expect(NODE_CIDR_MASK_SIZE).toBe(24);
    expect(podCapacity("10.200.0.0/16")).toBe(256);
    expect(podCapacity("10.0.0.0/14")).toBe(1024);
    expect(podCapacity("10.0.0.0/24")).toBe(1);
    expect(podCapacity("10.0.0.0/25")).toBe(0);
    expect(podCapacity("10.0.0.0/16", 26)).toBe(1024);
  });

  test("exactly at capacity is accepted, one node more is refused with the numbers and the way out", () => {
    const g = (count: number, max: number) => ({ masters: { count }, minions: { max } });
    expect(podCapacityProblem(g(1, 255), "10.200.0.0/16", "x")).toBeUndefined();
    expect(podCapacityProblem(g(3, 253), "10.200.0.0/16", "x")).toBeUndefined();
    expect(podCapacityProblem(g(1, 0), "10.0.0.0/24", "x")).toBeUndefined();
    expect(podCapacityProblem(g(1, 256), "10.200.0.0/16", "cluster.podCIDR of image/kubebake.yaml")).toBe(
      "the pod network 10.200.0.0/16 (cluster.podCIDR of image/kubebake.yaml) holds 256 nodes at /24 per node (kube-controller-manager's default --node-cidr-mask-size), but the groups may grow to 257 (masters 1 + minions 256); lower groups.minions.max to 255 or less, or bake the image with a /15 or larger podCIDR",
    );
    expect(podCapacityProblem(g(3, 1000), "10.244.0.0/16", "x")).toMatch(
      /holds 256 nodes at \/24 .* grow to 1003 \(masters 3 \+ minions 1000\); lower groups\.minions\.max to 253 or less, or bake the image with a \/14 or larger podCIDR$/,
    );
    expect(podCapacityProblem(g(1, 1), "10.0.0.0/24", "x")).toMatch(
      /holds 1 node at \/24 .* grow to 2 \(masters 1 \+ minions 1\); lower groups\.minions\.max to 0 or less, or bake the image with a \/23 or larger/,
    );
    expect(podCapacityProblem(g(1, 0), "10.0.0.0/25", "x")).toMatch(/holds no node at \/24/);
    // a /14 holds the largest groups the schema allows
    expect(podCapacityProblem(g(5, 1000), "10.0.0.0/14", "x")).toBeUndefined();
  });

  test("a cluster naming its image spec is checked against that spec's pod CIDR (validate, exit 2)", () => {
    const imageSpec = readFileSync(join(repoRoot, "image", "kubebake.yaml"), "utf8").replace(
      /podCIDR: .*/,
      "podCIDR: 10.9.0.0/22",
    );
    expect(imageSpec).toContain("podCIDR: 10.9.0.0/22");
    writeFileSync(join(dir, "small-image.yaml"), imageSpec);
    const cluster = (max: number) =>
      clusterYaml({ image: { ami: "ami-00000000", spec: "small-image.yaml" }, groups: groups(1, max) });
    expect(loadClusterSpec(writeSpec(dir, cluster(3), "fits-spec.yaml")).spec.groups.minions.max).toBe(3);
    const file = writeSpec(dir, cluster(4), "outgrows-spec.yaml");
    const result = runCli("kubebake", ["cluster", "validate", "-f", file]);
    expect({ code: result.code, stderr: result.stderr }).toEqual({
      code: 2,
      stderr: expect.stringMatching(
        /^error: .*outgrows-spec\.yaml: groups\.minions\.max: the pod network 10\.9\.0\.0\/22 \(cluster\.podCIDR of small-image\.yaml\) holds 4 nodes at \/24 per node .*grow to 5 \(masters 1 \+ minions 4\); lower groups\.minions\.max to 3 or less/,
      ),
    });
  });

  test("validate refuses a cluster on a bare AMI that outgrows the repository image's pod CIDR (exit 2, the field and its line)", () => {
    const { spec: image } = loadImageSpec(join(repoRoot, "image", "kubebake.yaml"));
    expect(image.cluster.podCIDR).toBe("10.200.0.0/16"); // 256 nodes: the numbers below
    for (const [masters, max] of [
      [1, 255],
      [3, 253],
      [5, 251],
    ] as const) {
      expect(
        loadClusterSpec(writeSpec(dir, clusterYaml({ groups: groups(masters, max) }), "fits.yaml")).spec
          .groups.minions.max,
      ).toBe(max);
    }
    for (const [masters, max] of [
      [1, 256],
      [3, 254],
      [5, 1000],
    ] as const) {
      expect(problems(clusterYaml({ groups: groups(masters, max) }))).toMatch(
        new RegExp(
          `bad\\.yaml:\\d+: groups\\.minions\\.max: the pod network 10\\.200\\.0\\.0/16 \\(cluster\\.podCIDR of image/kubebake\\.yaml\\) holds 256 nodes at /24 per node .*, but the groups may grow to ${masters + max} \\(masters ${masters} \\+ minions ${max}\\); lower groups\\.minions\\.max to ${256 - masters} or less`,
        ),
      );
    }
    const file = writeSpec(dir, clusterYaml({ groups: groups(3, 254) }), "too-many.yaml");
    const result = runCli("kubebake", ["cluster", "validate", "-f", file]);
    expect(result.code).toBe(2);
    expect(result.stderr).toMatch(
      /too-many\.yaml:\d+: groups\.minions\.max: the pod network 10\.200\.0\.0\/16/,
    );
    expect(result.stderr).not.toMatch(/\n\s+at /);
    // The documented example (3 masters, up to 20 minions) fits.
    expect(runCli("kubebake", ["cluster", "validate", "-f", example]).code).toBe(0);
  });
});
