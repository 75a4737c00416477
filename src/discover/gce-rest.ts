/**
 * The three Compute reads of discovery over plain REST (fetch): what the discovery function bundles
 * instead of @google-cloud/compute, whose generated protos would make a 30 MB function for three calls.
 * Same shapes as the official client's answers, and errors carry the HTTP status (src/discover/gce.ts
 * classifies both alike).
 */
import {
  answerOf,
  type DiscoveryGroups,
  type DiscoveryInstance,
  type DiscoveryInstances,
  type ManagedInstance,
} from "./gce";

type Headers = () => Promise<globalThis.Headers>;

async function computeCall<T>(baseUrl: string, headers: Headers, path: string, method = "GET"): Promise<T> {
  return answerOf<T>(
    await fetch(`${baseUrl}/compute/v1/${path}`, { method, headers: await headers() }),
    "Compute",
  );
}

/** Pages of a list until its last, each page's items handed over as they come. */
async function* pages<T, I>(
  next: (pageToken: string | undefined) => Promise<T & { nextPageToken?: string }>,
  items: (page: T) => I[],
): AsyncIterable<I> {
  let pageToken: string | undefined;
  do {
    const page = await next(pageToken);
    yield* items(page);
    pageToken = page.nextPageToken || undefined;
  } while (pageToken);
}

const withPage = (query: Record<string, string>, pageToken: string | undefined) =>
  new URLSearchParams({ ...query, maxResults: "500", ...(pageToken ? { pageToken } : {}) });

/** Compute for the discovery ports, over REST; Cloud DNS is the ports' own REST already. */
export function restDiscoveryCompute(
  baseUrl: string,
  headers: Headers,
): { groups: DiscoveryGroups; instances: DiscoveryInstances } {
  const groups: DiscoveryGroups = {
    get: (r: { project: string; region: string; instanceGroupManager: string }) =>
      computeCall(
        baseUrl,
        headers,
        `projects/${r.project}/regions/${r.region}/instanceGroupManagers/${r.instanceGroupManager}`,
      ),
    listManagedInstancesAsync: (r: { project: string; region: string; instanceGroupManager: string }) =>
      pages(
        (token) =>
          computeCall<{ managedInstances?: ManagedInstance[] }>(
            baseUrl,
            headers,
            `projects/${r.project}/regions/${r.region}/instanceGroupManagers/${r.instanceGroupManager}/listManagedInstances?${withPage({}, token)}`,
            "POST",
          ),
        (page) => page.managedInstances ?? [],
      ),
  };
  const instances: DiscoveryInstances = {
    aggregatedListAsync: (r: { project: string; filter: string }) =>
      pages(
        (token) =>
          computeCall<{ items?: Record<string, { instances?: DiscoveryInstance[] }> }>(
            baseUrl,
            headers,
            `projects/${r.project}/aggregated/instances?${withPage({ filter: r.filter }, token)}`,
          ),
        (page) => Object.entries(page.items ?? {}),
      ),
  };
  return { groups, instances };
}
