/**
 * The DNS-discovery Azure Function's work, apart from its registration (index.ts) so that tests drive it
 * without the Functions host: the same reconciliation from truth as the Lambda and the Cloud Function, run
 * every minute by a timer and by Event Grid when a VM of the cluster's resource group changes. Whatever
 * fired it, it reconciles all three records. A reconciliation that fails throws, after its log lines, so
 * that the trigger retries (the timer's retry policy; Event Grid redelivers). One JSON object per log line.
 */
import type { EventGridEvent, InvocationContext, Timer } from "@azure/functions";
import {
  AZURE_MAX_RECORD_VALUES,
  azureDiscoveryPorts,
  azureZoneName,
  parseAzureZoneId,
  type AzureDiscoveryTarget,
} from "../../src/discover/azure";
import { restDiscoveryApi, type Fetch } from "../../src/discover/azure-rest";
import { discoveryConfigFromEnv, type DiscoveryConfig } from "../../src/discover/config";
import { reconcile, ReconcileFailed, reconcileSummary } from "../../src/discover/reconcile";

export { AZURE_FUNCTIONS } from "../../src/discover/azure";
/** Every minute, at second 0 (NCRONTAB has a seconds field). */
export const SCHEDULE = "0 * * * * *";
/** host.json's functionTimeout (one minute) less time for one more call and the logs. */
export const BUDGET_MS = 50_000;

type Log = (entry: Record<string, unknown>) => void;

/** The invocation's logger at the entry's level, so the host files each line under its invocation. */
const contextLog =
  (context: InvocationContext): Log =>
  (entry) => {
    const line = JSON.stringify({ time: new Date().toISOString(), ...entry });
    if (entry.level === "error") context.error(line);
    else if (entry.level === "warn") context.warn(line);
    else context.info(line);
  };

export interface AzureHandlerDeps {
  /** https://management.azure.com, or a fake's URL. */
  armUrl: string;
  /** Request headers with the function's access token. */
  headers(): Promise<Headers>;
  fetch?: Fetch;
  env?: NodeJS.ProcessEnv;
  /** Default: the invocation context's logger. */
  log?: Log;
}

interface Settings {
  config: DiscoveryConfig;
  target: AzureDiscoveryTarget;
}

/** The environment the launcher gives the function, checked before anything is read or written. */
export function azureSettingsFromEnv(env: NodeJS.ProcessEnv): Settings {
  const config = discoveryConfigFromEnv(env);
  const subscription = env.AZURE_SUBSCRIPTION_ID;
  const resourceGroup = env.AZURE_RESOURCE_GROUP;
  if (!subscription || !resourceGroup)
    throw new Error("environment variables AZURE_SUBSCRIPTION_ID and AZURE_RESOURCE_GROUP must be set");
  const zone = parseAzureZoneId(config.zoneId);
  const expected = azureZoneName(config.cluster, config.domain);
  // Records named for one zone and written to another would never be found, nor confirmed.
  if (zone.name.toLowerCase() !== expected)
    throw new Error(`HOSTED_ZONE_ID names the zone ${zone.name}, not the cluster's ${expected}`);
  return { config, target: { subscription, resourceGroup, cluster: config.cluster } };
}

type Trigger = Record<string, unknown>;

export function createAzureHandler(deps: AzureHandlerDeps) {
  const env = deps.env ?? process.env;

  async function run(trigger: Trigger, context: InvocationContext): Promise<void> {
    const started = Date.now();
    const log = deps.log ?? contextLog(context);
    log({ level: "info", msg: "invoked", trigger });
    let settings: Settings;
    try {
      settings = azureSettingsFromEnv(env);
    } catch (error) {
      log({ level: "error", msg: "bad configuration", error: (error as Error).message });
      throw error;
    }
    const { config, target } = settings;
    const api = restDiscoveryApi({
      subscription: target.subscription,
      baseUrl: deps.armUrl,
      headers: deps.headers,
      fetch: deps.fetch,
    });
    try {
      const result = await reconcile(azureDiscoveryPorts(api, target), {
        ...config,
        maxValues: AZURE_MAX_RECORD_VALUES,
        deadline: started + BUDGET_MS,
        log,
      });
      log({ level: "info", msg: "reconciled", ...reconcileSummary(config.cluster, result, started) });
    } catch (error) {
      // ReconcileFailed has logged one line per record already; anything else is logged here, once.
      if (!(error instanceof ReconcileFailed))
        log({ level: "error", msg: "invocation failed", cluster: config.cluster, error: String(error) });
      throw error;
    }
  }

  return {
    timer: (timer: Timer, context: InvocationContext) =>
      run({ shape: "timer", pastDue: timer.isPastDue }, context),
    // The event only says "look again": the truth is read whole, whatever it names.
    eventGrid: (event: EventGridEvent, context: InvocationContext) =>
      run({ shape: "eventGrid", type: event.eventType, subject: event.subject, id: event.id }, context),
  };
}
