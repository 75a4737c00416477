/**
 * Network security groups, their rules, and application security groups (Microsoft.Network 2024-05-01),
 * installed by installNetwork. Rules are checked as Azure checks them: priority 100-4096 and unique per
 * direction, one way of naming each side (prefix, prefixes or application security groups), service tags
 * only in the single prefix, ports as `*`, `n` or `n-m`. The six default rules are answered on every group;
 * a group a subnet uses cannot be deleted.
 */
import { armError, type ArmFake, type ArmRequest, type ArmResponse } from "./arm-fake";
import { key } from "./arm-models";
import { parseAddress, parseCidr } from "./ipv4";
import type { NetworkState } from "./network";
import {
  childNotFound,
  invalidReference,
  isRefusal,
  listOperations,
  newEtag,
  notFound,
  renderResource,
  topLevel,
  type NetworkResource,
  type ProvisioningState,
} from "./network-common";
import type { Json, JsonObject } from "./openapi";

const NSG = "Microsoft.Network/networkSecurityGroups";
const ASG = "Microsoft.Network/applicationSecurityGroups";

export interface SecurityRule {
  id: string;
  name: string;
  etag: string;
  provisioningState: ProvisioningState;
  properties: JsonObject;
}

export interface SecurityGroup extends NetworkResource {
  rules: SecurityRule[];
}

export function installNetworkSecurity(fake: ArmFake, state: NetworkState): void {
  fake.on("NetworkSecurityGroups_CreateOrUpdate", (req) => putSecurityGroup(fake, state, req));
  fake.on("NetworkSecurityGroups_Get", (req) => {
    const nsg = state.securityGroups.get(key(req.path));
    return nsg ? { status: 200, body: renderSecurityGroup(state, nsg) } : notFound(req, NSG);
  });
  fake.on("NetworkSecurityGroups_Delete", (req) => deleteSecurityGroup(fake, state, req));
  listOperations(fake, ["NetworkSecurityGroups_List", "NetworkSecurityGroups_ListAll"], () =>
    [...state.securityGroups.values()].map((nsg) => renderSecurityGroup(state, nsg)),
  );
  fake.on("SecurityRules_CreateOrUpdate", (req) => putRule(fake, state, req));
  fake.on("SecurityRules_Get", (req) => {
    const rule = parentOf(state, req)?.rules.find((r) => key(r.id) === key(req.path));
    return rule ? { status: 200, body: renderRule(rule) } : childNotFound(req.path);
  });
  fake.on("SecurityRules_Delete", (req) => deleteRule(fake, state, req));
  fake.on("SecurityRules_List", (req) => {
    const nsg = parentOf(state, req);
    return nsg ? { status: 200, body: { value: nsg.rules.map(renderRule) } } : notFound(req, NSG);
  });
  fake.on("DefaultSecurityRules_List", (req) => {
    const nsg = parentOf(state, req);
    return nsg ? { status: 200, body: { value: defaultRules(nsg) } } : notFound(req, NSG);
  });

  fake.on("ApplicationSecurityGroups_CreateOrUpdate", (req) => putApplicationSecurityGroup(fake, state, req));
  fake.on("ApplicationSecurityGroups_Get", (req) => {
    const asg = state.applicationSecurityGroups.get(key(req.path));
    return asg ? { status: 200, body: renderResource(asg, ASG, {}) } : notFound(req, ASG);
  });
  fake.on("ApplicationSecurityGroups_Delete", (req) => {
    const asg = state.applicationSecurityGroups.get(key(req.path));
    if (!asg) return { status: 204 };
    asg.provisioningState = "Deleting";
    const headers = fake.asyncOperation(req, { status: "Succeeded" }, () =>
      state.applicationSecurityGroups.delete(key(asg.id)),
    );
    return { status: 202, headers };
  });
  listOperations(fake, ["ApplicationSecurityGroups_List", "ApplicationSecurityGroups_ListAll"], () =>
    [...state.applicationSecurityGroups.values()].map((asg) => renderResource(asg, ASG, {})),
  );
}

function putApplicationSecurityGroup(fake: ArmFake, state: NetworkState, req: ArmRequest): ArmResponse {
  const existing = state.applicationSecurityGroups.get(key(req.path));
  const asg = topLevel(state, req, ASG, existing);
  if ("status" in asg) return asg;
  state.applicationSecurityGroups.set(key(asg.id), asg);
  const headers = fake.asyncOperation(
    req,
    { status: "Succeeded" },
    () => (asg.provisioningState = "Succeeded"),
  );
  return { status: existing ? 200 : 201, body: renderResource(asg, ASG, {}), headers };
}

