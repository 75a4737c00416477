/**
 * The cluster's private hosted zone `<cluster>.<domain>`, associated with its VPC. Route 53 is global and
 * allows private zones of one name on different VPCs, so a zone is ours only if it carries the cluster
 * id (its owner tag, or, before the tag is written, a CallerReference made from the id).
 */
import {
  ChangeTagsForResourceCommand,
  CreateHostedZoneCommand,
  GetHostedZoneCommand,
  ListHostedZonesByNameCommand,
  ListTagsForResourceCommand,
  type VPCRegion,
} from "@aws-sdk/client-route-53";
import { isPlanned, plannedId } from "../changes";
import type { Context } from "./context";
import { clusterZoneName, OWNER_TAG, tagsFor } from "./desired";
import { foreign } from "./owner";

export const bareZoneId = (id: string) => id.replace(/^\/hostedzone\//, "");

/** CallerReference of a zone kubebake creates: immutable, so it marks the zone ours until its tags are written. */
const callerReferencePrefix = (clusterId: string) => `kubebake-${clusterId}-`;

/** Whether this cluster id owns the zone: its owner tag says so, or it has none and we created it. */
export const zoneOwned = (
  zone: { tags: Record<string, string>; callerReference: string },
  clusterId: string,
) =>
  zone.tags[OWNER_TAG] === clusterId ||
  (zone.tags[OWNER_TAG] === undefined && zone.callerReference.startsWith(callerReferencePrefix(clusterId)));

/** The private zones named `name` that this cluster id owns (`kubebake dns deploy|sync`). */
export async function ownedZones(ctx: Pick<Context, "clients">, name: string, clusterId: string) {
  return (await zonesNamed(ctx, name)).filter((zone) => zoneOwned(zone, clusterId));
}

/** Private zones named `name`, with their VPCs and tags. */
export async function zonesNamed(ctx: Pick<Context, "clients">, name: string) {
  const { route53 } = ctx.clients;
  const listed = await route53.send(new ListHostedZonesByNameCommand({ DNSName: name, MaxItems: 100 }));
  const zones = [];
  for (const zone of listed.HostedZones ?? []) {
    if (zone.Name?.toLowerCase() !== name || !zone.Config?.PrivateZone) continue;
    const id = bareZoneId(zone.Id!);
    const detail = await route53.send(new GetHostedZoneCommand({ Id: id }));
    const tags = await route53.send(
      new ListTagsForResourceCommand({ ResourceType: "hostedzone", ResourceId: id }),
    );
    zones.push({
      id,
      callerReference: zone.CallerReference ?? "",
      vpcs: (detail.VPCs ?? []).map((v) => v.VPCId!),
      tags: Object.fromEntries((tags.ResourceTagSet?.Tags ?? []).map((t) => [t.Key!, t.Value ?? ""])),
    });
  }
  return zones;
}

/**
 * The zone of the cluster's name on its VPC, if any; one without the cluster id is refused (exit 8).
 * Zones of this name on other VPCs are other clusters' (another region's, or not kubebake's): ignored.
 */
export async function ownZoneOnVpc(
  ctx: Pick<Context, "clients" | "inputs">,
  vpcId: string,
  clusterId: string | undefined,
) {
  const name = clusterZoneName(ctx.inputs);
  const onVpc = (await zonesNamed(ctx, name)).filter((z) => z.vpcs.includes(vpcId));
  const alien = onVpc.find((z) => !zoneOwned(z, clusterId ?? ""));
  if (alien) throw foreign("hosted-zone", `${name} (${alien.id}, on ${vpcId})`, alien.tags[OWNER_TAG]);
  return onVpc[0];
}

export async function ensureZone(ctx: Context, vpcId: string): Promise<string> {
  const { spec } = ctx.inputs;
  const name = clusterZoneName(ctx.inputs);
  const zone = isPlanned(vpcId) ? undefined : await ownZoneOnVpc(ctx, vpcId, ctx.clusterId);
  const want = tagsFor(spec, "zone", ctx.clusterId);
  const tag = (zoneId: string, tags: [string, string][]) =>
    ctx.clients.route53.send(
      new ChangeTagsForResourceCommand({
        ResourceType: "hostedzone",
        ResourceId: zoneId,
        AddTags: tags.map(([Key, Value]) => ({ Key, Value })),
      }),
    );
  if (!zone) {
    return ctx.rec.make(
      { action: "create", kind: "hosted-zone", name, detail: `private, ${vpcId}` },
      async () => {
        const created = await ctx.clients.route53.send(
          new CreateHostedZoneCommand({
            Name: name,
            // Unique per attempt (a retry finds the zone by name, VPC and this prefix instead); names the owner.
            CallerReference: `${callerReferencePrefix(ctx.clusterId)}${Date.now()}`,
            VPC: { VPCId: vpcId, VPCRegion: spec.region as VPCRegion },
            HostedZoneConfig: { PrivateZone: true, Comment: `kubebake ${spec.name} discovery` },
          }),
        );
        const zoneId = bareZoneId(created.HostedZone!.Id!);
        // Zones take no tags at creation; a failure right here is repaired by the next apply (found by name,
        // VPC and CallerReference).
        await tag(zoneId, Object.entries(want));
        return zoneId;
      },
      plannedId("zone"),
    );
  }
  const missing = Object.entries(want).filter(([k, v]) => zone.tags[k] !== v);
  if (missing.length > 0) {
    await ctx.rec.make(
      { action: "update", kind: "hosted-zone", name, detail: `tags ${missing.map(([k]) => k).join(", ")}` },
      () => tag(zone.id, missing),
      undefined,
    );
  }
  return zone.id;
}
