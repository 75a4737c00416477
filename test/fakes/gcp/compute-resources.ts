import {
  answerOperation,
  ComputeState,
  findOperation,
  installCompute,
  type OperationFailure,
} from "./compute";
import {
  aggregatedAnswer,
  alreadyExists,
  badName,
  existingNetwork,
  failure,
  globalPath,
  gone,
  invalid,
  ipText,
  listAnswer,
  newFingerprint,
  notFound,
  now,
  overlaps,
  parseCidr,
  parseReference,
  regionalPath,
  sameField,
  staleFingerprint,
  urlOf,
  type Cidr,
  type Json,
} from "./compute-common";
import { installGroups } from "./compute-groups-api";
import { settleGroup, type GroupRecord, type ManagedVm, type Replacement } from "./compute-groups";
import { installFirewalls } from "./compute-firewalls";
import { installTemplates } from "./compute-templates";
import { googleError, type FakeRequest, type FakeResponse, type GoogleApiFake } from "./fake";

/**
 * The Compute Engine resources a cluster launch makes (networks, subnetworks, firewalls, instance templates,
 * regional managed instance groups and their instances), modelled statefully and strictly after GCE: names
 * must be RFC 1035, a duplicate insert is 409, an unknown resource 404 with Google's message. Every write
 * answers an operation (global or regional, as on GCE) and takes effect only when the operation reaches DONE;
 * a failure then ends the operation DONE with `error.errors[]`. References to other resources are taken in
 * every form GCE takes (full URL with any host, `projects/P/…`, `global/…`) and compared canonically.
 * One project is modelled: resources are keyed by name (regional ones by `region/name`).
 */
export interface ComputeResourcesOptions {
  /** Images (and the operations machinery). When given, templates' boot images must exist there. */
  compute?: ComputeState;
  /** Whether a service account exists (the IAM fake's answer); unset: every account exists. */
  serviceAccountExists?: (email: string) => boolean;
  /** Settle a group on every get/listManagedInstances of it, so a caller's waits end (default true). */
  autoSettle?: boolean;
}

export class ComputeResourcesState {
  readonly compute: ComputeState;
  /** Networks by name. */
  readonly networks = new Map<string, Json>();
  /** Subnetworks by `region/name`. */
  readonly subnetworks = new Map<string, Json>();
  readonly firewalls = new Map<string, Json>();
  /** Instance templates by name (immutable, as on GCE). */
  readonly templates = new Map<string, Json>();
  /** Regional managed instance groups by `region/name`. */
  readonly groups = new Map<string, GroupRecord>();
  /** Managed instances by name; `id` is set once the VM exists (instances.get answers only those). */
  readonly instances = new Map<string, ManagedVm>();
  /** Instances a PROACTIVE update or recreateInstances replaced, in order. */
  readonly replaced: Replacement[] = [];
  /** Others using a network (Cloud DNS managed zones…): the using resources' paths block its deletion. */
  readonly networkUsers: ((network: string, project: string) => string[])[] = [];
  /** Subnetworks an auto-mode network made (by key): they go with it and cannot be deleted alone. */
  readonly autoSubnetworks = new Set<string>();
  /** Canonical paths whose insert is not DONE yet: taken, as GCE answers 409 for them. */
  readonly pending = new Set<string>();
  readonly checkImages: boolean;
  serviceAccountExists?: (email: string) => boolean;
  autoSettle: boolean;
  /** Runs when a group's VM starts running: a test's stand-in for what the guest does (guest attributes). */
  onBoot?: (vm: ManagedVm) => void;
  private readonly failures = new Map<string, OperationFailure[]>();
  private sequence = 0;

  constructor(options: ComputeResourcesOptions = {}) {
    this.compute = options.compute ?? new ComputeState();
    this.checkImages = options.compute !== undefined;
    this.serviceAccountExists = options.serviceAccountExists;
    this.autoSettle = options.autoSettle ?? true;
  }

  /** The next operation `methodId` starts ends DONE in this error, changing nothing. */
  failNextOperation(methodId: string, failure: OperationFailure): void {
    if (!this.failures.has(methodId)) this.failures.set(methodId, []);
    this.failures.get(methodId)!.push(failure);
  }

  /** Lets every group finish what it is doing: instances created, deleted, replaced, until stable. */
  settle(): void {
    for (const group of this.groups.values()) settleGroup(this, group);
  }

