/**
 * Virtual machine scale sets in Flexible orchestration, Compute 2024-07-01, as kubebake's launch uses them:
 * the scale set holds a model and a capacity; its members are plain virtual machines (VirtualMachines_*,
 * `properties.virtualMachineScaleSet.id`), each with a NIC address taken in order from its subnet.
 *
 * Replacing a member with a new model: Flexible has no scale-set-wide Reimage/ReimageAll/UpdateInstances
 * for this (Microsoft's "Orchestration modes API comparison": invoke single-VM operations instead, and
 * VirtualMachines_Reimage only for ephemeral OS disks). So the model kubebake uses is: change the scale
 * set's model (VirtualMachineScaleSets_Update), delete outdated members (VirtualMachines_Delete or the batch
 * VirtualMachineScaleSets_DeleteInstances; each lowers the capacity by one, as Flexible does), then raise the
 * capacity again: new members are built from the latest model. The other operations have no handler here,
 * so a client calling them leaves a violation.
 *
 * The members' NICs (Microsoft.Network 2024-05-01) are served from the same state, read-only: a Flexible
 * member's NICs are made and deleted with it, so NetworkInterfaces_Get and NetworkInterfaces_List answer them
 * as Azure does (`properties.virtualMachine.id`, the address on the primary ipConfiguration).
 */
import { randomBytes } from "node:crypto";
import type { ArmFake, ArmRequest, ArmResponse } from "./arm-fake";
import type { Json, JsonObject } from "./openapi";
import {
  asArray,
  asObject,
  badRequest,
  groupIdOf,
  guidFor,
  Jobs,
  lower,
  mergePatch,
  preconditionFailed,
  resourceNotFound,
  succeedLater,
} from "./model-kit";

const COMPUTE = "compute/resource-manager/Microsoft.Compute/ComputeRP/stable/2024-07-01";
const NETWORK = "network/resource-manager/Microsoft.Network/stable/2024-05-01";
export const VMSS_SPECS = [
  `${COMPUTE}/virtualMachineScaleSet.json`,
  `${COMPUTE}/virtualMachine.json`,
  `${NETWORK}/networkInterface.json`,
];

/** Azure's limit: the decoded custom data is at most 65535 bytes, so at most 87380 base64 characters. */
const MAX_CUSTOM_DATA_CHARS = 87380;

export interface FlexNic {
  id: string;
  primary: boolean;
  subnetId: string;
  privateIp: string;
  publicIp: boolean;
  networkSecurityGroupId?: string;
  applicationSecurityGroupIds: string[];
}

export interface FlexVm {
  id: string;
  name: string;
  computerName: string;
  vmId: string;
  scaleSetId: string;
  location: string;
  vmSize: string;
  imageId: string;
  /** Base64, as sent in the scale set's model: what the machine reads at boot. */
  customData?: string;
  adminUsername: string;
  /** The generation of the scale set's model the VM was built from (1 at creation, +1 per model change). */
  model: number;
  /** That model's virtualMachineProfile: a Flexible member keeps it when the scale set's model changes. */
  profile: JsonObject;
  nics: FlexNic[];
  /** The primary NIC's primary address. */
  privateIp: string;
  identityIds: string[];
  tags: Record<string, string>;
  provisioningState: "Creating" | "Succeeded" | "Deleting";
  powerState: "starting" | "running";
  timeCreated: string;
  /** Creation order: scale-in picks the newest (Default, NewestVM) or the oldest (OldestVM). */
  sequence: number;
}

interface ScaleSet {
  /** The full model as sent (custom data included); GETs answer a copy without the secrets. */
  resource: JsonObject;
  etag: string;
  model: number;
}

export interface VmssOptions {
  /** Whether a managed image id exists (an unknown image refuses the create). Default: every image. */
  imageExists?: (id: string) => boolean;
  /** The address prefix (CIDR) of a subnet id, or undefined when there is no such subnet. Default: 10.0.0.0/24. */
  subnetPrefix?: (subnetId: string) => string | undefined;
  /** Called once per VM when it has booted (its creation ended); settle() waits for it. */
  onBoot?: (vm: FlexVm) => void | Promise<void>;
}

