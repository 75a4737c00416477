import { createHash } from "node:crypto";
import type { OperationFailure } from "./compute";
import {
  cidrSize,
  failure,
  IMAGE_REF,
  ipText,
  list,
  newFingerprint,
  parseCidr,
  parseReference,
  type Json,
} from "./compute-common";
import type { ComputeResourcesState } from "./compute-resources";

/**
 * Regional managed instance groups and the instances they own. A group acts when its operations reach DONE
 * (creates instances PROVISIONING/CREATING, marks extras DELETING, starts PROACTIVE replacements);
 * `settle` finishes what it started until the group is stable: instances RUNNING/NONE, or stuck CREATING
 * with `lastAttempt.errors` when the template's image, service account or subnetwork is missing.
 * (The groups' requests and answers are in compute-groups-api.ts.)
 */
export interface GroupRecord {
  /** The InstanceGroupManager as stored (references as URLs); status and currentActions are computed. */
  manager: Json;
  project: string;
  region: string;
  /** The fake's base URL when the group was made, to mint its instances' URLs. */
  base: string;
  zones: string[];
}

export interface ManagedVm {
  name: string;
  /** Its group's key, `region/name`. */
  group: string;
  zone: string;
  /** The template it is (to be) made from, by name, and the group version's name. */
  template: string;
  version: string;
  currentAction: string;
  /** Set once the VM exists; instances.get and aggregatedList answer only those. */
  id?: string;
  /** What the guest wrote through its metadata server (`namespace/key` → value); a new VM has none. */
  guestAttributes?: Record<string, string>;
  status?: string;
  networkIP?: string;
  /** Canonical paths of its subnetwork and network. */
  subnetwork?: string;
  network?: string;
  /** The template's properties when the VM was made (a template may be deleted later). */
  properties?: Json;
  metadataFingerprint?: string;
  creationTimestamp?: string;
  errors?: OperationFailure[];
  /** The instance a PROACTIVE update made this one to replace. */
  replaces?: string;
  age: number;
}

export interface Replacement {
  group: string;
  instance: string;
  /** The new instance's name (the same one when the group recreates in place). */
  replacement: string;
  from: string;
  to: string;
}

export interface Version {
  template: string;
  name: string;
  targetSize?: Json;
}

export const templateName = (ref: unknown) => parseReference(ref, "", "instanceTemplates")?.name ?? "";
export const keyOf = (group: GroupRecord) => `${group.region}/${group.manager.name}`;
export const vmsOf = (state: ComputeResourcesState, group: GroupRecord) =>
  [...state.instances.values()].filter((vm) => vm.group === keyOf(group)).sort((a, b) => a.age - b.age);
export const fixed = (value: unknown) => Number((value as Json | undefined)?.fixed ?? 0);

export function versionsOf(manager: Json): Version[] {
  return list(manager.versions).map((v) => ({
    template: templateName(v.instanceTemplate),
    name: String(v.name ?? ""),
    targetSize: v.targetSize as Json | undefined,
  }));
}

/** How many instances each version should have: explicit sizes first, the rest to the unsized version. */
function quotas(manager: Json): number[] {
  const versions = versionsOf(manager);
  let left = Number(manager.targetSize);
  const sized = versions.map((v) => {
    if (!v.targetSize) return undefined;
    const wanted = fixed(v.targetSize) || Math.floor((left * Number(v.targetSize.percent ?? 0)) / 100);
    return Math.min(wanted, left);
  });
  const quota = sized.map((n) => n ?? 0);
  left -= quota.reduce((a, b) => a + b, 0);
  const rest = sized.findIndex((n) => n === undefined);
  quota[rest >= 0 ? rest : quota.length - 1] += left;
  return quota;
}

/** The group's live instances (not being deleted), those not in a target version, and versions' shortfalls. */
export function plan(state: ComputeResourcesState, group: GroupRecord) {
  const versions = versionsOf(group.manager);
  const quota = quotas(group.manager);
  const live = vmsOf(state, group).filter((vm) => vm.currentAction !== "DELETING");
  const outdated: ManagedVm[] = [];
  for (const vm of live) {
    const i = versions.findIndex((v, i) => v.template === vm.template && quota[i] > 0);
    if (i >= 0) quota[i]--;
    else outdated.push(vm);
  }
  const take = (): Version => {
    const i = quota.findIndex((n) => n > 0);
    if (i >= 0) quota[i]--;
    return versions[Math.max(i, 0)];
  };
  return { live, outdated, shortfall: () => quota.some((n) => n > 0), take };
}

