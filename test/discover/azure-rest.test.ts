/**
 * What the fake ARM does not exercise of the fetch-based pieces: pages (ARM's nextLink), answers that are
 * not ARM's JSON, a network that fails, and the function's managed-identity token.
 */
import { managedIdentityHeaders } from "../../lambdas/dns-discovery-azure/identity";
import { classifyAzureError } from "../../src/discover/azure";
import { AzureApiError, restDiscoveryApi, type Fetch } from "../../src/discover/azure-rest";

const SUB = "s1";
const BASE = "https://arm.test";

interface Sent {
  method: string;
  url: string;
  headers: Record<string, string>;
  body?: unknown;
}

/** A fetch answering from `answer`, recording what was sent. */
function stubFetch(answer: (url: URL) => Response | Promise<Response>) {
  const sent: Sent[] = [];
  const fetch: Fetch = async (url, init) => {
    sent.push({
      method: init.method,
      url,
      headers: Object.fromEntries(init.headers),
      ...(init.body ? { body: JSON.parse(init.body) } : {}),
    });
    return answer(new URL(url));
  };
  return { fetch, sent };
}

const json = (body: unknown, status = 200) =>
  new Response(JSON.stringify(body), { status, headers: { "content-type": "application/json" } });
const api = (fetch: Fetch) =>
  restDiscoveryApi({
    subscription: SUB,
    baseUrl: BASE,
    fetch,
    headers: async () => new Headers({ authorization: "Bearer t" }),
  });

test("a list follows nextLink to its last page, each request with the token and the pinned api-version", async () => {
  const { fetch, sent } = stubFetch((url) =>
    url.searchParams.get("page") === "2"
      ? json({ value: [{ properties: { virtualMachine: { id: "vm2" }, ipConfigurations: [] } }] })
      : json({
          value: [{ properties: { virtualMachine: { id: "vm1" }, ipConfigurations: [] } }],
          nextLink: `${BASE}/next?page=2`,
        }),
  );
  const nics = await api(fetch).listNics("rg");
  expect(nics.map((n) => n.virtualMachineId)).toEqual(["vm1", "vm2"]);
  expect(sent.map((s) => s.url)).toEqual([
    `${BASE}/subscriptions/s1/resourceGroups/rg/providers/Microsoft.Network/networkInterfaces?api-version=2024-05-01`,
    `${BASE}/next?page=2`,
  ]);
  expect(sent.every((s) => s.headers.authorization === "Bearer t")).toBe(true);
});

test("a nextLink to another host is refused: it would be sent the token", async () => {
  const { fetch, sent } = stubFetch(() => json({ value: [], nextLink: "https://elsewhere.test/x" }));
  await expect(api(fetch).listNics("rg")).rejects.toThrow(/next page at https:\/\/elsewhere\.test/);
  expect(sent).toHaveLength(1);
});

test("a scale set's members: filtered by its id, with their instance views", async () => {
  const { fetch, sent } = stubFetch(() =>
    json({
      value: [
        {
          id: "vm1",
          properties: {
            provisioningState: "Succeeded",
            virtualMachineScaleSet: { id: "ss" },
            instanceView: {
              statuses: [{ code: "ProvisioningState/succeeded" }, { code: "PowerState/running" }],
            },
          },
        },
      ],
    }),
  );
  expect(await api(fetch).listScaleSetVms("rg", "/subscriptions/s1/x/ss")).toEqual([
    {
      id: "vm1",
      scaleSetId: "ss",
      provisioningState: "Succeeded",
      statuses: ["ProvisioningState/succeeded", "PowerState/running"],
    },
  ]);
  const url = new URL(sent[0]!.url);
  expect([url.pathname, url.searchParams.get("api-version"), url.searchParams.get("$filter")]).toEqual([
    "/subscriptions/s1/resourceGroups/rg/providers/Microsoft.Compute/virtualMachines",
    "2024-07-01",
    "'virtualMachineScaleSet/id' eq '/subscriptions/s1/x/ss'",
  ]);
  expect(url.searchParams.get("$expand")).toBe("instanceView");
});

