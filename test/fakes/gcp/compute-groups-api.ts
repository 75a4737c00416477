import type { OperationFailure } from "./compute";
import type { ComputeResourcesState } from "./compute-resources";
import {
  act,
  fixed,
  keyOf,
  plan,
  settleGroup,
  templateName,
  versionsOf,
  vmsOf,
  type GroupRecord,
  type ManagedVm,
} from "./compute-groups";
import {
  aggregatedAnswer,
  alreadyExists,
  badName,
  badPageToken,
  failure,
  filterOf,
  invalid,
  list,
  listAnswer,
  malformed,
  mergePatch,
  newFingerprint,
  notFound,
  pageOf,
  parseReference,
  staleFingerprint,
  urlOf,
  type Json,
} from "./compute-common";
import { googleError, type FakeRequest, type FakeResponse, type GoogleApiFake } from "./fake";

/**
 * The requests of regional managed instance groups and of the instances they own: the group's checks
 * (template references, zones in the region, update policy limits), its answers with computed status and
 * currentActions, and the Compute instances (instances.get/list/aggregatedList) its VMs are.
 */
const ACTIONS = [
  "abandoning",
  "creating",
  "creatingWithoutRetries",
  "deleting",
  "none",
  "recreating",
  "refreshing",
  "restarting",
  "resuming",
  "starting",
  "stopping",
  "suspending",
  "verifying",
];
const camel = (action: string) => action.toLowerCase().replace(/_(\w)/g, (_, c: string) => c.toUpperCase());

function groupView(state: ComputeResourcesState, group: GroupRecord): Json {
  const vms = vmsOf(state, group);
  const actions = Object.fromEntries(ACTIONS.map((a) => [a, 0])) as Record<string, number>;
  for (const vm of vms) actions[camel(vm.currentAction)]++;
  const { live, outdated } = plan(state, group);
  return {
    ...group.manager,
    currentActions: actions,
    status: {
      isStable:
        vms.every((vm) => vm.currentAction === "NONE") && live.length === Number(group.manager.targetSize),
      versionTarget: { isReached: outdated.length === 0 && actions.recreating === 0 },
      stateful: { hasStatefulConfig: false, perInstanceConfigs: { allEffective: true } },
    },
  };
}

function managedInstance(group: GroupRecord, vm: ManagedVm): Json {
  const project = `projects/${group.project}`;
  return {
    ...(vm.id ? { id: vm.id, instanceStatus: vm.status } : {}),
    name: vm.name,
    instance: urlOf(group.base, `${project}/zones/${vm.zone}/instances/${vm.name}`),
    currentAction: vm.currentAction,
    version: {
      instanceTemplate: urlOf(group.base, `${project}/global/instanceTemplates/${vm.template}`),
      ...(vm.version ? { name: vm.version } : {}),
    },
    ...(vm.errors ? { lastAttempt: { errors: { errors: vm.errors } } } : {}),
  };
}

