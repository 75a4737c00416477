import { arch as hostArch, homedir } from "node:os";
import { join } from "node:path";
import yargs, { type Argv } from "yargs";
import { bake } from "../bake/bake";
import { clusterCommands } from "./cluster";
import { writeJsonSchema } from "./schema-output";
import { PUBLISH_TARGETS, TARGETS, type PublishTarget, type Target } from "../bake/manifest";
import { ExitCode, KubebakeError, invalidInput } from "../errors";
import { loadImageSpec } from "../spec/load";
import { ARCHES, imageSpecSchema, type Arch } from "../spec/schema";
import { CLUSTER_NAME } from "../discover/names";
import { packageRoot } from "../util/package-root";
import { progressFor } from "../util/progress";
import { printJson } from "./output";
import { listOf, misplacedOption, preparePublish, type PublishArgs } from "./publish";
import { unknownOptions } from "./unknown-options";

/** Stamped by scripts/build.mjs: the package version and the git commit it was built from. */
declare const KUBEBAKE_VERSION: string;
const version = () => (typeof KUBEBAKE_VERSION === "string" ? KUBEBAKE_VERSION : "(not built)");

const defaultSpec = () => join(packageRoot(), "image", "kubebake.yaml");
const defaultArch = (): Arch => (hostArch() === "arm64" ? "arm64" : "amd64");
const defaultCache = () =>
  process.env.KUBEBAKE_CACHE ?? join(process.env.XDG_CACHE_HOME ?? join(homedir(), ".cache"), "kubebake");

const bakeOptions = (y: Argv) =>
  y
    .option("target", {
      choices: [...TARGETS, ...PUBLISH_TARGETS],
      default: "dir" as Target | PublishTarget,
      describe:
        "what to produce (aws, gce, azure: the raw disk, published as an AMI, a Compute Engine image, a managed image)",
    })
    .option("out", {
      type: "string",
      demandOption: true,
      describe: "output folder (rootfs/ and manifest.json)",
    })
    .option("spec", {
      type: "string",
      describe: "image spec (YAML)",
      defaultDescription: "image/kubebake.yaml",
    })
    .option("arch", { choices: ARCHES, describe: "architecture to bake", defaultDescription: "the host's" })
    .option("mirror", {
      type: "string",
      describe:
        "folder or URL holding <host>/<path> copies of upstream files; add-on images: a folder's oci/blobs/sha256/, or the URL as a registry of <host>/<repository>",
    })
    .option("cache", { type: "string", describe: "artifact cache", defaultDescription: "~/.cache/kubebake" })
    .option("json", {
      type: "boolean",
      default: false,
      describe: "print the manifest as JSON, with reused (true when nothing had changed)",
    })
    .option("region", {
      type: "string",
      requiresArg: true,
      describe: "aws: the region to publish in",
      defaultDescription: "AWS_REGION or the profile's",
    })
    .option("regions", { type: "string", array: true, describe: "aws: more regions to copy the AMI to" })
    .option("share-with", {
      type: "string",
      array: true,
      describe: "aws: account ids granted launch permission",
    })
    .option("encrypted", {
      type: "boolean",
      describe: "aws: encrypt the snapshot (--no-encrypted: do not)",
      defaultDescription: "the account's EBS default",
    })
    .option("previous-manifest", {
      type: "string",
      requiresArg: true,
      describe: "aws: an earlier bake's manifest.json, whose block digests let the upload send only changes",
    })
    .option("project", {
      type: "string",
      requiresArg: true,
      describe: "gce: the project to publish in",
      defaultDescription: "GOOGLE_CLOUD_PROJECT or CLOUDSDK_CORE_PROJECT",
    })
    .option("bucket", {
      type: "string",
      requiresArg: true,
      describe: "gce: the Cloud Storage bucket the archive passes through (required)",
    })
    .option("family", {
      type: "string",
      requiresArg: true,
      describe: "gce: the image family",
      defaultDescription: "the image's name",
    })
    .option("subscription", {
      type: "string",
      requiresArg: true,
      describe: "azure: the subscription id",
      defaultDescription: "AZURE_SUBSCRIPTION_ID",
    })
    .option("resource-group", {
      type: "string",
      requiresArg: true,
      describe: "azure: the resource group of the image (required)",
    })
    .option("location", {
      type: "string",
      requiresArg: true,
      describe: "azure: the image's region, the storage account's (required)",
    })
    .option("storage-account", {
      type: "string",
      requiresArg: true,
      describe: "azure: the storage account the VHD passes through (required)",
    })
    .option("container", {
      type: "string",
      requiresArg: true,
      describe: "azure: the blob container of the VHD (made if missing)",
      defaultDescription: "kubebake",
    })
    .option("keep-blob", {
      type: "boolean",
      describe: "azure: keep the VHD blob after the image is made",
    });

