import { labelProblem, page } from "./common";
import { googleError, type FakeRequest, type FakeResponse, type GoogleApiFake } from "./fake";
import type { IamState } from "./iam";
import { bindingChecker, getPolicy, IamPolicy, setPolicy } from "./project-iam";

/**
 * Cloud DNS behind the fake, strict where discovery depends on it: a change applies whole or not at all;
 * each deletion must name an existing record set exactly (name, type, TTL and the same data), or the
 * change fails with 412 conditionNotMet; an addition of a set that exists (after the deletions) fails with
 * 409 alreadyExists. Listing pages by `maxResults`. Tests may queue failures and run a concurrent writer
 * just before a change is judged.
 */
export interface RecordSetJson {
  kind: "dns#resourceRecordSet";
  name: string;
  type: string;
  ttl: number;
  rrdatas: string[];
  [field: string]: unknown;
}

export interface ManagedZoneJson {
  kind: "dns#managedZone";
  name: string;
  dnsName: string;
  description: string;
  id: string;
  creationTime: string;
  nameServers: string[];
  visibility: "public" | "private";
  labels?: Record<string, string>;
  privateVisibilityConfig?: {
    kind: "dns#managedZonePrivateVisibilityConfig";
    networks: { kind: "dns#managedZonePrivateVisibilityConfigNetwork"; networkUrl: string }[];
  };
}

export class DnsState {
  /** Record sets by managed zone name. */
  readonly zones = new Map<string, RecordSetJson[]>();
  /** Zones made by managedZones.create (or `addZone`), by name. */
  readonly managedZones = new Map<string, ManagedZoneJson>();
  /**
   * When true, record sets live only in zones made by managedZones.create: listing or changing another
   * zone answers 404, as Cloud DNS does. False keeps the record-only model, zones made on demand.
   */
  strictZones = false;
  /** Each managed zone's IAM policy (Cloud DNS grants per zone), by zone name. */
  readonly policies = new Map<string, IamPolicy>();
  /** The IAM model that policies check members and custom roles against; unchecked when unset. */
  iam?: IamState;
  /** Whether a private zone's network exists (the Compute model answers it); unchecked when unset. */
  networkExists?: (networkUrl: string) => boolean;
  private zoneIds = 0;
  /** Status codes the next changes.create calls answer instead of judging the change (429, 503…). */
  readonly failChanges: number[] = [];
  /** Runs before a change is judged: a concurrent writer's moment. */
  beforeChange?: (zone: string) => void;
  changes = 0;

  zone(name: string): RecordSetJson[] {
    if (!this.zones.has(name)) this.zones.set(name, []);
    return this.zones.get(name)!;
  }

  /** The A record set at `name`'s values, sorted; undefined when there is none. */
  values(zone: string, name: string): string[] | undefined {
    return this.zone(zone)
      .find((set) => set.name === name && set.type === "A")
      ?.rrdatas.slice()
      .sort();
  }

  /** A managed zone as managedZones.create makes it, with its SOA and NS record sets. */
  addZone(zone: {
    name: string;
    dnsName: string;
    description?: string;
    visibility?: "public" | "private";
    labels?: Record<string, string>;
    networks?: string[];
  }): ManagedZoneJson {
    const visibility = zone.visibility ?? "public";
    const letter = "abcde"[this.zoneIds % 5];
    const nameServers =
      visibility === "private"
        ? ["ns-gcp-private.googledomains.com."]
        : [1, 2, 3, 4].map((n) => `ns-cloud-${letter}${n}.googledomains.com.`);
    const json: ManagedZoneJson = {
      kind: "dns#managedZone",
      name: zone.name,
      dnsName: zone.dnsName,
      description: zone.description ?? "",
      id: String(1_000_000_000_000_000n + BigInt(++this.zoneIds) * 104_729n),
      creationTime: new Date().toISOString(),
      nameServers,
      visibility,
      ...(zone.labels && Object.keys(zone.labels).length ? { labels: { ...zone.labels } } : {}),
      ...(visibility === "private" ? { privateVisibilityConfig: networksConfig(zone.networks ?? []) } : {}),
    };
    this.managedZones.set(zone.name, json);
    this.zones.set(zone.name, [
      {
        kind: "dns#resourceRecordSet",
        name: zone.dnsName,
        type: "SOA",
        ttl: 21600,
        rrdatas: [`${nameServers[0]} cloud-dns-hostmaster.google.com. 1 21600 3600 259200 300`],
      },
      { kind: "dns#resourceRecordSet", name: zone.dnsName, type: "NS", ttl: 21600, rrdatas: nameServers },
    ]);
    return json;
  }