/** The Compute instance a managed VM is: its template's labels, metadata, service accounts; its address. */
function instanceJson(state: ComputeResourcesState, vm: ManagedVm): Json {
  const group = state.groups.get(vm.group)!;
  const props = vm.properties!;
  const project = `projects/${group.project}`;
  const zone = urlOf(group.base, `${project}/zones/${vm.zone}`);
  const nic = list(props.networkInterfaces)[0];
  const metadata = (props.metadata ?? {}) as Json;
  return {
    kind: "compute#instance",
    id: vm.id,
    name: vm.name,
    creationTimestamp: vm.creationTimestamp,
    zone,
    status: vm.status,
    selfLink: `${zone}/instances/${vm.name}`,
    machineType: `${zone}/machineTypes/${props.machineType}`,
    ...(props.labels ? { labels: props.labels } : {}),
    ...(props.tags ? { tags: props.tags } : {}),
    metadata: {
      kind: "compute#metadata",
      fingerprint: vm.metadataFingerprint,
      // GCE adds these two to a managed instance's metadata.
      items: [
        ...list(metadata.items),
        { key: "instance-template", value: `${project}/global/instanceTemplates/${vm.template}` },
        {
          key: "created-by",
          value: `${project}/regions/${group.region}/instanceGroupManagers/${group.manager.name}`,
        },
      ],
    },
    serviceAccounts: props.serviceAccounts ?? [],
    networkInterfaces: [
      {
        kind: "compute#networkInterface",
        name: "nic0",
        network: urlOf(group.base, vm.network!),
        subnetwork: urlOf(group.base, vm.subnetwork!),
        networkIP: vm.networkIP,
        stackType: "IPV4_ONLY",
        ...(nic.accessConfigs ? { accessConfigs: nic.accessConfigs } : {}),
      },
    ],
    disks: list(props.disks).map((disk, index) => ({
      kind: "compute#attachedDisk",
      index,
      boot: index === 0,
      autoDelete: disk.autoDelete ?? true,
      mode: "READ_WRITE",
      type: "PERSISTENT",
      deviceName: disk.deviceName ?? `persistent-disk-${index}`,
      source: `${zone}/disks/${index === 0 ? vm.name : `${vm.name}-${index}`}`,
    })),
  };
}

// ---- requests ----

