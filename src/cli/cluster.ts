/** `kubebake cluster …` and `kubebake dns …`: thin shells over src/launch and src/discover. */
import type { Argv } from "yargs";
import { loadClusterSpec } from "../cluster/load";
import { clusterSpecSchema } from "../cluster/schema";
import { ExitCode, KubebakeError } from "../errors";
import { progressFor } from "../util/progress";
import { writeJsonSchema } from "./schema-output";
import { ChangeRecorder } from "../launch/changes";
import { launchProvider } from "../launch/provider";
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

const yesOption = (what: string) => (y: Argv) =>
  fileOption(y).option("yes", {
    alias: "y",
    type: "boolean",
    default: false,
    describe: `${what} without asking (needed off a terminal and with --json)`,
  });

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));
const timing = () => ({ pollMs: Number(process.env.KUBEBAKE_POLL_MS ?? 5000), sleep });

/** The spec's cloud launcher, and a guard that turns its API failures into documented exit codes. */
async function providerFor(file: string) {
  const { spec } = loadClusterSpec(file);
  const provider = await launchProvider(spec, file, timing());
  const guarded = async <T>(run: () => Promise<T>): Promise<T> => {
    try {
      return await run();
    } catch (error) {
      if (error instanceof KubebakeError) throw error;
      throw provider.failure(error) ?? error;
    }
  };
  return { spec, provider, guarded };
}

async function launch(args: { file: string; json: boolean; yes?: boolean }, mode: "plan" | "apply") {
  const { spec, provider, guarded } = await providerFor(args.file);
  const run = (rec: ChangeRecorder) => guarded(() => provider.apply(rec));
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

async function destroy(args: { file: string; json: boolean; yes: boolean }) {
  const { spec, provider, guarded } = await providerFor(args.file);
  await changeConfirmed({
    json: args.json,
    yes: args.yes,
    subject: `cluster ${spec.name}`,
    question: (n) => `Delete these ${n} resource(s) of cluster ${spec.name}?`,
    run: (rec) => guarded(() => provider.destroy(rec)),
  });
}

async function restore(args: { file: string; json: boolean; yes: boolean; snapshot: string }) {
  const { spec, provider, guarded } = await providerFor(args.file);
  const restoreFrom = provider.restore;
  if (!restoreFrom)
    throw new KubebakeError(
      `cluster restore: ${spec.cloud} clusters keep no etcd snapshots yet (restore is for cloud: aws)`,
      ExitCode.invalidInput,
    );
  await changeConfirmed({
    json: args.json,
    yes: args.yes,
    subject: `cluster ${spec.name}`,
    question: () =>
      `Restore cluster ${spec.name} from ${args.snapshot}? Every change made since is lost, and the API is down until the new masters vote.`,
    run: (rec) => guarded(() => restoreFrom(rec, args.snapshot)),
  });
}

async function dns(args: { file: string; json: boolean }, mode: "deploy" | "sync") {
  const { provider, guarded } = await providerFor(args.file);
  if (mode === "deploy") {
    // No plan and no question: deploy converges only the cluster's own discovery function, its rules and
    // permissions, and deletes nothing.
    const rec = makingRecorder(args.json);
    await guarded(() => provider.deployDiscovery(rec));
    printMade(rec.changes, args.json, {}, rec.notes);
    return;
  }
  const progress = progressFor({ json: args.json });
  const result = await guarded(() => provider.syncDiscovery((entry) => progress.info(JSON.stringify(entry))));
  if (args.json) printJson(result);
  else {
    for (const w of result.writes)
      process.stdout.write(`${w.name} ${w.from?.join(",") ?? "(none)"} → ${w.to?.join(",") ?? "(none)"}\n`);
    // A function deployed by an earlier kubebake keeps no etcd record: `dns deploy` updates it.
    const etcd = result.desired.etcd ? `${result.desired.etcd.length}` : "not kept (run kubebake dns deploy)";
    process.stdout.write(
      `masters ${result.desired.masters.length}, minions ${result.desired.minions.length}, etcd ${etcd}, ${result.writes.length} record(s) written\n`,
    );
  }
}

export function clusterCommands(y: Argv): Argv {
  return y
    .command("cluster", "launch a cluster on a cloud (AWS, GCE)", (c) =>
      c
        .command("validate", "check a cluster spec; exit 2 with every problem", fileOption, (args) => {
          const { spec } = loadClusterSpec(args.file);
          const { name, cloud } = spec;
          // Each cloud's word for where: AWS's and GCE's region (gcloud's when unset), Azure's location.
          const region = spec.cloud === "azure" ? spec.location : spec.region;
          if (args.json) printJson({ file: args.file, valid: true, cluster: name, cloud, region });
          else
            process.stdout.write(
              `${args.file}: valid (cluster ${name} on ${cloud} ${region ?? "in gcloud's region"})\n`,
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
