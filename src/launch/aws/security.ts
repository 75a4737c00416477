/** One security group per role; inbound rules converge to securityGroupRules (missing added, extra revoked). */
import {
  AuthorizeSecurityGroupIngressCommand,
  CreateSecurityGroupCommand,
  DescribeSecurityGroupsCommand,
  RevokeSecurityGroupIngressCommand,
  type IpPermission,
} from "@aws-sdk/client-ec2";
import { ROLES, type Role } from "../../discover/names";
import { isPlanned, plannedId } from "../changes";
import type { Context } from "./context";
import { asTagList, resourceName, ruleKey, securityGroupRules, tagsFor, type Rule } from "./desired";
import { assertOwned } from "./owner";

/** Observed permissions, one key per (protocol, ports, source) like ruleKey; IPv6 and prefix-list sources too. */
export function permissionKeys(permissions: IpPermission[]): Map<string, IpPermission> {
  const keys = new Map<string, IpPermission>();
  for (const p of permissions) {
    const base = { IpProtocol: p.IpProtocol, FromPort: p.FromPort, ToPort: p.ToPort };
    const head = `${p.IpProtocol}:${p.FromPort}-${p.ToPort}:`;
    for (const range of p.IpRanges ?? [])
      keys.set(head + range.CidrIp, { ...base, IpRanges: [{ CidrIp: range.CidrIp }] });
    for (const pair of p.UserIdGroupPairs ?? []) {
      keys.set(head + pair.GroupId, { ...base, UserIdGroupPairs: [{ GroupId: pair.GroupId }] });
    }
    // Never desired, so always extra: kept as keys so that converging revokes them.
    for (const range of p.Ipv6Ranges ?? [])
      keys.set(head + range.CidrIpv6, { ...base, Ipv6Ranges: [{ CidrIpv6: range.CidrIpv6 }] });
    for (const list of p.PrefixListIds ?? [])
      keys.set(head + list.PrefixListId, { ...base, PrefixListIds: [{ PrefixListId: list.PrefixListId }] });
  }
  return keys;
}

const permission = (rule: Rule, ids: Record<Role, string>): IpPermission => ({
  IpProtocol: rule.protocol,
  FromPort: rule.from,
  ToPort: rule.to,
  ...("cidr" in rule.source
    ? { IpRanges: [{ CidrIp: rule.source.cidr, Description: rule.description }] }
    : { UserIdGroupPairs: [{ GroupId: ids[rule.source.group], Description: rule.description }] }),
});

export async function ensureSecurityGroups(ctx: Context, vpcId: string): Promise<Record<Role, string>> {
  const { ec2 } = ctx.clients;
  const { spec } = ctx.inputs;
  // By name in the VPC (names are unique there): a group of our name without our id is refused.
  const names = ROLES.map((role) => resourceName(spec.name, role));
  const found = isPlanned(vpcId)
    ? []
    : ((
        await ec2.send(
          new DescribeSecurityGroupsCommand({
            Filters: [
              { Name: "vpc-id", Values: [vpcId] },
              { Name: "group-name", Values: names },
            ],
          }),
        )
      ).SecurityGroups ?? []);
  for (const group of found)
    assertOwned("security-group", `${group.GroupName} (${group.GroupId})`, group.Tags, ctx.clusterId);
  const ids = {} as Record<Role, string>;
  for (const role of ROLES) {
    const name = resourceName(spec.name, role);
    const group = found.find((g) => g.GroupName === name);
    ids[role] =
      group?.GroupId ?? (await createSecurityGroup(ctx, vpcId, role, `kubebake ${spec.name} ${role}`));
  }
  const rules = securityGroupRules(spec);
  for (const role of ROLES) {
    const group = found.find((g) => g.GroupId === ids[role]);
    await convergeIngress(
      ctx,
      resourceName(spec.name, role),
      ids[role],
      group?.IpPermissions ?? [],
      rules[role],
      ids,
    );
  }
  return ids;
}

/**
 * Converges a group's inbound rules to `rules`: what is missing is authorized, what the spec does not
 * have is revoked (`ids` names the role groups that rules may take as their source).
 */
export async function convergeIngress(
  ctx: Context,
  name: string,
  groupId: string,
  current: IpPermission[],
  rules: Rule[],
  ids: Record<Role, string>,
): Promise<void> {
  const { ec2 } = ctx.clients;
  const observed = permissionKeys(current);
  const desired = new Map(rules.map((rule) => [ruleKey(rule, ids), rule]));
  const missing = [...desired].filter(([key]) => !observed.has(key)).map(([, rule]) => rule);
  const extra = [...observed].filter(([key]) => !desired.has(key)).map(([, p]) => p);
  if (missing.length > 0) {
    await ctx.rec.make(
      {
        action: "update",
        kind: "security-group",
        name,
        detail: `allow ${missing.map((r) => r.description).join("; ")}`,
      },
      () =>
        ec2.send(
          new AuthorizeSecurityGroupIngressCommand({
            GroupId: groupId,
            IpPermissions: missing.map((rule) => permission(rule, ids)),
          }),
        ),
      undefined,
    );
  }
  if (extra.length > 0) {
    await ctx.rec.make(
      {
        action: "update",
        kind: "security-group",
        name,
        detail: `revoke ${extra.length} rule(s) not in the spec`,
      },
      () => ec2.send(new RevokeSecurityGroupIngressCommand({ GroupId: groupId, IpPermissions: extra })),
      undefined,
    );
  }
}

/**
 * Creates the cluster's security group `kubebake-<cluster>-<group>` in the VPC, tagged as its own (or,
 * in a plan, records that it would): its id.
 */
export async function createSecurityGroup(
  ctx: Context,
  vpcId: string,
  group: string,
  description: string,
): Promise<string> {
  const { spec } = ctx.inputs;
  const logical = `sg-${group}`;
  return ctx.rec.make(
    { action: "create", kind: "security-group", name: resourceName(spec.name, group) },
    async () =>
      (
        await ctx.clients.ec2.send(
          new CreateSecurityGroupCommand({
            GroupName: resourceName(spec.name, group),
            Description: description,
            VpcId: vpcId,
            TagSpecifications: [
              { ResourceType: "security-group", Tags: asTagList(tagsFor(spec, logical, ctx.clusterId)) },
            ],
          }),
        )
      ).GroupId!,
    plannedId(logical),
  );
}