test("a swap is a PUT If-Match the ETag read, a creation If-None-Match *, a deletion a DELETE If-Match", async () => {
  const { fetch, sent } = stubFetch(() => new Response(null, { status: 204 }));
  const zone = { subscription: SUB, resourceGroup: "rg", name: "demo.k8s" };
  await api(fetch).putRecordSet(zone, "masters", { ttl: 30, ipv4Addresses: ["10.0.0.1"] }, { ifMatch: "e1" });
  await api(fetch).putRecordSet(zone, "etcd", { ttl: 30, ipv4Addresses: ["10.0.0.2"] }, { ifNoneMatch: "*" });
  await api(fetch).deleteRecordSet(zone, "minions", { ifMatch: "e2" });
  const path = "/subscriptions/s1/resourceGroups/rg/providers/Microsoft.Network/privateDnsZones/demo.k8s/A";
  expect(
    sent.map((s) => [s.method, s.url, s.headers["if-match"], s.headers["if-none-match"], s.body]),
  ).toEqual([
    [
      "PUT",
      `${BASE}${path}/masters?api-version=2024-06-01`,
      "e1",
      undefined,
      { properties: { ttl: 30, aRecords: [{ ipv4Address: "10.0.0.1" }] } },
    ],
    [
      "PUT",
      `${BASE}${path}/etcd?api-version=2024-06-01`,
      undefined,
      "*",
      { properties: { ttl: 30, aRecords: [{ ipv4Address: "10.0.0.2" }] } },
    ],
    ["DELETE", `${BASE}${path}/minions?api-version=2024-06-01`, "e2", undefined, undefined],
  ]);
  expect(sent[0]!.headers["content-type"]).toBe("application/json");
});

test("ARM's errors carry their status and code; a proxy's HTML page its first characters; a failed fetch is transient", async () => {
  const zone = { subscription: SUB, resourceGroup: "rg", name: "demo.k8s" };
  const put = (fetch: Fetch) =>
    api(fetch)
      .putRecordSet(zone, "masters", { ttl: 30, ipv4Addresses: [] }, { ifMatch: "e" })
      .catch((e: unknown) => e);
  const stale = await put(
    stubFetch(() => json({ error: { code: "PreconditionFailed", message: "modified" } }, 412)).fetch,
  );
  expect(stale).toBeInstanceOf(AzureApiError);
  expect(stale).toMatchObject({
    status: 412,
    code: "PreconditionFailed",
    message: "ARM 412 PreconditionFailed: modified",
  });
  expect((classifyAzureError(stale) as Error).name).toBe("RecordConflict");
  const proxy = await put(stubFetch(() => new Response("<html>bad gateway</html>", { status: 502 })).fetch);
  expect(proxy).toMatchObject({ status: 502, message: "ARM 502: <html>bad gateway</html>" });
  expect((classifyAzureError(proxy) as Error).name).toBe("Transient");
  const down = await put(async () => {
    throw new TypeError("fetch failed");
  });
  expect(down).toMatchObject({ name: "Transient", message: "ARM PUT: fetch failed" });
});

describe("the function's managed-identity token", () => {
  const env = {
    IDENTITY_ENDPOINT: "http://localhost:8081/msi/token",
    IDENTITY_HEADER: "secret",
    AZURE_CLIENT_ID: "c1",
  };

  test("asked of IDENTITY_ENDPOINT with the header, for ARM and the client id; kept until 5 minutes before it expires", async () => {
    let clock = 1_000_000_000_000;
    let issued = 0;
    const { fetch, sent } = stubFetch(() =>
      json({
        access_token: `token-${++issued}`,
        expires_on: String(clock / 1000 + 3600),
        token_type: "Bearer",
      }),
    );
    const headers = managedIdentityHeaders(env, fetch, () => clock);
    expect((await headers()).get("authorization")).toBe("Bearer token-1");
    clock += 54 * 60_000;
    expect((await headers()).get("authorization")).toBe("Bearer token-1");
    clock += 2 * 60_000;
    expect((await headers()).get("authorization")).toBe("Bearer token-2");
    const url = new URL(sent[0]!.url);
    expect([url.origin + url.pathname, Object.fromEntries(url.searchParams), sent[0]!.headers]).toEqual([
      "http://localhost:8081/msi/token",
      { resource: "https://management.azure.com/", "api-version": "2019-08-01", client_id: "c1" },
      { "x-identity-header": "secret" },
    ]);
  });

  test("without the endpoint, or when it refuses, the error says so", async () => {
    const { fetch } = stubFetch(() => json({ error: "no" }, 500));
    await expect(managedIdentityHeaders({}, fetch)()).rejects.toThrow(/IDENTITY_ENDPOINT, IDENTITY_HEADER/);
    await expect(managedIdentityHeaders(env, fetch)()).rejects.toThrow(/gave no token \(500\)/);
  });
});
