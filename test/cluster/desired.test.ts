import { createHash } from "node:crypto";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { isDeepStrictEqual } from "node:util";
import { parse } from "yaml";
import { awsClusterSpecSchema } from "../../src/cluster/schema";
import { discoveryConfigFromEnv, discoveryEnvironment } from "../../src/discover/config";
import {
  asTagList,
  ROLE_SECRET_NAMES,
  autoScalingEventPattern,
  clusterIdParameter,
  clusterZoneName,
  discoveryConfig,
  discoveryRoleName,
  dnsSuffix,
  endpointPolicy,
  endpointSecurityGroupRules,
  endpointServiceNames,
  internetChoice,
  NODE_ENDPOINTS,
  globalName,
  groupSize,
  iamPath,
  KEY_DELETION_WINDOW_DAYS,
  keyAlias,
  LAUNCH_HOOK_NAME,
  launchHook,
  launchTemplateData,
  nodeRoleName,
  nodePolicy,
  rolloutBatch,
  securityGroupRules,
  snapshotBucketName,
  snapshotBucketPolicy,
  snapshotLifecycleRules,
  snapshotStore,
  subnetCidrs,
  tagsFor,
  userData,
} from "../../src/launch/aws/desired";
import { comparableTemplateData } from "../../src/launch/aws/groups";
import { namesKey, usable } from "../../src/launch/aws/key";
import { PKI_FILE_NAMES } from "../../src/launch/aws/secrets";
import { generateClusterPki } from "../../src/pki/pki";
import { clusterYaml, inputsFor, KEY_ARN } from "../aws/fixture";
import { repoRoot } from "../helpers";

const spec = awsClusterSpecSchema.parse(clusterYaml());
const inputs = inputsFor(spec);

