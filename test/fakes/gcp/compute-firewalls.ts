import type { ComputeResourcesState } from "./compute-resources";
import {
  alreadyExists,
  badName,
  existingNetwork,
  globalPath,
  gone,
  invalid,
  list,
  listAnswer,
  mergePatch,
  NAME,
  notFound,
  now,
  parseCidr,
  parseReference,
  sameField,
  urlOf,
  type Json,
} from "./compute-common";
import { googleError, type FakeRequest, type FakeResponse, type GoogleApiFake } from "./fake";

/**
 * Firewall rules: GCE's checks of a rule as a whole (one of allowed/denied, ports only for tcp/udp/sctp,
 * service accounts not mixed with tags, an INGRESS rule needs a source), patch as a JSON merge patch and
 * update (PUT) as a replacement, each taking effect when its global operation is DONE.
 */
const PORTED = new Set(["tcp", "udp", "sctp", "6", "17", "132"]);
const PROTOCOLS = new Set(["tcp", "udp", "icmp", "esp", "ah", "sctp", "ipip", "all"]);

/** GCE's rules for a firewall rule as a whole (after a patch is merged). */
function firewallProblem(rule: Json): FakeResponse | undefined {
  const [allowed, denied] = [list(rule.allowed), list(rule.denied)];
  if (allowed.length > 0 === denied.length > 0)
    return invalid("resource.allowed", allowed, "Exactly one of allowed or denied must be specified.");
  for (const [field, entries] of [
    ["allowed", allowed],
    ["denied", denied],
  ] as const)
    for (const [i, entry] of (entries as Json[]).entries()) {
      const protocol = String(entry.IPProtocol ?? "").toLowerCase();
      const number = /^\d+$/.test(protocol) && Number(protocol) <= 255;
      if (!PROTOCOLS.has(protocol) && !number)
        return invalid(`resource.${field}[${i}].IPProtocol`, entry.IPProtocol ?? "", "Unknown protocol.");
      for (const port of list(entry.ports)) {
        const range = /^(\d+)(?:-(\d+))?$/.exec(String(port));
        if (!PORTED.has(protocol) || !range || Number(range[2] ?? range[1]) > 65535)
          return invalid(
            `resource.${field}[${i}].ports`,
            port,
            "Ports apply to tcp, udp and sctp: N or N-M.",
          );
      }
    }
  const priority = Number(rule.priority);
  if (!Number.isInteger(priority) || priority < 0 || priority > 65535)
    return invalid("resource.priority", rule.priority, "Must be between 0 and 65535.");
  for (const field of ["sourceRanges", "destinationRanges"])
    for (const range of list(rule[field]))
      if (!parseCidr(range, true)) return invalid(`resource.${field}`, range, "Invalid IPv4 range.");
  for (const field of ["sourceTags", "targetTags"])
    for (const tag of list(rule[field]))
      if (!NAME.test(String(tag))) return invalid(`resource.${field}`, tag, "Tags must be RFC 1035 names.");
  for (const field of ["sourceServiceAccounts", "targetServiceAccounts"])
    for (const account of list(rule[field]))
      if (!/^[^@\s]+@[^@\s]+$/.test(String(account)))
        return invalid(`resource.${field}`, account, "Must be a service account's email.");
  const has = (field: string) => list(rule[field]).length > 0;
  // "sourceServiceAccounts cannot be used at the same time as sourceTags or targetTags", and the converse.
  if (has("sourceServiceAccounts") && (has("sourceTags") || has("targetTags")))
    return invalid("resource.sourceServiceAccounts", rule.sourceServiceAccounts, "Cannot be used with tags.");
  if (has("targetServiceAccounts") && (has("targetTags") || has("sourceTags")))
    return invalid("resource.targetServiceAccounts", rule.targetServiceAccounts, "Cannot be used with tags.");
  if (rule.direction === "EGRESS" && (has("sourceTags") || has("sourceServiceAccounts")))
    return invalid("resource.direction", "EGRESS", "An egress rule cannot have source tags or accounts.");
  if (
    rule.direction === "INGRESS" &&
    !has("sourceRanges") &&
    !has("sourceTags") &&
    !has("sourceServiceAccounts")
  )
    return invalid(
      "resource.sourceRanges",
      [],
      "An INGRESS rule needs one of sourceRanges, sourceTags or sourceServiceAccounts.",
    );
  return undefined;
}