export class VmssState {
  readonly scaleSets = new Map<string, ScaleSet>();
  readonly vms: FlexVm[] = [];
  imageExists: (id: string) => boolean;
  subnetPrefix: (subnetId: string) => string | undefined;
  onBoot?: (vm: FlexVm) => void | Promise<void>;
  readonly jobs = new Jobs();
  private sequence = 0;
  private revision = 0;

  constructor(options: VmssOptions = {}) {
    this.imageExists = options.imageExists ?? (() => true);
    this.subnetPrefix = options.subnetPrefix ?? (() => "10.0.0.0/24");
    this.onBoot = options.onBoot;
  }

  /** Ends every pending creation (VMs boot, onBoot runs) and deletion, and waits for the boot hooks. */
  settle(): Promise<void> {
    return this.jobs.settle();
  }

  /** The members of a scale set, those being deleted included, oldest first. */
  members(scaleSetId: string): FlexVm[] {
    return this.vms.filter((vm) => lower(vm.scaleSetId) === lower(scaleSetId));
  }

  vm(id: string): FlexVm | undefined {
    return this.vms.find((vm) => lower(vm.id) === lower(id));
  }

  /** The scale set's model generation (members built from an older one are outdated). */
  model(scaleSetId: string): number | undefined {
    return this.scaleSets.get(lower(scaleSetId))?.model;
  }

  nextEtag(): string {
    return `"${++this.revision}"`;
  }

  nextSequence(): number {
    return ++this.sequence;
  }
}

export function installVmss(fake: ArmFake, state = new VmssState()): VmssState {
  fake.on("VirtualMachineScaleSets_CreateOrUpdate", (req) =>
    write(fake, state, req, (existing) => {
      if (!existing) return req.body as JsonObject;
      // Capacity and the fault-domain count stay as they are when a replacing PUT leaves them out.
      const body = req.body as JsonObject;
      const sku = { ...asObject(existing.sku), ...asObject(body.sku) };
      return { ...body, sku };
    }),
  );
  fake.on("VirtualMachineScaleSets_Update", (req) =>
    write(fake, state, req, (existing) => existing && mergePatch(existing, req.body as JsonObject)),
  );
  fake.on("VirtualMachineScaleSets_Get", (req) => {
    const set = state.scaleSets.get(lower(req.path));
    if (!set) return resourceNotFound(req, "Microsoft.Compute/virtualMachineScaleSets");
    return { status: 200, body: scaleSetView(set), headers: { ETag: set.etag } };
  });
  fake.on("VirtualMachineScaleSets_List", (req) => ({
    status: 200,
    body: { value: scaleSetsUnder(state, req) },
  }));
  fake.on("VirtualMachineScaleSets_ListAll", (req) => ({
    status: 200,
    body: { value: scaleSetsUnder(state, req) },
  }));
  fake.on("VirtualMachineScaleSets_Delete", (req) => deleteScaleSet(fake, state, req));
  fake.on("VirtualMachineScaleSets_DeleteInstances", (req) => deleteInstances(fake, state, req));
  fake.on("VirtualMachines_Get", (req) => {
    const vm = state.vm(req.path);
    if (!vm) return resourceNotFound(req, "Microsoft.Compute/virtualMachines");
    return { status: 200, body: vmView(vm, /^instanceView$/i.test(req.query.get("$expand") ?? "")) };
  });
  fake.on("VirtualMachines_InstanceView", (req) => {
    const vm = state.vm(req.path.replace(/\/instanceView$/i, ""));
    if (!vm) return resourceNotFound(req, "Microsoft.Compute/virtualMachines");
    return { status: 200, body: instanceView(vm) };
  });
  fake.on("VirtualMachines_List", (req) => listVms(state, req));
  fake.on("VirtualMachines_ListAll", (req) => listVms(state, req));
  fake.on("VirtualMachines_Delete", (req) => deleteVm(fake, state, req));
  fake.on("NetworkInterfaces_Get", (req) => {
    const found = nicsOf(state).find(({ nic }) => lower(nic.id) === lower(req.path));
    if (!found) return resourceNotFound(req, "Microsoft.Network/networkInterfaces");
    return { status: 200, body: nicView(found.vm, found.nic) };
  });
  fake.on("NetworkInterfaces_List", (req) => {
    const scope = lower(req.path.replace(/\/providers\/.*$/i, ""));
    const nics = nicsOf(state).filter(({ nic }) => lower(nic.id).startsWith(`${scope}/`));
    return { status: 200, body: { value: nics.map(({ vm, nic }) => nicView(vm, nic)) } };
  });
  return state;
}

