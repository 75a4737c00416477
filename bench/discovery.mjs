#!/usr/bin/env node
// DNS-discovery figures against moto. Prints figures; asserts nothing.
//   node bench/discovery.mjs [--json] [--instances N]   (npm run bench runs it after the bake bench)
// Targets: at most 3 read calls and no write per event when nothing changed; the bundle under 300 KB.
// The handler measured is the one in the Lambda bundle (dist/lambdas/dns-discovery.zip), run here.
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { createRequire } from "node:module";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { startMoto } from "./moto.mjs";
import { execFileSync } from "node:child_process";
import { unzipSync } from "fflate";

const repo = resolve(import.meta.dirname ?? new URL(".", import.meta.url).pathname, "..");
const require = createRequire(join(repo, "package.json"));
const json = process.argv.includes("--json");
const perGroup = Number(process.argv[process.argv.indexOf("--instances") + 1]) || 1000;
process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED = "true";
const say = (line) => json || process.stderr.write(`${line}\n`);

execFileSync("node", ["scripts/build.mjs"], { cwd: repo });
const zip = readFileSync(join(repo, "dist", "lambdas", "dns-discovery.zip"));
const checkDir = join(repo, "dist", ".bench");
mkdirSync(checkDir, { recursive: true });
writeFileSync(join(checkDir, "index.js"), unzipSync(zip)["index.js"]);
const { createHandler } = require(join(checkDir, "index.js"));

const ec2sdk = require("@aws-sdk/client-ec2");
const asgsdk = require("@aws-sdk/client-auto-scaling");
const r53sdk = require("@aws-sdk/client-route-53");

const work = mkdtempSync(join(tmpdir(), "kubebake-bench-dns-"));
const { endpoint, moto } = await startMoto(work);