  /** `kind/name` of every resource whose name starts with `prefix` (what a teardown left behind). */
  remaining(prefix: string): string[] {
    const names = (kind: string, keys: Iterable<string>) =>
      [...keys].map((key) => key.split("/").pop()!).map((name) => `${kind}/${name}`);
    return [
      ...names("networks", this.networks.keys()),
      ...names("subnetworks", this.subnetworks.keys()),
      ...names("firewalls", this.firewalls.keys()),
      ...names("instanceTemplates", this.templates.keys()),
      ...names("instanceGroupManagers", this.groups.keys()),
      ...names("instances", this.instances.keys()),
    ]
      .filter((entry) => entry.split("/")[1].startsWith(prefix))
      .sort();
  }

  /** A monotonically increasing number, to order instances by age. */
  next(): number {
    return ++this.sequence;
  }

  /**
   * Answers an operation for a write whose `work` runs when it reaches DONE (an injected failure instead).
   * `reserve`: a path taken until then, so a second insert of the name is a 409 as on GCE.
   */
  operate(
    request: FakeRequest,
    type: string,
    target: Json,
    work: () => OperationFailure | void,
    options: { regional?: boolean; reserve?: string } = {},
  ): FakeResponse {
    const injected = this.failures.get(request.methodId)?.shift();
    if (options.reserve) this.pending.add(options.reserve);
    const operation = this.compute.startOperation(
      request,
      type,
      String(target.selfLink),
      () => {
        if (options.reserve) this.pending.delete(options.reserve);
        return injected ?? work() ?? undefined;
      },
      options.regional ? request.params.region : undefined,
    );
    operation.targetId = String(target.id);
    return { json: operation };
  }
}

export function installComputeResources(
  fake: GoogleApiFake,
  state = new ComputeResourcesState(),
): ComputeResourcesState {
  // Images and operations come from compute.ts; if it is installed with another state, its operations
  // are still answered (ours first, then the earlier handler's).
  if (!fake.handler("compute.images.get")) installCompute(fake, state.compute);
  for (const id of ["global", "region"].flatMap((s) => [`${s}Operations.get`, `${s}Operations.wait`])) {
    const previous = fake.handler(`compute.${id}`);
    fake.on(`compute.${id}`, (request) =>
      findOperation(state.compute, request) || !previous
        ? answerOperation(state.compute, request, id.endsWith("wait"))
        : previous(request),
    );
  }
  installNetworks(fake, state);
  installSubnetworks(fake, state);
  installFirewalls(fake, state);
  installTemplates(fake, state);
  installGroups(fake, state);
  return state;
}

// ---- networks ----

/** Auto-mode networks' subnetwork ranges (https://cloud.google.com/vpc/docs/subnets#ip-ranges), a few. */
const AUTO_RANGES: Record<string, string> = {
  "us-central1": "10.128.0.0/20",
  "europe-west1": "10.132.0.0/20",
  "us-west1": "10.138.0.0/20",
  "asia-east1": "10.140.0.0/20",
  "us-east1": "10.142.0.0/20",
  "asia-northeast1": "10.146.0.0/20",
  "asia-southeast1": "10.148.0.0/20",
  "us-east4": "10.150.0.0/20",
  "europe-west2": "10.154.0.0/20",
  "europe-west3": "10.156.0.0/20",
  "europe-west4": "10.164.0.0/20",
};
const AUTO_BLOCK = parseCidr("10.128.0.0/9")!;

/** What uses a network: its own subnetworks, firewalls, instances, and the `networkUsers` hooks. */
function networkUsers(state: ComputeResourcesState, project: string, name: string): string[] {
  const onNetwork = (json: Json) =>
    parseReference(json.network, project, "networks")?.path === `projects/${project}/global/networks/${name}`;
  return [
    ...[...state.subnetworks.entries()]
      .filter(([key, subnet]) => !state.autoSubnetworks.has(key) && onNetwork(subnet))
      .map(([key]) => `projects/${project}/regions/${key.replace("/", "/subnetworks/")}`),
    ...[...state.firewalls.values()]
      .filter(onNetwork)
      .map((fw) => `projects/${project}/global/firewalls/${fw.name}`),
    ...[...state.instances.values()]
      .filter((vm) => vm.id && vm.network === `projects/${project}/global/networks/${name}`)
      .map((vm) => `projects/${project}/zones/${vm.zone}/instances/${vm.name}`),
    ...state.networkUsers.flatMap((users) => users(name, project)),
  ];
}