/** Create, replace or patch: `compose` gives the whole new model from the current one (undefined: none). */
function write(
  fake: ArmFake,
  state: VmssState,
  req: ArmRequest,
  compose: (existing: JsonObject | undefined) => JsonObject | undefined,
): ArmResponse {
  const id = lower(req.path);
  const existing = state.scaleSets.get(id);
  const precondition = preconditionFailed(req, existing?.etag);
  if (precondition) return precondition;
  const next = compose(existing?.resource);
  if (!next) return resourceNotFound(req, "Microsoft.Compute/virtualMachineScaleSets");
  const refused = validate(state, next, existing?.resource);
  if (refused) return refused;

  const properties = asObject(next.properties);
  const profileChanged =
    !existing ||
    JSON.stringify(asObject(existing.resource.properties).virtualMachineProfile) !==
      JSON.stringify(properties.virtualMachineProfile);
  const resource: JsonObject = {
    ...next,
    id: existing ? String(existing.resource.id) : req.path,
    name: req.params.vmScaleSetName!,
    type: "Microsoft.Compute/virtualMachineScaleSets",
    properties: {
      ...properties,
      provisioningState: existing ? "Updating" : "Creating",
      uniqueId: existing ? asObject(existing.resource.properties).uniqueId! : guidFor(`${id}:${Date.now()}`),
      timeCreated: existing ? asObject(existing.resource.properties).timeCreated! : new Date().toISOString(),
    },
  };
  const plan = planCapacity(state, resource);
  if ("status" in plan) return plan;

  const set: ScaleSet = {
    resource,
    etag: state.nextEtag(),
    model: !existing ? 1 : existing.model + (profileChanged ? 1 : 0),
  };
  state.scaleSets.set(id, set);
  const created = plan.create.map((nics) => addVm(state, set, nics));
  for (const vm of plan.remove) vm.provisioningState = "Deleting";
  const finish = state.jobs.add(() => {
    asObject(set.resource.properties).provisioningState = "Succeeded";
    for (const vm of created) boot(state, vm);
    for (const vm of plan.remove) removeVm(state, vm);
  });
  const status = req.operation.operationId.endsWith("_Update") || existing ? 200 : 201;
  const headers = { ...succeedLater(fake, req, finish), ETag: set.etag };
  return { status, body: scaleSetView(set), headers };
}