/** One round of the group's controller; true when it changed something. */
export function act(state: ComputeResourcesState, group: GroupRecord): boolean {
  const target = Number(group.manager.targetSize);
  let changed = false;
  let { live, outdated } = plan(state, group);
  // Scale in: instances that never came up first, then outdated ones, then the newest.
  const victims = [...live.filter((vm) => !vm.id), ...outdated, ...[...live].reverse()];
  for (const vm of new Set(victims)) {
    if (live.length <= target) break;
    vm.currentAction = "DELETING";
    live = live.filter((other) => other !== vm);
    changed = true;
  }
  const growth = plan(state, group);
  for (let n = growth.live.length; n < target; n++) {
    createVm(state, group, growth.take());
    changed = true;
  }
  ({ outdated } = plan(state, group));
  const policy = group.manager.updatePolicy as Json;
  const busy = vmsOf(state, group).some(
    (vm) => vm.currentAction === "RECREATING" || (vm.replaces && vm.currentAction === "CREATING"),
  );
  if (policy.type !== "PROACTIVE" || outdated.length === 0 || busy) return changed;
  // A PROACTIVE update replaces outdated instances, maxSurge + maxUnavailable at a time (loosely).
  const replacing = plan(state, group);
  const batch = Math.max(1, fixed(policy.maxSurge) + fixed(policy.maxUnavailable));
  for (const old of outdated.slice(0, batch)) {
    if (!replacing.shortfall()) break;
    const version = replacing.take();
    const from = old.template;
    if (policy.replacementMethod === "RECREATE") {
      Object.assign(old, { currentAction: "RECREATING", template: version.template, version: version.name });
      state.replaced.push({
        group: keyOf(group),
        instance: old.name,
        replacement: old.name,
        from,
        to: version.template,
      });
    } else {
      const fresh = createVm(state, group, version, old.name);
      old.currentAction = "DELETING";
      state.replaced.push({
        group: keyOf(group),
        instance: old.name,
        replacement: fresh.name,
        from,
        to: version.template,
      });
    }
    changed = true;
  }
  return changed;
}

/** One step of the group's instances' lives; true when it changed something. */
function finish(state: ComputeResourcesState, group: GroupRecord): boolean {
  let changed = false;
  for (const vm of vmsOf(state, group)) {
    if (vm.currentAction === "DELETING") state.instances.delete(vm.name);
    else if (vm.currentAction === "RECREATING") {
      Object.assign(vm, {
        id: undefined,
        status: undefined,
        networkIP: undefined,
        currentAction: "CREATING",
      });
      if (tryCreate(state, group, vm)) boot(state, vm);
    } else if (vm.currentAction === "CREATING" && vm.id) boot(state, vm);
    else if (vm.currentAction !== "CREATING" || !tryCreate(state, group, vm)) continue;
    changed = true;
  }
  return changed;
}

/** The VM runs: what its guest does at boot (state.onBoot, a test's stand-in for the node) happens now. */
function boot(state: ComputeResourcesState, vm: ManagedVm): void {
  Object.assign(vm, { status: "RUNNING", currentAction: "NONE" });
  state.onBoot?.(vm);
}

export function settleGroup(state: ComputeResourcesState, group: GroupRecord): void {
  for (let round = 0; round < 1000; round++) {
    const finished = finish(state, group);
    if (!act(state, group) && !finished) return;
  }
  throw new Error(`the group ${keyOf(group)} does not settle`);
}

function createVm(state: ComputeResourcesState, group: GroupRecord, version: Version, replaces?: string) {
  const live = vmsOf(state, group).filter((vm) => vm.currentAction !== "DELETING");
  const count = (zone: string) => live.filter((vm) => vm.zone === zone).length;
  const zone = group.zones.reduce((best, zone) => (count(zone) < count(best) ? zone : best));
  const vm: ManagedVm = {
    name: instanceName(state, String(group.manager.baseInstanceName)),
    group: keyOf(group),
    zone,
    template: version.template,
    version: version.name,
    currentAction: "CREATING",
    replaces,
    age: state.next(),
  };
  state.instances.set(vm.name, vm);
  tryCreate(state, group, vm);
  return vm;
}

