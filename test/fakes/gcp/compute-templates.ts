import type { GroupRecord } from "./compute-groups";
import type { ComputeResourcesState } from "./compute-resources";
import {
  alreadyExists,
  badName,
  failure,
  globalPath,
  gone,
  IMAGE_REF,
  invalid,
  list,
  listAnswer,
  malformed,
  NAME,
  notFound,
  now,
  parseReference,
  urlOf,
  type Json,
} from "./compute-common";
import { googleError, type FakeRequest, type FakeResponse, type GoogleApiFake } from "./fake";

/**
 * Global instance templates: immutable (no update), stored as given plus id, selfLink, creationTimestamp
 * and kind. Their shape is checked at insert; what they name (image, subnetwork, service account) is
 * checked when a group makes instances from them. Deleting one a group targets is refused (400).
 */
/** GCE's checks of a template at insert; references it holds are checked when instances are made. */
function templateProblem(body: Json): FakeResponse | undefined {
  const properties = body.properties as Json | undefined;
  if (!properties) return googleError(400, "Required field 'resource.properties' not specified", "required");
  if (properties.machineType === undefined)
    return googleError(400, "Required field 'resource.properties.machineType' not specified", "required");
  if (!/^[a-z0-9-]+$/.test(String(properties.machineType)))
    return invalid(
      "resource.properties.machineType",
      properties.machineType,
      "Must be a machine type's name.",
    );
  const disks = list(properties.disks) as Json[];
  if (disks.length === 0 || disks[0].boot !== true || disks.slice(1).some((d) => d.boot))
    return invalid("resource.properties.disks", disks, "The first disk, and only it, must be the boot disk.");
  const image = (disks[0].initializeParams as Json | undefined)?.sourceImage;
  if (!IMAGE_REF.test(String(image)))
    return invalid(
      "resource.properties.disks[0].initializeParams.sourceImage",
      image ?? "",
      "The URL is malformed.",
    );
  const nics = list(properties.networkInterfaces) as Json[];
  if (nics.length === 0)
    return invalid(
      "resource.properties.networkInterfaces",
      [],
      "At least one network interface is required.",
    );
  for (const [i, nic] of nics.entries()) {
    if (nic.network !== undefined && parseReference(nic.network, "p", "networks")?.scope !== "global")
      return malformed(`resource.properties.networkInterfaces[${i}].network`, nic.network);
    if (
      nic.subnetwork !== undefined &&
      !/^regions\//.test(parseReference(nic.subnetwork, "p", "subnetworks")?.scope ?? "")
    )
      return malformed(`resource.properties.networkInterfaces[${i}].subnetwork`, nic.subnetwork);
    if (nic.network === undefined && nic.subnetwork === undefined)
      return invalid(
        `resource.properties.networkInterfaces[${i}]`,
        nic,
        "A network or subnetwork is required.",
      );
  }
  if (list(properties.serviceAccounts).length > 1)
    return invalid(
      "resource.properties.serviceAccounts",
      properties.serviceAccounts,
      "Only one service account per VM instance is supported.",
    );
  const items = list((properties.metadata as Json | undefined)?.items) as Json[];
  const keys = items.map((item) => String(item.key));
  const bad = keys.find((key, i) => !/^[a-zA-Z0-9_-]{1,128}$/.test(key) || keys.indexOf(key) !== i);
  if (bad !== undefined)
    return invalid("resource.properties.metadata", bad, "Keys must be unique, [a-zA-Z0-9-_]{1,128}.");
  if (items.reduce((size, item) => size + String(item.value ?? "").length, 0) > 512 * 1024)
    return invalid("resource.properties.metadata", "…", "Metadata may hold 512 KiB in all.");
  for (const [key, value] of Object.entries((properties.labels ?? {}) as Record<string, string>))
    if (!/^[a-z][-_a-z0-9]{0,62}$/.test(key) || !/^[-_a-z0-9]{0,63}$/.test(value))
      return invalid("resource.properties.labels", `${key}=${value}`, "Not a valid label.");
  for (const tag of list((properties.tags as Json | undefined)?.items))
    if (!NAME.test(String(tag)))
      return invalid("resource.properties.tags", tag, "Tags must be RFC 1035 names.");
  return undefined;
}

/** The groups whose target versions use a template (which GCE then refuses to delete). */
export function templateUsers(state: ComputeResourcesState, name: string): GroupRecord[] {
  return [...state.groups.values()].filter((group) =>
    [
      group.manager.instanceTemplate,
      ...list(group.manager.versions).map((v) => (v as Json).instanceTemplate),
    ].some((ref) => parseReference(ref, "", "instanceTemplates")?.name === name),
  );
}

export function installTemplates(fake: GoogleApiFake, state: ComputeResourcesState): void {
  const pathOf = (request: FakeRequest, name = request.params.instanceTemplate!) =>
    globalPath(request, "instanceTemplates", name);
  fake.on("compute.instanceTemplates.get", (request) => {
    const found = state.templates.get(request.params.instanceTemplate!);
    return found ? { json: found } : notFound(pathOf(request));
  });
  fake.on("compute.instanceTemplates.list", (request) =>
    listAnswer(
      request,
      "compute#instanceTemplateList",
      `projects/${request.params.project}/global/instanceTemplates`,
      [...state.templates.values()],
    ),
  );
  fake.on("compute.instanceTemplates.insert", (request) => {
    const body = (request.json ?? {}) as Json;
    const refused = badName("resource.name", body.name) ?? templateProblem(body);
    if (refused) return refused;
    const path = pathOf(request, String(body.name));
    if (state.templates.has(String(body.name)) || state.pending.has(path)) return alreadyExists(path);
    const template: Json = {
      ...body,
      kind: "compute#instanceTemplate",
      id: state.compute.nextId(),
      selfLink: urlOf(request, path),
      creationTimestamp: now(),
    };
    return state.operate(
      request,
      "insert",
      template,
      () => void state.templates.set(String(body.name), template),
      {
        reserve: path,
      },
    );
  });
  fake.on("compute.instanceTemplates.delete", (request) => {
    const name = request.params.instanceTemplate!;
    const found = state.templates.get(name);
    if (!found) return notFound(pathOf(request));
    const refusal = (group: GroupRecord) =>
      `The instance_template resource '${pathOf(request)}' is already being used by 'projects/${group.project}/regions/${group.region}/instanceGroupManagers/${group.manager.name}'`;
    const [user] = templateUsers(state, name);
    if (user) return googleError(400, refusal(user), "resourceInUseByAnotherResource");
    return state.operate(request, "delete", found, () => {
      const [group] = templateUsers(state, name);
      if (group) return failure("RESOURCE_IN_USE_BY_ANOTHER_RESOURCE", refusal(group));
      if (!state.templates.delete(name)) return gone(pathOf(request));
    });
  });
}
