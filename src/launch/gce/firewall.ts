/**
 * The cluster's firewall rules: exactly those of firewallRules, each by its name. A rule that differs is
 * replaced in place (update), one the spec no longer has (an access range removed) is deleted; only rules
 * that carry the cluster id are ever changed.
 */
import { isPlanned } from "../changes";
import { completed, resourcePath, type GceContext } from "./context";
import { firewallBody, firewallRules, ownerIn, prefix } from "./desired";
import { foreign } from "./owner";
import type { NetworkLinks } from "./network";

type Body = ReturnType<typeof firewallBody>;
interface Found {
  name?: string | null;
  description?: string | null;
  network?: string | null;
  direction?: string | null;
  priority?: number | null;
  allowed?: { IPProtocol?: string | null; ports?: string[] | null }[] | null;
  sourceRanges?: string[] | null;
  sourceServiceAccounts?: string[] | null;
  targetServiceAccounts?: string[] | null;
}

/** The fields apply sets, in one comparable form. */
const shape = (rule: Found) =>
  JSON.stringify({
    description: rule.description ?? "",
    network: resourcePath(rule.network),
    direction: rule.direction ?? "INGRESS",
    priority: Number(rule.priority ?? 1000),
    allowed: (rule.allowed ?? []).map((a) => ({ p: a.IPProtocol, ports: [...(a.ports ?? [])].sort() })),
    sourceRanges: [...(rule.sourceRanges ?? [])].sort(),
    sourceServiceAccounts: [...(rule.sourceServiceAccounts ?? [])].sort(),
    targetServiceAccounts: [...(rule.targetServiceAccounts ?? [])].sort(),
  });

/** The project's rules whose names start with the cluster's prefix (another cluster's may too: checked). */
export async function clusterFirewalls(ctx: Pick<GceContext, "clients">, cluster: string): Promise<Found[]> {
  const { clients } = ctx;
  const found: Found[] = [];
  let pageToken: string | undefined;
  do {
    const [items, , page] = await clients.firewalls.list(
      { project: clients.project, filter: `name eq "${prefix(cluster)}-.*"`, pageToken, maxResults: 500 },
      { autoPaginate: false },
    );
    found.push(...(items as Found[]));
    pageToken = (page as { nextPageToken?: string } | undefined)?.nextPageToken || undefined;
  } while (pageToken);
  return found;
}

export async function ensureFirewall(ctx: GceContext, links: NetworkLinks): Promise<void> {
  const { clients, inputs, rec, clusterId } = ctx;
  const { project } = clients;
  const existing = isPlanned(clusterId) ? [] : await clusterFirewalls(ctx, inputs.spec.name);
  const byName = new Map(existing.map((rule) => [rule.name!, rule]));
  const wanted: Body[] = firewallRules(inputs.spec).map((rule) =>
    firewallBody(inputs, clusterId, links.network, rule),
  );
  for (const body of wanted) {
    const found = byName.get(body.name);
    if (found && ownerIn(found.description) !== clusterId)
      throw foreign("firewall rule", body.name, ownerIn(found.description));
    if (found && shape(found) === shape(body)) continue;
    const detail = `${body.allowed[0]!.IPProtocol} ${body.allowed[0]!.ports.join(",")}`;
    await rec.make(
      { action: found ? "update" : "create", kind: "firewall-rule", name: body.name, detail },
      async () =>
        completed(
          ctx,
          found
            ? await clients.firewalls.update({ project, firewall: body.name, firewallResource: body })
            : await clients.firewalls.insert({ project, firewallResource: body }),
          `${found ? "update" : "create"} firewall rule ${body.name}`,
        ),
      undefined,
    );
  }
  const names = new Set(wanted.map((body) => body.name));
  for (const rule of existing) {
    if (names.has(rule.name!) || ownerIn(rule.description) !== clusterId) continue;
    await deleteFirewallRule(ctx, rule.name!);
  }
}

/** Deletes one of the cluster's rules (the caller checked it carries the cluster id). */
export async function deleteFirewallRule(
  ctx: Pick<GceContext, "clients" | "rec">,
  name: string,
): Promise<void> {
  const { clients } = ctx;
  await ctx.rec.make(
    { action: "delete", kind: "firewall-rule", name },
    async () =>
      completed(
        ctx,
        await clients.firewalls.delete({ project: clients.project, firewall: name }),
        `delete firewall rule ${name}`,
      ),
    undefined,
  );
}
