/**
 * The Google clients of a launch: the official Compute client for Compute Engine, and one small REST caller
 * for the JSON APIs it needs beside (IAM, Resource Manager, Secret Manager, Cloud DNS), over the same
 * credentials. Every call is named in `calls`, so a failure says which call it was.
 */
import {
  FirewallsClient,
  GlobalOperationsClient,
  ImagesClient,
  InstanceTemplatesClient,
  InstancesClient,
  NetworksClient,
  RegionInstanceGroupManagersClient,
  RegionOperationsClient,
  SubnetworksClient,
} from "@google-cloud/compute";
import { v2 as functionsV2 } from "@google-cloud/functions";
import { CloudSchedulerClient } from "@google-cloud/scheduler";
import { SecretManagerServiceClient } from "@google-cloud/secret-manager";
import { httpStatusOf } from "../../discover/gce";
import type { GceAuthClient } from "../../publish/gce/auth";

/** Where the APIs are: Google's hosts, or one local fake serving them all (tests). */
export interface GceEndpoints {
  /** Base URL of every JSON API but Compute (`https://iam.googleapis.com` and its siblings when unset). */
  rest?: string;
  compute?: { host: string; port: number; protocol: "http" | "https" };
}

/** A Google API answer that is not 2xx: its HTTP status, Google's reason and message, and the call. */
export class GoogleApiError extends Error {
  constructor(
    readonly code: number,
    readonly reason: string,
    message: string,
  ) {
    super(message);
    this.name = "GoogleApiError";
  }
  /** The server's Retry-After, when it gave one. */
  retryAfterMs?: number;
}

const HOSTS = {
  iam: "https://iam.googleapis.com",
  cloudresourcemanager: "https://cloudresourcemanager.googleapis.com",
  dns: "https://dns.googleapis.com",
  eventarc: "https://eventarc.googleapis.com",
} as const;
export type RestApi = keyof typeof HOSTS;

export interface GceClients {
  project: string;
  region: string;
  networks: NetworksClient;
  subnetworks: SubnetworksClient;
  firewalls: FirewallsClient;
  templates: InstanceTemplatesClient;
  groups: RegionInstanceGroupManagersClient;
  instances: InstancesClient;
  images: ImagesClient;
  globalOperations: GlobalOperationsClient;
  regionOperations: RegionOperationsClient;
  /** Secret Manager, Cloud Functions (2nd gen) and Cloud Scheduler: the official clients, over REST. */
  secrets: SecretManagerServiceClient;
  functions: functionsV2.FunctionServiceClient;
  scheduler: CloudSchedulerClient;
  /** One JSON request to a REST API: `path` after the host (`v1/projects/p/secrets`); 404 → undefined. */
  rest<T>(api: RestApi, method: string, path: string, body?: unknown): Promise<T>;
  /** Names of the calls made, in order (the last one is the one that failed). */
  calls: string[];
  /** The auth client, for the discovery ports (src/discover/gce.ts). */
  auth: GceAuthClient;
  endpoints: GceEndpoints;
}