/** `base-xxxx` (four of [a-z0-9], as GCE), or `base-001` for a base name ending in `-###`. */
function instanceName(state: ComputeResourcesState, base: string): string {
  const hashes = /-(#{1,10})$/.exec(base)?.[1];
  for (let i = 1; ; i++) {
    const suffix = hashes
      ? String(i).padStart(hashes.length, "0")
      : [...createHash("sha256").update(`${base}/${state.next()}`).digest().subarray(0, 4)]
          .map((byte) => "abcdefghijklmnopqrstuvwxyz0123456789"[byte % 36])
          .join("");
    const name = hashes ? base.slice(0, -hashes.length) + suffix : `${base}-${suffix}`;
    if (!state.instances.has(name)) return name;
  }
}

/** Makes the VM if everything its template names exists (PROVISIONING); else records why on the vm. */
function tryCreate(state: ComputeResourcesState, group: GroupRecord, vm: ManagedVm): boolean {
  const made = whatToMake(state, group, vm);
  if ("errors" in made) {
    vm.errors = made.errors;
    return false;
  }
  Object.assign(vm, made, {
    id: state.compute.nextId(),
    status: "PROVISIONING",
    errors: undefined,
    guestAttributes: {},
    metadataFingerprint: newFingerprint(),
    creationTimestamp: new Date().toISOString(),
  });
  return true;
}

function whatToMake(
  state: ComputeResourcesState,
  group: GroupRecord,
  vm: ManagedVm,
): { errors: OperationFailure[] } | Pick<ManagedVm, "properties" | "subnetwork" | "network" | "networkIP"> {
  const { project, region } = group;
  const missing = (path: string) => ({
    errors: [failure("RESOURCE_NOT_FOUND", `The resource '${path}' was not found`)],
  });
  const template = state.templates.get(vm.template);
  if (!template) return missing(`projects/${project}/global/instanceTemplates/${vm.template}`);
  const properties = structuredClone(template.properties) as Json;
  const image = IMAGE_REF.exec(
    String(((properties.disks as Json[])[0].initializeParams as Json).sourceImage),
  )!;
  const [, owner = project, family, imageName] = image;
  // Images of other projects (public families) are not modelled: taken as existing.
  if (state.checkImages && owner === project) {
    const ready = [...state.compute.images.values()].filter((i) => i.status === "READY");
    if (!ready.some((i) => (family ? i.family === imageName : i.name === imageName)))
      return missing(`projects/${project}/global/images/${family ?? ""}${imageName}`);
  }
  for (const account of list(properties.serviceAccounts))
    if (
      account.email !== "default" &&
      state.serviceAccountExists &&
      !state.serviceAccountExists(String(account.email))
    )
      return {
        errors: [
          failure(
            "RESOURCE_NOT_FOUND",
            `The resource '${account.email}' of type 'serviceAccount' was not found.`,
          ),
        ],
      };
  const nic = list(properties.networkInterfaces)[0];
  const network = parseReference(nic.network, project, "networks");
  let subnet = parseReference(nic.subnetwork, project, "subnetworks");
  if (!subnet && network && state.networks.get(network.name)?.autoCreateSubnetworks)
    subnet = parseReference(`regions/${region}/subnetworks/${network.name}`, project, "subnetworks");
  if (!subnet)
    return {
      errors: [
        failure(
          "INVALID_FIELD_VALUE",
          "Invalid value for field 'resource.networkInterfaces[0]': a custom-mode network's instance needs a subnetwork.",
        ),
      ],
    };
  if (subnet.scope !== `regions/${region}`)
    return {
      errors: [
        failure(
          "INVALID_FIELD_VALUE",
          `Invalid value for field 'resource.networkInterfaces[0].subnetwork': '${subnet.path}'. Subnetwork should belong to the instance region.`,
        ),
      ],
    };
  const found = state.subnetworks.get(`${region}/${subnet.name}`);
  if (!found) return missing(subnet.path);
  const subnetNetwork = parseReference(found.network, project, "networks")!;
  if (network && network.path !== subnetNetwork.path)
    return {
      errors: [
        failure(
          "INVALID_FIELD_VALUE",
          `The subnetwork '${subnet.path}' is not in the network '${network.path}'.`,
        ),
      ],
    };
  // Addresses are handed out in order; the first two and the last two of a range are GCE's own.
  const range = parseCidr(found.ipCidrRange)!;
  const taken = new Set(
    [...state.instances.values()].filter((o) => o.subnetwork === subnet.path).map((o) => o.networkIP),
  );
  let address = range.base + 2;
  while (taken.has(ipText(address)) && address < range.base + cidrSize(range) - 2) address++;
  if (address >= range.base + cidrSize(range) - 2)
    return {
      errors: [failure("IP_SPACE_EXHAUSTED", `The subnetwork '${subnet.path}' has no free address.`)],
    };
  return { properties, subnetwork: subnet.path, network: subnetNetwork.path, networkIP: ipText(address) };
}
