/**
 * IAM roles with one inline policy each, and the nodes' instance profiles. IAM is global: names and paths
 * carry the cluster and its region, and only what carries the cluster id is changed.
 */
import {
  AddRoleToInstanceProfileCommand,
  CreateInstanceProfileCommand,
  CreateRoleCommand,
  DeleteRolePolicyCommand,
  DetachRolePolicyCommand,
  GetInstanceProfileCommand,
  GetRoleCommand,
  GetRolePolicyCommand,
  ListAttachedRolePoliciesCommand,
  ListRolePoliciesCommand,
  PutRolePolicyCommand,
  UpdateAssumeRolePolicyCommand,
} from "@aws-sdk/client-iam";
import { isDeepStrictEqual } from "node:util";
import { ROLES } from "../../discover/names";
import { ifExists } from "./clients";
import type { BaseContext, Context } from "./context";
import { asTagList, discoveryRoleName, iamPath, nodeRoleName, tagsFor } from "./desired";
import { assertOwned } from "./owner";

export const POLICY_NAME = "kubebake";

/**
 * Before anything is created: every role and instance profile name the cluster will use is free or
 * carries its id (none can before the id exists). A look-alike is refused, never adopted.
 */
export async function checkIamNames(ctx: BaseContext, clusterId: string | undefined): Promise<void> {
  const { iam } = ctx.clients;
  const { spec } = ctx.inputs;
  const id = clusterId ?? "";
  for (const name of [...ROLES.map((role) => nodeRoleName(spec, role)), discoveryRoleName(spec)]) {
    const role = (await ifExists(() => iam.send(new GetRoleCommand({ RoleName: name }))))?.Role;
    if (role) assertOwned("iam-role", name, role.Tags, id);
  }
  for (const name of ROLES.map((role) => nodeRoleName(spec, role))) {
    const profile = (
      await ifExists(() => iam.send(new GetInstanceProfileCommand({ InstanceProfileName: name })))
    )?.InstanceProfile;
    if (profile) assertOwned("instance-profile", name, profile.Tags, id);
  }
}

const parse = (document: string | undefined) =>
  document ? JSON.parse(decodeURIComponent(document)) : undefined;

/** Ensures role `name` with the trust and inline policy; returns its ARN. */
export async function ensureRole(
  ctx: Context,
  name: string,
  logical: string,
  trust: object,
  policy: object,
): Promise<string> {
  const { iam } = ctx.clients;
  const { spec } = ctx.inputs;
  const found = (await ifExists(() => iam.send(new GetRoleCommand({ RoleName: name }))))?.Role;
  if (found) assertOwned("iam-role", name, found.Tags, ctx.clusterId);
  const path = iamPath(spec.name, spec.region);
  const arn =
    found?.Arn ??
    (await ctx.rec.make(
      { action: "create", kind: "iam-role", name },
      async () =>
        (
          await iam.send(
            new CreateRoleCommand({
              RoleName: name,
              Path: path,
              AssumeRolePolicyDocument: JSON.stringify(trust),
              Description: `kubebake ${spec.name} ${spec.region} ${logical}`,
              Tags: asTagList(tagsFor(spec, logical, ctx.clusterId)),
            }),
          )
        ).Role!.Arn!,
      `arn:${ctx.inputs.partition}:iam::${ctx.inputs.account}:role${path}${name}`,
    ));
  if (found && !isDeepStrictEqual(parse(found.AssumeRolePolicyDocument), trust)) {
    await ctx.rec.make(
      { action: "update", kind: "iam-role", name, detail: "trust policy" },
      () =>
        iam.send(
          new UpdateAssumeRolePolicyCommand({ RoleName: name, PolicyDocument: JSON.stringify(trust) }),
        ),
      undefined,
    );
  }
  const current = found
    ? parse(
        (
          await ifExists(() =>
            iam.send(new GetRolePolicyCommand({ RoleName: name, PolicyName: POLICY_NAME })),
          )
        )?.PolicyDocument,
      )
    : undefined;
  if (!isDeepStrictEqual(current, policy)) {
    await ctx.rec.make(
      { action: current ? "update" : "create", kind: "iam-policy", name: `${name}/${POLICY_NAME}` },
      () =>
        iam.send(
          new PutRolePolicyCommand({
            RoleName: name,
            PolicyName: POLICY_NAME,
            PolicyDocument: JSON.stringify(policy),
          }),
        ),
      undefined,
    );
  }
  if (found) await removeStrayPolicies(ctx, name);
  return arn;
}

/** Policies added out of band — another inline policy, an attached managed one — widen the role: removed. */
async function removeStrayPolicies(ctx: Context, name: string): Promise<void> {
  const { iam } = ctx.clients;
  const inline: string[] = [];
  const attached: string[] = [];
  for (let Marker: string | undefined, more = true; more;) {
    const page = await iam.send(new ListRolePoliciesCommand({ RoleName: name, Marker }));
    inline.push(...(page.PolicyNames ?? []));
    [Marker, more] = [page.Marker, page.IsTruncated === true];
  }
  for (let Marker: string | undefined, more = true; more;) {
    const page = await iam.send(new ListAttachedRolePoliciesCommand({ RoleName: name, Marker }));
    attached.push(...(page.AttachedPolicies ?? []).map((p) => p.PolicyArn!));
    [Marker, more] = [page.Marker, page.IsTruncated === true];
  }
  for (const PolicyName of inline.filter((p) => p !== POLICY_NAME)) {
    await ctx.rec.make(
      { action: "delete", kind: "iam-policy", name: `${name}/${PolicyName}`, detail: "not in the spec" },
      () => iam.send(new DeleteRolePolicyCommand({ RoleName: name, PolicyName })),
      undefined,
    );
  }
  for (const PolicyArn of attached) {
    await ctx.rec.make(
      { action: "update", kind: "iam-role", name, detail: `detach ${PolicyArn}` },
      () => iam.send(new DetachRolePolicyCommand({ RoleName: name, PolicyArn })),
      undefined,
    );
  }
}

export async function ensureInstanceProfile(ctx: Context, name: string, logical: string): Promise<void> {
  const { iam } = ctx.clients;
  const found = (await ifExists(() => iam.send(new GetInstanceProfileCommand({ InstanceProfileName: name }))))
    ?.InstanceProfile;
  if (found) assertOwned("instance-profile", name, found.Tags, ctx.clusterId);
  if (!found) {
    await ctx.rec.make(
      { action: "create", kind: "instance-profile", name },
      () =>
        iam.send(
          new CreateInstanceProfileCommand({
            InstanceProfileName: name,
            Path: iamPath(ctx.inputs.spec.name, ctx.inputs.spec.region),
            Tags: asTagList(tagsFor(ctx.inputs.spec, logical, ctx.clusterId)),
          }),
        ),
      undefined,
    );
  }
  if (!found?.Roles?.some((r) => r.RoleName === name)) {
    await ctx.rec.make(
      { action: "update", kind: "instance-profile", name, detail: `add role ${name}` },
      () => iam.send(new AddRoleToInstanceProfileCommand({ InstanceProfileName: name, RoleName: name })),
      undefined,
    );
  }
}
