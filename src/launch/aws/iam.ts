/** IAM roles with one inline policy each, and the nodes' instance profiles. Paths scope them to the cluster. */
import {
  AddRoleToInstanceProfileCommand,
  CreateInstanceProfileCommand,
  CreateRoleCommand,
  GetInstanceProfileCommand,
  GetRoleCommand,
  GetRolePolicyCommand,
  PutRolePolicyCommand,
  UpdateAssumeRolePolicyCommand,
} from "@aws-sdk/client-iam";
import { isDeepStrictEqual } from "node:util";
import { ifExists } from "./clients";
import type { Context } from "./context";
import { asTagList, tagsFor } from "./desired";

export const POLICY_NAME = "kubebake";
export const iamPath = (cluster: string) => `/kubebake/${cluster}/`;

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
  const arn =
    found?.Arn ??
    (await ctx.rec.make(
      { action: "create", kind: "iam-role", name },
      async () =>
        (
          await iam.send(
            new CreateRoleCommand({
              RoleName: name,
              Path: iamPath(spec.name),
              AssumeRolePolicyDocument: JSON.stringify(trust),
              Description: `kubebake ${spec.name} ${logical}`,
              Tags: asTagList(tagsFor(spec, logical)),
            }),
          )
        ).Role!.Arn!,
      `arn:aws:iam::${ctx.inputs.account}:role${iamPath(spec.name)}${name}`,
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
  return arn;
}

export async function ensureInstanceProfile(ctx: Context, name: string, logical: string): Promise<void> {
  const { iam } = ctx.clients;
  const found = (await ifExists(() => iam.send(new GetInstanceProfileCommand({ InstanceProfileName: name }))))
    ?.InstanceProfile;
  if (!found) {
    await ctx.rec.make(
      { action: "create", kind: "instance-profile", name },
      () =>
        iam.send(
          new CreateInstanceProfileCommand({
            InstanceProfileName: name,
            Path: iamPath(ctx.inputs.spec.name),
            Tags: asTagList(tagsFor(ctx.inputs.spec, logical)),
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