/** What Azure refuses in a Flexible scale set's model, before anything is created. */
function validate(
  state: VmssState,
  next: JsonObject,
  existing: JsonObject | undefined,
): ArmResponse | undefined {
  const properties = asObject(next.properties);
  const before = asObject(existing?.properties);
  const mode = properties.orchestrationMode ?? before.orchestrationMode;
  if (mode !== "Flexible")
    return badRequest("InvalidParameter", "this fake models orchestrationMode Flexible only");
  for (const name of ["orchestrationMode", "platformFaultDomainCount"])
    if (existing && properties[name] !== undefined && properties[name] !== before[name])
      return badRequest("PropertyChangeNotAllowed", `Changing property '${name}' is not allowed.`);
  if (typeof properties.platformFaultDomainCount !== "number")
    return badRequest("InvalidParameter", "Required parameter 'platformFaultDomainCount' is missing (null).");
  if (properties.singlePlacementGroup === true || properties.overprovision === true)
    return badRequest(
      "InvalidParameter",
      "singlePlacementGroup and overprovision are not supported with orchestrationMode Flexible.",
    );
  const upgrade = asObject(properties.upgradePolicy);
  if (upgrade.mode === "Automatic")
    return badRequest("InvalidParameter", "Upgrade policy mode Automatic is not supported for Flexible.");
  const profile = asObject(properties.virtualMachineProfile);
  if (upgrade.mode === "Rolling" && !hasHealthMonitoring(profile))
    return badRequest(
      "InvalidParameter",
      "Rolling Upgrade mode is not supported for this Virtual Machine Scale Set because a health probe or health extension was not provided.",
    );
  const identity = asObject(next.identity);
  if (
    String(identity.type ?? "").includes("UserAssigned") &&
    Object.keys(asObject(identity.userAssignedIdentities)).length === 0
  )
    return badRequest("InvalidParameter", "userAssignedIdentities is required for type UserAssigned.");
  if (!next.properties || !properties.virtualMachineProfile) return undefined;
  if (!asObject(next.sku).name)
    return badRequest("InvalidParameter", "Required parameter 'sku.name' is missing (null).");
  return validateProfile(state, profile);
}

function hasHealthMonitoring(profile: JsonObject): boolean {
  if (asObject(asObject(profile.networkProfile).healthProbe).id) return true;
  return asArray(asObject(profile.extensionProfile).extensions).some((extension) =>
    /^ApplicationHealth/.test(String(asObject(asObject(extension).properties).type)),
  );
}

function validateProfile(state: VmssState, profile: JsonObject): ArmResponse | undefined {
  const imageId = String(asObject(asObject(profile.storageProfile).imageReference).id ?? "");
  if (!imageId || !state.imageExists(imageId))
    return badRequest("InvalidParameter", `The Image '${imageId}' cannot be found.`);
  const os = asObject(profile.osProfile);
  for (const name of ["computerNamePrefix", "adminUsername"])
    if (typeof os[name] !== "string" || os[name] === "")
      return badRequest("InvalidParameter", `Required parameter 'osProfile.${name}' is missing (null).`);
  const linux = asObject(os.linuxConfiguration);
  const keys = asArray(asObject(linux.ssh).publicKeys);
  if (linux.disablePasswordAuthentication === true && keys.length === 0)
    return badRequest(
      "InvalidParameter",
      "Authentication using either SSH or by user name and password must be enabled in Linux profile.",
    );
  if (linux.disablePasswordAuthentication !== true && !os.adminPassword && keys.length === 0)
    return badRequest("InvalidParameter", "Required parameter 'adminPassword' is missing (null).");
  const customData = os.customData;
  if (
    customData !== undefined &&
    (typeof customData !== "string" ||
      customData.length > MAX_CUSTOM_DATA_CHARS ||
      customData.length % 4 !== 0 ||
      !/^[A-Za-z0-9+/]*={0,2}$/.test(customData))
  )
    return badRequest(
      "InvalidParameter",
      `Custom data in OSProfile must be in Base64 encoding and with a maximum length of ${MAX_CUSTOM_DATA_CHARS} characters.`,
    );
  const network = asObject(profile.networkProfile);
  if (network.networkApiVersion === undefined)
    return badRequest(
      "InvalidParameter",
      "networkProfile.networkApiVersion is required for a scale set with orchestrationMode Flexible.",
    );
  const nics = asArray(network.networkInterfaceConfigurations).map(asObject);
  if (nics.length === 0)
    return badRequest("InvalidParameter", "At least one network interface configuration is required.");
  if (nics.length > 1 && nics.filter((n) => asObject(n.properties).primary === true).length !== 1)
    return badRequest("InvalidParameter", "Exactly one network interface configuration must be primary.");
  for (const nic of nics)
    for (const ipConfiguration of asArray(asObject(nic.properties).ipConfigurations)) {
      const subnetId = String(asObject(asObject(asObject(ipConfiguration).properties).subnet).id ?? "");
      if (!subnetId || !state.subnetPrefix(subnetId))
        return badRequest(
          "InvalidResourceReference",
          `Resource ${subnetId} referenced by resource ${String(nic.name)} was not found.`,
        );
    }
  return undefined;
}