function installNetworks(fake: GoogleApiFake, state: ComputeResourcesState): void {
  const view = (network: Json): Json => ({
    ...network,
    subnetworks: [...state.subnetworks.values()]
      .filter((s) => parseReference(s.network, "", "networks")?.name === network.name)
      .map((s) => String(s.selfLink)),
  });
  fake.on("compute.networks.get", (request) => {
    const found = state.networks.get(request.params.network!);
    return found ? { json: view(found) } : notFound(globalPath(request, "networks", request.params.network!));
  });
  fake.on("compute.networks.list", (request) =>
    listAnswer(
      request,
      "compute#networkList",
      `projects/${request.params.project}/global/networks`,
      [...state.networks.values()].map(view),
    ),
  );
  fake.on("compute.networks.insert", (request) => {
    const body = (request.json ?? {}) as Json;
    const refused = badName("resource.name", body.name);
    if (refused) return refused;
    const path = globalPath(request, "networks", String(body.name));
    if (state.networks.has(String(body.name)) || state.pending.has(path)) return alreadyExists(path);
    // Unset makes a legacy network on GCE, which this fake does not model: a launch must say which mode.
    if (typeof body.autoCreateSubnetworks !== "boolean")
      return invalid(
        "resource.autoCreateSubnetworks",
        "",
        "Must be set to create a VPC network (unset makes a legacy network, not modelled).",
      );
    const mtu = body.mtu === undefined ? 1460 : Number(body.mtu);
    if (mtu < 1300 || mtu > 8896) return invalid("resource.mtu", body.mtu, "Must be between 1300 and 8896.");
    const id = state.compute.nextId();
    const network: Json = {
      ...body,
      kind: "compute#network",
      id,
      creationTimestamp: now(),
      selfLink: urlOf(request, path),
      selfLinkWithId: urlOf(request, globalPath(request, "networks", id)),
      routingConfig: { routingMode: "REGIONAL", ...(body.routingConfig as Json | undefined) },
      mtu,
      networkFirewallPolicyEnforcementOrder: "AFTER_CLASSIC_FIREWALL",
    };
    return state.operate(
      request,
      "insert",
      network,
      () => {
        state.networks.set(String(body.name), network);
        if (body.autoCreateSubnetworks)
          for (const [region, range] of Object.entries(AUTO_RANGES)) {
            const key = `${region}/${body.name}`;
            state.autoSubnetworks.add(key);
            state.subnetworks.set(
              key,
              subnetworkJson(
                request,
                state.compute.nextId(),
                region,
                { name: body.name, ipCidrRange: range },
                network.selfLink,
              ),
            );
          }
      },
      { reserve: path },
    );
  });
  fake.on("compute.networks.delete", (request) => {
    const name = request.params.network!;
    const path = globalPath(request, "networks", name);
    const found = state.networks.get(name);
    if (!found) return notFound(path);
    // GCE checks the users when the operation runs: "Error waiting for Deleting Network: … already being used".
    return state.operate(request, "delete", found, () => {
      if (!state.networks.has(name)) return gone(path);
      const user = networkUsers(state, request.params.project!, name)[0];
      if (user)
        return failure(
          "RESOURCE_IN_USE_BY_ANOTHER_RESOURCE",
          `The network resource '${path}' is already being used by '${user}'`,
        );
      for (const key of [...state.autoSubnetworks].filter((k) => k.endsWith(`/${name}`))) {
        state.autoSubnetworks.delete(key);
        state.subnetworks.delete(key);
      }
      state.networks.delete(name);
    });
  });
}

// ---- subnetworks ----

function subnetworkJson(
  request: FakeRequest,
  id: string,
  region: string,
  body: Json,
  network: unknown,
): Json {
  const range = parseCidr(body.ipCidrRange)!;
  const project = request.params.project!;
  return {
    ...body,
    kind: "compute#subnetwork",
    id,
    creationTimestamp: now(),
    selfLink: urlOf(request, `projects/${project}/regions/${region}/subnetworks/${body.name}`),
    region: urlOf(request, `projects/${project}/regions/${region}`),
    network: urlOf(request, parseReference(network, project, "networks")!.path),
    gatewayAddress: ipText(range.base + 1),
    fingerprint: newFingerprint(),
    privateIpGoogleAccess: body.privateIpGoogleAccess ?? false,
    stackType: body.stackType ?? "IPV4_ONLY",
    purpose: body.purpose ?? "PRIVATE",
  };
}

