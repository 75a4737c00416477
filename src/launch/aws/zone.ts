/** The cluster's private hosted zone `<cluster>.<domain>`, associated with its VPC. */
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
import { clusterZoneName, tagsFor } from "./desired";

export const bareZoneId = (id: string) => id.replace(/^\/hostedzone\//, "");

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
      vpcs: (detail.VPCs ?? []).map((v) => v.VPCId!),
      tags: Object.fromEntries((tags.ResourceTagSet?.Tags ?? []).map((t) => [t.Key!, t.Value ?? ""])),
    });
  }
  return zones;
}

export async function ensureZone(ctx: Context, vpcId: string): Promise<string> {
  const { spec } = ctx.inputs;
  const name = clusterZoneName(ctx.inputs);
  const zone = isPlanned(vpcId)
    ? undefined
    : (await zonesNamed(ctx, name)).find((z) => z.vpcs.includes(vpcId));
  const want = tagsFor(spec, "zone");
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
            // Unique per attempt: a retry after a failure finds the zone by name and VPC instead.
            CallerReference: `kubebake-${spec.name}-${vpcId}-${Date.now()}`,
            VPC: { VPCId: vpcId, VPCRegion: spec.region as VPCRegion },
            HostedZoneConfig: { PrivateZone: true, Comment: `kubebake ${spec.name} discovery` },
          }),
        );
        const zoneId = bareZoneId(created.HostedZone!.Id!);
        // Zones take no tags at creation; a failure right here is repaired by the next apply (found by name and VPC).
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
