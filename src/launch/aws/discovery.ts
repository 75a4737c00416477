/**
 * `kubebake dns deploy`: the discovery function, its role, the EventBridge rules that invoke it (the
 * cluster's Auto Scaling events and a one-minute schedule, since events are best-effort) and their
 * permissions to invoke it.
 */
import {
  DescribeRuleCommand,
  ListTagsForResourceCommand,
  ListTargetsByRuleCommand,
  PutRuleCommand,
  PutTargetsCommand,
} from "@aws-sdk/client-eventbridge";
import {
  AddPermissionCommand,
  CreateFunctionCommand,
  GetFunctionCommand,
  GetPolicyCommand,
  PutFunctionConcurrencyCommand,
  UpdateFunctionCodeCommand,
  UpdateFunctionConfigurationCommand,
} from "@aws-sdk/client-lambda";
import { createHash } from "node:crypto";
import { readFileSync } from "node:fs";
import { isDeepStrictEqual } from "node:util";
import { join } from "node:path";
import { discoveryEnvironment } from "../../discover/config";
import { packageRoot } from "../../util/package-root";
import { awsErrorCode, ifExists } from "./clients";
import type { Context } from "./context";
import {
  asTagList,
  assumeRolePolicy,
  autoScalingEventPattern,
  discoveryConfig,
  discoveryFunctionName,
  discoveryPolicy,
  discoveryRoleName,
  resourceName,
  tagsFor,
} from "./desired";
import { ensureRole } from "./iam";
import { assertOwned } from "./owner";

export const discoveryBundle = () => join(packageRoot(), "dist", "lambdas", "dns-discovery.zip");
export const eventsRuleName = (cluster: string) => resourceName(cluster, "asg-events");
export const scheduleRuleName = (cluster: string) => resourceName(cluster, "dns-schedule");

/** Reserved concurrency of the discovery function: invocations never overlap. */
export const DISCOVERY_CONCURRENCY = 1;