interface CapacityPlan {
  /** Per VM to create, its NICs' subnets and addresses (taken before anything is committed). */
  create: Omit<FlexNic, "id">[][];
  remove: FlexVm[];
}

/** Brings the member count to the capacity: new members get the next free addresses of their subnets. */
function planCapacity(state: VmssState, resource: JsonObject): CapacityPlan | ArmResponse {
  const live = state.members(String(resource.id)).filter((vm) => vm.provisioningState !== "Deleting");
  const capacity = Number(asObject(resource.sku).capacity ?? live.length);
  if (capacity < live.length) {
    const rules = asArray(asObject(asObject(resource.properties).scaleInPolicy).rules);
    const ordered = [...live].sort((a, b) =>
      rules[0] === "OldestVM" ? a.sequence - b.sequence : b.sequence - a.sequence,
    );
    return { create: [], remove: ordered.slice(0, live.length - capacity) };
  }
  const taken = new Set(
    state.vms.flatMap((vm) => vm.nics.map((nic) => `${lower(nic.subnetId)} ${nic.privateIp}`)),
  );
  const profile = asObject(asObject(resource.properties).virtualMachineProfile);
  const configurations = asArray(asObject(profile.networkProfile).networkInterfaceConfigurations).map(
    asObject,
  );
  const create: Omit<FlexNic, "id">[][] = [];
  for (let i = live.length; i < capacity; i++) {
    const nics: Omit<FlexNic, "id">[] = [];
    for (const configuration of configurations) {
      const properties = asObject(configuration.properties);
      const ip = asObject(asObject(asArray(properties.ipConfigurations)[0]).properties);
      const subnetId = String(asObject(ip.subnet).id);
      const address = freeAddress(state.subnetPrefix(subnetId)!, (a) => taken.has(`${lower(subnetId)} ${a}`));
      if (!address) return badRequest("SubnetIsFull", `Subnet ${subnetId} has no free address for a new VM.`);
      taken.add(`${lower(subnetId)} ${address}`);
      nics.push({
        primary: properties.primary === true || configurations.length === 1,
        subnetId,
        privateIp: address,
        publicIp: ip.publicIPAddressConfiguration !== undefined,
        networkSecurityGroupId: asObject(properties.networkSecurityGroup).id as string | undefined,
        applicationSecurityGroupIds: asArray(ip.applicationSecurityGroups).map((g) => String(asObject(g).id)),
      });
    }
    create.push(nics);
  }
  return { create, remove: [] };
}

/** The lowest free address of a subnet: Azure keeps the first four and the last one for itself. */
export function freeAddress(cidr: string, taken: (address: string) => boolean): string | undefined {
  const [base, bits] = cidr.split("/") as [string, string];
  const start = base.split(".").reduce((n, octet) => n * 256 + Number(octet), 0);
  const size = 2 ** (32 - Number(bits));
  for (let offset = 4; offset < size - 1; offset++) {
    const n = start + offset;
    const address = [24, 16, 8, 0].map((shift) => Math.floor(n / 2 ** shift) % 256).join(".");
    if (!taken(address)) return address;
  }
  return undefined;
}