export function gceClients(
  auth: GceAuthClient,
  project: string,
  region: string,
  endpoints: GceEndpoints = {},
): GceClients {
  const settings = {
    authClient: auth as never,
    ...(endpoints.compute
      ? {
          apiEndpoint: endpoints.compute.host,
          port: endpoints.compute.port,
          protocol: endpoints.compute.protocol,
        }
      : {}),
  };
  const restSettings = { ...settings, fallback: true as const };
  const calls: string[] = [];
  const named = <C extends object>(client: C, api: string): C =>
    new Proxy(client, {
      get(target, property, receiver) {
        const value = Reflect.get(target, property, receiver);
        if (typeof value !== "function" || typeof property !== "string" || property.startsWith("_"))
          return value;
        return (...args: unknown[]) => {
          calls.push(`${api}.${property}`);
          const call = () => (value as (...a: unknown[]) => unknown).apply(target, args);
          // Paging iterators (…Async) are not promises: handed over as they are.
          const first = call();
          if (!(first instanceof Promise)) return first;
          let attempt = 0;
          return withRetry(() => (attempt++ === 0 ? first : (call() as Promise<unknown>)));
        };
      },
    });
  return {
    project,
    region,
    networks: named(new NetworksClient(settings), "compute.networks"),
    subnetworks: named(new SubnetworksClient(settings), "compute.subnetworks"),
    firewalls: named(new FirewallsClient(settings), "compute.firewalls"),
    templates: named(new InstanceTemplatesClient(settings), "compute.instanceTemplates"),
    groups: named(new RegionInstanceGroupManagersClient(settings), "compute.regionInstanceGroupManagers"),
    instances: named(new InstancesClient(settings), "compute.instances"),
    images: named(new ImagesClient(settings), "compute.images"),
    // The REST transport (fallback) everywhere, so that tests drive the transport Google is called with.
    secrets: named(new SecretManagerServiceClient(restSettings), "secretmanager"),
    functions: named(new functionsV2.FunctionServiceClient(restSettings), "cloudfunctions"),
    scheduler: named(new CloudSchedulerClient(restSettings), "cloudscheduler"),
    globalOperations: new GlobalOperationsClient(settings),
    regionOperations: new RegionOperationsClient(settings),
    calls,
    auth,
    endpoints,
    async rest<T>(api: RestApi, method: string, path: string, body?: unknown): Promise<T> {
      calls.push(`${api} ${method} ${path.replace(/\?.*$/, "")}`);
      const base = endpoints.rest ?? HOSTS[api];
      return withRetry(async () => {
        const headers = new Headers(await auth.getRequestHeaders());
        if (body !== undefined) headers.set("content-type", "application/json");
        const answer = await fetch(`${base}/${path}`, {
          method,
          headers,
          ...(body !== undefined ? { body: JSON.stringify(body) } : {}),
        });
        const text = await answer.text();
        if (!answer.ok) throw apiError(answer.status, text, answer.headers.get("retry-after"));
        return (text ? JSON.parse(text) : {}) as T;
      });
    },
  };
}

/** Google's JSON error, or whatever a front end in between answered (an HTML 502 page). */
function apiError(status: number, text: string, retryAfter: string | null): GoogleApiError {
  let error: GoogleApiError;
  try {
    const { error: e } = JSON.parse(text) as {
      error: { message?: string; status?: string; errors?: { reason?: string }[] };
    };
    error = new GoogleApiError(status, e.errors?.[0]?.reason ?? e.status ?? "", e.message ?? text);
  } catch {
    error = new GoogleApiError(status, "", text.slice(0, 300));
  }
  if (retryAfter !== null && /^\d+$/.test(retryAfter)) error.retryAfterMs = Number(retryAfter) * 1000;
  return error;
}

/** Statuses worth asking again: throttled (429) or the service unavailable for a moment (502, 503). */
const RETRIED = new Set([429, 502, 503]);
const ATTEMPTS = 5;

/**
 * Runs `call` again, with exponential backoff (or the server's Retry-After), while Google throttles or is
 * briefly unavailable; other failures, and the fifth, are the caller's.
 */
export async function withRetry<T>(call: () => Promise<T>): Promise<T> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await call();
    } catch (error) {
      if (attempt >= ATTEMPTS || !RETRIED.has(httpStatusOf(error) ?? 0)) throw error;
      const hinted = (error as { retryAfterMs?: number }).retryAfterMs;
      await new Promise((resolve) => setTimeout(resolve, hinted ?? Math.min(250 * 2 ** attempt, 8000)));
    }
  }
}

/** The call's answer, or undefined when the resource does not exist (404 from either kind of client). */
export async function ifFound<T>(call: () => Promise<T>): Promise<T | undefined> {
  try {
    return await call();
  } catch (error) {
    if (httpStatusOf(error) === 404) return undefined;
    throw error;
  }
}

/** Whether `error` is Google's answer with this HTTP status (either kind of client). */
export const isStatus = (error: unknown, status: number) => httpStatusOf(error) === status;