export async function ensureDiscovery(ctx: Context, zoneId: string): Promise<void> {
  const { spec } = ctx.inputs;
  const functionName = discoveryFunctionName(spec.name);
  const roleArn = await ensureRole(
    ctx,
    discoveryRoleName(spec),
    "dns-discovery",
    assumeRolePolicy("lambda.amazonaws.com"),
    discoveryPolicy(ctx.inputs, zoneId),
  );
  const zip = readFileSync(discoveryBundle());
  const configuration = {
    // Lambda deprecated nodejs20.x with Node 20's end of life (April 2026); the bundle targets Node 20 and runs on 22.
    Runtime: "nodejs22.x" as const,
    Handler: "index.handler",
    Role: roleArn,
    Timeout: 60,
    MemorySize: 256,
    Environment: {
      Variables: discoveryEnvironment(discoveryConfig(ctx.inputs, zoneId)),
    },
    // One JSON object per log line, so failures can be filtered and alarmed on by field.
    LoggingConfig: { LogFormat: "JSON" as const },
  };
  const { lambda } = ctx.clients;
  const got = await ifExists(() => lambda.send(new GetFunctionCommand({ FunctionName: functionName })));
  if (got) assertOwned("lambda-function", functionName, got.Tags, ctx.clusterId);
  const found = got?.Configuration;
  let functionArn = found?.FunctionArn;
  if (!found) {
    functionArn = await ctx.rec.make(
      { action: "create", kind: "lambda-function", name: functionName, detail: `${zip.length} bytes` },
      () =>
        createFunction(ctx, {
          FunctionName: functionName,
          Code: { ZipFile: zip },
          Tags: tagsFor(spec, "dns-discovery", ctx.clusterId),
          ...configuration,
        }),
      `arn:${ctx.inputs.partition}:lambda:${spec.region}:${ctx.inputs.account}:function:${functionName}`,
    );
  } else {
    const sha = createHash("sha256").update(zip).digest("base64");
    if (found.CodeSha256 !== sha) {
      await ctx.rec.make(
        { action: "update", kind: "lambda-function", name: functionName, detail: "code" },
        () => lambda.send(new UpdateFunctionCodeCommand({ FunctionName: functionName, ZipFile: zip })),
        undefined,
      );
    }
    const current = {
      Runtime: found.Runtime,
      Handler: found.Handler,
      Role: found.Role,
      Timeout: found.Timeout,
      MemorySize: found.MemorySize,
      Environment: { Variables: found.Environment?.Variables ?? {} },
      // Lambda also returns the log group; only the format is ours to set.
      LoggingConfig: { LogFormat: found.LoggingConfig?.LogFormat ?? "Text" },
    };
    if (!isDeepStrictEqual(current, configuration)) {
      await ctx.rec.make(
        { action: "update", kind: "lambda-function", name: functionName, detail: "configuration" },
        () =>
          lambda.send(
            new UpdateFunctionConfigurationCommand({ FunctionName: functionName, ...configuration }),
          ),
        undefined,
      );
    }
  }

  // One invocation at a time (docs/architecture.md, "Discovery is a compare-and-swap"): an overlapping
  // invocation's stale DELETE could land after a newer one confirmed the record. EventBridge invokes
  // asynchronously, so a throttled event waits in Lambda's retry queue instead of being lost.
  if (got?.Concurrency?.ReservedConcurrentExecutions !== DISCOVERY_CONCURRENCY) {
    await ctx.rec.make(
      {
        action: "update",
        kind: "lambda-function",
        name: functionName,
        detail: `reserved concurrency ${DISCOVERY_CONCURRENCY}`,
      },
      () =>
        lambda.send(
          new PutFunctionConcurrencyCommand({
            FunctionName: functionName,
            ReservedConcurrentExecutions: DISCOVERY_CONCURRENCY,
          }),
        ),
      undefined,
    );
  }

  const rules = [
    {
      name: eventsRuleName(spec.name),
      EventPattern: JSON.stringify(autoScalingEventPattern(spec.name)),
      description: "Auto Scaling events of the cluster's groups",
    },
    {
      name: scheduleRuleName(spec.name),
      ScheduleExpression: "rate(1 minute)",
      description: "reconcile every minute",
    },
  ];
  // A function about to be created has no permissions yet.
  const policy = found ? await currentPolicy(ctx, functionName) : [];
  for (const rule of rules) {
    const { events } = ctx.clients;
    const existing = await ifExists(() => events.send(new DescribeRuleCommand({ Name: rule.name })));
    if (existing) {
      const tags = await events.send(new ListTagsForResourceCommand({ ResourceARN: existing.Arn }));
      assertOwned("eventbridge-rule", rule.name, tags.Tags, ctx.clusterId);
    }
    const same =
      existing &&
      existing.State === "ENABLED" &&
      (rule.EventPattern
        ? isDeepStrictEqual(JSON.parse(existing.EventPattern ?? "null"), JSON.parse(rule.EventPattern))
        : existing.ScheduleExpression === rule.ScheduleExpression);
    let ruleArn =
      existing?.Arn ??
      `arn:${ctx.inputs.partition}:events:${spec.region}:${ctx.inputs.account}:rule/${rule.name}`;
    if (!same) {
      ruleArn = await ctx.rec.make(
        {
          action: existing ? "update" : "create",
          kind: "eventbridge-rule",
          name: rule.name,
          detail: rule.description,
        },
        async () =>
          (
            await events.send(
              new PutRuleCommand({
                Name: rule.name,
                State: "ENABLED",
                Description: `kubebake ${spec.name}: ${rule.description}`,
                ...(rule.EventPattern
                  ? { EventPattern: rule.EventPattern }
                  : { ScheduleExpression: rule.ScheduleExpression }),
                ...(existing ? {} : { Tags: asTagList(tagsFor(spec, rule.name, ctx.clusterId)) }),
              }),
            )
          ).RuleArn!,
        ruleArn,
      );
    }
    const targets = existing
      ? ((await events.send(new ListTargetsByRuleCommand({ Rule: rule.name }))).Targets ?? [])
      : [];
    if (!targets.some((t) => t.Id === "dns-discovery" && t.Arn === functionArn)) {
      await ctx.rec.make(
        { action: "update", kind: "eventbridge-rule", name: rule.name, detail: `target ${functionName}` },
        () =>
          events.send(
            new PutTargetsCommand({ Rule: rule.name, Targets: [{ Id: "dns-discovery", Arn: functionArn }] }),
          ),
        undefined,
      );
    }
    const sid = `invoke-from-${rule.name}`;
    if (!policy.some((s) => s.Sid === sid)) {
      await ctx.rec.make(
        { action: "create", kind: "lambda-permission", name: `${functionName}/${sid}` },
        () =>
          lambda.send(
            new AddPermissionCommand({
              FunctionName: functionName,
              StatementId: sid,
              Action: "lambda:InvokeFunction",
              Principal: "events.amazonaws.com",
              SourceArn: ruleArn,
            }),
          ),
        undefined,
      );
    }
  }
}

async function currentPolicy(ctx: Context, functionName: string): Promise<{ Sid?: string }[]> {
  const answer = await ifExists(() =>
    ctx.clients.lambda.send(new GetPolicyCommand({ FunctionName: functionName })),
  );
  return answer?.Policy ? (JSON.parse(answer.Policy).Statement ?? []) : [];
}

/** A role created seconds ago may not be assumable by Lambda yet (IAM is eventually consistent): retry. */
async function createFunction(
  ctx: Context,
  input: ConstructorParameters<typeof CreateFunctionCommand>[0],
): Promise<string> {
  for (let attempt = 1; ; attempt++) {
    try {
      return (await ctx.clients.lambda.send(new CreateFunctionCommand(input))).FunctionArn!;
    } catch (error) {
      const retryable =
        awsErrorCode(error) === "InvalidParameterValueException" && /assume/i.test((error as Error).message);
      if (!retryable || attempt >= 10) throw error;
      await ctx.sleep(Math.max(ctx.pollMs, 1) * 3);
    }
  }
}
