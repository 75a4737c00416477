import { checkValue } from "./schema-check";
import { SpecSet, type JsonObject, type Located } from "./openapi";
import { call } from "./client";
import { startComputeFake, type ComputeFake } from "./compute";
import { ArmFake } from "./arm-fake";
import { registerResource, ResourceStore } from "./resources";

const V = "2024-07-01";
const RG = "/subscriptions/sub-1/resourceGroups/rg-1";
const IMAGE = `${RG}/providers/Microsoft.Compute/images/img-1`;
const imageBody = {
  location: "westeurope",
  tags: { "kubebake:image-id": "abc" },
  properties: {
    hyperVGeneration: "V2",
    storageProfile: { osDisk: { osType: "Linux", osState: "Generalized", blobUri: "https://a/b.vhd" } },
  },
};

let compute: ComputeFake;
const send = (method: string, path: string, body?: unknown, headers?: Record<string, string>) =>
  call(compute.fake.endpoint, compute.fake.ca, method, path, body, headers);

beforeEach(async () => {
  compute = await startComputeFake();
});
afterEach(async () => {
  await compute.fake.stop();
});

/** Every rejection must be recorded for the test, and answered in ARM's error shape. */
async function expectRejected(method: string, path: string, body: unknown, code: string, mention: string) {
  const response = await send(method, path, body);
  expect(response.status).toBe(400);
  expect(response.body).toEqual({ error: { code, message: expect.stringContaining(mention) } });
  expect(compute.fake.violations).toEqual([expect.stringContaining(mention)]);
  expect(compute.store.all()).toEqual([]);
}

describe("the ARM fake checks requests against the description", () => {
  test("a valid create is accepted and nothing is recorded", async () => {
    const response = await send("PUT", `${IMAGE}?api-version=${V}`, imageBody);
    expect(response.status).toBe(201);
    expect(compute.fake.violations).toEqual([]);
  });

  test("a path the description does not have", async () => {
    await expectRejected(
      "PUT",
      `${RG}/providers/Microsoft.Compute/imagez/img-1?api-version=${V}`,
      imageBody,
      "NoMatchingOperation",
      "no operation",
    );
  });

  test("a method the path does not allow", async () => {
    await expectRejected("POST", `${IMAGE}?api-version=${V}`, imageBody, "NoMatchingOperation", "allow only");
  });

  test("a missing api-version", async () => {
    await expectRejected("PUT", IMAGE, imageBody, "MissingApiVersionParameter", "api-version");
  });

  test("an api-version the description's version folder does not define", async () => {
    await expectRejected(
      "PUT",
      `${IMAGE}?api-version=2026-03-01`,
      imageBody,
      "InvalidApiVersionParameter",
      "2026-03-01",
    );
  });

  test("an unknown body property, also deep inside allOf and $refs across files", async () => {
    await expectRejected(
      "PUT",
      `${IMAGE}?api-version=${V}`,
      { ...imageBody, colour: "red" },
      "InvalidRequestContent",
      'no property "colour"',
    );
    compute.fake.violations.length = 0;
    const deep = structuredClone(imageBody) as typeof imageBody & {
      properties: { storageProfile: { osDisk: Record<string, unknown> } };
    };
    deep.properties.storageProfile.osDisk.managedDisk = { id: "x", extra: 1 };
    await expectRejected(
      "PUT",
      `${IMAGE}?api-version=${V}`,
      deep,
      "InvalidRequestContent",
      "osDisk.managedDisk.extra",
    );
  });

  test("a property of the wrong type, and a value outside a closed enum", async () => {
    const wrong = structuredClone(imageBody) as unknown as {
      properties: { storageProfile: Record<string, unknown> };
    };
    wrong.properties.storageProfile.zoneResilient = "yes";
    await expectRejected(
      "PUT",
      `${IMAGE}?api-version=${V}`,
      wrong,
      "InvalidRequestContent",
      "expected a boolean",
    );
    compute.fake.violations.length = 0;
    const lower = structuredClone(imageBody);
    lower.properties.storageProfile.osDisk.osType = "linux";
    await expectRejected(
      "PUT",
      `${IMAGE}?api-version=${V}`,
      lower,
      "InvalidRequestContent",
      "expected one of Windows, Linux",
    );
  });

  test("a read-only property, a missing required property, a missing body", async () => {
    const readOnly = {
      ...imageBody,
      properties: { ...imageBody.properties, provisioningState: "Succeeded" },
    };
    await expectRejected("PUT", `${IMAGE}?api-version=${V}`, readOnly, "InvalidRequestContent", "read-only");
    compute.fake.violations.length = 0;
    const noLocation: Partial<typeof imageBody> = { ...imageBody };
    delete noLocation.location;
    await expectRejected(
      "PUT",
      `${IMAGE}?api-version=${V}`,
      noLocation,
      "InvalidRequestContent",
      '"location" is missing',
    );
    compute.fake.violations.length = 0;
    await expectRejected(
      "PUT",
      `${IMAGE}?api-version=${V}`,
      undefined,
      "InvalidRequestContent",
      "body (parameters) is missing",
    );
  });

  test("an unknown query parameter and a request without a bearer token", async () => {
    await expectRejected(
      "GET",
      `${IMAGE}?api-version=${V}&$top=3`,
      undefined,
      "InvalidRequestContent",
      "no query parameter $top",
    );
    compute.fake.violations.length = 0;
    const anonymous = await send("GET", `${IMAGE}?api-version=${V}`, undefined, { Authorization: "" });
    expect(anonymous.status).toBe(400);
    expect(compute.fake.violations).toEqual([expect.stringContaining("bearer token")]);
  });

  test("registering a handler for an operation no description defines is refused", () => {
    expect(() => compute.fake.on("Images_Frobnicate", () => ({ status: 200 }))).toThrow("Images_Frobnicate");
  });
});

