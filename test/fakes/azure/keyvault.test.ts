/**
 * The Key Vault model through @azure/arm-keyvault 5.0.0 (apiVersion 2023-07-01 passed: its default is
 * 2026-02-01) and @azure/keyvault-secrets 4.11.2 (serviceVersion 7.5; its default is 2025-07-01).
 */
import { KeyVaultManagementClient, type VaultCreateOrUpdateParameters } from "@azure/arm-keyvault";
import { SecretClient } from "@azure/keyvault-secrets";
import { ArmFake } from "./arm-fake";
import { installKeyVault, KEYVAULT_SPECS, KeyVaultState, type DataPlaneAccess } from "./keyvault";

const SUB = "00000000-1111-2222-3333-444444444444";
const OTHER_SUB = "99999999-1111-2222-3333-444444444444";
const TENANT = "72f988bf-86f1-41af-91ab-2d7cd011db47";
const credential = {
  getToken: async () => ({ token: "test-token", expiresOnTimestamp: Date.now() + 3600_000 }),
};
const wait = { updateIntervalInMs: 1 };

let fake: ArmFake;
let state: KeyVaultState;
let client: KeyVaultManagementClient;

beforeEach(async () => {
  fake = await ArmFake.start(KEYVAULT_SPECS);
  state = installKeyVault(fake);
  client = management(SUB);
});
afterEach(async () => {
  await state.stop();
  await fake.stop();
});

const management = (subscription: string, version: { apiVersion?: string } = { apiVersion: "2023-07-01" }) =>
  new KeyVaultManagementClient(credential, subscription, {
    endpoint: fake.endpoint,
    tlsOptions: { ca: fake.ca },
    ...version,
    retryOptions: { maxRetries: 0 },
  });

const vaultBody = (extra: Record<string, unknown> = {}): VaultCreateOrUpdateParameters => ({
  location: "westeurope",
  tags: { "kubebake:cluster": "c1" },
  properties: {
    tenantId: TENANT,
    sku: { family: "A", name: "standard" },
    enableRbacAuthorization: true,
    enableSoftDelete: true,
    softDeleteRetentionInDays: 7,
    ...extra,
  },
});

const createVault = (name: string, extra: Record<string, unknown> = {}, rg = "rg-1", c = client) =>
  c.vaults.createOrUpdate(rg, name, vaultBody(extra), wait);

const secrets = (vaultUri: string, disableChallengeResourceVerification = true) =>
  new SecretClient(vaultUri, credential, {
    serviceVersion: "7.5",
    disableChallengeResourceVerification,
    tlsOptions: { ca: fake.ca },
    retryOptions: { maxRetries: 0 },
  });

test("a vault is created asynchronously and its data plane answers at vaultUri after a bearer challenge", async () => {
  const vault = await createVault("kb-c1-secrets");
  expect(vault).toMatchObject({
    name: "kb-c1-secrets",
    type: "Microsoft.KeyVault/vaults",
    properties: {
      provisioningState: "Succeeded",
      enableRbacAuthorization: true,
      softDeleteRetentionInDays: 7,
    },
  });
  const uri = vault.properties.vaultUri!;
  expect(uri).toMatch(/^https:\/\/127\.0\.0\.1:\d+\/$/);
  const kv = secrets(uri);
  const first = await kv.setSecret("join-token", "abc", {
    contentType: "text/plain",
    tags: { role: "minion" },
  });
  expect(first.properties).toMatchObject({
    name: "join-token",
    vaultUrl: uri.replace(/\/$/, ""),
    enabled: true,
  });
  expect(first.properties.version).toMatch(/^[0-9a-f]{32}$/);
  const plane = state.vaults.get("kb-c1-secrets")!.plane!;
  // The first call went without a token on purpose and got the challenge; the client then retried with one.
  expect(plane.log.slice(0, 2).map((l) => [l.method, l.status])).toEqual([
    ["PUT", 401],
    ["PUT", 200],
  ]);
  expect(fake.violations).toEqual([]);
});