type BakeArgs = Awaited<ReturnType<typeof bakeOptions>["argv"]>;

const isPublish = (target: string): target is PublishTarget =>
  (PUBLISH_TARGETS as readonly string[]).includes(target);

/** The options of the target's cloud, as its preparer takes them. */
function publishArgs(target: PublishTarget, args: BakeArgs): PublishArgs {
  switch (target) {
    case "aws":
      return {
        target,
        region: args.region,
        regions: listOf(args.regions),
        shareWith: listOf(args["share-with"]),
        previousManifest: args["previous-manifest"],
        encrypted: args.encrypted,
      };
    case "gce":
      return { target, project: args.project, bucket: args.bucket, family: args.family };
    case "azure":
      return {
        target,
        subscription: args.subscription,
        resourceGroup: args["resource-group"],
        location: args.location,
        storageAccount: args["storage-account"],
        container: args.container ?? "kubebake",
        keepBlob: args["keep-blob"],
      };
  }
}

async function runBake(args: BakeArgs): Promise<void> {
  if (!args.out) throw invalidInput("--out: expected a folder\nRun 'bake-image --help' for usage.");
  const target = args.target;
  const misplaced = misplacedOption(target, (o) => args[o as keyof BakeArgs] !== undefined);
  if (misplaced) throw invalidInput(`${misplaced}\nRun 'bake-image --help' for usage.`);
  // A cloud target checks the cloud first: a bake takes minutes, a missing credential one second.
  const publish = isPublish(target) ? await preparePublish(publishArgs(target, args)) : undefined;
  const progress = progressFor({ json: args.json });
  const result = await bake({
    target: isPublish(target) ? "raw" : target,
    specPath: args.spec ?? defaultSpec(),
    out: args.out,
    arch: args.arch ?? defaultArch(),
    cacheDir: args.cache ?? defaultCache(),
    mirror: args.mirror,
    progress,
  });
  const manifest = publish ? await publish(args.out, result.manifest, progress) : result.manifest;
  // The manifest's own fields stay at the top, for readers of manifest.json; `reused` is the bake's.
  if (args.json) printJson({ ...manifest, reused: result.reused });
  else {
    process.stdout.write(`${manifest.imageId}${result.reused ? " (reused)" : ""}\n`);
    if (publish) for (const build of manifest.builds ?? []) process.stdout.write(`${build.artifact_id}\n`);
  }
}