export function installFirewalls(fake: GoogleApiFake, state: ComputeResourcesState): void {
  const pathOf = (request: FakeRequest, name = request.params.firewall!) =>
    globalPath(request, "firewalls", name);
  const withDefaults = (request: FakeRequest, rule: Json, network: string): Json => {
    const egress = rule.direction === "EGRESS";
    return {
      direction: "INGRESS",
      priority: 1000,
      disabled: false,
      logConfig: { enable: false },
      ...(egress && !rule.destinationRanges ? { destinationRanges: ["0.0.0.0/0"] } : {}),
      ...rule,
      kind: "compute#firewall",
      selfLink: urlOf(request, pathOf(request, String(rule.name))),
      network: urlOf(request, globalPath(request, "networks", network)),
    };
  };
  fake.on("compute.firewalls.get", (request) => {
    const found = state.firewalls.get(request.params.firewall!);
    return found ? { json: found } : notFound(pathOf(request));
  });
  fake.on("compute.firewalls.list", (request) =>
    listAnswer(request, "compute#firewallList", `projects/${request.params.project}/global/firewalls`, [
      ...state.firewalls.values(),
    ]),
  );
  fake.on("compute.firewalls.insert", (request) => {
    const body = (request.json ?? {}) as Json;
    const refused = badName("resource.name", body.name);
    if (refused) return refused;
    const path = pathOf(request, String(body.name));
    if (state.firewalls.has(String(body.name)) || state.pending.has(path)) return alreadyExists(path);
    // GCE puts a rule without a network on the project's `default` network.
    const network = existingNetwork(
      state,
      request,
      "resource.network",
      body.network ?? "global/networks/default",
    );
    if (typeof network !== "string") return network;
    const rule = withDefaults(request, body, network);
    const problem = firewallProblem(rule);
    if (problem) return problem;
    Object.assign(rule, { id: state.compute.nextId(), creationTimestamp: now() });
    return state.operate(
      request,
      "insert",
      rule,
      () => {
        if (!state.networks.has(network)) return gone(globalPath(request, "networks", network));
        state.firewalls.set(String(body.name), rule);
      },
      { reserve: path },
    );
  });
  // patch merges (JSON merge patch: a field given replaces, null clears); update (PUT) replaces.
  const change = (replace: boolean) => (request: FakeRequest) => {
    const name = request.params.firewall!;
    const found = state.firewalls.get(name);
    if (!found) return notFound(pathOf(request));
    const body = (request.json ?? {}) as Json;
    if (body.name === undefined && !replace)
      return googleError(400, "Required field 'resource.name' not specified", "required");
    if (body.name !== undefined && body.name !== name)
      return invalid("resource.name", body.name, `The firewall's name is ${name}; it cannot be changed.`);
    const network = parseReference(found.network, "", "networks")!.name;
    if (body.network !== undefined && !sameField("network", found.network, body.network))
      return invalid("resource.network", body.network, "A firewall's network cannot be changed.");
    const merged = mergePatch(replace ? {} : found, body);
    const rule = withDefaults(request, { ...merged, name }, network);
    Object.assign(rule, { id: found.id, creationTimestamp: found.creationTimestamp });
    const problem = firewallProblem(rule);
    if (problem) return problem;
    return state.operate(request, replace ? "update" : "patch", found, () => {
      if (!state.firewalls.has(name)) return gone(pathOf(request));
      state.firewalls.set(name, rule);
    });
  };
  fake.on("compute.firewalls.patch", change(false));
  fake.on("compute.firewalls.update", change(true));
  fake.on("compute.firewalls.delete", (request) => {
    const found = state.firewalls.get(request.params.firewall!);
    if (!found) return notFound(pathOf(request));
    return state.operate(request, "delete", found, () => {
      if (!state.firewalls.delete(request.params.firewall!)) return gone(pathOf(request));
    });
  });
}