test("without disableChallengeResourceVerification the client refuses a challenge for another domain", async () => {
  const vault = await createVault("kb-strict");
  await expect(secrets(vault.properties.vaultUri!, false).setSecret("a", "b")).rejects.toThrow(
    "does not match the requested domain",
  );
});

test("secrets: versions, latest, disabled versions, tags, listing", async () => {
  const kv = secrets((await createVault("kb-versions")).properties.vaultUri!);
  const v1 = await kv.setSecret("ca-key", "one");
  const v2 = await kv.setSecret("ca-key", "two");
  await kv.setSecret("etcd-key", "e");
  expect((await kv.getSecret("ca-key")).value).toBe("two");
  expect((await kv.getSecret("ca-key", { version: v1.properties.version })).value).toBe("one");
  const versions = [];
  for await (const p of kv.listPropertiesOfSecretVersions("ca-key")) versions.push(p.version);
  expect(versions).toEqual([v1.properties.version, v2.properties.version]);
  const names = [];
  for await (const p of kv.listPropertiesOfSecrets()) names.push(p.name);
  expect(names).toEqual(["ca-key", "etcd-key"]);

  const updated = await kv.updateSecretProperties("ca-key", v2.properties.version!, {
    enabled: false,
    tags: { rotated: "yes" },
  });
  expect(updated).toMatchObject({ enabled: false, tags: { rotated: "yes" } });
  await expect(kv.getSecret("ca-key")).rejects.toMatchObject({ statusCode: 403, code: "Forbidden" });
  await expect(kv.getSecret("nope")).rejects.toMatchObject({ statusCode: 404, code: "SecretNotFound" });
  expect(state.secretValue("kb-versions", "etcd-key")).toBe("e");
  expect(fake.violations).toEqual([]);
});

test("secrets: soft delete, the name blocked until recovered or purged", async () => {
  const kv = secrets((await createVault("kb-deletes")).properties.vaultUri!);
  await kv.setSecret("pki", "v");
  const deleted = await (await kv.beginDeleteSecret("pki", { intervalInMs: 1 })).pollUntilDone();
  expect(deleted).toMatchObject({
    name: "pki",
    properties: { recoveryId: expect.stringContaining("/deletedsecrets/pki") },
  });
  await expect(kv.getSecret("pki")).rejects.toMatchObject({ statusCode: 404 });
  await expect(kv.setSecret("pki", "again")).rejects.toMatchObject({ statusCode: 409, code: "Conflict" });
  await (await kv.beginRecoverDeletedSecret("pki", { intervalInMs: 1 })).pollUntilDone();
  expect((await kv.getSecret("pki")).value).toBe("v");
  await (await kv.beginDeleteSecret("pki", { intervalInMs: 1 })).pollUntilDone();
  const gone = [];
  for await (const s of kv.listDeletedSecrets()) gone.push(s.name);
  expect(gone).toEqual(["pki"]);
  await kv.purgeDeletedSecret("pki");
  expect((await kv.setSecret("pki", "new")).value).toBe("new");
  expect(fake.violations).toEqual([]);
});

test("RBAC: a data action the caller lacks is refused with ForbiddenByRbac", async () => {
  const kv = secrets((await createVault("kb-rbac")).properties.vaultUri!);
  const asked: DataPlaneAccess[] = [];
  state.authorize = (access) => (asked.push(access), !access.action.endsWith("/getSecret/action"));
  await kv.setSecret("s", "v");
  await expect(kv.getSecret("s")).rejects.toMatchObject({
    statusCode: 403,
    message: expect.stringContaining("getSecret"),
  });
  expect(asked.map((a) => [a.action, a.scope, a.token])).toEqual([
    [
      "Microsoft.KeyVault/vaults/secrets/setSecret/action",
      `/subscriptions/${SUB}/resourceGroups/rg-1/providers/Microsoft.KeyVault/vaults/kb-rbac/secrets/s`,
      "test-token",
    ],
    [
      "Microsoft.KeyVault/vaults/secrets/getSecret/action",
      `/subscriptions/${SUB}/resourceGroups/rg-1/providers/Microsoft.KeyVault/vaults/kb-rbac/secrets/s`,
      "test-token",
    ],
  ]);
});