function addVm(state: VmssState, set: ScaleSet, nics: Omit<FlexNic, "id">[]): FlexVm {
  const { resource } = set;
  const properties = asObject(resource.properties);
  const profile = asObject(properties.virtualMachineProfile);
  const os = asObject(profile.osProfile);
  const name = `${String(resource.name)}_${randomBytes(4).toString("hex")}`;
  const group = groupIdOf(String(resource.id));
  const configurations = asArray(asObject(profile.networkProfile).networkInterfaceConfigurations).map(
    asObject,
  );
  const vm: FlexVm = {
    id: `${group}/providers/Microsoft.Compute/virtualMachines/${name}`,
    name,
    computerName: `${String(os.computerNamePrefix)}${randomBytes(4).readUInt32BE().toString(36).slice(0, 6).padStart(6, "0")}`,
    vmId: guidFor(`${name}:vmId`),
    scaleSetId: String(resource.id),
    location: String(resource.location),
    vmSize: String(asObject(resource.sku).name),
    imageId: String(asObject(asObject(profile.storageProfile).imageReference).id),
    customData: os.customData as string | undefined,
    adminUsername: String(os.adminUsername),
    model: set.model,
    profile: structuredClone(profile),
    nics: nics.map((nic, i) => ({
      ...nic,
      id: `${group}/providers/Microsoft.Network/networkInterfaces/${name}-${String(configurations[i]!.name)}`,
    })),
    privateIp: (nics.find((nic) => nic.primary) ?? nics[0]!).privateIp,
    identityIds: Object.keys(asObject(asObject(resource.identity).userAssignedIdentities)),
    tags: asObject(resource.tags) as Record<string, string>,
    provisioningState: "Creating",
    powerState: "starting",
    timeCreated: new Date().toISOString(),
    sequence: state.nextSequence(),
  };
  state.vms.push(vm);
  return vm;
}

function boot(state: VmssState, vm: FlexVm): void {
  if (vm.provisioningState !== "Creating" || !state.vms.includes(vm)) return;
  vm.provisioningState = "Succeeded";
  vm.powerState = "running";
  const hook = state.onBoot;
  if (hook) state.jobs.track(() => hook(vm));
}

function removeVm(state: VmssState, vm: FlexVm): void {
  const index = state.vms.indexOf(vm);
  if (index >= 0) state.vms.splice(index, 1);
}

/** A member deleted on its own leaves the scale set one smaller, as Flexible does. */
function shrink(state: VmssState, vm: FlexVm): void {
  const set = state.scaleSets.get(lower(vm.scaleSetId));
  if (!set) return;
  const sku = asObject(set.resource.sku);
  set.resource.sku = { ...sku, capacity: Math.max(0, Number(sku.capacity ?? 1) - 1) };
  set.etag = state.nextEtag();
}

function deleteVm(fake: ArmFake, state: VmssState, req: ArmRequest): ArmResponse {
  const vm = state.vm(req.path);
  if (!vm) return { status: 204 };
  if (vm.provisioningState !== "Deleting") {
    vm.provisioningState = "Deleting";
    shrink(state, vm);
  }
  return {
    status: 202,
    headers: succeedLater(
      fake,
      req,
      state.jobs.add(() => removeVm(state, vm)),
    ),
  };
}

function deleteInstances(fake: ArmFake, state: VmssState, req: ArmRequest): ArmResponse {
  const setId = req.path.replace(/\/delete$/i, "");
  if (!state.scaleSets.has(lower(setId)))
    return resourceNotFound(req, "Microsoft.Compute/virtualMachineScaleSets");
  const names = asArray(asObject(req.body).instanceIds).map(String);
  const members = state.members(setId);
  const chosen = names.map((name) => members.find((vm) => lower(vm.name) === lower(name)));
  const unknown = names.filter((_, i) => !chosen[i]);
  if (unknown.length > 0)
    return badRequest(
      "InvalidParameter",
      `Instance ids ${unknown.join(", ")} are not members of the scale set.`,
    );
  const deleting = chosen.filter((vm): vm is FlexVm => vm!.provisioningState !== "Deleting");
  for (const vm of deleting) {
    vm.provisioningState = "Deleting";
    shrink(state, vm);
  }
  const finish = state.jobs.add(() => deleting.forEach((vm) => removeVm(state, vm)));
  return { status: 202, headers: succeedLater(fake, req, finish) };
}