describe("the ARM fake keeps state the way ARM does", () => {
  test("a long-running create answers 201 with Azure-AsyncOperation, polled until Succeeded", async () => {
    compute.fake.pollsBeforeDone = 2;
    const created = await send("PUT", `${IMAGE}?api-version=${V}`, imageBody);
    expect(created.status).toBe(201);
    expect(created.headers["retry-after"]).toBe("0");
    const statusUrl = new URL(String(created.headers["azure-asyncoperation"]));
    const poll = () => send("GET", statusUrl.pathname + statusUrl.search);
    expect((await poll()).body).toMatchObject({ status: "InProgress" });
    expect(
      ((await send("GET", `${IMAGE}?api-version=${V}`)).body as { properties: object }).properties,
    ).toMatchObject({ provisioningState: "Creating" });
    expect((await poll()).body).toMatchObject({ status: "InProgress" });
    expect((await poll()).body).toMatchObject({ status: "Succeeded" });
    const got = await send("GET", `${IMAGE}?api-version=${V}`);
    expect(got.body).toMatchObject({
      id: IMAGE,
      name: "img-1",
      type: "Microsoft.Compute/images",
      properties: { provisioningState: "Succeeded" },
    });
    expect(compute.fake.violations).toEqual([]);
  });

  test("lists by resource group and by subscription see only their scope", async () => {
    await send("PUT", `${IMAGE}?api-version=${V}`, imageBody);
    await send(
      "PUT",
      `/subscriptions/sub-1/resourceGroups/rg-2/providers/Microsoft.Compute/images/other?api-version=${V}`,
      imageBody,
    );
    const names = async (path: string) =>
      ((await send("GET", `${path}?api-version=${V}`)).body as { value: { name: string }[] }).value.map(
        (i) => i.name,
      );
    expect(await names(`${RG}/providers/Microsoft.Compute/images`)).toEqual(["img-1"]);
    expect(await names(`/subscriptions/sub-1/providers/Microsoft.Compute/images`)).toEqual([
      "img-1",
      "other",
    ]);
    expect(await names(`/subscriptions/sub-2/providers/Microsoft.Compute/images`)).toEqual([]);
  });

  test("If-Match and If-None-Match preconditions give 412", async () => {
    const created = await send("PUT", `${IMAGE}?api-version=${V}`, imageBody);
    const etag = String(created.headers.etag);
    expect((await send("PUT", `${IMAGE}?api-version=${V}`, imageBody, { "If-None-Match": "*" })).status).toBe(
      412,
    );
    expect(
      (await send("PUT", `${IMAGE}?api-version=${V}`, imageBody, { "If-Match": '"stale"' })).status,
    ).toBe(412);
    const replaced = await send("PUT", `${IMAGE}?api-version=${V}`, imageBody, { "If-Match": etag });
    expect(replaced.status).toBe(200);
    expect(replaced.headers.etag).not.toBe(etag);
    expect((await send("DELETE", `${IMAGE}?api-version=${V}`, undefined, { "If-Match": etag })).status).toBe(
      412,
    );
  });

  test("an injected 429 carries Retry-After and passes after the given count", async () => {
    compute.fake.throttle("Images_Get", 2, 7);
    const first = await send("GET", `${IMAGE}?api-version=${V}`);
    expect(first.status).toBe(429);
    expect(first.headers["retry-after"]).toBe("7");
    expect(first.body).toMatchObject({ error: { code: "TooManyRequests" } });
    expect((await send("GET", `${IMAGE}?api-version=${V}`)).status).toBe(429);
    expect((await send("GET", `${IMAGE}?api-version=${V}`)).status).toBe(404);
  });

  test("a create a test fails ends Failed, and the resource stays Failed until deleted", async () => {
    compute.images.checkCreate = () => ({
      status: "Failed",
      error: { code: "InvalidParameter", message: "bad blob" },
    });
    const created = await send("PUT", `${IMAGE}?api-version=${V}`, imageBody);
    const statusUrl = new URL(String(created.headers["azure-asyncoperation"]));
    await send("GET", statusUrl.pathname + statusUrl.search);
    expect((await send("GET", statusUrl.pathname + statusUrl.search)).body).toMatchObject({
      status: "Failed",
      error: { code: "InvalidParameter" },
    });
    expect(compute.store.get(IMAGE)?.resource).toMatchObject({ properties: { provisioningState: "Failed" } });
    const deleting = await send("DELETE", `${IMAGE}?api-version=${V}`);
    expect(deleting.status).toBe(202);
    const deleteStatus = new URL(String(deleting.headers["azure-asyncoperation"]));
    await send("GET", deleteStatus.pathname + deleteStatus.search);
    await send("GET", deleteStatus.pathname + deleteStatus.search);
    expect(compute.store.all()).toEqual([]);
  });

  test("a test wraps an operation's handler; a dropped answer keeps the effect and cuts the connection", async () => {
    const created = compute.fake.handler("Images_CreateOrUpdate")!;
    compute.fake.on("Images_CreateOrUpdate", async (request) => ({
      ...(await created(request)),
      dropAnswer: true,
    }));
    await expect(send("PUT", `${IMAGE}?api-version=${V}`, imageBody)).rejects.toThrow(/socket hang up/);
    expect(compute.store.get(IMAGE)).toBeDefined();
    expect(compute.fake.log.at(-1)).toEqual({
      method: "PUT",
      path: IMAGE,
      operationId: "Images_CreateOrUpdate",
      status: 201,
    });
    expect(compute.fake.handler("Images_Frobnicate")).toBeUndefined();
  });

  test("the next operation of a call a test fails ends Failed; the one after succeeds", async () => {
    compute.fake.failNextOperation("Images_CreateOrUpdate", { code: "Injected", message: "injected" });
    const endOf = async () => {
      const created = await send("PUT", `${IMAGE}?api-version=${V}`, imageBody);
      const statusUrl = new URL(String(created.headers["azure-asyncoperation"]));
      await send("GET", statusUrl.pathname + statusUrl.search);
      return (await send("GET", statusUrl.pathname + statusUrl.search)).body;
    };
    expect(await endOf()).toMatchObject({ status: "Failed", error: { code: "Injected" } });
    expect(await endOf()).toMatchObject({ status: "Succeeded" });
  });

  test("the fake's own answers are checked against the response schema", async () => {
    const fake = await ArmFake.start([
      "compute/resource-manager/Microsoft.Compute/ComputeRP/stable/2024-07-01/image.json",
    ]);
    try {
      registerResource(fake, new ResourceStore(), {});
      fake.on("Images_Get", () => ({ status: 200, body: { location: "x", bogus: true } }));
      await call(fake.endpoint, fake.ca, "GET", `${IMAGE}?api-version=${V}`);
      expect(fake.violations).toEqual([expect.stringContaining('no property "bogus"')]);
    } finally {
      await fake.stop();
    }
  });
});

