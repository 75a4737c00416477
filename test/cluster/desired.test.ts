import { parse } from "yaml";
import { clusterSpecSchema } from "../../src/cluster/schema";
import { discoveryConfigFromEnv, discoveryEnvironment } from "../../src/discover/config";
import {
  globalName,
  iamPath,
  launchTemplateData,
  nodeRoleName,
  nodePolicy,
  rolloutBatch,
  securityGroupRules,
  subnetCidrs,
  userData,
} from "../../src/launch/aws/desired";
import { PKI_FILE_NAMES } from "../../src/launch/aws/secrets";
import { generateClusterPki } from "../../src/pki/pki";
import { clusterYaml, inputsFor } from "../aws/fixture";

const spec = clusterSpecSchema.parse(clusterYaml());
const inputs = inputsFor(spec);

describe("desired AWS state", () => {
  test("user data writes only the role file: cluster, provider and where secrets are", () => {
    for (const role of ["masters", "minions"] as const) {
      const text = userData(spec, role);
      expect(text.startsWith("#cloud-config\n")).toBe(true);
      expect(parse(text)).toEqual({
        write_files: [
          {
            path: `/etc/sysconfig/kubernetes-${role}`,
            owner: "root:root",
            permissions: "0644",
            content: "CLUSTER_NAME=demo\nCLOUD_PROVIDER=aws\nSECRET_SOURCE=ssm:/kubebake/demo\n",
          },
        ],
      });
      const data = launchTemplateData(inputs, role, "sg-1");
      expect(Buffer.from(data.UserData, "base64").toString()).toBe(text);
      expect(data.MetadataOptions).toEqual({
        HttpTokens: "required",
        HttpPutResponseHopLimit: 1,
        HttpEndpoint: "enabled",
      });
      expect(data.KeyName).toBeUndefined();
    }
  });

  test("the parameters the nodes fetch are the files the PKI generator makes", async () => {
    const files = await generateClusterPki({
      cluster: "demo",
      clusterDomain: "cluster.local",
      serviceCIDR: "10.96.0.0/12",
      discoveryDomain: "k8s",
    });
    expect(files.map((f) => f.name).sort()).toEqual(PKI_FILE_NAMES);
    const minionReads = JSON.stringify(nodePolicy(inputs, "minions"));
    expect(minionReads).toContain("parameter/kubebake/demo/ca.crt");
    expect(minionReads).toContain("parameter/kubebake/demo/bootstrap-token");
    expect(minionReads).not.toMatch(/\*|\.key/);
  });

  test("security group rules: only the operator CIDRs come from outside, SSH only when asked", () => {
    const rules = securityGroupRules(spec);
    const outside = [...rules.masters, ...rules.minions].filter((r) => "cidr" in r.source);
    expect(outside.map((r) => `${r.from}:${"cidr" in r.source && r.source.cidr}`)).toEqual([
      "6443:203.0.113.0/24",
    ]);
    const withSsh = securityGroupRules({
      ...spec,
      network: { ...spec.network, sshAccess: ["198.51.100.7/32"] },
    });
    expect(withSsh.minions.filter((r) => r.from === 22)).toHaveLength(1);
    expect(withSsh.masters.filter((r) => r.from === 22)).toHaveLength(1);
  });

  test("subnets: /20s from the VPC CIDR, refused when they do not fit", () => {
    expect(subnetCidrs("10.0.0.0/16", 3)).toEqual(["10.0.0.0/20", "10.0.16.0/20", "10.0.32.0/20"]);
    expect(subnetCidrs("172.16.0.0/12", 1)).toEqual(["172.16.0.0/20"]);
    expect(() => subnetCidrs("10.0.0.0/24", 1)).toThrow(/expected a \/20 or larger/);
    expect(() => subnetCidrs("10.0.0.0/19", 3)).toThrow(/room for 2/);
  });

  test("global (IAM) names carry the region, fit 64 characters, and stay distinct when shortened", () => {
    expect(nodeRoleName(spec, "masters")).toBe("kubebake-demo-eu-west-1-masters");
    expect(nodeRoleName({ name: "demo", region: "us-east-1" }, "masters")).toBe(
      "kubebake-demo-us-east-1-masters",
    );
    expect(iamPath("demo", "eu-west-1")).toBe("/kubebake/demo/eu-west-1/");
    expect(launchTemplateData(inputs, "minions", "sg-1").IamInstanceProfile.Name).toBe(
      "kubebake-demo-eu-west-1-minions",
    );
    const longest = "c".repeat(40);
    const all = () =>
      ["ap-southeast-2", "ap-southeast-1"].flatMap((region) =>
        ["masters", "minions", "dns-discovery"].map((part) => globalName(longest, region, part)),
      );
    const names = all();
    expect(all()).toEqual(names); // deterministic
    for (const name of names) {
      expect(name.length).toBeLessThanOrEqual(64);
      expect(name).toMatch(/^kubebake-c+-[0-9a-f]{8}-(masters|minions|dns-discovery)$/);
    }
    expect(new Set(names).size).toBe(names.length);
    // IAM names allow [\w+=,.@-]
    for (const name of names) expect(name).toMatch(/^[\w+=,.@-]+$/);
  });

  test("rollout batches: masters one at a time, minions a share of at least one", () => {
    expect(rolloutBatch(spec, "masters", 5)).toBe(1);
    expect(rolloutBatch(spec, "minions", 20)).toBe(5);
    expect(rolloutBatch(spec, "minions", 2)).toBe(1);
  });

  test("the discovery function's environment round-trips and bad values are refused", () => {
    const config = { cluster: "demo", zoneId: "Z123", domain: "k8s", ttl: 30, emptyGroup: "keep" as const };
    expect(discoveryConfigFromEnv(discoveryEnvironment(config))).toEqual(config);
    expect(() =>
      discoveryConfigFromEnv({ ...discoveryEnvironment(config), EMPTY_GROUP_POLICY: "drop" }),
    ).toThrow(/expected delete or keep/);
    expect(() => discoveryConfigFromEnv({ CLUSTER_NAME: "demo" })).toThrow(/HOSTED_ZONE_ID is not set/);
  });
});