describe("desired AWS state", () => {
  test("user data writes only the role file: cluster, provider and where secrets are; masters also where snapshots go, which hook to complete and who may join", () => {
    const bucket = snapshotBucketName("123456789012", "eu-west-1", "demo");
    for (const role of ["masters", "minions"] as const) {
      const text = userData(inputs, role, KEY_ARN);
      expect(text.startsWith("#cloud-config\n")).toBe(true);
      expect(parse(text)).toEqual({
        write_files: [
          {
            path: `/etc/sysconfig/kubernetes-${role}`,
            owner: "root:root",
            permissions: "0644",
            content:
              "CLUSTER_NAME=demo\nCLOUD_PROVIDER=aws\nSECRET_SOURCE=ssm:/kubebake/demo\n" +
              (role === "masters"
                ? "MASTERS_COUNT=1\n" +
                  `SNAPSHOT_STORE=s3://${bucket}/demo/etcd\n` +
                  "GROUP_NAME=kubebake-demo-masters\n" +
                  "LAUNCH_HOOK=kubebake-etcd-voter\n" +
                  `SECRET_KMS_KEY=${KEY_ARN}\n` +
                  `JOIN_IDENTITIES="arn:aws:sts::123456789012:assumed-role/kubebake-demo-eu-west-1-masters arn:aws:sts::123456789012:assumed-role/kubebake-demo-eu-west-1-minions"\n`
                : ""),
          },
        ],
      });
      const data = launchTemplateData(inputs, role, "sg-1", KEY_ARN);
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
      discoveryDomain: "k8s",
    });
    expect(files.map((f) => f.name).sort()).toEqual(PKI_FILE_NAMES);
    const minionReads = JSON.stringify(nodePolicy(inputs, "minions", KEY_ARN));
    expect(minionReads).toContain("parameter/kubebake/demo/ca.crt");
    expect(minionReads).toContain("parameter/kubebake/demo/bootstrap-token");
    expect(minionReads).not.toMatch(/\*|\.key/);
  });

  test("each role may read exactly what its node-config fetches, all of it in the PKI; masters not the operator's admin credential", () => {
    const script = readFileSync(join(repoRoot, "src", "node", "node-config"), "utf8");
    const [, masters, minions] =
      /if \[ "\$ROLE" = masters \]; then\n\s*secrets="([^"]*)"\nelse\n\s*secrets="([^"]*)"/.exec(script)!;
    const words = (list: string) => list!.split(/\s+/).filter(Boolean).sort();
    expect(words(masters!)).toEqual(ROLE_SECRET_NAMES.masters);
    expect(words(minions!)).toEqual([...ROLE_SECRET_NAMES.minions].sort());
    type Statement = { Sid: string; Action: string[]; Resource: string | string[] };
    const statements = (role: "masters" | "minions") =>
      nodePolicy(inputs, role, KEY_ARN).Statement as unknown as Statement[];
    for (const role of ["masters", "minions"] as const) {
      for (const name of ROLE_SECRET_NAMES[role]) expect(PKI_FILE_NAMES).toContain(name);
      const read = statements(role).find((s) => s.Sid === "ReadClusterSecrets");
      expect(read?.Resource).toEqual(
        ROLE_SECRET_NAMES[role].map((n) => `arn:aws:ssm:eu-west-1:123456789012:parameter/kubebake/demo/${n}`),
      );
    }
    expect(ROLE_SECRET_NAMES.masters).not.toContain("admin.key");
    expect(ROLE_SECRET_NAMES.masters).not.toContain("admin.kubeconfig");
    // Masters publish the join token they mint, and nothing else.
    const publish = statements("masters").filter((s) =>
      s.Action.some((a) => a === "ssm:PutParameter" || a === "kms:Encrypt"),
    );
    expect(publish.map((s) => s.Resource)).toEqual([
      "arn:aws:ssm:eu-west-1:123456789012:parameter/kubebake/demo/bootstrap-token",
      KEY_ARN,
    ]);
    expect(JSON.stringify(nodePolicy(inputs, "minions", KEY_ARN))).not.toMatch(/PutParameter|kms:Encrypt/);
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
    // The limits themselves fit: a /20 holds one subnet, a /19 two.
    expect(subnetCidrs("10.0.0.0/20", 1)).toEqual(["10.0.0.0/20"]);
    expect(subnetCidrs("10.0.0.0/19", 2)).toEqual(["10.0.0.0/20", "10.0.16.0/20"]);
    expect(() => subnetCidrs("10.0.0.0/21", 1)).toThrow("network.cidr 10.0.0.0/21: expected a /20 or larger");
    expect(() => subnetCidrs("10.0.0.0/20", 2)).toThrow(
      "network.cidr 10.0.0.0/20: room for 1 /20 subnets, not 2",
    );
    // Addresses above 128.0.0.0 stay unsigned.
    expect(subnetCidrs("192.168.0.0/16", 2)).toEqual(["192.168.0.0/20", "192.168.16.0/20"]);
  });

  test("global (IAM) names carry the region, fit 64 characters, and stay distinct when shortened", () => {
    expect(nodeRoleName(spec, "masters")).toBe("kubebake-demo-eu-west-1-masters");
    expect(nodeRoleName({ name: "demo", region: "us-east-1" }, "masters")).toBe(
      "kubebake-demo-us-east-1-masters",
    );
    expect(discoveryRoleName(spec)).toBe("kubebake-demo-eu-west-1-dns-discovery");
    expect(iamPath("demo", "eu-west-1")).toBe("/kubebake/demo/eu-west-1/");
    expect(launchTemplateData(inputs, "minions", "sg-1", KEY_ARN).IamInstanceProfile.Name).toBe(
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

  test("a global name is shortened only past 64 characters, to exactly 64, with a hash of the full name", () => {
    const hash = (full: string) => createHash("sha256").update(full).digest("hex").slice(0, 8);
    const fits = "c".repeat(37); // kubebake-<37>-eu-west-1-masters is 64 characters
    expect(globalName(fits, "eu-west-1", "masters")).toBe(`kubebake-${fits}-eu-west-1-masters`);
    const over = "c".repeat(38);
    const shortened = globalName(over, "eu-west-1", "masters");
    expect(shortened).toBe(`kubebake-${over}-${hash(`kubebake-${over}-eu-west-1-masters`)}-masters`);
    expect(shortened).toHaveLength(64);
    // A cut that ends in dashes drops them: one dash before the hash, as everywhere else.
    const dashed = `${"c".repeat(30)}--y`;
    expect(globalName(dashed, "ap-southeast-2", "dns-discovery")).toBe(
      `kubebake-${"c".repeat(30)}-${hash(`kubebake-${dashed}-ap-southeast-2-dns-discovery`)}-dns-discovery`,
    );
  });

  test("the snapshot bucket's name: deterministic, one per account, region and cluster, a valid S3 name of at most 63 characters", () => {
    const hash = (key: string) => createHash("sha256").update(key).digest("hex").slice(0, 12);
    expect(snapshotBucketName("123456789012", "eu-west-1", "demo")).toBe(
      `kubebake-demo-${hash("123456789012:eu-west-1:demo")}`,
    );
    const longest = "c".repeat(39) + "9";
    const names = ["123456789012", "210987654321"].flatMap((account) =>
      ["eu-west-1", "us-east-1"].flatMap((region) =>
        ["demo", "demo2", longest].map((cluster) => snapshotBucketName(account, region, cluster)),
      ),
    );
    expect(new Set(names).size).toBe(names.length);
    expect(snapshotBucketName("123456789012", "eu-west-1", "demo")).toBe(names[0]);
    for (const name of names) {
      expect(name.length).toBeLessThanOrEqual(63);
      // S3: lowercase letters, digits and hyphens here, starting and ending with a letter or digit.
      expect(name).toMatch(/^[a-z0-9][a-z0-9-]{1,61}[a-z0-9]$/);
    }
    expect(snapshotBucketName("123456789012", "eu-west-1", longest)).toHaveLength(62);
    expect(snapshotStore(inputs)).toBe(`s3://${names[0]}/demo/etcd`);
  });

  test("the snapshot bucket denies every request without TLS and expires snapshots under the cluster's prefix only", () => {
    expect(snapshotBucketPolicy("b", "aws").Statement).toEqual([
      {
        Sid: "DenyInsecureTransport",
        Effect: "Deny",
        Principal: "*",
        Action: "s3:*",
        Resource: ["arn:aws:s3:::b", "arn:aws:s3:::b/*"],
        Condition: { Bool: { "aws:SecureTransport": "false" } },
      },
    ]);
    const kept = awsClusterSpecSchema.parse(clusterYaml({ etcd: { snapshotRetentionDays: 30 } }));
    expect(snapshotLifecycleRules(kept)).toEqual([
      {
        ID: "expire-etcd-snapshots",
        Status: "Enabled",
        Filter: { Prefix: "demo/etcd/" },
        Expiration: { Days: 30 },
        NoncurrentVersionExpiration: { NoncurrentDays: 1 },
        AbortIncompleteMultipartUpload: { DaysAfterInitiation: 1 },
      },
    ]);
    expect(snapshotLifecycleRules(spec)[0]!.Expiration.Days).toBe(7); // the default
  });

  test("the launch hook: masters only, abandoned when not completed within the rollout timeout (30 to 7200 s)", () => {
    expect(launchHook(spec, "minions")).toBeUndefined();
    expect(launchHook(spec, "masters")).toEqual({
      LifecycleHookName: LAUNCH_HOOK_NAME,
      LifecycleTransition: "autoscaling:EC2_INSTANCE_LAUNCHING",
      DefaultResult: "ABANDON",
      HeartbeatTimeout: 900,
    });
    const timeout = (timeoutSeconds: number) =>
      launchHook(awsClusterSpecSchema.parse(clusterYaml({ rollout: { timeoutSeconds } })), "masters")!
        .HeartbeatTimeout;
    expect([1, 29, 30, 1800, 7200, 7201, 86400].map(timeout)).toEqual([30, 30, 30, 1800, 7200, 7200, 7200]);
  });

  test("rollout batches: masters one at a time, minions a share of at least one", () => {
    expect(rolloutBatch(spec, "masters", 5)).toBe(1);
    expect(rolloutBatch(spec, "minions", 20)).toBe(5);
    expect(rolloutBatch(spec, "minions", 2)).toBe(1);
    expect(rolloutBatch(spec, "minions", 7)).toBe(1); // 25 % of 7 rounds down
    expect(rolloutBatch(spec, "minions", 8)).toBe(2);
    expect(rolloutBatch(spec, "minions", 0)).toBe(1);
    const whole = awsClusterSpecSchema.parse(clusterYaml({ rollout: { batchPercent: 100 } }));
    expect(rolloutBatch(whole, "minions", 3)).toBe(3);
    expect(rolloutBatch(whole, "masters", 3)).toBe(1);
  });

  test("the discovery function's environment round-trips and bad values are refused", () => {
    const config = { cluster: "demo", zoneId: "Z123", domain: "k8s", ttl: 30, emptyGroup: "keep" as const };
    expect(discoveryConfigFromEnv(discoveryEnvironment(config))).toEqual(config);
    expect(() =>
      discoveryConfigFromEnv({ ...discoveryEnvironment(config), EMPTY_GROUP_POLICY: "drop" }),
    ).toThrow(/expected delete or keep/);
    expect(() => discoveryConfigFromEnv({ CLUSTER_NAME: "demo" })).toThrow(/HOSTED_ZONE_ID is not set/);
  });

  test("every resource is tagged with the user's tags, the cluster, its logical name and the owner id", () => {
    const tagged = awsClusterSpecSchema.parse(
      clusterYaml({ tags: { team: "platform", "cost-center": "42" } }),
    );
    expect(tagsFor(tagged, "sg-masters", "kb-0123456789abcdef")).toEqual({
      team: "platform",
      "cost-center": "42",
      KubernetesCluster: "demo",
      "kubebake:name": "sg-masters",
      "kubebake:owner": "kb-0123456789abcdef",
      Name: "kubebake-demo-sg-masters",
    });
    // As AWS takes them: a list in one stable order, so that what is written never differs run to run.
    expect(asTagList(tagsFor(tagged, "zone", "kb-1"))).toEqual([
      { Key: "cost-center", Value: "42" },
      { Key: "kubebake:name", Value: "zone" },
      { Key: "kubebake:owner", Value: "kb-1" },
      { Key: "KubernetesCluster", Value: "demo" },
      { Key: "Name", Value: "kubebake-demo-zone" },
      { Key: "team", Value: "platform" },
    ]);
  });

  test("launch templates: the AMI, the role's instance type, its security group, the key pair when given", () => {
    const keyed = inputsFor(awsClusterSpecSchema.parse(clusterYaml({ sshKey: "ops" })));
    const masters = launchTemplateData(keyed, "masters", "sg-m", KEY_ARN);
    expect(masters).toMatchObject({
      ImageId: "ami-0123456789abcdef0",
      InstanceType: "t3.medium",
      KeyName: "ops",
      IamInstanceProfile: { Name: "kubebake-demo-eu-west-1-masters" },
      SecurityGroupIds: ["sg-m"],
    });
    expect(launchTemplateData(keyed, "minions", "sg-n", KEY_ARN)).toMatchObject({
      InstanceType: "t3.large",
      KeyName: "ops",
      SecurityGroupIds: ["sg-n"],
    });
    expect("KeyName" in launchTemplateData(inputs, "masters", "sg-m", KEY_ARN)).toBe(false);
  });

  test("group sizes: masters exactly their count, minions their min, max and desired", () => {
    expect(groupSize(spec, "masters")).toEqual({ min: 1, max: 1, desired: 1 });
    expect(groupSize(spec, "minions")).toEqual({ min: 1, max: 10, desired: 5 });
  });

  test("discovery settings and names follow the spec: zone, record TTL, empty-group policy, id parameter", () => {
    const tuned = awsClusterSpecSchema.parse(clusterYaml({ discovery: { ttl: 60, emptyGroup: "keep" } }));
    expect(discoveryConfig(inputsFor(tuned), "Z123")).toEqual({
      cluster: "demo",
      zoneId: "Z123",
      domain: "k8s",
      ttl: 60,
      emptyGroup: "keep",
    });
    expect(clusterZoneName(inputs)).toBe("demo.k8s.");
    expect(clusterIdParameter("demo")).toBe("/kubebake/demo/cluster-id");
  });

  test("the discovery function's Auto Scaling rule: every event of the cluster's two groups, no detail-type filter", () => {
    // No detail-type: "EC2 Instance-launch Lifecycle Action" (a master entering Pending:Wait) matches as
    // the launch and terminate events do (evaluated by moto's matcher in test/aws/event-pattern.test.ts).
    expect(autoScalingEventPattern("demo")).toEqual({
      source: ["aws.autoscaling"],
      detail: { AutoScalingGroupName: ["kubebake-demo-masters", "kubebake-demo-minions"] },
    });
    expect(autoScalingEventPattern("prod-1").detail.AutoScalingGroupName).toEqual([
      "kubebake-prod-1-masters",
      "kubebake-prod-1-minions",
    ]);
  });
});

describe("the cluster key in the desired state", () => {
  const key = { id: "1234abcd-12ab-34cd-56ef-1234567890ab", arn: KEY_ARN };

  test("its alias is per cluster (KMS aliases are regional already), and the root volume names it", () => {
    expect(keyAlias("demo")).toBe("alias/kubebake-demo");
    expect(keyAlias("prod-1")).toBe("alias/kubebake-prod-1");
    expect(KEY_DELETION_WINDOW_DAYS).toBe(7);
    for (const role of ["masters", "minions"] as const) {
      expect(launchTemplateData(inputs, role, "sg-1", KEY_ARN).BlockDeviceMappings).toEqual([
        { DeviceName: "/dev/xvda", Ebs: { Encrypted: true, KmsKeyId: KEY_ARN, DeleteOnTermination: true } },
      ]);
    }
    // The AMI's own root device, whatever it is called.
    expect(
      launchTemplateData({ ...inputs, rootDevice: "/dev/sda1" }, "masters", "sg-1", KEY_ARN)
        .BlockDeviceMappings[0].DeviceName,
    ).toBe("/dev/sda1");
  });

  test("a template read back with the same data compares equal; an unencrypted, other-key or second volume does not", () => {
    const data = launchTemplateData(inputs, "masters", "sg-1", KEY_ARN);
    const desired = { ...data, SecurityGroupIds: [...data.SecurityGroupIds].sort() };
    expect(comparableTemplateData(data)).toEqual(desired);
    const root = data.BlockDeviceMappings[0];
    const variants = {
      unencrypted: [{ DeviceName: root.DeviceName, Ebs: { DeleteOnTermination: true } }],
      otherKey: [{ ...root, Ebs: { ...root.Ebs, KmsKeyId: KEY_ARN.replace("1234abcd", "ffffffff") } }],
      resized: [{ ...root, Ebs: { ...root.Ebs, VolumeSize: 100 } }],
      second: [root, { DeviceName: "/dev/xvdb", Ebs: { VolumeSize: 10 } }],
      none: [],
    };
    for (const [what, BlockDeviceMappings] of Object.entries(variants)) {
      expect({
        what,
        equal: isDeepStrictEqual(comparableTemplateData({ ...data, BlockDeviceMappings }), desired),
      }).toEqual({ what, equal: false });
    }
  });

  test("a parameter's KeyId names the cluster key by its ARN, id or alias, and nothing else does", () => {
    const alias = keyAlias("demo");
    for (const keyId of [KEY_ARN, key.id, alias, `arn:aws:kms:eu-west-1:123456789012:${alias}`]) {
      expect({ keyId, names: namesKey(keyId, key, alias) }).toEqual({ keyId, names: true });
    }
    for (const keyId of [
      undefined,
      "",
      "alias/aws/ssm",
      "alias/kubebake-demo2",
      "alias/kubebake-dem",
      KEY_ARN.replace("1234abcd", "ffffffff"),
      "ffffffff-12ab-34cd-56ef-1234567890ab",
      // The alias of that name in another region or account is another key.
      `arn:aws:kms:us-east-1:123456789012:${alias}`,
      `arn:aws:kms:eu-west-1:210987654321:${alias}`,
    ]) {
      expect({ keyId, names: namesKey(keyId, key, alias) }).toEqual({ keyId, names: false });
    }
  });

  test("a key pending deletion is never used; every other state is", () => {
    expect(usable("PendingDeletion")).toBe(false);
    expect(usable("PendingReplicaDeletion")).toBe(false);
    for (const state of ["Enabled", "Disabled", "PendingImport", "Creating", "Updating", undefined]) {
      expect(usable(state)).toBe(true);
    }
  });

  test("China's partition has its own endpoint suffix; the others share amazonaws.com", () => {
    expect(dnsSuffix("aws-cn")).toBe("amazonaws.com.cn");
    expect(dnsSuffix("aws")).toBe("amazonaws.com");
    expect(dnsSuffix("aws-us-gov")).toBe("amazonaws.com");
  });
});

describe("a private network in the desired state", () => {
  const withInternet = (internet?: boolean) =>
    awsClusterSpecSchema.parse(clusterYaml({ network: { ...(internet === undefined ? {} : { internet }) } }));

  test("the spec decides; unset, only a cluster whose VPC has its internet gateway stays public, and says why", () => {
    for (const internet of [true, false])
      for (const gateway of [true, false])
        expect(internetChoice(withInternet(internet), gateway)).toEqual({ internet });
    expect(internetChoice(withInternet(), false)).toEqual({
      internet: false,
      defaulted: expect.stringMatching(
        /^network\.internet is unset: .*private, the default for new clusters/,
      ),
    });
    expect(internetChoice(withInternet(), true)).toEqual({
      internet: true,
      defaulted: expect.stringMatching(/internet gateway: it stays public \(set network\.internet: false/),
    });
  });

  test("its endpoints serve exactly the AWS APIs the node scripts call", () => {
    // Every signed call of the node scripts names its service: aws_json_call ssm, aws_query_call
    // autoscaling and ec2, aws_request s3 (s3.sh), aws_authorization sts (a join proof, which the masters
    // send to STS).
    const scripts = ["providers/aws.sh", "s3.sh"].map((file) =>
      readFileSync(join(repoRoot, "src", "node", file), "utf8"),
    );
    const called = new Set(
      scripts.flatMap((text) =>
        [...text.matchAll(/aws_(?:json_call|query_call|request|authorization) ([a-z0-9-]+)/g)].map(
          (m) => m[1],
        ),
      ),
    );
    expect([...called].sort()).toEqual(NODE_ENDPOINTS.map((e) => e.service).sort());
    expect(NODE_ENDPOINTS.map((e) => `${e.service} ${e.type} ${e.logical}`)).toEqual([
      "ssm Interface endpoint-ssm",
      "autoscaling Interface endpoint-autoscaling",
      "sts Interface endpoint-sts",
      "ec2 Interface endpoint-ec2",
      "s3 Gateway endpoint-s3",
    ]);
    expect(endpointServiceNames("cn-north-1", "ssm")).toEqual([
      "com.amazonaws.cn-north-1.ssm",
      "cn.com.amazonaws.cn-north-1.ssm",
    ]);
  });

  test("endpoint policies: this account's principals only; through S3 only the cluster's bucket, in this account", () => {
    const ssm = NODE_ENDPOINTS.find((e) => e.service === "ssm")!;
    const s3 = NODE_ENDPOINTS.find((e) => e.service === "s3")!;
    expect(endpointPolicy(inputs, ssm).Statement).toEqual([
      {
        Sid: "OwnAccountOnly",
        Effect: "Allow",
        Principal: "*",
        Action: "*",
        Resource: "*",
        Condition: { StringEquals: { "aws:PrincipalAccount": "123456789012" } },
      },
    ]);
    const china = { ...inputsFor(awsClusterSpecSchema.parse(clusterYaml())), partition: "aws-cn" };
    const bucket = snapshotBucketName("123456789012", "eu-west-1", "demo");
    expect(endpointPolicy(china, s3).Statement).toEqual([
      {
        Sid: "ClusterSnapshotBucketOnly",
        Effect: "Allow",
        Principal: "*",
        Action: "s3:*",
        Resource: [`arn:aws-cn:s3:::${bucket}`, `arn:aws-cn:s3:::${bucket}/*`],
        Condition: {
          StringEquals: { "aws:PrincipalAccount": "123456789012", "s3:ResourceAccount": "123456789012" },
        },
      },
    ]);
  });

  test("the interface endpoints take HTTPS from the VPC's CIDR and nothing else", () => {
    const spec = awsClusterSpecSchema.parse(clusterYaml({ network: { cidr: "10.4.0.0/16" } }));
    expect(endpointSecurityGroupRules(spec)).toEqual([
      {
        protocol: "tcp",
        from: 443,
        to: 443,
        source: { cidr: "10.4.0.0/16" },
        description: "HTTPS to the VPC endpoints from 10.4.0.0/16",
      },
    ]);
  });
});