describe("the descriptions the Azure launch will need", () => {
  const files = [
    "network/resource-manager/Microsoft.Network/stable/2024-05-01/virtualNetwork.json",
    "network/resource-manager/Microsoft.Network/stable/2024-05-01/networkSecurityGroup.json",
    "network/resource-manager/Microsoft.Network/stable/2024-05-01/loadBalancer.json",
    "msi/resource-manager/Microsoft.ManagedIdentity/stable/2023-01-31/ManagedIdentity.json",
    "privatedns/resource-manager/Microsoft.Network/stable/2024-06-01/privatedns.json",
    "keyvault/resource-manager/Microsoft.KeyVault/stable/2023-07-01/keyvault.json",
    "authorization/resource-manager/Microsoft.Authorization/stable/2022-04-01/authorization-RoleAssignmentsCalls.json",
    "compute/resource-manager/Microsoft.Compute/ComputeRP/stable/2024-07-01/virtualMachineScaleSet.json",
    "storage/resource-manager/Microsoft.Storage/stable/2023-05-01/blob.json",
  ];

  test("load, and every $ref their request bodies reach resolves", () => {
    const specs = new SpecSet(files);
    const seen = new Set<object>();
    const walk = (located: Located): void => {
      const { file, node } = specs.deref(located);
      if (seen.has(node)) return;
      seen.add(node);
      for (const value of Object.values(node))
        if (value && typeof value === "object" && !Array.isArray(value))
          walk({ file, node: value as JsonObject });
        else if (Array.isArray(value))
          for (const item of value)
            if (item && typeof item === "object") walk({ file, node: item as JsonObject });
    };
    const bodies = specs.operations.flatMap((op) => op.parameters.filter((p) => p.in === "body"));
    for (const body of bodies) walk(body.schema);
    expect(specs.operations.map((op) => op.operationId)).toEqual(
      expect.arrayContaining([
        "VirtualNetworks_CreateOrUpdate",
        "UserAssignedIdentities_CreateOrUpdate",
        "RecordSets_CreateOrUpdate",
        "VirtualMachineScaleSets_CreateOrUpdate",
      ]),
    );
    expect(bodies.length).toBeGreaterThan(20);
    expect(seen.size).toBeGreaterThan(200);
  });

  test("a scale set body with a wrong type deep inside is found", () => {
    const specs = new SpecSet(files);
    const op = specs.operations.find((o) => o.operationId === "VirtualMachineScaleSets_CreateOrUpdate")!;
    const body = op.parameters.find((p) => p.in === "body")!;
    const problems = checkValue(
      specs,
      body.schema,
      { location: "x", sku: { capacity: "2" } },
      "body",
      "request",
    );
    expect(problems).toEqual(['body.sku.capacity: expected an integer, got string "2"']);
  });
});