function deleteScaleSet(fake: ArmFake, state: VmssState, req: ArmRequest): ArmResponse {
  const set = state.scaleSets.get(lower(req.path));
  if (!set) return { status: 204 };
  asObject(set.resource.properties).provisioningState = "Deleting";
  const members = state.members(req.path);
  for (const vm of members) vm.provisioningState = "Deleting";
  const finish = state.jobs.add(() => {
    for (const vm of members) removeVm(state, vm);
    if (state.scaleSets.get(lower(req.path)) === set) state.scaleSets.delete(lower(req.path));
  });
  return { status: 202, headers: succeedLater(fake, req, finish) };
}

/** What a GET shows: never the custom data or a password (Azure does not return them). */
function scaleSetView(set: ScaleSet): JsonObject {
  const view = structuredClone(set.resource);
  const os = asObject(asObject(asObject(view.properties).virtualMachineProfile).osProfile);
  delete os.customData;
  delete os.adminPassword;
  view.etag = set.etag;
  const identity = asObject(view.identity);
  if (identity.userAssignedIdentities) identity.userAssignedIdentities = identityValues(set.resource);
  return view;
}

function identityValues(resource: JsonObject): JsonObject {
  const ids = Object.keys(asObject(asObject(resource.identity).userAssignedIdentities));
  return Object.fromEntries(
    ids.map((id) => [
      id,
      { principalId: guidFor(`${lower(id)}:principal`), clientId: guidFor(`${lower(id)}:client`) },
    ]),
  );
}

function scaleSetsUnder(state: VmssState, req: ArmRequest): Json[] {
  const scope = lower(req.path.replace(/\/providers\/.*$/i, ""));
  return [...state.scaleSets.values()]
    .filter((set) => lower(String(set.resource.id)).startsWith(`${scope}/`))
    .map(scaleSetView);
}

function vmView(vm: FlexVm, withInstanceView: boolean): JsonObject {
  const osDisk = `${vm.name}_OsDisk_1_${vm.vmId.replace(/-/g, "")}`;
  const group = groupIdOf(vm.id);
  const linux = asObject(vm.profile.osProfile).linuxConfiguration;
  const security = vm.profile.securityProfile;
  return {
    id: vm.id,
    name: vm.name,
    type: "Microsoft.Compute/virtualMachines",
    location: vm.location,
    tags: vm.tags,
    ...(vm.identityIds.length
      ? {
          identity: {
            type: "UserAssigned",
            userAssignedIdentities: Object.fromEntries(
              vm.identityIds.map((id) => [
                id,
                { principalId: guidFor(`${lower(id)}:principal`), clientId: guidFor(`${lower(id)}:client`) },
              ]),
            ),
          },
        }
      : {}),
    properties: {
      vmId: vm.vmId,
      timeCreated: vm.timeCreated,
      provisioningState: vm.provisioningState,
      hardwareProfile: { vmSize: vm.vmSize },
      virtualMachineScaleSet: { id: vm.scaleSetId },
      storageProfile: {
        imageReference: { id: vm.imageId },
        osDisk: {
          osType: "Linux",
          name: osDisk,
          createOption: "FromImage",
          caching: "ReadWrite",
          deleteOption: "Delete",
          managedDisk: { id: `${group}/providers/Microsoft.Compute/disks/${osDisk}` },
        },
        dataDisks: [],
      },
      osProfile: {
        computerName: vm.computerName,
        adminUsername: vm.adminUsername,
        ...(linux ? { linuxConfiguration: linux } : {}),
        secrets: [],
        allowExtensionOperations: true,
        requireGuestProvisionSignal: true,
      },
      networkProfile: {
        networkInterfaces: vm.nics.map((nic) => ({
          id: nic.id,
          properties: { primary: nic.primary, deleteOption: "Delete" },
        })),
      },
      ...(security ? { securityProfile: security } : {}),
      ...(withInstanceView ? { instanceView: instanceView(vm) } : {}),
    },
  };
}

function instanceView(vm: FlexVm): JsonObject {
  const provisioning = vm.provisioningState.toLowerCase();
  return {
    computerName: vm.computerName,
    osName: "linux",
    statuses: [
      {
        code: `ProvisioningState/${provisioning}`,
        level: "Info",
        displayStatus: `Provisioning ${provisioning}`,
      },
      { code: `PowerState/${vm.powerState}`, level: "Info", displayStatus: `VM ${vm.powerState}` },
    ],
  };
}