/** GCE's checks of a group (insert, or after a patch is merged); its zones, or the refusal. */
function managerProblem(
  state: ComputeResourcesState,
  request: FakeRequest,
  manager: Json,
  current?: GroupRecord,
): string[] | FakeResponse {
  const region = request.params.region!;
  const base = manager.baseInstanceName;
  if (base === undefined)
    return googleError(400, "Required field 'resource.baseInstanceName' not specified", "required");
  if (!/^[a-z](?:[-a-z0-9]{0,57}|[-a-z0-9]{0,51}-#{1,10})$/.test(String(base)))
    return invalid("resource.baseInstanceName", base, "Must be an RFC 1035 name of at most 58 characters.");
  const size = Number(manager.targetSize);
  if (manager.targetSize === undefined)
    return googleError(400, "Required field 'resource.targetSize' not specified", "required");
  if (!Number.isInteger(size) || size < 0)
    return invalid("resource.targetSize", manager.targetSize, "Must be ≥ 0.");
  const versions = list(manager.versions);
  const refs = versions.length > 0 ? versions.map((v) => v.instanceTemplate) : [manager.instanceTemplate];
  if (refs[0] === undefined)
    return googleError(400, "Required field 'resource.instanceTemplate' not specified", "required");
  for (const ref of refs) {
    const parsed = parseReference(ref, request.params.project!, "instanceTemplates");
    if (!parsed || parsed.scope !== "global") return malformed("resource.instanceTemplate", ref);
    if (!state.templates.has(parsed.name)) return notFound(parsed.path);
  }
  if (new Set(refs.map(templateName)).size !== refs.length)
    return invalid("resource.versions", versions, "Every version must use a different template.");
  if (versions.filter((v) => !v.targetSize).length > 1)
    return invalid("resource.versions", versions, "At most one version may leave targetSize unset.");
  if (
    versions.length === 1 &&
    manager.instanceTemplate &&
    templateName(manager.instanceTemplate) !== templateName(refs[0])
  )
    return invalid("resource.instanceTemplate", manager.instanceTemplate, "It conflicts with versions[0].");
  const given = list((manager.distributionPolicy as Json | undefined)?.zones).map((z) =>
    String(z.zone).replace(/^.*\bzones\//, ""),
  );
  const zones = given.length > 0 ? given : ["b", "c", "d"].map((z) => `${region}-${z}`);
  const stray = zones.find((zone) => !zone.startsWith(`${region}-`));
  if (stray)
    return invalid("resource.distributionPolicy.zones", stray, `Zones must be in the region ${region}.`);
  if (current && zones.join() !== current.zones.join())
    return invalid("resource.distributionPolicy.zones", zones, "A regional group's zones cannot be changed.");
  const policy = (manager.updatePolicy ?? {}) as Json;
  for (const field of ["maxSurge", "maxUnavailable"]) {
    const value = policy[field] as Json | undefined;
    if (value?.fixed !== undefined && fixed(value) !== 0 && fixed(value) < zones.length)
      return invalid(
        `resource.updatePolicy.${field}.fixed`,
        value.fixed,
        `A regional group's fixed ${field} must be 0 or at least the number of zones (${zones.length}).`,
      );
  }
  if (policy.replacementMethod === "RECREATE" && fixed(policy.maxSurge ?? { fixed: zones.length }) !== 0)
    return invalid(
      "resource.updatePolicy.maxSurge",
      policy.maxSurge ?? "",
      "maxSurge must be 0 with replacementMethod RECREATE.",
    );
  return zones;
}

/** The group as stored: references as URLs, versions and instanceTemplate both set, defaults filled. */
function storedManager(request: FakeRequest, body: Json, zones: string[], identity: Json): Json {
  const project = `projects/${request.params.project}`;
  const template = (ref: unknown) =>
    urlOf(request, `${project}/global/instanceTemplates/${templateName(ref)}`);
  const given = list(body.versions);
  const versions = (given.length > 0 ? given : [{ instanceTemplate: body.instanceTemplate }]).map((v) => ({
    ...v,
    instanceTemplate: template(v.instanceTemplate),
    ...(v.targetSize ? { targetSize: { ...(v.targetSize as Json), calculated: undefined } } : {}),
  }));
  const defaults = { fixed: zones.length };
  const policy = (body.updatePolicy ?? {}) as Json;
  const region = `${project}/regions/${request.params.region}`;
  // Output-only fields a read-modify-write sends back are the fake's to compute.
  const rest = Object.fromEntries(
    Object.entries(body).filter(([field]) => field !== "status" && field !== "currentActions"),
  );
  return {
    ...rest,
    ...identity,
    kind: "compute#instanceGroupManager",
    selfLink: urlOf(request, `${region}/instanceGroupManagers/${identity.name}`),
    region: urlOf(request, region),
    instanceGroup: urlOf(request, `${region}/instanceGroups/${identity.name}`),
    instanceTemplate: versions[0].instanceTemplate,
    versions,
    distributionPolicy: {
      targetShape: "EVEN",
      ...(body.distributionPolicy as Json | undefined),
      zones: zones.map((zone) => ({ zone: urlOf(request, `${project}/zones/${zone}`) })),
    },
    updatePolicy: {
      type: "PROACTIVE",
      minimalAction: "REPLACE",
      replacementMethod: "SUBSTITUTE",
      instanceRedistributionType: "PROACTIVE",
      ...policy,
      maxSurge: {
        ...defaults,
        ...(policy.maxSurge as Json | undefined),
        calculated: fixed(policy.maxSurge ?? defaults),
      },
      maxUnavailable: {
        ...defaults,
        ...(policy.maxUnavailable as Json | undefined),
        calculated: fixed(policy.maxUnavailable ?? defaults),
      },
    },
    fingerprint: newFingerprint(),
  };
}

export function installGroups(fake: GoogleApiFake, state: ComputeResourcesState): void {
  const pathOf = (request: FakeRequest, name = request.params.instanceGroupManager!) =>
    `projects/${request.params.project}/regions/${request.params.region}/instanceGroupManagers/${name}`;
  const found = (request: FakeRequest) =>
    state.groups.get(`${request.params.region}/${request.params.instanceGroupManager}`);
  const settled = (request: FakeRequest) => {
    const group = found(request);
    if (group && state.autoSettle) settleGroup(state, group);
    return group;
  };
  const op = (request: FakeRequest, type: string, group: GroupRecord, work: () => OperationFailure | void) =>
    state.operate(
      request,
      type,
      group.manager,
      () =>
        state.groups.get(keyOf(group)) === group
          ? work()
          : failure("RESOURCE_NOT_FOUND", `The resource '${pathOf(request)}' was not found`),
      { regional: true },
    );

  fake.on("compute.regionInstanceGroupManagers.get", (request) => {
    const group = settled(request);
    return group ? { json: groupView(state, group) } : notFound(pathOf(request));
  });
  fake.on("compute.regionInstanceGroupManagers.list", (request) =>
    listAnswer(
      request,
      "compute#regionInstanceGroupManagerList",
      `projects/${request.params.project}/regions/${request.params.region}/instanceGroupManagers`,
      [...state.groups.values()]
        .filter((g) => g.region === request.params.region)
        .map((g) => groupView(state, g)),
    ),
  );
  fake.on("compute.regionInstanceGroupManagers.insert", (request) => {
    const body = (request.json ?? {}) as Json;
    const refused = badName("resource.name", body.name);
    if (refused) return refused;
    const path = pathOf(request, String(body.name));
    if (state.groups.has(`${request.params.region}/${body.name}`) || state.pending.has(path))
      return alreadyExists(path);
    const zones = managerProblem(state, request, body);
    if (!Array.isArray(zones)) return zones;
    const identity = {
      name: body.name,
      id: state.compute.nextId(),
      creationTimestamp: new Date().toISOString(),
    };
    const group: GroupRecord = {
      manager: storedManager(request, body, zones, identity),
      project: request.params.project!,
      region: request.params.region!,
      base: request.baseUrl,
      zones,
    };
    return state.operate(
      request,
      "insert",
      group.manager,
      () => {
        const lost = versionsOf(group.manager).find((v) => !state.templates.has(v.template));
        if (lost)
          return failure(
            "RESOURCE_NOT_FOUND",
            `The resource 'projects/${group.project}/global/instanceTemplates/${lost.template}' was not found`,
          );
        state.groups.set(keyOf(group), group);
        act(state, group);
      },
      { regional: true, reserve: path },
    );
  });
  fake.on("compute.regionInstanceGroupManagers.patch", (request) => {
    const group = found(request);
    if (!group) return notFound(pathOf(request));
    const body = (request.json ?? {}) as Json;
    // The fingerprint guards a read-modify-write; a patch without one is taken (GCE's docs ask for it).
    if (body.fingerprint !== undefined && body.fingerprint !== group.manager.fingerprint)
      return staleFingerprint();
    if (body.name !== undefined && body.name !== group.manager.name)
      return invalid("resource.name", body.name, "A group's name cannot be changed.");
    const merged = mergePatch(group.manager, body);
    // A new top-level template alone retargets the group's (single) version, as GCE reads it.
    if (body.instanceTemplate !== undefined && body.versions === undefined)
      merged.versions = [{ ...list(group.manager.versions)[0], instanceTemplate: body.instanceTemplate }];
    if (body.versions !== undefined && body.instanceTemplate === undefined) delete merged.instanceTemplate;
    const zones = managerProblem(state, request, merged, group);
    if (!Array.isArray(zones)) return zones;
    const { name, id, creationTimestamp } = group.manager;
    const manager = storedManager(request, merged, zones, { name, id, creationTimestamp });
    return op(request, "patch", group, () => {
      group.manager = manager;
      act(state, group);
    });
  });
  fake.on("compute.regionInstanceGroupManagers.resize", (request) => {
    const group = found(request);
    if (!group) return notFound(pathOf(request));
    const size = Number(request.query.get("size"));
    if (size < 0) return invalid("size", size, "Must be ≥ 0.");
    return op(request, "compute.regionInstanceGroupManagers.resize", group, () => {
      Object.assign(group.manager, { targetSize: size, fingerprint: newFingerprint() });
      act(state, group);
    });
  });
  fake.on("compute.regionInstanceGroupManagers.recreateInstances", (request) => {
    const group = found(request);
    if (!group) return notFound(pathOf(request));
    const names = list((request.json as Json | undefined)?.instances as unknown).map((url) =>
      String(url).split("/").pop()!,
    );
    return op(request, "compute.regionInstanceGroupManagers.recreateInstances", group, () => {
      const vms = names.map((name) => state.instances.get(name));
      const stranger = names.find((_name, i) => vms[i]?.group !== keyOf(group));
      if (stranger)
        return failure(
          "RESOURCE_NOT_FOUND",
          `The instance '${stranger}' is not a member of '${pathOf(request)}'`,
        );
      const targets = plan(state, group);
      for (const vm of vms as ManagedVm[]) {
        const wanted = versionsOf(group.manager).find((v) => v.template === vm.template) ?? targets.take();
        state.replaced.push({
          group: keyOf(group),
          instance: vm.name,
          replacement: vm.name,
          from: vm.template,
          to: wanted.template,
        });
        Object.assign(vm, { currentAction: "RECREATING", template: wanted.template, version: wanted.name });
      }
    });
  });
  fake.on("compute.regionInstanceGroupManagers.delete", (request) => {
    const group = found(request);
    if (!group) return notFound(pathOf(request));
    // GCE deletes the instances, then the group; the operation is DONE when both are gone.
    return op(request, "delete", group, () => {
      for (const vm of vmsOf(state, group)) state.instances.delete(vm.name);
      state.groups.delete(keyOf(group));
    });
  });
  fake.on("compute.regionInstanceGroupManagers.listManagedInstances", (request) => {
    const group = settled(request);
    if (!group) return notFound(pathOf(request));
    const keep = filterOf(request.query.get("filter"));
    const page = pageOf(
      vmsOf(state, group)
        .map((vm) => managedInstance(group, vm))
        .filter(keep),
      request.query,
    );
    if (!page) return badPageToken(request.query);
    return {
      json: {
        managedInstances: page.items,
        ...(page.nextPageToken ? { nextPageToken: page.nextPageToken } : {}),
      },
    };
  });

  const existing = () => [...state.instances.values()].filter((vm) => vm.id);
  fake.on("compute.instances.get", (request) => {
    const vm = state.instances.get(request.params.instance!);
    return vm?.id && vm.zone === request.params.zone
      ? { json: instanceJson(state, vm) }
      : notFound(
          `projects/${request.params.project}/zones/${request.params.zone}/instances/${request.params.instance}`,
        );
  });
  // Guest attributes (what the guest wrote through its metadata server): a key that is not there is a 404.
  fake.on("compute.instances.getGuestAttributes", (request) => {
    const vm = state.instances.get(request.params.instance!);
    const path = `projects/${request.params.project}/zones/${request.params.zone}/instances/${request.params.instance}`;
    if (!vm?.id || vm.zone !== request.params.zone) return notFound(path);
    const key = request.query.get("variableKey");
    if (!key) return googleError(400, "the fake models getGuestAttributes by variableKey only");
    const value = vm.guestAttributes?.[key];
    if (value === undefined) return notFound(`${path}/guestAttributes/${key}`);
    return {
      json: {
        kind: "compute#guestAttributes",
        selfLink: `${request.baseUrl}/compute/v1/${path}/getGuestAttributes?variableKey=${key}`,
        variableKey: key,
        variableValue: value,
      },
    };
  });
  fake.on("compute.instances.list", (request) =>
    listAnswer(
      request,
      "compute#instanceList",
      `projects/${request.params.project}/zones/${request.params.zone}/instances`,
      existing()
        .filter((vm) => vm.zone === request.params.zone)
        .map((vm) => instanceJson(state, vm)),
    ),
  );
  fake.on("compute.instances.aggregatedList", (request) =>
    aggregatedAnswer(
      request,
      "compute#instanceAggregatedList",
      "instances",
      `projects/${request.params.project}/aggregated/instances`,
      existing().map((vm) => ({ scope: `zones/${vm.zone}`, item: instanceJson(state, vm) })),
    ),
  );
}
