/** The `kubebake cluster` and `kubebake dns` commands as a user runs them, against moto. */
import { DeleteRuleCommand, RemoveTargetsCommand } from "@aws-sdk/client-eventbridge";
import { DeleteFunctionCommand } from "@aws-sdk/client-lambda";
import { DeleteParameterCommand } from "@aws-sdk/client-ssm";
import { mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { loadImageSpec } from "../../src/spec/load";
import { join } from "node:path";
import { realSpec, runCli, tempDir } from "../helpers";
import { runOnTerminal } from "../terminal";
import { clientsFor, clusterYaml, registerAmi, writeSpec } from "./fixture";
import { startMoto, type Moto } from "./moto";

let moto: Moto;
beforeAll(async () => (moto = await startMoto()), 60_000);
afterAll(() => moto?.stop());
const dir = tempDir("aws-cli");

const env = () => ({
  AWS_ENDPOINT_URL: moto.endpoint,
  AWS_ACCESS_KEY_ID: "testing",
  AWS_SECRET_ACCESS_KEY: "testing",
  KUBEBAKE_POLL_MS: "10",
});
const kubebake = (...args: string[]) => runCli("kubebake", args, env());
/** On a terminal, typing `answer` when asked. */
const onTerminal = (answer: string, ...args: string[]) =>
  runOnTerminal("kubebake", args, { env: env(), prompt: "[y/N]", answer });
const onTerminalTo = (stdout: string, answer: string, ...args: string[]) =>
  runOnTerminal("kubebake", args, { env: env(), prompt: "[y/N]", answer, stdout });
/** The change lines (+ create …, ~ update …, - delete …, ± replace …) of an output. */
const changeLines = (output: string) =>
  output.split("\n").filter((l) => /^[+~±-] (create|update|delete|replace) /.test(l));

test("plan, apply asks (no terminal, --json: exit 9), apply --yes --json, a no-op apply, dns sync, destroy without and with --yes", async () => {
  await moto.reset();
  const clients = clientsFor(moto.endpoint);
  // The AMI is found from a bake manifest's image id, as a release pipeline would hand it over.
  const ami = await registerAmi(clients, "kubebake-1", { "kubebake:image-id": "sha256-abc" });
  writeFileSync(join(dir, "manifest.json"), JSON.stringify({ imageId: "sha256-abc", rootfs: "rootfs" }));
  const spec = writeSpec(dir, clusterYaml({ image: { manifest: "manifest.json" } }));
  // Without the bake's tree beside the manifest, the image's cluster settings are unknown: refused.
  const noTree = kubebake("cluster", "plan", "-f", spec);
  expect(noTree.code).toBe(2);
  expect(noTree.stderr).toContain(
    `image.manifest: the bake's image spec ${join(dir, "rootfs/etc/kubebake/image-spec.json")} is missing`,
  );
  // The tree carries the spec it was baked with; its discovery domain names the zone.
  const baked = loadImageSpec(realSpec).spec;
  baked.cluster.discoveryDomain = "internal";
  mkdirSync(join(dir, "rootfs/etc/kubebake"), { recursive: true });
  // A bake whose pod network cannot give each node the groups may grow to a range: refused before any change.
  writeFileSync(
    join(dir, "rootfs/etc/kubebake/image-spec.json"),
    JSON.stringify({ ...baked, cluster: { ...baked.cluster, podCIDR: "10.9.0.0/23" } }),
  );
  const outgrown = kubebake("cluster", "plan", "-f", spec);
  expect({ code: outgrown.code, stderr: outgrown.stderr }).toEqual({
    code: 2,
    stderr: expect.stringContaining(
      "groups.minions.max: the pod network 10.9.0.0/23 (the podCIDR the image of manifest.json was baked with) holds 2 nodes",
    ),
  });
  writeFileSync(join(dir, "rootfs/etc/kubebake/image-spec.json"), JSON.stringify(baked));

  const plan = kubebake("cluster", "plan", "-f", spec);
  expect(plan.stderr).toBe("");
  expect(plan.code).toBe(0);
  expect(plan.stdout).toMatch(
    /^\+ create vpc kubebake-demo-vpc \(10\.0\.0\.0\/16, private: VPC endpoints, no internet\)$/m,
  );
  expect(plan.stdout).toMatch(
    /^\+ create vpc-endpoint kubebake-demo-endpoint-ssm \(Interface com\.amazonaws\.eu-west-1\.ssm, private DNS, 2 subnet\(s\)\)$/m,
  );
  expect(plan.stdout).toContain(`+ create launch-template kubebake-demo-masters (${ami}, t3.medium)`);
  expect(plan.stdout).toMatch(/\d+ change\(s\) planned\n$/);
  expect(plan.stdout).toContain("+ create hosted-zone demo.internal.");
  expect(plan.stdout).toMatch(
    /^\+ create s3-bucket kubebake-demo-[0-9a-f]{12} \(etcd snapshots kept 7 days; versioned, AES256, no public access, TLS only\)$/m,
  );

  // Off a terminal nobody can answer: the plan is shown, nothing changes, exit 9.
  const unasked = kubebake("cluster", "apply", "-f", spec);
  expect(unasked.code).toBe(9);
  expect(unasked.stdout).toBe(plan.stdout);
  expect(unasked.stderr).toMatch(
    /error: cluster demo: \d+ change\(s\) need confirmation: answer on a terminal or pass --yes\n$/,
  );
  const unaskedJson = kubebake("cluster", "apply", "-f", spec, "--json");
  expect(unaskedJson.code).toBe(9);
  expect(JSON.parse(unaskedJson.stdout).changes).toHaveLength(changeLines(plan.stdout).length);
  // What the plan chose besides its changes is in the document too: the network kind it defaulted to.
  expect(JSON.parse(unaskedJson.stdout).notes).toEqual([
    expect.stringMatching(/^network\.internet is unset: the cluster's network is private, the default/),
    expect.stringMatching(/^network\.apiAccess: nodes of a private network have no public address/),
  ]);
  // On a terminal, "no" changes nothing either.
  const declined = onTerminal("no", "cluster", "apply", "-f", spec);
  expect(declined.code).toBe(9);
  expect(declined.output).toContain("error: cluster demo: not confirmed; nothing was changed");
  expect(kubebake("cluster", "plan", "-f", spec).stdout).toBe(plan.stdout);

  const applied = kubebake("cluster", "apply", "-f", spec, "--json", "--yes");
  expect(applied.code).toBe(0);
  expect(applied.stderr).toBe("");
  const output = JSON.parse(applied.stdout);
  expect(output.vpcId).toMatch(/^vpc-/);
  expect(output.changes.length).toBeGreaterThan(30);

  const again = kubebake("cluster", "apply", "-f", spec); // nothing to confirm: no --yes needed
  expect(again.code).toBe(0);
  expect(again.stdout).toBe("no changes\n");

  const sync = kubebake("dns", "sync", "-f", spec, "--json");
  expect(sync.code).toBe(0);
  const result = JSON.parse(sync.stdout);
  expect(result.desired.masters).toHaveLength(1);
  // The function exists (apply deployed it): sync ran it, so writers stay serialized (src/discover/sync.ts).
  expect(result.via).toBe("function");
  expect(result.writes.map((w: { name: string }) => w.name)).toEqual([
    "masters.demo.internal.",
    "minions.demo.internal.",
    "etcd.demo.internal.",
  ]);
  expect(JSON.parse(kubebake("dns", "sync", "-f", spec, "--json").stdout).writes).toEqual([]);
  expect(kubebake("dns", "deploy", "-f", spec).stdout).toBe("no changes\n");

  // Deploy from nothing: the function, its rules and their targets gone, `dns deploy` puts them back.
  await clients.events.send(
    new RemoveTargetsCommand({ Rule: "kubebake-demo-asg-events", Ids: ["dns-discovery"] }),
  );
  await clients.events.send(new DeleteRuleCommand({ Name: "kubebake-demo-asg-events" }));
  await clients.lambda.send(new DeleteFunctionCommand({ FunctionName: "kubebake-demo-dns-discovery" }));
  const redeployed = kubebake("dns", "deploy", "-f", spec);
  expect(redeployed.code).toBe(0);
  expect(redeployed.stdout).toContain("+ create lambda-function kubebake-demo-dns-discovery");
  expect(redeployed.stdout).toContain("+ create eventbridge-rule kubebake-demo-asg-events");
  expect(redeployed.stdout).toContain(
    "+ create lambda-permission kubebake-demo-dns-discovery/invoke-from-kubebake-demo-dns-schedule",
  );
  expect(kubebake("dns", "deploy", "-f", spec).stdout).toBe("no changes\n");

  const refused = kubebake("cluster", "destroy", "-f", spec);
  expect(refused.code).toBe(9);
  expect(refused.stdout).toContain("- delete vpc kubebake-demo-vpc");
  // The bucket holds the cluster's only backups: its line says what goes with it.
  expect(refused.stdout).toMatch(
    /^- delete s3-bucket kubebake-demo-[0-9a-f]{12} \(holds 0 object\(s\) in 0 version\(s\) and 0 delete marker\(s\): the cluster's etcd snapshots go with it\)$/m,
  );
  expect(refused.stderr).toMatch(
    /cluster demo: \d+ change\(s\) need confirmation: answer on a terminal or pass --yes/,
  );
  const destroyed = kubebake("cluster", "destroy", "-f", spec, "--yes");
  expect(destroyed.code).toBe(0);
  expect(kubebake("cluster", "destroy", "-f", spec).stdout).toBe("no changes\n");
}, 120_000);

test("a partial PKI under running groups is refused with exit 8, and nothing is regenerated", async () => {
  await moto.reset();
  const clients = clientsFor(moto.endpoint);
  const ami = await registerAmi(clients, "kubebake-1");
  const spec = writeSpec(dir, clusterYaml({ image: { ami } }), "partial.yaml");
  expect(kubebake("cluster", "apply", "-f", spec, "--yes").code).toBe(0);
  await clients.ssm.send(new DeleteParameterCommand({ Name: "/kubebake/demo/ca.key" }));
  const result = kubebake("cluster", "apply", "-f", spec);
  expect(result.code).toBe(8);
  expect(result.stderr).toMatch(/\/kubebake\/demo: 1 of the cluster's secrets are missing \(ca\.key…\)/);
}, 120_000);

test("cloud failures exit 7 naming the call; a manifest without its AMI exits 2", async () => {
  await moto.reset();
  writeFileSync(join(dir, "manifest.json"), JSON.stringify({ imageId: "sha256-none" }));
  const spec = writeSpec(dir, clusterYaml({ image: { manifest: "manifest.json" } }), "noami.yaml");
  const missing = kubebake("cluster", "plan", "-f", spec);
  expect(missing.code).toBe(2);
  expect(missing.stderr).toContain(
    "image.manifest: expected one AMI tagged kubebake:image-id=sha256-none in eu-west-1, found 0",
  );

  const unreachable = runCli("kubebake", ["cluster", "plan", "-f", spec], {
    ...env(),
    AWS_ENDPOINT_URL: "http://127.0.0.1:9",
  });
  expect(unreachable.code).toBe(7);
  expect(unreachable.stderr).toMatch(/^error: sts:GetCallerIdentity failed: .*ECONNREFUSED/m);
  expect(unreachable.stderr).not.toMatch(/\n\s+at /);
}, 120_000);

test("on a terminal: apply and destroy show the plan once, ask, and print each change once", async () => {
  await moto.reset();
  const clients = clientsFor(moto.endpoint);
  const ami = await registerAmi(clients, "kubebake-1");
  const spec = writeSpec(dir, clusterYaml({ image: { ami } }), "terminal.yaml");
  const vpc = "+ create vpc kubebake-demo-vpc (10.0.0.0/16, private: VPC endpoints, no internet)";

  const applied = onTerminal("yes", "cluster", "apply", "-f", spec);
  expect(applied.code).toBe(0);
  const [shown, after] = applied.output.split("[y/N] ") as [string, string];
  const planned = changeLines(shown);
  expect(shown).toContain(`\n${planned.length} change(s) planned\n`);
  expect(shown).toContain(`Make these ${planned.length} change(s) to cluster demo? `);
  expect(after).toMatch(/\n\d+ change\(s\) made\n$/);
  // Changes the plan showed are not printed again, also where the plan had placeholder ids.
  expect(planned).toContain("~ update route-table kubebake-demo-routes (associate (new subnet-eu-west-1a))");
  expect(planned).toContain("+ create hosted-zone demo.k8s. (private, (new vpc))");
  expect(changeLines(after).filter((l) => /route-table|hosted-zone|vpc kubebake-demo-vpc/.test(l))).toEqual(
    [],
  );
  const all = changeLines(applied.output);
  expect(all.filter((l) => l === vpc)).toHaveLength(1);
  expect(new Set(all).size).toBe(all.length);
  expect(kubebake("cluster", "apply", "-f", spec).stdout).toBe("no changes\n");

  // stdout to a file (`destroy > log`): the terminal still shows what the question is about.
  const log = join(dir, "destroy.log");
  const kept = onTerminalTo(log, "n", "cluster", "destroy", "-f", spec);
  expect(kept.code).toBe(9);
  expect(kept.output).toContain("- delete vpc kubebake-demo-vpc");
  expect(readFileSync(log, "utf8")).toMatch(/^- delete vpc kubebake-demo-vpc$/m);
  expect(kept.output).toContain("cluster demo: not confirmed; nothing was changed");
  expect(kubebake("cluster", "destroy", "-f", spec).stdout).toContain("- delete vpc kubebake-demo-vpc");

  const destroyed = onTerminal("y", "cluster", "destroy", "-f", spec);
  expect(destroyed.code).toBe(0);
  const deleted = changeLines(destroyed.output);
  expect(deleted.filter((l) => l === "- delete vpc kubebake-demo-vpc")).toHaveLength(1);
  expect(destroyed.output).toMatch(new RegExp(`\\n${deleted.length} change\\(s\\) made\\n$`));
  expect(kubebake("cluster", "destroy", "-f", spec).stdout).toBe("no changes\n");

  // --yes on a terminal: no question, each change printed as it is made, once.
  const direct = onTerminal("", "cluster", "apply", "-f", spec, "--yes");
  expect(direct.code).toBe(0);
  expect(direct.output).not.toContain("[y/N]");
  const made = changeLines(direct.output);
  expect(made.filter((l) => l === vpc)).toHaveLength(1);
  expect(direct.output).toMatch(new RegExp(`\\n${made.length} change\\(s\\) made\\n$`));
}, 240_000);
