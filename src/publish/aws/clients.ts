/** The AWS clients a publish uses, per region, with one call log (tests count calls and inject failures). */
import { EBSClient } from "@aws-sdk/client-ebs";
import { EC2Client } from "@aws-sdk/client-ec2";
import { STSClient } from "@aws-sdk/client-sts";
import type {
  HandlerExecutionContext,
  InitializeHandler,
  InitializeHandlerArguments,
  MiddlewareStack,
} from "@smithy/types";
import { ExitCode, KubebakeError } from "../../errors";
import type { EbsSender } from "./upload";

const FAILED_CALL = "kubebakeFailedCall";

export interface RegionClients {
  region: string;
  ebs: EbsSender;
  ec2: EC2Client;
  sts: STSClient;
}

export interface PublishClients {
  /** The clients of one region (made once per region). */
  inRegion(region: string): RegionClients;
  /** Every call made, in order: `Service:Operation@region`. */
  calls: string[];
}

export interface PublishClientOptions {
  /** One endpoint for every service (an emulator); AWS's own endpoints when absent. */
  endpoint?: string;
  credentials?: { accessKeyId: string; secretAccessKey: string };
  /** Called before each request with its `Service:Operation` and input; may throw to simulate a failure. */
  beforeCall?: (call: string, input: unknown) => void;
  /** Replaces the EBS client (a model of the EBS direct API in tests). */
  ebs?: (region: string) => EbsSender;
}

export function publishClients(options: PublishClientOptions = {}): PublishClients {
  const calls: string[] = [];
  const made = new Map<string, RegionClients>();
  const logged = <T extends { middlewareStack: unknown }>(service: string, region: string, client: T): T => {
    // Every client's stack takes the same initialize middleware; the union of their types does not say so.
    (client.middlewareStack as MiddlewareStack<object, object>).add(
      (next: InitializeHandler<object, object>, context: HandlerExecutionContext) =>
        async (args: InitializeHandlerArguments<object>) => {
          const call = `${service}:${String(context.commandName).replace(/Command$/, "")}`;
          calls.push(`${call}@${region}`);
          try {
            options.beforeCall?.(call, args.input);
            return await next(args);
          } catch (error) {
            // The call that failed, for the message: cleanup calls may follow before it is reported.
            if (error && typeof error === "object" && !(FAILED_CALL in error))
              Object.assign(error, { [FAILED_CALL]: `${call}@${region}` });
            throw error;
          }
        },
      { step: "initialize", name: "kubebakeCallLog" },
    );
    return client;
  };
  return {
    calls,
    inRegion(region) {
      let clients = made.get(region);
      if (!clients) {
        const config = {
          region,
          ...(options.endpoint ? { endpoint: options.endpoint } : {}),
          ...(options.credentials ? { credentials: options.credentials } : {}),
        };
        clients = {
          region,
          ebs: options.ebs?.(region) ?? logged("EBS", region, new EBSClient(config)),
          ec2: logged("EC2", region, new EC2Client(config)),
          sts: logged("STS", region, new STSClient(config)),
        };
        made.set(region, clients);
      }
      return clients;
    },
  };
}

/** An AWS SDK failure as the cloud-error exit code, naming the call; anything else is passed on. */
export function asCloudError(calls: string[], error: unknown): unknown {
  if (error instanceof KubebakeError) return error;
  const e = error as Error & { $metadata?: unknown; Code?: string };
  if (e?.$metadata !== undefined || e?.name === "CredentialsProviderError") {
    const call = (e as { [FAILED_CALL]?: string })[FAILED_CALL] ?? calls.at(-1) ?? "AWS";
    const message = String(e.message ?? "").split("\n")[0];
    return new KubebakeError(`${call} failed: ${e.Code ?? e.name}: ${message}`, ExitCode.cloudFailed);
  }
  return error;
}