function putSecurityGroup(fake: ArmFake, state: NetworkState, req: ArmRequest): ArmResponse {
  const existing = state.securityGroups.get(key(req.path));
  const base = topLevel(state, req, NSG, existing);
  if ("status" in base) return base;
  const { securityRules = [], ...properties } = ((req.body as JsonObject).properties ?? {}) as JsonObject;
  const nsg: SecurityGroup = { ...base, properties, rules: [] };
  const rules = checkRules(state, nsg, securityRules as JsonObject[]);
  if ("status" in rules) return rules;
  nsg.rules = rules;
  state.securityGroups.set(key(nsg.id), nsg);
  const headers = fake.asyncOperation(req, { status: "Succeeded" }, () => {
    nsg.provisioningState = "Succeeded";
    for (const rule of nsg.rules) rule.provisioningState = "Succeeded";
  });
  return { status: existing ? 200 : 201, body: renderSecurityGroup(state, nsg), headers };
}

function deleteSecurityGroup(fake: ArmFake, state: NetworkState, req: ArmRequest): ArmResponse {
  const nsg = state.securityGroups.get(key(req.path));
  if (!nsg) return { status: 204 };
  const users = state.subnetsUsing(nsg.id);
  if (users.length > 0)
    return armError(
      400,
      "InUseNetworkSecurityGroupCannotBeDeleted",
      `Network security group ${nsg.id} cannot be deleted because it is in use by the following resources: ` +
        `${users.join(", ")}. In order to delete the Network security group, remove the association with the ` +
        "resource(s).",
    );
  nsg.provisioningState = "Deleting";
  const headers = fake.asyncOperation(req, { status: "Succeeded" }, () =>
    state.securityGroups.delete(key(nsg.id)),
  );
  return { status: 202, headers };
}

const parentOf = (state: NetworkState, req: ArmRequest) =>
  state.securityGroups.get(key(req.path.replace(/\/(securityRules|defaultSecurityRules)(\/[^/]+)?$/i, "")));

function putRule(fake: ArmFake, state: NetworkState, req: ArmRequest): ArmResponse {
  const nsg = parentOf(state, req);
  if (!nsg) return notFound(req, NSG);
  const name = req.params.securityRuleName!;
  const wanted = { name, properties: (req.body as JsonObject).properties ?? {} };
  const others = nsg.rules
    .filter((r) => key(r.name) !== key(name))
    .map((r) => ({ name: r.name, properties: r.properties }));
  // The whole set is checked again: the new rule may clash with any other.
  const rules = checkRules(state, { ...nsg, etag: newEtag() }, [...others, wanted]);
  if ("status" in rules) return rules;
  const rule = rules.at(-1)!;
  const existing = nsg.rules.find((r) => key(r.name) === key(name));
  nsg.rules = existing ? nsg.rules.map((r) => (r === existing ? rule : r)) : [...nsg.rules, rule];
  nsg.etag = rule.etag;
  const headers = fake.asyncOperation(
    req,
    { status: "Succeeded" },
    () => (rule.provisioningState = "Succeeded"),
  );
  return { status: existing ? 200 : 201, body: renderRule(rule), headers };
}

function deleteRule(fake: ArmFake, state: NetworkState, req: ArmRequest): ArmResponse {
  const nsg = parentOf(state, req);
  const rule = nsg?.rules.find((r) => key(r.id) === key(req.path));
  if (!nsg || !rule) return { status: 204 };
  rule.provisioningState = "Deleting";
  const headers = fake.asyncOperation(req, { status: "Succeeded" }, () => {
    nsg.rules = nsg.rules.filter((r) => r !== rule);
  });
  return { status: 202, headers };
}

/** The rules of `nsg` as given (each `{ name, properties }`), checked and normalised, or the refusal. */
function checkRules(
  state: NetworkState,
  nsg: SecurityGroup,
  items: JsonObject[],
): SecurityRule[] | ArmResponse {
  const rules: SecurityRule[] = [];
  for (const item of items) {
    if (typeof item.name !== "string")
      return armError(400, "InvalidRequestFormat", `A security rule of ${nsg.id} has no name.`);
    const id = `${nsg.id}/securityRules/${item.name}`;
    if (rules.some((r) => key(r.name) === key(String(item.name))))
      return armError(
        400,
        "DuplicateResourceName",
        `Resource ${nsg.id} has two child resources with the same name (${item.name}).`,
      );
    const properties = checkRule(state, nsg, id, (item.properties ?? {}) as JsonObject);
    if (isRefusal(properties)) return properties;
    const clash = rules.find(
      (r) => r.properties.priority === properties.priority && r.properties.direction === properties.direction,
    );
    if (clash)
      return armError(
        400,
        "SecurityRuleConflict",
        `Security rule ${clash.name} conflicts with rule ${item.name}. Rules cannot have the same Priority and ` +
          "Direction. To learn more, see aka.ms/nsgrules.",
      );
    rules.push({ id, name: item.name, etag: nsg.etag, provisioningState: "Updating", properties });
  }
  return rules;
}

