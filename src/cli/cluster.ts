/** `kubebake cluster …` and `kubebake dns …`: thin shells over src/launch and src/discover. */
import type { Argv } from "yargs";
import { loadClusterSpec } from "../cluster/load";
import { clusterSpecSchema, type ClusterSpec } from "../cluster/schema";
import { ExitCode, KubebakeError } from "../errors";
import { progressFor } from "../util/progress";
import { writeJsonSchema } from "./schema-output";
import { ChangeRecorder } from "../launch/changes";
import { changeConfirmed, makingRecorder, printMade, printPlan } from "./changes-output";
import { printJson } from "./output";

const fileOption = (y: Argv) =>
  y
    .option("file", {
      alias: "f",
      type: "string",
      demandOption: true,
      requiresArg: true,
      describe: "cluster spec (YAML)",
    })
    .option("json", {
      type: "boolean",
      default: false,
      describe: "machine-readable output on stdout, no progress",
    });

/** The AWS clients for a spec; AWS_ENDPOINT_URL points every service at one endpoint (an emulator). */
async function clientsFor(spec: ClusterSpec) {
  const { awsClients } = await import("../launch/aws/clients");
  return awsClients({ region: spec.region, endpoint: process.env.AWS_ENDPOINT_URL || undefined });
}

/** An AWS SDK failure as a documented exit code, naming the call that failed. */
async function cloudCall<T>(calls: string[], run: () => Promise<T>): Promise<T> {
  try {
    return await run();
  } catch (error) {
    if (error instanceof KubebakeError) throw error;
    const e = error as Error & { $metadata?: unknown; Code?: string };
    if (e?.$metadata !== undefined || e?.name === "CredentialsProviderError") {
      const call = calls.at(-1) ?? "AWS";
      throw new KubebakeError(`${call} failed: ${e.Code ?? e.name}: ${e.message}`, ExitCode.cloudFailed);
    }
    throw error;
  }
}

const yesOption = (what: string) => (y: Argv) =>
  fileOption(y).option("yes", {
    alias: "y",
    type: "boolean",
    default: false,
    describe: `${what} without asking (needed off a terminal and with --json)`,
  });

async function launch(args: { file: string; json: boolean; yes?: boolean }, mode: "plan" | "apply") {
  const { spec } = loadClusterSpec(args.file);
  const clients = await clientsFor(spec);
  const run = (rec: ChangeRecorder) =>
    cloudCall(clients.calls, async () => {
      const { resolveInputs } = await import("../launch/aws/inputs");
      const { applyCluster } = await import("../launch/aws/cluster");
      const inputs = await resolveInputs(clients, spec, args.file);
      return applyCluster({ clients, inputs, rec, pollMs: pollMs(), sleep });
    });
  if (mode === "plan") {
    const rec = new ChangeRecorder(true, progressFor({ json: args.json }));
    await run(rec);
    return printPlan(rec.changes, args.json, process.stdout, rec.notes);
  }
  await changeConfirmed({
    json: args.json,
    yes: args.yes ?? false,
    subject: `cluster ${spec.name}`,
    question: (n) => `Make these ${n} change(s) to cluster ${spec.name}?`,
    run,
  });
}

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));
const pollMs = () => Number(process.env.KUBEBAKE_POLL_MS ?? 5000);

async function destroy(args: { file: string; json: boolean; yes: boolean }) {
  const { spec } = loadClusterSpec(args.file);
  const clients = await clientsFor(spec);
  const { destroyCluster } = await import("../launch/aws/destroy");
  await changeConfirmed({
    json: args.json,
    yes: args.yes,
    subject: `cluster ${spec.name}`,
    question: (n) => `Delete these ${n} resource(s) of cluster ${spec.name}?`,
    run: (rec) =>
      cloudCall(clients.calls, () =>
        destroyCluster({ clients, rec, cluster: spec.name, pollMs: pollMs(), sleep, timeoutMs: 20 * 60_000 }),
      ),
  });
}

async function restore(args: { file: string; json: boolean; yes: boolean; snapshot: string }) {
  const { spec } = loadClusterSpec(args.file);
  const clients = await clientsFor(spec);
  await changeConfirmed({
    json: args.json,
    yes: args.yes,
    subject: `cluster ${spec.name}`,
    question: () =>
      `Restore cluster ${spec.name} from ${args.snapshot}? Every change made since is lost, and the API is down until the new masters vote.`,
    run: (rec) =>
      cloudCall(clients.calls, async () => {
        const { resolveInputs } = await import("../launch/aws/inputs");
        const { restoreCluster } = await import("../launch/aws/restore");
        const inputs = await resolveInputs(clients, spec, args.file);
        return restoreCluster({ clients, inputs, rec, pollMs: pollMs(), sleep }, args.snapshot);
      }),
  });
}