/** VirtualMachines_List/ListAll, with the one $filter Azure allows: the members of a scale set. */
function listVms(state: VmssState, req: ArmRequest): ArmResponse {
  const filter = req.query.get("$filter");
  const expand = req.query.get("$expand");
  let setId: string | undefined;
  if (filter !== null) {
    setId = /^\s*'?virtualMachineScaleSet\/id'?\s+eq\s+'?([^']+?)'?\s*$/i.exec(filter)?.[1];
    if (!setId) return badRequest("InvalidParameter", `The $filter '${filter}' is not supported.`);
  }
  if (expand !== null && !setId)
    return badRequest("InvalidParameter", "$expand=instanceView can only be specified with a valid $filter.");
  const scope = lower(req.path.replace(/\/providers\/.*$/i, ""));
  const vms = state.vms.filter(
    (vm) => lower(vm.id).startsWith(`${scope}/`) && (!setId || lower(vm.scaleSetId) === lower(setId)),
  );
  return { status: 200, body: { value: vms.map((vm) => vmView(vm, expand !== null)) } };
}

function nicsOf(state: VmssState): { vm: FlexVm; nic: FlexNic }[] {
  return state.vms.flatMap((vm) => vm.nics.map((nic) => ({ vm, nic })));
}

/** A member's NIC as Microsoft.Network answers it: one IPv4 ipConfiguration, named as in the model. */
function nicView(vm: FlexVm, nic: FlexNic): JsonObject {
  const index = vm.nics.indexOf(nic);
  const configuration = asObject(
    asArray(asObject(vm.profile.networkProfile).networkInterfaceConfigurations)[index],
  );
  const ipName = String(
    asObject(asArray(asObject(configuration.properties).ipConfigurations)[0]).name ?? "ipconfig1",
  );
  const etag = `W/"${guidFor(`${lower(nic.id)}:etag`)}"`;
  const name = nic.id.split("/").pop()!;
  const mac = guidFor(`${lower(nic.id)}:mac`)
    .replace(/-/g, "")
    .slice(0, 12)
    .toUpperCase();
  return {
    id: nic.id,
    name,
    type: "Microsoft.Network/networkInterfaces",
    location: vm.location,
    ...(Object.keys(vm.tags).length ? { tags: vm.tags } : {}),
    etag,
    properties: {
      provisioningState: "Succeeded",
      resourceGuid: guidFor(`${lower(nic.id)}:guid`),
      ipConfigurations: [
        {
          id: `${nic.id}/ipConfigurations/${ipName}`,
          name: ipName,
          etag,
          type: "Microsoft.Network/networkInterfaces/ipConfigurations",
          properties: {
            provisioningState: "Succeeded",
            privateIPAddress: nic.privateIp,
            privateIPAllocationMethod: "Dynamic",
            privateIPAddressVersion: "IPv4",
            subnet: { id: nic.subnetId },
            primary: true,
            ...(nic.publicIp
              ? {
                  publicIPAddress: {
                    id: `${groupIdOf(nic.id)}/providers/Microsoft.Network/publicIPAddresses/${name}-${ipName}`,
                  },
                }
              : {}),
            ...(nic.applicationSecurityGroupIds.length
              ? { applicationSecurityGroups: nic.applicationSecurityGroupIds.map((id) => ({ id })) }
              : {}),
          },
        },
      ],
      dnsSettings: { dnsServers: [], appliedDnsServers: [] },
      macAddress: mac.replace(/(..)(?!$)/g, "$1-"),
      enableAcceleratedNetworking: false,
      enableIPForwarding: false,
      ...(nic.networkSecurityGroupId ? { networkSecurityGroup: { id: nic.networkSecurityGroupId } } : {}),
      primary: nic.primary,
      virtualMachine: { id: vm.id },
      vnetEncryptionSupported: false,
      nicType: "Standard",
    },
  };
}