/** Ranges GCE refuses for subnets (this network, loopback, link-local, multicast and above). */
const RESERVED = ["0.0.0.0/8", "127.0.0.0/8", "169.254.0.0/16", "224.0.0.0/3"].map((r) => parseCidr(r)!);

/** Why a subnet range cannot be used in the network (a 400's answer), or undefined. */
function rangeProblem(
  state: ComputeResourcesState,
  network: string,
  key: string,
  text: unknown,
  field = "resource.ipCidrRange",
): FakeResponse | undefined {
  const range = parseCidr(text);
  if (!range || !range.exact || range.prefix < 8 || range.prefix > 29)
    return invalid(field, text ?? "", "Invalid IPCidrRange (an IPv4 network address, /8 to /29).");
  if (RESERVED.some((r) => overlaps(r, range)))
    return invalid(field, text, "The range is reserved and cannot be used for a subnetwork.");
  const clash = rangeClash(state, network, key, range);
  return clash ? invalid(field, text, clash) : undefined;
}

function rangeClash(state: ComputeResourcesState, network: string, key: string, range: Cidr) {
  if (state.networks.get(network)?.autoCreateSubnetworks && overlaps(AUTO_BLOCK, range))
    return `Invalid IPCidrRange: it overlaps 10.128.0.0/9, reserved for the auto-mode network ${network}.`;
  for (const [other, subnet] of state.subnetworks) {
    if (other === key || parseReference(subnet.network, "", "networks")?.name !== network) continue;
    if (overlaps(parseCidr(subnet.ipCidrRange)!, range))
      return `Invalid IPCidrRange: ${subnet.ipCidrRange} conflicts with existing subnetwork '${subnet.name}' in region '${other.split("/")[0]}'.`;
  }
  return undefined;
}

/** Fields a subnetwork patch may change (the others are set at creation only) and output-only ones. */
const SUBNET_PATCHABLE = new Set([
  "ipCidrRange",
  "privateIpGoogleAccess",
  "logConfig",
  "enableFlowLogs",
  "secondaryIpRanges",
  "stackType",
  "privateIpv6GoogleAccess",
]);
const OUTPUT_ONLY = new Set(["kind", "id", "creationTimestamp", "selfLink", "gatewayAddress", "fingerprint"]);