/** `kubebake …` */
export function kubebake(argv: string[]): Argv {
  return clusterCommands(base(argv, "kubebake"))
    .command("bake", "bake the image (same as bake-image)", bakeOptions, runBake)
    .command("spec", "image spec tools", (y) =>
      y
        .command(
          "validate",
          "check an image spec; exit 2 with every problem if invalid",
          (y2) =>
            y2
              .option("spec", { type: "string", defaultDescription: "image/kubebake.yaml" })
              .option("json", { type: "boolean", default: false, describe: "print the result as JSON" }),
          (args) => {
            const loaded = loadImageSpec(args.spec ?? defaultSpec());
            const components = loaded.spec.components.length;
            if (args.json) printJson({ file: loaded.path, valid: true, components });
            else process.stdout.write(`${loaded.path}: valid (${components} components)\n`);
          },
        )
        .command(
          "schema",
          "print the JSON Schema of image specs (for editors)",
          (y2) => y2.option("out", { type: "string", describe: "write to this file instead of stdout" }),
          (args) => writeJsonSchema(imageSpecSchema, args.out),
        )
        .demandCommand(1, "name a spec command: validate or schema"),
    )
    .command("image", "image tools", (y) =>
      y
        .command(
          "check <image>",
          "list the preloaded images and hygiene violations (host keys, machine-id, instance state, caches, logs, histories, secrets, images not preloaded); exit 6 if any",
          (y2) =>
            y2
              .positional("image", {
                type: "string",
                demandOption: true,
                describe: "bake output folder, rootfs folder, or raw/qcow2 disk",
              })
              .option("json", { type: "boolean", default: false, describe: "print the violations as JSON" }),
          async (args) => {
            const { checkImage } = await import("../image/check");
            const { violations, images } = await checkImage(args.image);
            if (args.json) printJson({ violations, images });
            else {
              for (const i of images) process.stdout.write(`preloaded ${i.name} ${i.digest}\n`);
              for (const v of violations) process.stdout.write(`${v.path}: ${v.rule}\n`);
            }
            if (violations.length > 0) {
              throw new KubebakeError(
                `${args.image}: ${violations.length} hygiene violation(s)`,
                ExitCode.hygiene,
              );
            }
            if (!args.json) process.stdout.write(`${args.image}: clean\n`);
          },
        )
        .demandCommand(1, "name an image command: check"),
    )
    .command("pki", "cluster certificates and keys", (y) =>
      y
        .command(
          "init",
          "generate a cluster's PKI into a new folder (keys 0600)",
          (y2) =>
            y2
              .option("cluster", {
                type: "string",
                demandOption: true,
                requiresArg: true,
                describe: "cluster name",
              })
              .option("out", {
                type: "string",
                demandOption: true,
                requiresArg: true,
                describe: "new or empty folder",
              })
              .option("spec", {
                type: "string",
                describe: "image spec (cluster domain, service CIDR)",
                defaultDescription: "image/kubebake.yaml",
              })
              .option("json", { type: "boolean", default: false, describe: "print the result as JSON" }),
          async (args) => {
            if (!CLUSTER_NAME.test(args.cluster)) {
              throw invalidInput(
                `--cluster ${JSON.stringify(args.cluster)}: expected 1 to 40 lowercase letters, digits and inner '-'`,
              );
            }
            const { cluster } = loadImageSpec(args.spec ?? defaultSpec()).spec;
            // Loaded here only: the X.509 library is not needed to bake.
            const { generateClusterPki } = await import("../pki/pki");
            const { writePki } = await import("../pki/write");
            const files = await generateClusterPki({
              cluster: args.cluster,
              discoveryDomain: cluster.discoveryDomain,
            });
            await writePki(args.out, files);
            const names = files.map((f) => f.name);
            if (args.json) printJson({ cluster: args.cluster, out: args.out, files: names });
            else {
              process.stdout.write(
                `wrote the PKI of cluster ${args.cluster} into ${args.out} (${files.length} files)\n`,
              );
            }
          },
        )
        .command(
          "encryption-key <step>",
          "rotate the key that encrypts Secrets: add, then use, then retire (docs/security.md)",
          (y2) =>
            y2
              .positional("step", { choices: ["add", "use", "retire"] as const, demandOption: true })
              .option("file", {
                type: "string",
                demandOption: true,
                requiresArg: true,
                describe: "the cluster's encryption-config.yaml, rewritten in place (0600)",
              })
              .option("json", { type: "boolean", default: false, describe: "print the result as JSON" }),
          async (args) => {
            const { rewriteEncryptionConfig } = await import("../pki/write");
            const keys = await rewriteEncryptionConfig(args.file, args.step, new Date());
            if (args.json) printJson({ file: args.file, step: args.step, keys });
            else {
              process.stdout.write(
                `${args.file}: ${args.step}: writes with ${keys[0]}` +
                  (keys.length > 1 ? `, also reads ${keys.slice(1).join(", ")}` : "") +
                  "\n",
              );
            }
          },
        )
        .command(
          "ca <step>",
          "rotate a CA: add, then use, then retire (docs/security.md)",
          (y2) =>
            y2
              .positional("step", { choices: ["add", "use", "retire"] as const, demandOption: true })
              .option("ca", {
                choices: ["ca", "etcd-ca", "front-proxy-ca"] as const,
                demandOption: true,
                describe: "the CA to rotate",
              })
              .option("dir", {
                type: "string",
                demandOption: true,
                requiresArg: true,
                describe:
                  "the cluster's PKI folder: <ca>.crt and <ca>.key (and for ca admin.kubeconfig, admin.crt, admin.key), rewritten in place",
              })
              .option("json", { type: "boolean", default: false, describe: "print the result as JSON" }),
          async (args) => {
            const { rewriteCa } = await import("../pki/write");
            const result = await rewriteCa(args.dir, args.ca, args.step, new Date());
            if (args.json) printJson({ dir: args.dir, ca: args.ca, step: args.step, ...result });
            else {
              const [signing, ...trusted] = result.cas;
              process.stdout.write(
                `${join(args.dir, `${args.ca}.crt`)}: ${args.step}: signs with ${signing!.subject}` +
                  (trusted.length > 0 ? `, also trusts ${trusted.map((c) => c.subject).join(", ")}` : "") +
                  `\nrewrote ${result.files.join(", ")}: store them, then replace the masters one at a time` +
                  (args.ca === "ca" ? ", then the minions" : "") +
                  "\n",
              );
            }
          },
        )
        .demandCommand(1, "name a pki command: init, encryption-key, ca"),
    )
    .demandCommand(1, "name a command");
}

