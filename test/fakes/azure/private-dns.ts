/**
 * Private DNS (Microsoft.Network/privateDnsZones 2024-06-01): zones in location "global" created with their
 * SOA record set, virtual network links to networks the network model knows, and record sets. Every zone,
 * link and record set carries an ETag that If-Match / If-None-Match compare (412 PreconditionFailed), so a
 * compare-and-swap on a record set works as in Azure. A zone with links cannot be deleted (409).
 */
import { randomUUID } from "node:crypto";
import { armError, type ArmFake, type ArmRequest, type ArmResponse } from "./arm-fake";
import { groupId, isUnder, key, resourceNotFound, type GroupGuard } from "./arm-models";
import { parseAddress } from "./ipv4";
import type { Json, JsonObject } from "./openapi";
import { checkTags } from "./resource-groups";

export const PRIVATE_DNS_API_VERSION = "2024-06-01";
export const PRIVATE_DNS_SPECS = [
  "privatedns/resource-manager/Microsoft.Network/stable/2024-06-01/privatedns.json",
];
const ZONES = "Microsoft.Network/privateDnsZones";

type State = "Creating" | "Updating" | "Deleting" | "Succeeded";

export interface RecordSet {
  id: string;
  type: string;
  name: string;
  etag: string;
  /** ttl, metadata and the records, as sent. */
  properties: JsonObject;
}

export interface VirtualNetworkLink {
  id: string;
  name: string;
  tags?: Record<string, string>;
  etag: string;
  provisioningState: State;
  virtualNetworkId: string;
  registrationEnabled: boolean;
  resolutionPolicy: string;
}

export interface PrivateZone {
  id: string;
  name: string;
  tags?: Record<string, string>;
  etag: string;
  provisioningState: State;
  links: Map<string, VirtualNetworkLink>;
  /** Keyed by `TYPE/name`, lower case. */
  recordSets: Map<string, RecordSet>;
}

export class PrivateDnsState {
  readonly groups?: GroupGuard;
  /** When given, a link's virtual network must exist in it. */
  readonly network?: { virtualNetwork(id: string): { id: string } | undefined };
  readonly zones = new Map<string, PrivateZone>();

  constructor(options: { groups?: GroupGuard; network?: PrivateDnsState["network"] } = {}) {
    this.groups = options.groups;
    this.network = options.network;
    this.groups?.onGroupDeleted((group) => {
      for (const [id, zone] of this.zones) if (isUnder(zone.id, group)) this.zones.delete(id);
    });
  }

  zone(id: string): PrivateZone | undefined {
    return this.zones.get(key(id));
  }

  recordSet(zoneId: string, type: string, name: string): RecordSet | undefined {
    return this.zone(zoneId)?.recordSets.get(key(`${type}/${name}`));
  }
}

export function installPrivateDns(fake: ArmFake, state = new PrivateDnsState()): PrivateDnsState {
  fake.on("PrivateZones_CreateOrUpdate", (req) => putZone(fake, state, req));
  fake.on("PrivateZones_Get", (req) => {
    const zone = state.zone(req.path);
    return zone ? withEtag(zone.etag, renderZone(zone)) : zoneNotFound(req);
  });
  fake.on("PrivateZones_Delete", (req) => deleteZone(fake, state, req));
  for (const list of ["PrivateZones_List", "PrivateZones_ListByResourceGroup"])
    fake.on(list, (req) => {
      const scope = req.path.replace(/\/providers\/.*$/i, "");
      const zones = [...state.zones.values()].filter((z) => isUnder(z.id, scope));
      return { status: 200, body: { value: top(req, zones.map(renderZone)) } };
    });

  fake.on("VirtualNetworkLinks_CreateOrUpdate", (req) => putLink(fake, state, req));
  fake.on("VirtualNetworkLinks_Get", (req) => {
    const link = zoneOf(state, req)?.links.get(key(req.params.virtualNetworkLinkName!));
    return link ? withEtag(link.etag, renderLink(link)) : childNotFound(req, "virtualNetworkLinks");
  });
  fake.on("VirtualNetworkLinks_Delete", (req) => deleteLink(fake, state, req));
  fake.on("VirtualNetworkLinks_List", (req) => {
    const zone = zoneOf(state, req);
    return zone
      ? { status: 200, body: { value: top(req, [...zone.links.values()].map(renderLink)) } }
      : zoneNotFound(req);
  });

  fake.on("RecordSets_CreateOrUpdate", (req) => putRecordSet(state, req));
  fake.on("RecordSets_Get", (req) => {
    const { recordType, relativeRecordSetName } = req.params as Record<string, string>;
    const set = zoneOf(state, req)?.recordSets.get(key(`${recordType}/${relativeRecordSetName}`));
    return set ? withEtag(set.etag, renderRecordSet(zoneOf(state, req)!, set)) : recordNotFound(req);
  });
  fake.on("RecordSets_Delete", (req) => deleteRecordSet(state, req));
  for (const list of ["RecordSets_List", "RecordSets_ListByType"])
    fake.on(list, (req) => {
      const zone = zoneOf(state, req);
      if (!zone) return zoneNotFound(req);
      const type = req.params.recordType;
      const suffix = req.query.get("$recordsetnamesuffix");
      const sets = [...zone.recordSets.values()].filter(
        (s) => (!type || s.type === type) && (!suffix || key(s.name).endsWith(key(suffix))),
      );
      return {
        status: 200,
        body: {
          value: top(
            req,
            sets.map((s) => renderRecordSet(zone, s)),
          ),
        },
      };
    });
  return state;
}