  put(
    zone: string,
    set: { name: string; type: string; ttl: number; rrdatas: string[]; [field: string]: unknown },
  ): void {
    const sets = this.zone(zone);
    const at = sets.findIndex((s) => s.name === set.name && s.type === set.type);
    const value = { kind: "dns#resourceRecordSet" as const, ...set };
    if (at >= 0) sets[at] = value;
    else sets.push(value);
  }
}

const sameData = (a: string[], b: string[]) =>
  a.length === b.length && [...a].sort().every((value, i) => value === [...b].sort()[i]);

const networksConfig = (urls: string[]) => ({
  kind: "dns#managedZonePrivateVisibilityConfig" as const,
  networks: urls.map((networkUrl) => ({
    kind: "dns#managedZonePrivateVisibilityConfigNetwork" as const,
    networkUrl,
  })),
});

const unknownZone = (zone: string) =>
  googleError(404, `The 'parameters.managedZone' resource named '${zone}' does not exist.`, "notFound");

function createChange(state: DnsState, request: FakeRequest): FakeResponse {
  const zone = request.params.managedZone!;
  if (state.strictZones && !state.managedZones.has(zone)) return unknownZone(zone);
  const failure = state.failChanges.shift();
  if (failure) return googleError(failure, `injected failure ${failure}`);
  state.beforeChange?.(zone);
  const body = (request.json ?? {}) as { additions?: RecordSetJson[]; deletions?: RecordSetJson[] };
  const sets = state.zone(zone).map((set) => ({ ...set }));
  for (const [i, deletion] of (body.deletions ?? []).entries()) {
    const at = sets.findIndex((s) => s.name === deletion.name && s.type === deletion.type);
    const found = sets[at];
    if (!found || found.ttl !== deletion.ttl || !sameData(found.rrdatas, deletion.rrdatas ?? []))
      return googleError(412, `Precondition not met for 'entity.change.deletions[${i}]'`, "conditionNotMet");
    sets.splice(at, 1);
  }
  for (const [i, addition] of (body.additions ?? []).entries()) {
    if (!addition.name?.endsWith(".") || !addition.type || !(addition.rrdatas ?? []).length)
      return googleError(400, `Invalid value for 'entity.change.additions[${i}]'`);
    // A managed zone holds names under its dnsName only.
    const dnsName = state.managedZones.get(zone)?.dnsName;
    if (dnsName && addition.name !== dnsName && !addition.name.endsWith(`.${dnsName}`))
      return googleError(
        400,
        `The resource 'entity.change.additions[${i}]' named '${addition.name}' is not within the zone's DNS name '${dnsName}'`,
      );
    if (sets.some((s) => s.name === addition.name && s.type === addition.type))
      return googleError(
        409,
        `The resource 'entity.change.additions[${i}]' named '${addition.name} (${addition.type})' already exists`,
        "alreadyExists",
      );
    sets.push({
      kind: "dns#resourceRecordSet",
      name: addition.name,
      type: addition.type,
      ttl: addition.ttl,
      rrdatas: [...addition.rrdatas],
    });
  }
  state.zones.set(zone, sets);
  state.changes++;
  return {
    json: {
      kind: "dns#change",
      id: String(state.changes),
      status: "done",
      startTime: new Date().toISOString(),
      additions: body.additions ?? [],
      deletions: body.deletions ?? [],
    },
  };
}