/** Tags Azure accepts in a rule's single address prefix (a sample: Azure knows many more). */
const SERVICE_TAGS = [
  "VirtualNetwork",
  "AzureLoadBalancer",
  "Internet",
  "AzureCloud",
  "Storage",
  "Sql",
  "AzureKeyVault",
  "AzureMonitor",
  "AzureActiveDirectory",
  "AzureResourceManager",
  "AzureContainerRegistry",
  "MicrosoftContainerRegistry",
  "EventHub",
  "ServiceBus",
  "AppService",
  "GatewayManager",
  "AzureFrontDoor.Backend",
  "AzureFrontDoor.Frontend",
];
/** Tags that also come per region: `Storage.WestEurope`. */
const REGIONAL_TAGS =
  /^(AzureCloud|Storage|Sql|AzureKeyVault|AzureMonitor|AzureContainerRegistry|EventHub|ServiceBus|AppService)\.[a-z0-9]+$/i;

const isTag = (value: string) =>
  SERVICE_TAGS.some((tag) => key(tag) === key(value)) || REGIONAL_TAGS.test(value);
const isAddress = (value: string) => parseAddress(value) !== undefined || parseCidr(value).cidr !== undefined;

function checkRule(
  state: NetworkState,
  nsg: SecurityGroup,
  id: string,
  given: JsonObject,
): JsonObject | ArmResponse {
  const p: JsonObject = { ...given };
  const priority = Number(p.priority);
  if (!(Number.isInteger(priority) && priority >= 100 && priority <= 4096))
    return armError(
      400,
      "SecurityRuleInvalidPriority",
      `Security rule has invalid Priority. Value provided: ${String(p.priority)} Allowed range 100-4096.`,
    );
  for (const [field, values] of [
    ["protocol", ["Tcp", "Udp", "Icmp", "Esp", "Ah", "*"]],
    ["access", ["Allow", "Deny"]],
    ["direction", ["Inbound", "Outbound"]],
  ] as const) {
    const value = values.find((v) => key(v) === key(String(p[field])));
    if (!value)
      return armError(
        400,
        "SecurityRuleParameterContainsUnsupportedValue",
        `Security rule ${id} has an invalid ${field} ${String(p[field])}: expected one of ${values.join(", ")}.`,
      );
    p[field] = value;
  }
  for (const side of ["source", "destination"] as const) {
    const Side = side === "source" ? "Source" : "Destination";
    const prefix = p[`${side}AddressPrefix`] as string | undefined;
    const prefixes = (p[`${side}AddressPrefixes`] ?? []) as string[];
    const groups = (p[`${side}ApplicationSecurityGroups`] ?? []) as JsonObject[];
    const ways = [prefix !== undefined, prefixes.length > 0, groups.length > 0].filter(Boolean).length;
    if (ways !== 1)
      return armError(
        400,
        ways === 0 ? "SecurityRuleParameterMissing" : "SecurityRuleParametersConflict",
        `Security rule ${id} must name its ${side} by exactly one of ${side}AddressPrefix, ` +
          `${side}AddressPrefixes and ${side}ApplicationSecurityGroups.`,
      );
    for (const value of prefix !== undefined ? [prefix] : prefixes) {
      // Tags and '*' stand alone: Azure refuses them inside the list form.
      if (prefix === undefined && (value === "*" || isTag(value)))
        return armError(
          400,
          "SecurityRuleParameterContainsUnsupportedValue",
          `Security rule parameter ${Side}AddressPrefix for rule with Id ${id} cannot specify existing ` +
            `VIRTUALNETWORK, INTERNET, AZURELOADBALANCER, '*' or system tags. Unsupported value used: ${value}.`,
        );
      if (!(value === "*" || isTag(value) || isAddress(value)))
        return armError(
          400,
          "SecurityRuleInvalidAddressPrefix",
          `Security rule ${id} has invalid Address prefix. Value provided: ${value}`,
        );
    }
    const asgs: Json[] = [];
    for (const group of groups) {
      const asg = state.applicationSecurityGroups.get(key(String(group.id)));
      if (!asg || asg.location !== nsg.location) return invalidReference(String(group.id), id);
      asgs.push({ id: asg.id });
    }
    if (asgs.length > 0) p[`${side}ApplicationSecurityGroups`] = asgs;
    const range = p[`${side}PortRange`] as string | undefined;
    const ranges = (p[`${side}PortRanges`] ?? []) as string[];
    if ((range !== undefined) === ranges.length > 0)
      return armError(
        400,
        range === undefined ? "SecurityRuleParameterMissing" : "SecurityRuleParametersConflict",
        `Security rule ${id} must give exactly one of ${side}PortRange and ${side}PortRanges.`,
      );
    for (const value of range !== undefined ? [range] : ranges)
      if (!validPorts(value))
        return armError(
          400,
          "SecurityRuleInvalidPortRange",
          `Security rule has invalid Port range. Value provided: ${value}. Value should be an integer OR ` +
            "integer range with '-' delimiter. Valid range 0-65535.",
        );
  }
  return p;
}

