/**
 * A GCE spec's project and region: the cluster file's, else gcloud's defaults as gcloud itself reads them
 * (CLOUDSDK_CORE_PROJECT and CLOUDSDK_COMPUTE_REGION, then core/project and compute/region of the active
 * configuration in CLOUDSDK_CONFIG or ~/.config/gcloud), else GOOGLE_CLOUD_PROJECT for the project.
 */
import { readFileSync } from "node:fs";
import { homedir } from "node:os";
import { join } from "node:path";
import { GCE_REGION, zoneProblems, type GceClusterSpec, type GceSpec } from "../../cluster/gce-schema";
import { invalidInput } from "../../errors";

/** The properties of gcloud's active configuration, by `section/key`; none when it has none. */
export function gcloudProperties(
  env: NodeJS.ProcessEnv = process.env,
  home = homedir(),
): Record<string, string> {
  const dir = env.CLOUDSDK_CONFIG || join(home, ".config", "gcloud");
  const read = (path: string) => {
    try {
      return readFileSync(path, "utf8");
    } catch {
      return undefined;
    }
  };
  const active = env.CLOUDSDK_ACTIVE_CONFIG_NAME || read(join(dir, "active_config"))?.trim() || "default";
  const properties: Record<string, string> = {};
  let section = "";
  for (const line of (read(join(dir, "configurations", `config_${active}`)) ?? "").split("\n")) {
    const header = /^\s*\[([^\]]+)\]\s*$/.exec(line);
    if (header) section = header[1]!.trim();
    const entry = /^\s*([^=#;\s][^=]*?)\s*=\s*(.*?)\s*$/.exec(line);
    if (entry && !header) properties[`${section}/${entry[1]}`] = entry[2]!;
  }
  return properties;
}

/** The spec with its project and region decided; a missing one, or a zone of another region, is exit 2. */
export function resolveGceSpec(
  spec: GceClusterSpec,
  specPath: string,
  env: NodeJS.ProcessEnv = process.env,
  home = homedir(),
): GceSpec {
  const gcloud = gcloudProperties(env, home);
  const project =
    spec.project ??
    (env.CLOUDSDK_CORE_PROJECT || gcloud["core/project"] || env.GOOGLE_CLOUD_PROJECT || undefined);
  const region = spec.region ?? (env.CLOUDSDK_COMPUTE_REGION || gcloud["compute/region"] || undefined);
  if (!project)
    throw invalidInput(
      `${specPath}: project: not set, and gcloud has no default (gcloud config set project PROJECT, or CLOUDSDK_CORE_PROJECT)`,
    );
  if (!region)
    throw invalidInput(
      `${specPath}: region: not set, and gcloud has no default (gcloud config set compute/region REGION, or CLOUDSDK_COMPUTE_REGION)`,
    );
  if (spec.region === undefined && !GCE_REGION.test(region))
    throw invalidInput(`${specPath}: region: gcloud's default ${JSON.stringify(region)} is not a GCE region`);
  const zone = zoneProblems(spec.network.zones, region)[0];
  if (zone)
    throw invalidInput(`${specPath}: network.zones[${zone.path[2]}]: ${zone.message} (gcloud's region)`);
  return { ...spec, project, region };
}