function listRecordSets(state: DnsState, request: FakeRequest): FakeResponse {
  if (state.strictZones && !state.managedZones.has(request.params.managedZone!))
    return unknownZone(request.params.managedZone!);
  const sets = state.zone(request.params.managedZone!);
  const size = Number(request.query.get("maxResults") ?? 1000);
  const start = Number(request.query.get("pageToken") ?? 0);
  const page = sets.slice(start, start + size);
  const next = start + size < sets.length ? String(start + size) : undefined;
  return {
    json: {
      kind: "dns#resourceRecordSetsListResponse",
      rrsets: page,
      ...(next ? { nextPageToken: next } : {}),
    },
  };
}

export function installDns(fake: GoogleApiFake, state = new DnsState()): DnsState {
  fake.on("dns.changes.create", (request) => createChange(state, request));
  fake.on("dns.resourceRecordSets.list", (request) => listRecordSets(state, request));
  installManagedZones(fake, state);
  installZonePolicies(fake, state);
  return state;
}

/** managedZones.getIamPolicy/setIamPolicy on `projects/P/managedZones/Z`, as project-iam.ts models them. */
function installZonePolicies(fake: GoogleApiFake, state: DnsState): void {
  const withZone =
    (answer: (policy: IamPolicy, project: string, request: FakeRequest) => FakeResponse) =>
    (request: FakeRequest) => {
      const match = /^projects\/([^/]+)\/managedZones\/([^/]+)$/.exec(request.params.resource ?? "");
      if (!match || !state.managedZones.has(match[2]!))
        return unknownZone(match?.[2] ?? request.params.resource ?? "");
      if (!state.policies.has(match[2]!)) state.policies.set(match[2]!, new IamPolicy());
      return answer(state.policies.get(match[2]!)!, match[1]!, request);
    };
  fake.on(
    "dns.managedZones.getIamPolicy",
    withZone((policy, _, request) =>
      getPolicy(
        policy,
        (request.json as { options?: { requestedPolicyVersion?: number } })?.options?.requestedPolicyVersion,
      ),
    ),
  );
  fake.on(
    "dns.managedZones.setIamPolicy",
    withZone((policy, project, request) =>
      setPolicy(policy, request.json, bindingChecker(state.iam, project)),
    ),
  );
}

let operations = 0;
const ZONE_NAME = /^[a-z](?:[-a-z0-9]{0,61}[a-z0-9])?$/;
const DNS_NAME = /^(?:[a-z0-9](?:[-a-z0-9]{0,61}[a-z0-9])?\.)+$/;

type ZoneBody = Partial<Omit<ManagedZoneJson, "privateVisibilityConfig">> & {
  privateVisibilityConfig?: { networks?: { networkUrl?: string }[] };
  [field: string]: unknown;
};

/**
 * Managed zones, strict as Cloud DNS: name and dnsName (ending in '.') are required, and so is a
 * description (the API refuses a zone without one); a private zone must be visible to at least one
 * network that exists; a public zone takes no networks. A new zone has its SOA and NS record sets; it can
 * only be deleted once it holds nothing else (400 containerNotEmpty). patch changes the description,
 * labels and networks and answers a done operation.
 */