try {
  const config = {
    endpoint,
    region: "eu-west-1",
    credentials: { accessKeyId: "bench", secretAccessKey: "bench" },
  };
  const calls = [];
  const counted = (client, service) => {
    client.middlewareStack.add(
      (next, context) => async (args) => {
        calls.push(`${service}:${context.commandName.replace(/Command$/, "")}`);
        return next(args);
      },
      { step: "initialize", name: "benchCount" },
    );
    return client;
  };
  const ec2 = new ec2sdk.EC2Client(config);
  const autoScaling = new asgsdk.AutoScalingClient(config);
  const route53 = new r53sdk.Route53Client(config);

  say(`setting up 2 groups × ${perGroup} instances in moto…`);
  const ami = (
    await ec2.send(
      new ec2sdk.RegisterImageCommand({
        Name: "bench",
        Architecture: "x86_64",
        RootDeviceName: "/dev/xvda",
        VirtualizationType: "hvm",
      }),
    )
  ).ImageId;
  const vpc = (await ec2.send(new ec2sdk.CreateVpcCommand({ CidrBlock: "10.0.0.0/16" }))).Vpc.VpcId;
  const subnet = (
    await ec2.send(
      new ec2sdk.CreateSubnetCommand({
        VpcId: vpc,
        CidrBlock: "10.0.0.0/20",
        AvailabilityZone: "eu-west-1a",
      }),
    )
  ).Subnet.SubnetId;
  const template = (
    await ec2.send(
      new ec2sdk.CreateLaunchTemplateCommand({
        LaunchTemplateName: "bench",
        LaunchTemplateData: { ImageId: ami, InstanceType: "t3.small" },
      }),
    )
  ).LaunchTemplate.LaunchTemplateId;
  const zone = (
    await route53.send(
      new r53sdk.CreateHostedZoneCommand({
        Name: "bench.k8s.",
        CallerReference: `bench-${Date.now()}`,
        VPC: { VPCId: vpc, VPCRegion: "eu-west-1" },
        HostedZoneConfig: { PrivateZone: true },
      }),
    )
  ).HostedZone.Id.replace("/hostedzone/", "");
  const group = async (role, size) => {
    const started = Date.now();
    await autoScaling.send(
      new asgsdk.CreateAutoScalingGroupCommand({
        AutoScalingGroupName: `kubebake-bench-${role}`,
        MinSize: 0,
        MaxSize: Math.max(size, 1),
        DesiredCapacity: size,
        VPCZoneIdentifier: subnet,
        LaunchTemplate: { LaunchTemplateId: template, Version: "1" },
        Tags: [
          { Key: "KubernetesCluster", Value: "bench", PropagateAtLaunch: true },
          { Key: "Role", Value: role, PropagateAtLaunch: true },
        ],
      }),
    );
    return (Date.now() - started) / 1000;
  };
  const setupSeconds = (await group("masters", perGroup)) + (await group("minions", perGroup));
  say(`  moto launched them in ${setupSeconds.toFixed(1)} s`);

  const env = {
    CLUSTER_NAME: "bench",
    HOSTED_ZONE_ID: zone,
    DISCOVERY_DOMAIN: "k8s",
    RECORD_TTL: "30",
    EMPTY_GROUP_POLICY: "delete",
  };
  const handlerClients = {
    autoScaling: counted(new asgsdk.AutoScalingClient(config), "autoscaling"),
    ec2: counted(new ec2sdk.EC2Client(config), "ec2"),
    route53: counted(new r53sdk.Route53Client(config), "route53"),
  };
  const handler = createHandler(() => handlerClients, env);
  const quietly = async (event) => {
    const write = process.stdout.write;
    process.stdout.write = () => true; // the handler's JSON logs
    try {
      const started = process.hrtime.bigint();
      const summary = await handler(event);
      return { summary, seconds: Number(process.hrtime.bigint() - started) / 1e9 };
    } finally {
      process.stdout.write = write;
    }
  };
  const measure = async (label, event) => {
    calls.length = 0;
    const { summary, seconds } = await quietly(event);
    const reads = calls.filter((c) => /:(Describe|List|Get)/.test(c)).length;
    return {
      label,
      seconds,
      calls: calls.length,
      reads,
      writes: calls.length - reads,
      records: summary.writes,
    };
  };
  const scheduled = { source: "aws.events", "detail-type": "Scheduled Event", detail: {} };

  const first = await measure(`first reconcile, 2 groups × ${perGroup} instances`, scheduled);
  const unchanged = await measure("event, nothing changed", scheduled);
  const victim = (
    await autoScaling.send(
      new asgsdk.DescribeAutoScalingGroupsCommand({ AutoScalingGroupNames: ["kubebake-bench-masters"] }),
    )
  ).AutoScalingGroups[0].Instances[0].InstanceId;
  await autoScaling.send(
    new asgsdk.TerminateInstanceInAutoScalingGroupCommand({
      InstanceId: victim,
      ShouldDecrementDesiredCapacity: true,
    }),
  );
  const changed = await measure("event, a master terminated", {
    source: "aws.autoscaling",
    "detail-type": "EC2 Instance Terminate Successful",
    detail: { AutoScalingGroupName: "kubebake-bench-masters", EC2InstanceId: victim },
  });

  const figures = {
    bundleBytes: zip.length,
    instancesPerLargeGroup: perGroup,
    runs: [first, unchanged, changed],
  };
  if (json) process.stdout.write(JSON.stringify(figures, null, 2) + "\n");
  else {
    process.stdout.write(`discovery bundle: ${(zip.length / 1024).toFixed(1)} KB (target < 300 KB)\n`);
    for (const r of figures.runs) {
      process.stdout.write(
        `${r.label}: ${r.seconds.toFixed(2)} s, ${r.calls} API calls (${r.reads} reads, ${r.writes} writes), ${r.records} record(s) written\n`,
      );
    }
    process.stdout.write("target when nothing changed: at most 3 reads and no write\n");
  }
} finally {
  moto.kill();
  rmSync(work, { recursive: true, force: true });
  rmSync(checkDir, { recursive: true, force: true });
}