/** The zone a request's path names (the zone itself or one of its children). */
const zoneOf = (state: PrivateDnsState, req: ArmRequest) =>
  state.zone(
    `${groupId(req.params.subscriptionId!, req.params.resourceGroupName!)}/providers/${ZONES}/${req.params.privateZoneName}`,
  );

function putZone(fake: ArmFake, state: PrivateDnsState, req: ArmRequest): ArmResponse {
  const {
    subscriptionId,
    resourceGroupName: group,
    privateZoneName: name,
  } = req.params as Record<string, string>;
  const body = req.body as JsonObject;
  const refused =
    state.groups?.requireGroup(subscriptionId, group) ??
    checkTags(body.tags) ??
    globalOnly(body.location, ZONES);
  if (refused) return refused;
  // A private zone's name has two labels at least.
  if (!/^([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$/i.test(name))
    return armError(400, "BadRequest", `The zone name '${name}' is not a valid private DNS zone name.`);
  const existing = state.zone(req.path);
  const precondition = preconditionFailed(req, existing?.etag, `zone ${name}`);
  if (precondition) return precondition;
  const zone: PrivateZone = existing ?? {
    id: `${groupId(subscriptionId, group)}/providers/${ZONES}/${name}`,
    name,
    etag: "",
    provisioningState: "Creating",
    links: new Map(),
    recordSets: new Map(),
  };
  zone.etag = randomUUID();
  zone.tags = body.tags as Record<string, string> | undefined;
  if (existing) zone.provisioningState = "Updating";
  else {
    zone.recordSets.set("soa/@", soaRecordSet(zone));
    state.zones.set(key(zone.id), zone);
  }
  const headers = fake.asyncOperation(
    req,
    { status: "Succeeded" },
    () => (zone.provisioningState = "Succeeded"),
  );
  return { status: 202, headers };
}

function deleteZone(fake: ArmFake, state: PrivateDnsState, req: ArmRequest): ArmResponse {
  const zone = state.zone(req.path);
  if (!zone) return { status: 204 };
  const precondition = preconditionFailed(req, zone.etag, `zone ${zone.name}`);
  if (precondition) return precondition;
  const links = [...zone.links.values()];
  if (links.length > 0)
    return armError(
      409,
      "CannotDeleteResource",
      "Cannot delete resource while nested resources exist. Some existing nested resource IDs include: " +
        `${links.map((l) => `'${ZONES}/${zone.name}/virtualNetworkLinks/${l.name}'`).join(", ")}. ` +
        "Please delete all nested resources before deleting this resource.",
    );
  zone.provisioningState = "Deleting";
  const headers = fake.asyncOperation(req, { status: "Succeeded" }, () => state.zones.delete(key(zone.id)));
  return { status: 202, headers };
}

function putLink(fake: ArmFake, state: PrivateDnsState, req: ArmRequest): ArmResponse {
  const zone = zoneOf(state, req);
  if (!zone) return zoneNotFound(req);
  const name = req.params.virtualNetworkLinkName!;
  const body = req.body as JsonObject;
  const refused = checkTags(body.tags) ?? globalOnly(body.location, `${ZONES}/virtualNetworkLinks`);
  if (refused) return refused;
  const existing = zone.links.get(key(name));
  const precondition = preconditionFailed(req, existing?.etag, `virtual network link ${name}`);
  if (precondition) return precondition;
  const properties = (body.properties ?? {}) as JsonObject;
  const vnetId = (properties.virtualNetwork as JsonObject | undefined)?.id;
  if (typeof vnetId !== "string")
    return armError(400, "BadRequest", "The virtual network link must name properties.virtualNetwork.id.");
  const vnet = state.network ? state.network.virtualNetwork(vnetId) : { id: vnetId };
  if (!vnet) return armError(400, "BadRequest", `The virtual network ${vnetId} was not found.`);
  if (existing && key(existing.virtualNetworkId) !== key(vnet.id))
    return armError(400, "BadRequest", `The virtual network of link ${name} cannot be changed.`);
  const others = [...state.zones.values()].flatMap((z) =>
    [...z.links.values()]
      .filter((l) => l !== existing && key(l.virtualNetworkId) === key(vnet.id))
      .map((l) => ({ zone: z, link: l })),
  );
  // One link per zone and network; zones of one network may not overlap (a.b and b do).
  const overlapping = others.find(
    ({ zone: z }) =>
      key(`.${z.name}`).endsWith(key(`.${zone.name}`)) || key(`.${zone.name}`).endsWith(key(`.${z.name}`)),
  );
  if (overlapping)
    return armError(
      400,
      "BadRequest",
      "A virtual network cannot be linked to multiple zones with overlapping namespaces. You tried to link " +
        `virtual network with '${overlapping.zone.name}' and '${zone.name}' zones.`,
    );
  const registrationEnabled = properties.registrationEnabled === true;
  const registering = others.find(({ link }) => link.registrationEnabled);
  if (registrationEnabled && registering)
    return armError(
      409,
      "Conflict",
      "A virtual network can only be linked to 1 Private DNS zone(s) with auto-registration enabled; " +
        `conflicting Private DNS zone is '${registering.zone.name}'.`,
    );
  const link: VirtualNetworkLink = {
    id: `${zone.id}/virtualNetworkLinks/${existing?.name ?? name}`,
    name: existing?.name ?? name,
    ...(body.tags ? { tags: body.tags as Record<string, string> } : {}),
    etag: randomUUID(),
    provisioningState: existing ? "Updating" : "Creating",
    virtualNetworkId: vnet.id,
    registrationEnabled,
    resolutionPolicy: String(properties.resolutionPolicy ?? "Default"),
  };
  zone.links.set(key(link.name), link);
  const headers = fake.asyncOperation(
    req,
    { status: "Succeeded" },
    () => (link.provisioningState = "Succeeded"),
  );
  return { status: 202, headers };
}

function deleteLink(fake: ArmFake, state: PrivateDnsState, req: ArmRequest): ArmResponse {
  const zone = zoneOf(state, req);
  const link = zone?.links.get(key(req.params.virtualNetworkLinkName!));
  if (!zone || !link) return { status: 204 };
  const precondition = preconditionFailed(req, link.etag, `virtual network link ${link.name}`);
  if (precondition) return precondition;
  link.provisioningState = "Deleting";
  const headers = fake.asyncOperation(req, { status: "Succeeded" }, () => zone.links.delete(key(link.name)));
  return { status: 202, headers };
}

/** The one record field each type may carry. */
const RECORD_FIELDS: Record<string, string> = {
  A: "aRecords",
  AAAA: "aaaaRecords",
  CNAME: "cnameRecord",
  MX: "mxRecords",
  PTR: "ptrRecords",
  SOA: "soaRecord",
  SRV: "srvRecords",
  TXT: "txtRecords",
};

function putRecordSet(state: PrivateDnsState, req: ArmRequest): ArmResponse {
  const zone = zoneOf(state, req);
  if (!zone) return zoneNotFound(req);
  const { recordType: type, relativeRecordSetName: name } = req.params as Record<string, string>;
  const existing = zone.recordSets.get(key(`${type}/${name}`));
  const precondition = preconditionFailed(req, existing?.etag, `record set ${type}/${name}`);
  if (precondition) return precondition;
  if (type === "SOA" && !existing)
    return armError(400, "BadRequest", "Record sets of type SOA are created with the zone, not by a PUT.");
  const properties = ((req.body as JsonObject).properties ?? {}) as JsonObject;
  const field = RECORD_FIELDS[type]!;
  const foreign = Object.values(RECORD_FIELDS).filter((f) => f !== field && properties[f] !== undefined);
  if (foreign.length > 0)
    return armError(400, "BadRequest", `A record set of type ${type} cannot carry ${foreign.join(", ")}.`);
  if (type === "A")
    for (const record of (properties.aRecords ?? []) as JsonObject[])
      if (parseAddress(String(record.ipv4Address)) === undefined)
        return armError(
          400,
          "BadRequest",
          `The A record value '${String(record.ipv4Address)}' is not an IPv4 address.`,
        );
  const set: RecordSet = {
    id: `${zone.id}/${type}/${existing?.name ?? name}`,
    type,
    name: existing?.name ?? name,
    etag: randomUUID(),
    properties: { ttl: 3600, ...properties },
  };
  zone.recordSets.set(key(`${type}/${name}`), set);
  return withEtag(set.etag, renderRecordSet(zone, set), existing ? 200 : 201);
}

function deleteRecordSet(state: PrivateDnsState, req: ArmRequest): ArmResponse {
  const zone = zoneOf(state, req);
  const { recordType: type, relativeRecordSetName: name } = req.params as Record<string, string>;
  const set = zone?.recordSets.get(key(`${type}/${name}`));
  if (!zone || !set) return { status: 204 };
  if (type === "SOA")
    return armError(400, "BadRequest", "Record sets of type SOA are deleted with the zone only.");
  const precondition = preconditionFailed(req, set.etag, `record set ${type}/${name}`);
  if (precondition) return precondition;
  zone.recordSets.delete(key(`${type}/${name}`));
  return { status: 200 };
}

/** If-Match must name the current ETag (or be `*` for any existing one); If-None-Match: * wants none. */
function preconditionFailed(
  req: ArmRequest,
  etag: string | undefined,
  what: string,
): ArmResponse | undefined {
  const ifMatch = req.headers["if-match"];
  const ifNoneMatch = req.headers["if-none-match"];
  if (ifMatch !== undefined && (etag === undefined || (ifMatch !== "*" && ifMatch !== etag)))
    return armError(412, "PreconditionFailed", `The ${what} has been modified (etag mismatch).`);
  if (ifNoneMatch === "*" && etag !== undefined)
    return armError(412, "PreconditionFailed", `The ${what} already exists (If-None-Match: *).`);
  return undefined;
}

function globalOnly(location: Json | undefined, type: string): ArmResponse | undefined {
  if (typeof location === "string" && key(location) === "global") return undefined;
  return armError(
    400,
    "LocationNotAvailableForResourceType",
    `The provided location '${String(location)}' is not available for resource type '${type}'. ` +
      "List of available regions for the resource type is 'global'.",
  );
}

function soaRecordSet(zone: PrivateZone): RecordSet {
  return {
    id: `${zone.id}/SOA/@`,
    type: "SOA",
    name: "@",
    etag: randomUUID(),
    properties: {
      ttl: 3600,
      soaRecord: {
        host: "azureprivatedns.net",
        email: "azureprivatedns-host.microsoft.com",
        serialNumber: 1,
        refreshTime: 3600,
        retryTime: 300,
        expireTime: 2419200,
        minimumTtl: 10,
      },
    },
  };
}

const top = (req: ArmRequest, items: JsonObject[]) =>
  req.query.has("$top") ? items.slice(0, Number(req.query.get("$top"))) : items;

const withEtag = (etag: string, body: JsonObject, status = 200): ArmResponse => ({
  status,
  body,
  headers: { ETag: etag },
});

const zoneNotFound = (req: ArmRequest) =>
  resourceNotFound(ZONES, req.params.privateZoneName!, req.params.resourceGroupName!);
const childNotFound = (req: ArmRequest, kind: string) =>
  resourceNotFound(
    `${ZONES}/${kind}`,
    `${req.params.privateZoneName}/${req.path.split("/").pop()}`,
    req.params.resourceGroupName!,
  );
const recordNotFound = (req: ArmRequest) =>
  armError(
    404,
    "NotFound",
    `The resource record '${req.params.relativeRecordSetName}' of type ${req.params.recordType} does not exist ` +
      `in zone '${req.params.privateZoneName}'.`,
  );

function renderZone(zone: PrivateZone): JsonObject {
  const links = [...zone.links.values()];
  return {
    id: zone.id,
    name: zone.name,
    type: ZONES,
    location: "global",
    ...(zone.tags ? { tags: zone.tags } : {}),
    etag: zone.etag,
    properties: {
      maxNumberOfRecordSets: 25000,
      numberOfRecordSets: zone.recordSets.size,
      maxNumberOfVirtualNetworkLinks: 1000,
      numberOfVirtualNetworkLinks: links.length,
      maxNumberOfVirtualNetworkLinksWithRegistration: 100,
      numberOfVirtualNetworkLinksWithRegistration: links.filter((l) => l.registrationEnabled).length,
      provisioningState: zone.provisioningState,
      internalId: Buffer.from(zone.id).toString("base64url"),
    },
  };
}

function renderLink(link: VirtualNetworkLink): JsonObject {
  return {
    id: link.id,
    name: link.name,
    type: `${ZONES}/virtualNetworkLinks`,
    location: "global",
    ...(link.tags ? { tags: link.tags } : {}),
    etag: link.etag,
    properties: {
      virtualNetwork: { id: link.virtualNetworkId },
      registrationEnabled: link.registrationEnabled,
      resolutionPolicy: link.resolutionPolicy,
      virtualNetworkLinkState: link.provisioningState === "Succeeded" ? "Completed" : "InProgress",
      provisioningState: link.provisioningState,
    },
  };
}

function renderRecordSet(zone: PrivateZone, set: RecordSet): JsonObject {
  return {
    id: set.id,
    name: set.name,
    type: `${ZONES}/${set.type}`,
    etag: set.etag,
    properties: {
      ...set.properties,
      fqdn: `${set.name === "@" ? "" : `${set.name}.`}${zone.name}.`,
      isAutoRegistered: false,
    },
  };
}