test("a deleted vault keeps its name: 409 ConflictError until recovered (secrets back) or purged", async () => {
  const uri = (await createVault("kb-c1")).properties.vaultUri!;
  await secrets(uri).setSecret("ca", "pem");
  await client.vaults.delete("rg-1", "kb-c1");
  await expect(client.vaults.get("rg-1", "kb-c1")).rejects.toMatchObject({ statusCode: 404 });
  await expect(secrets(uri).getSecret("ca")).rejects.toMatchObject({ code: "ECONNREFUSED" });
  const deleted = await client.vaults.getDeleted("kb-c1", "westeurope");
  expect(deleted.properties).toMatchObject({
    vaultId: `/subscriptions/${SUB}/resourceGroups/rg-1/providers/Microsoft.KeyVault/vaults/kb-c1`,
    location: "westeurope",
  });
  expect(deleted.properties?.scheduledPurgeDate!.getTime()).toBe(
    deleted.properties!.deletionDate!.getTime() + 7 * 86400_000,
  );
  for (const rg of ["rg-1", "rg-2"])
    await expect(createVault("kb-c1", {}, rg)).rejects.toMatchObject({
      statusCode: 409,
      code: "ConflictError",
    });

  const recovered = await createVault("kb-c1", { createMode: "recover" });
  expect(recovered.properties.vaultUri).toBe(uri);
  expect((await secrets(uri).getSecret("ca")).value).toBe("pem");

  await client.vaults.delete("rg-1", "kb-c1");
  await client.vaults.purgeDeleted("kb-c1", "westeurope", wait);
  await expect(client.vaults.getDeleted("kb-c1", "westeurope")).rejects.toMatchObject({ statusCode: 404 });
  const fresh = await createVault("kb-c1", {}, "rg-2");
  await expect(secrets(fresh.properties.vaultUri!).getSecret("ca")).rejects.toMatchObject({
    statusCode: 404,
  });
  expect(fake.violations).toEqual([]);
});

test("purge protection blocks a purge; names are global; Azure's naming and soft-delete rules", async () => {
  await createVault("kb-protected", { enablePurgeProtection: true });
  await client.vaults.delete("rg-1", "kb-protected");
  await expect(client.vaults.purgeDeleted("kb-protected", "westeurope", wait)).rejects.toMatchObject({
    statusCode: 409,
  });
  await createVault("kb-taken");
  await expect(createVault("kb-taken", {}, "rg-9", management(OTHER_SUB))).rejects.toMatchObject({
    statusCode: 409,
    code: "VaultAlreadyExists",
  });
  for (const name of ["1vault", "vault-", "va--ult"])
    await expect(createVault(name)).rejects.toMatchObject({ statusCode: 400, code: "VaultNameNotValid" });
  await expect(createVault("kb-a", { enableSoftDelete: false })).rejects.toMatchObject({ statusCode: 400 });
  await expect(createVault("kb-b", { softDeleteRetentionInDays: 5 })).rejects.toMatchObject({
    statusCode: 400,
  });
  await expect(createVault("kb-c", { enablePurgeProtection: false })).rejects.toMatchObject({
    statusCode: 400,
  });
  const listed = [];
  for await (const v of client.vaults.listByResourceGroup("rg-1")) listed.push(v.name);
  expect(listed).toEqual(["kb-taken"]);
  expect(fake.violations).toEqual([]);
});

test("the client's default api-version (2026-02-01) is not the described one: the fake records it", async () => {
  await expect(createVault("kb-default", {}, "rg-1", management(SUB, {}))).rejects.toMatchObject({
    statusCode: 400,
  });
  expect(fake.violations).toEqual([expect.stringContaining("api-version 2026-02-01")]);
});