/** `bake-image …` is `kubebake bake …`. */
export function bakeImage(argv: string[]): Argv {
  return bakeOptions(base(argv, "bake-image")).command("$0", "bake the image", () => {}, runBake);
}

/** What every command line shares: strict parsing, --help, --version, usage errors as exit 2. */
function base(argv: string[], name: string): Argv {
  const cli: Argv = yargs(argv)
    .scriptName(name)
    .strict()
    .recommendCommands()
    .help()
    .version("version", "Show the version and the git commit it was built from", `${name} ${version()}`)
    .wrap(Math.min(110, process.stdout.columns ?? 110))
    .fail((message, error) => {
      // yargs reports its own usage problems as YError; anything else came from a command handler.
      if (error && error.name !== "YError") throw error;
      // The same yargs instance holds the options of the command being parsed when a check fails.
      const { key, alias } = (cli as unknown as { getOptions(): YargsOptions }).getOptions();
      const known = [...Object.keys(key), ...Object.values(alias).flat()];
      const unknown = unknownOptions(argv, known);
      throw new KubebakeError(
        `${unknown.length > 0 ? unknown.join("\n") : (message ?? error?.message)}\nRun '${name} --help' for usage.`,
        ExitCode.invalidInput,
      );
    });
  return cli;
}

interface YargsOptions {
  key: Record<string, unknown>;
  alias: Record<string, string[]>;
}

/** Runs a CLI to completion: documented exit codes, a message and never a stack trace for known failures. */
export async function main(cli: (argv: string[]) => Argv, argv: string[]): Promise<number> {
  try {
    await cli(argv).parseAsync();
    return ExitCode.ok;
  } catch (error) {
    if (error instanceof KubebakeError) {
      process.stderr.write(`error: ${error.message}\n`);
      return error.exitCode;
    }
    process.stderr.write(`internal error: ${(error as Error)?.message ?? String(error)}\n`);
    if (process.env.KUBEBAKE_DEBUG) process.stderr.write(`${(error as Error)?.stack}\n`);
    return ExitCode.internal;
  }
}
