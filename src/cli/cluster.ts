/** `kubebake cluster …` and `kubebake dns …`: thin shells over src/launch and src/discover. */
import type { Argv } from "yargs";
import { loadClusterSpec } from "../cluster/load";
import { clusterSpecSchema, type ClusterSpec } from "../cluster/schema";
import { ExitCode, KubebakeError, invalidInput } from "../errors";
import { progressFor } from "../util/progress";
import { writeJsonSchema } from "./schema-output";
import { ChangeRecorder, formatChange, type Change } from "../launch/changes";

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

function report(changes: Change[], json: boolean, verb: string, extra: object = {}) {
  if (json) {
    process.stdout.write(JSON.stringify({ changes, ...extra }, null, 2) + "\n");
    return;
  }
  for (const change of changes) process.stdout.write(formatChange(change) + "\n");
  process.stdout.write(changes.length === 0 ? "no changes\n" : `${changes.length} change(s) ${verb}\n`);
}

async function launch(args: { file: string; json: boolean }, mode: "plan" | "apply") {
  const { spec } = loadClusterSpec(args.file);
  if (spec.groups.masters.count > 1) {
    // Said on every plan and apply until masters form one etcd cluster (docs/architecture.md, known limits).
    process.stderr.write(
      `warning: groups.masters.count is ${spec.groups.masters.count}, but each master still runs its own one-member etcd; ` +
        "the API servers behind masters.<cluster> do not share state yet\n",
    );
  }
  const clients = await clientsFor(spec);
  const rec = new ChangeRecorder(mode === "plan", progressFor({ json: args.json }));
  const result = await cloudCall(clients.calls, async () => {
    const { resolveInputs } = await import("../launch/aws/inputs");
    const { applyCluster } = await import("../launch/aws/cluster");
    const inputs = await resolveInputs(clients, spec, args.file);
    return applyCluster({ clients, inputs, rec, pollMs: pollMs(), sleep });
  });
  report(rec.changes, args.json, mode === "plan" ? "planned" : "made", mode === "apply" ? result : {});
}

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));
const pollMs = () => Number(process.env.KUBEBAKE_POLL_MS ?? 5000);

async function destroy(args: { file: string; json: boolean; yes: boolean }) {
  const { spec } = loadClusterSpec(args.file);
  const clients = await clientsFor(spec);
  const { destroyCluster } = await import("../launch/aws/destroy");
  const run = (dryRun: boolean) => {
    const rec = new ChangeRecorder(dryRun, progressFor({ json: args.json }));
    return cloudCall(clients.calls, async () => {
      await destroyCluster({
        clients,
        rec,
        cluster: spec.name,
        pollMs: pollMs(),
        sleep,
        timeoutMs: 20 * 60_000,
      });
      return rec.changes;
    });
  };
  if (!args.yes) {
    const planned = await run(true);
    report(planned, args.json, "planned");
    if (planned.length > 0) throw invalidInput(`cluster ${spec.name}: add --yes to delete the above`);
    return;
  }
  report(await run(false), args.json, "made");
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
      const rec = new ChangeRecorder(false, progressFor({ json: args.json }));
      await ensureDiscovery({ clients, inputs, rec, pollMs: pollMs(), sleep, clusterId }, zoneId);
      report(rec.changes, args.json, "made");
      return;
    }
    const { reconcile } = await import("../discover/reconcile");
    const { awsDiscoveryPorts } = await import("../discover/aws");
    const progress = progressFor({ json: args.json });
    const result = await reconcile(awsDiscoveryPorts(clients), {
      ...discoveryConfig(inputs, zoneId),
      log: (entry) => progress.info(JSON.stringify(entry)),
    });
    if (args.json) process.stdout.write(JSON.stringify(result, null, 2) + "\n");
    else {
      for (const w of result.writes)
        process.stdout.write(`${w.name} ${w.from?.join(",") ?? "(none)"} → ${w.to?.join(",") ?? "(none)"}\n`);
      process.stdout.write(
        `masters ${result.desired.masters.length}, minions ${result.desired.minions.length}, ${result.writes.length} record(s) written\n`,
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
          process.stdout.write(
            `${args.file}: valid (cluster ${spec.name} on ${spec.cloud} ${spec.region})\n`,
          );
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
        .command("apply", "create or converge the cluster; a second apply changes nothing", fileOption, (a) =>
          launch(a, "apply"),
        )
        .command(
          "destroy",
          "delete everything of the cluster; without --yes only print what would go",
          (c2: Argv) =>
            fileOption(c2).option("yes", { type: "boolean", default: false, describe: "really delete" }),
          (a) => destroy(a),
        )
        .demandCommand(1, "name a cluster command: validate, schema, plan, apply or destroy"),
    )
    .command("dns", "DNS discovery of masters and minions", (c) =>
      c
        .command(
          "deploy",
          "deploy the discovery function, its role, rules and permissions",
          fileOption,
          (a) => dns(a, "deploy"),
        )
        .command("sync", "run the discovery reconciliation once from here", fileOption, (a) => dns(a, "sync"))
        .demandCommand(1, "name a dns command: deploy or sync"),
    );
}
