/** The AWS clients of one command, with a call log (tests count mutating calls and inject failures). */
import { AutoScalingClient } from "@aws-sdk/client-auto-scaling";
import { EC2Client } from "@aws-sdk/client-ec2";
import { EventBridgeClient } from "@aws-sdk/client-eventbridge";
import { IAMClient } from "@aws-sdk/client-iam";
import { KMSClient } from "@aws-sdk/client-kms";
import { LambdaClient } from "@aws-sdk/client-lambda";
import { Route53Client } from "@aws-sdk/client-route-53";
import { S3Client } from "@aws-sdk/client-s3";
import { SSMClient } from "@aws-sdk/client-ssm";
import { STSClient } from "@aws-sdk/client-sts";
import type {
  HandlerExecutionContext,
  InitializeHandler,
  InitializeHandlerArguments,
  MiddlewareStack,
} from "@smithy/types";

export interface AwsClients {
  ec2: EC2Client;
  autoScaling: AutoScalingClient;
  iam: IAMClient;
  kms: KMSClient;
  ssm: SSMClient;
  route53: Route53Client;
  s3: S3Client;
  lambda: LambdaClient;
  events: EventBridgeClient;
  sts: STSClient;
  /** Every call made, in order: `Service:Operation`. */
  calls: string[];
}

export interface ClientOptions {
  region: string;
  /** One endpoint for every service (an emulator); AWS's own endpoints when absent. */
  endpoint?: string;
  credentials?: { accessKeyId: string; secretAccessKey: string };
  /** Called before each request with its `Service:Operation`; may throw to simulate a failure. */
  beforeCall?: (call: string) => void;
  /** Called after each successful request; may throw to simulate a lost response. */
  afterCall?: (call: string) => void;
}

const READ = /:(Describe|List|Get|Head)/;
export const isMutating = (call: string) => !READ.test(call);

export function awsClients(options: ClientOptions): AwsClients {
  const calls: string[] = [];
  const config = {
    region: options.region,
    ...(options.endpoint ? { endpoint: options.endpoint } : {}),
    ...(options.credentials ? { credentials: options.credentials } : {}),
  };
  const clients = {
    ec2: new EC2Client(config),
    autoScaling: new AutoScalingClient(config),
    iam: new IAMClient(config),
    kms: new KMSClient(config),
    ssm: new SSMClient(config),
    route53: new Route53Client(config),
    // An emulator serves buckets under its one host (path style); AWS under each bucket's own host name.
    s3: new S3Client({ ...config, ...(options.endpoint ? { forcePathStyle: true } : {}) }),
    lambda: new LambdaClient(config),
    events: new EventBridgeClient(config),
    sts: new STSClient(config),
  };
  for (const [service, client] of Object.entries(clients)) {
    // Every client's stack takes the same initialize middleware; the union of their types does not say so.
    (client.middlewareStack as unknown as MiddlewareStack<object, object>).add(
      (next: InitializeHandler<object, object>, context: HandlerExecutionContext) =>
        async (args: InitializeHandlerArguments<object>) => {
          const call = `${service}:${String(context.commandName).replace(/Command$/, "")}`;
          calls.push(call);
          options.beforeCall?.(call);
          const output = await next(args);
          options.afterCall?.(call);
          return output;
        },
      { step: "initialize", name: "kubebakeCallLog" },
    );
  }
  return { ...clients, calls };
}

/** The codes AWS services use for "no such resource". */
const NOT_FOUND = /NotFound|NoSuchEntity/;

/** A read whose "not found" answer means the resource is absent (undefined); other errors propagate. */
export async function ifExists<T>(read: () => Promise<T>): Promise<T | undefined> {
  try {
    return await read();
  } catch (error) {
    if (NOT_FOUND.test(awsErrorCode(error))) return undefined;
    throw error;
  }
}

/** The error's AWS code (`NoSuchEntity`, `InvalidGroup.NotFound`…) or its name. */
export const awsErrorCode = (error: unknown) =>
  (error as { Code?: string; name?: string })?.Code ?? (error as Error)?.name ?? "";