function validPorts(value: string): boolean {
  if (value === "*") return true;
  const match = /^(\d{1,5})(?:-(\d{1,5}))?$/.exec(value);
  if (!match) return false;
  const low = Number(match[1]);
  const high = Number(match[2] ?? match[1]);
  return low <= high && high <= 65535;
}

function renderRule(rule: SecurityRule): JsonObject {
  return {
    id: rule.id,
    name: rule.name,
    etag: rule.etag,
    type: `${NSG}/securityRules`,
    properties: {
      // Azure answers the list forms empty when the single forms are used.
      sourcePortRanges: [],
      destinationPortRanges: [],
      sourceAddressPrefixes: [],
      destinationAddressPrefixes: [],
      ...rule.properties,
      provisioningState: rule.provisioningState,
    },
  };
}

/** The rules every NSG has below the custom ones (priorities 65000-65500). */
const DEFAULT_RULES: [string, number, "Inbound" | "Outbound", "Allow" | "Deny", string, string, string][] = [
  [
    "AllowVnetInBound",
    65000,
    "Inbound",
    "Allow",
    "VirtualNetwork",
    "VirtualNetwork",
    "Allow inbound traffic from all VMs in VNET",
  ],
  [
    "AllowAzureLoadBalancerInBound",
    65001,
    "Inbound",
    "Allow",
    "AzureLoadBalancer",
    "*",
    "Allow inbound traffic from azure load balancer",
  ],
  ["DenyAllInBound", 65500, "Inbound", "Deny", "*", "*", "Deny all inbound traffic"],
  [
    "AllowVnetOutBound",
    65000,
    "Outbound",
    "Allow",
    "VirtualNetwork",
    "VirtualNetwork",
    "Allow outbound traffic from all VMs to all VMs in VNET",
  ],
  [
    "AllowInternetOutBound",
    65001,
    "Outbound",
    "Allow",
    "*",
    "Internet",
    "Allow outbound traffic from all VMs to Internet",
  ],
  ["DenyAllOutBound", 65500, "Outbound", "Deny", "*", "*", "Deny all outbound traffic"],
];

function defaultRules(nsg: SecurityGroup): JsonObject[] {
  return DEFAULT_RULES.map(([name, priority, direction, access, source, destination, description]) => ({
    id: `${nsg.id}/defaultSecurityRules/${name}`,
    name,
    etag: nsg.etag,
    type: `${NSG}/defaultSecurityRules`,
    properties: {
      description,
      protocol: "*",
      sourcePortRange: "*",
      destinationPortRange: "*",
      sourceAddressPrefix: source,
      destinationAddressPrefix: destination,
      access,
      priority,
      direction,
      sourcePortRanges: [],
      destinationPortRanges: [],
      sourceAddressPrefixes: [],
      destinationAddressPrefixes: [],
      provisioningState: "Succeeded",
    },
  }));
}

function renderSecurityGroup(state: NetworkState, nsg: SecurityGroup): JsonObject {
  const subnets = state.subnetsUsing(nsg.id);
  return renderResource(nsg, NSG, {
    securityRules: nsg.rules.map(renderRule),
    defaultSecurityRules: defaultRules(nsg),
    ...(subnets.length > 0 ? { subnets: subnets.map((id) => ({ id })) } : {}),
  });
}