function installManagedZones(fake: GoogleApiFake, state: DnsState): void {
  const invalid = (field: string, why: string) =>
    googleError(400, `Invalid value for 'entity.managedZone.${field}': ${why}`);
  const check = (body: ZoneBody, visibility: string): FakeResponse | undefined => {
    const labels = labelProblem(body.labels);
    if (labels) return invalid("labels", labels);
    const networks = body.privateVisibilityConfig?.networks ?? [];
    if (visibility === "public" && networks.length)
      return invalid("privateVisibilityConfig", "a public zone is visible to every network");
    if (visibility === "private" && !networks.length)
      return invalid("privateVisibilityConfig.networks", "a private zone needs at least one network");
    for (const [i, { networkUrl }] of networks.entries())
      if (!networkUrl || (state.networkExists && !state.networkExists(networkUrl)))
        return invalid(`privateVisibilityConfig.networks[${i}].networkUrl`, `no network ${networkUrl}`);
    return undefined;
  };
  fake.on("dns.managedZones.create", (request) => {
    const body = (request.json ?? {}) as ZoneBody;
    for (const field of ["name", "dnsName", "description"] as const)
      if (body[field] === undefined)
        return googleError(400, `Required field 'entity.managedZone.${field}' not specified`, "required");
    if (!ZONE_NAME.test(body.name!)) return invalid("name", `must match ${ZONE_NAME.source}`);
    if (!DNS_NAME.test(body.dnsName!)) return invalid("dnsName", "a DNS name ending in '.'");
    const visibility = body.visibility ?? "public";
    const problem = check(body, visibility);
    if (problem) return problem;
    if (state.managedZones.has(body.name!))
      return googleError(
        409,
        `The resource 'entity.managedZone' named '${body.name}' already exists`,
        "alreadyExists",
      );
    const networks = (body.privateVisibilityConfig?.networks ?? []).map((n) => n.networkUrl!);
    return {
      json: state.addZone({ ...body, name: body.name!, dnsName: body.dnsName!, visibility, networks }),
    };
  });
  fake.on("dns.managedZones.get", (request) => {
    const zone = state.managedZones.get(request.params.managedZone);
    return zone ? { json: zone } : unknownZone(request.params.managedZone);
  });
  fake.on("dns.managedZones.list", (request) => {
    const dnsName = request.query.get("dnsName");
    const all = [...state.managedZones.values()].filter((zone) => !dnsName || zone.dnsName === dnsName);
    const found = page(all, {
      pageSize: request.query.get("maxResults"),
      pageToken: request.query.get("pageToken"),
      tag: `zones:${dnsName ?? ""}`,
      default: 1000,
      max: 1000,
    });
    if (!found) return googleError(400, "Invalid value for 'parameters.pageToken'");
    return {
      json: {
        kind: "dns#managedZonesListResponse",
        managedZones: found.items,
        ...(found.nextPageToken ? { nextPageToken: found.nextPageToken } : {}),
      },
    };
  });
  fake.on("dns.managedZones.delete", (request) => {
    const name = request.params.managedZone;
    const zone = state.managedZones.get(name);
    if (!zone) return unknownZone(name);
    const apex = (set: RecordSetJson) =>
      set.name === zone.dnsName && (set.type === "SOA" || set.type === "NS");
    if (state.zone(name).some((set) => !apex(set)))
      return googleError(
        400,
        `The resource named '${name}' cannot be deleted because it is not empty`,
        "containerNotEmpty",
      );
    state.managedZones.delete(name);
    state.zones.delete(name);
    state.policies.delete(name);
    return { status: 204 };
  });
  fake.on("dns.managedZones.patch", (request) => {
    const zone = state.managedZones.get(request.params.managedZone);
    if (!zone) return unknownZone(request.params.managedZone);
    const body = (request.json ?? {}) as ZoneBody;
    for (const field of ["name", "dnsName", "visibility"] as const)
      if (body[field] !== undefined && body[field] !== zone[field])
        return invalid(field, "cannot be changed; make a new zone");
    const unmodelled = Object.keys(body).filter(
      (field) =>
        ![
          "kind",
          "name",
          "dnsName",
          "visibility",
          "description",
          "labels",
          "privateVisibilityConfig",
        ].includes(field),
    );
    if (unmodelled.length) return googleError(501, `the fake does not model ${unmodelled.join(", ")}`);
    const privateVisibilityConfig = body.privateVisibilityConfig ?? zone.privateVisibilityConfig;
    const problem = check({ labels: body.labels, privateVisibilityConfig }, zone.visibility);
    if (problem) return problem;
    const oldValue = structuredClone(zone);
    if (body.description !== undefined) zone.description = body.description;
    if (body.labels !== undefined) zone.labels = { ...body.labels };
    if (body.privateVisibilityConfig)
      zone.privateVisibilityConfig = networksConfig(
        (body.privateVisibilityConfig.networks ?? []).map((n) => n.networkUrl!),
      );
    return {
      json: {
        kind: "dns#operation",
        id: String(++operations),
        type: "UPDATE",
        status: "done",
        startTime: new Date().toISOString(),
        user: "fake@example.com",
        zoneContext: { oldValue, newValue: structuredClone(zone) },
      },
    };
  });
}