function installSubnetworks(fake: GoogleApiFake, state: ComputeResourcesState): void {
  const keyOf = (request: FakeRequest) => `${request.params.region}/${request.params.subnetwork}`;
  const pathOf = (request: FakeRequest) => regionalPath(request, "subnetworks", request.params.subnetwork!);
  const inUseBy = (project: string, key: string) =>
    [...state.instances.values()].find(
      (vm) => vm.id && vm.subnetwork === `projects/${project}/regions/${key.replace("/", "/subnetworks/")}`,
    );
  fake.on("compute.subnetworks.get", (request) => {
    const found = state.subnetworks.get(keyOf(request));
    return found ? { json: found } : notFound(pathOf(request));
  });
  fake.on("compute.subnetworks.list", (request) =>
    listAnswer(
      request,
      "compute#subnetworkList",
      `projects/${request.params.project}/regions/${request.params.region}/subnetworks`,
      [...state.subnetworks.entries()]
        .filter(([key]) => key.startsWith(`${request.params.region}/`))
        .map(([, subnet]) => subnet),
    ),
  );
  fake.on("compute.subnetworks.aggregatedList", (request) =>
    aggregatedAnswer(
      request,
      "compute#subnetworkAggregatedList",
      "subnetworks",
      `projects/${request.params.project}/aggregated/subnetworks`,
      [...state.subnetworks.entries()].map(([key, item]) => ({
        scope: `regions/${key.split("/")[0]}`,
        item,
      })),
    ),
  );
  fake.on("compute.subnetworks.insert", (request) => {
    const body = (request.json ?? {}) as Json;
    const refused = badName("resource.name", body.name);
    if (refused) return refused;
    const region = request.params.region!;
    const key = `${region}/${body.name}`;
    const path = regionalPath(request, "subnetworks", String(body.name));
    if (state.subnetworks.has(key) || state.pending.has(path)) return alreadyExists(path);
    if (body.region !== undefined && !new RegExp(`(^|/)(regions/)?${region}$`).test(String(body.region)))
      return invalid("resource.region", body.region, `The subnetwork is inserted in region ${region}.`);
    if (body.network === undefined)
      return googleError(400, "Required field 'resource.network' not specified", "required");
    const network = existingNetwork(state, request, "resource.network", body.network);
    if (typeof network !== "string") return network;
    const problem = rangeProblem(state, network, key, body.ipCidrRange);
    if (problem) return problem;
    const subnet = subnetworkJson(request, state.compute.nextId(), region, body, body.network);
    return state.operate(
      request,
      "insert",
      subnet,
      () => {
        if (!state.networks.has(network)) return gone(globalPath(request, "networks", network));
        const clash = rangeClash(state, network, key, parseCidr(subnet.ipCidrRange)!);
        if (clash) return failure("INVALID_USAGE", clash);
        state.subnetworks.set(key, subnet);
      },
      { regional: true, reserve: path },
    );
  });
  fake.on("compute.subnetworks.delete", (request) => {
    const key = keyOf(request);
    const found = state.subnetworks.get(key);
    if (!found) return notFound(pathOf(request));
    if (state.autoSubnetworks.has(key))
      return invalid("subnetwork", pathOf(request), "An auto-mode network's subnetwork cannot be deleted.");
    // GCE refuses at once (400) while an instance uses the subnetwork, and again if one came meanwhile.
    const refusal = (vm: ManagedVm) =>
      `The subnetwork resource '${pathOf(request)}' is already being used by 'projects/${request.params.project}/zones/${vm.zone}/instances/${vm.name}'`;
    const user = inUseBy(request.params.project!, key);
    if (user) return googleError(400, refusal(user), "resourceInUseByAnotherResource");
    return state.operate(
      request,
      "delete",
      found,
      () => {
        const vm = inUseBy(request.params.project!, key);
        if (vm) return failure("RESOURCE_IN_USE_BY_ANOTHER_RESOURCE", refusal(vm));
        if (!state.subnetworks.delete(key)) return gone(pathOf(request));
      },
      { regional: true },
    );
  });
  fake.on("compute.subnetworks.setPrivateIpGoogleAccess", (request) => {
    const found = state.subnetworks.get(keyOf(request));
    if (!found) return notFound(pathOf(request));
    const value = Boolean((request.json as Json | undefined)?.privateIpGoogleAccess);
    return state.operate(
      request,
      "setPrivateIpGoogleAccess",
      found,
      () => {
        found.privateIpGoogleAccess = value;
        found.fingerprint = newFingerprint();
      },
      { regional: true },
    );
  });
  fake.on("compute.subnetworks.patch", (request) => {
    const key = keyOf(request);
    const found = state.subnetworks.get(key);
    if (!found) return notFound(pathOf(request));
    const body = (request.json ?? {}) as Json;
    if (body.fingerprint !== found.fingerprint) return staleFingerprint();
    const network = parseReference(found.network, "", "networks")!.name;
    for (const [field, value] of Object.entries(body)) {
      if (OUTPUT_ONLY.has(field) || value === undefined) continue;
      if (field === "ipCidrRange" && value !== found.ipCidrRange) {
        const [old, range] = [parseCidr(found.ipCidrRange)!, parseCidr(value)];
        // A range may only be expanded (a shorter prefix holding the old range).
        if (!range || range.prefix > old.prefix || !overlaps(range, old))
          return invalid("resource.ipCidrRange", value, "A subnetwork's range can only be expanded.");
        const problem = rangeProblem(state, network, key, value);
        if (problem) return problem;
      } else if (!SUBNET_PATCHABLE.has(field) && !sameField(field, found[field], value))
        return invalid(`resource.${field}`, value, "This field can be set only at resource creation time.");
    }
    return state.operate(
      request,
      "patch",
      found,
      () => {
        for (const field of Object.keys(body).filter((f) => SUBNET_PATCHABLE.has(f)))
          found[field] = body[field];
        found.gatewayAddress = ipText(parseCidr(found.ipCidrRange)!.base + 1);
        found.fingerprint = newFingerprint();
      },
      { regional: true },
    );
  });
}