async function dns(args: { file: string; json: boolean }, mode: "deploy" | "sync") {
  const { spec } = loadClusterSpec(args.file);
  const clients = await clientsFor(spec);
  await cloudCall(clients.calls, async () => {
    const { resolveInputs } = await import("../launch/aws/inputs");
    const { clusterZoneName, discoveryConfig } = await import("../launch/aws/desired");
    const { ownedZones } = await import("../launch/aws/zone");
    const { readClusterId } = await import("../launch/aws/owner");
    const inputs = await resolveInputs(clients, spec, args.file);
    // The zone is found by the cluster id of this region (its owner tag), never by name alone.
    const clusterId = await readClusterId(clients, spec.name);
    const zones = clusterId ? await ownedZones({ clients }, clusterZoneName(inputs), clusterId) : [];
    if (!clusterId || zones.length !== 1) {
      throw new KubebakeError(
        `cluster ${spec.name}: expected one private zone ${clusterZoneName(inputs)} owned by the cluster in ${spec.region}, found ${zones.length}; run 'kubebake cluster apply' first`,
        ExitCode.unsafeState,
      );
    }
    const zoneId = zones[0]!.id;
    if (mode === "deploy") {
      const { ensureDiscovery } = await import("../launch/aws/discovery");
      // No plan and no question: deploy converges only the cluster's own discovery function, its rules and
      // permissions, and deletes nothing.
      const rec = makingRecorder(args.json);
      await ensureDiscovery({ clients, inputs, rec, pollMs: pollMs(), sleep, clusterId }, zoneId);
      printMade(rec.changes, args.json, {}, rec.notes);
      return;
    }
    // Through the deployed function when there is one, so that writers stay serialized (src/discover/sync.ts).
    const { dnsSync } = await import("../discover/sync");
    const { awsDiscoveryPorts } = await import("../discover/aws");
    const { discoveryFunctionName } = await import("../launch/aws/desired");
    const progress = progressFor({ json: args.json });
    const result = await dnsSync({
      lambda: clients.lambda,
      functionName: discoveryFunctionName(spec.name),
      ports: () => awsDiscoveryPorts(clients),
      options: { ...discoveryConfig(inputs, zoneId), log: (entry) => progress.info(JSON.stringify(entry)) },
      sleep,
    });
    if (args.json) printJson(result);
    else {
      for (const w of result.writes)
        process.stdout.write(`${w.name} ${w.from?.join(",") ?? "(none)"} → ${w.to?.join(",") ?? "(none)"}\n`);
      // A function deployed by an earlier kubebake keeps no etcd record: `dns deploy` updates it.
      const etcd = result.desired.etcd
        ? `${result.desired.etcd.length}`
        : "not kept (run kubebake dns deploy)";
      process.stdout.write(
        `masters ${result.desired.masters.length}, minions ${result.desired.minions.length}, etcd ${etcd}, ${result.writes.length} record(s) written\n`,
      );
    }
  });
}

export function clusterCommands(y: Argv): Argv {
  return y
    .command("cluster", "launch a cluster on a cloud (AWS)", (c) =>
      c
        .command("validate", "check a cluster spec; exit 2 with every problem", fileOption, (args) => {
          const { spec } = loadClusterSpec(args.file);
          const { name, cloud, region } = spec;
          if (args.json) printJson({ file: args.file, valid: true, cluster: name, cloud, region });
          else process.stdout.write(`${args.file}: valid (cluster ${name} on ${cloud} ${region})\n`);
        })
        .command(
          "schema",
          "print the JSON Schema of cluster specs",
          (c2) => c2.option("out", { type: "string" }),
          (args) => writeJsonSchema(clusterSpecSchema, args.out),
        )
        .command("plan", "print what apply would create, change or delete (reads only)", fileOption, (a) =>
          launch(a, "plan"),
        )
        .command(
          "apply",
          "create or converge the cluster: shows the plan and asks on a terminal; exit 9 if not confirmed",
          yesOption("apply"),
          (a) => launch(a, "apply"),
        )
        .command(
          "destroy",
          "delete everything of the cluster: shows what goes and asks on a terminal; exit 9 if not confirmed",
          yesOption("delete"),
          (a) => destroy(a),
        )
        .command(
          "restore",
          "start the masters' etcd over from a snapshot in the cluster's bucket: checks it, shows the plan and asks on a terminal; exit 9 if not confirmed",
          (c2) =>
            yesOption("restore")(c2).option("snapshot", {
              type: "string",
              demandOption: true,
              requiresArg: true,
              describe: "the snapshot's name in the bucket, e.g. 20261201T010000Z-r1234.db",
            }),
          (a) => restore(a),
        )
        .demandCommand(1, "name a cluster command: validate, schema, plan, apply, destroy or restore"),
    )
    .command("dns", "DNS discovery of masters and minions", (c) =>
      c
        .command(
          "deploy",
          "deploy the discovery function, its role, rules and permissions (converges, deletes nothing, does not ask)",
          fileOption,
          (a) => dns(a, "deploy"),
        )
        .command("sync", "run the discovery reconciliation once from here", fileOption, (a) => dns(a, "sync"))
        .demandCommand(1, "name a dns command: deploy or sync"),
    );
}
