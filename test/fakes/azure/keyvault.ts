/**
 * Key Vault: the vaults of Resource Manager (Microsoft.KeyVault 2023-07-01) and each vault's secrets data
 * plane (7.5). A vault's data plane is its own host in Azure (https://<name>.vault.azure.net); here it is
 * its own ArmFake on its own port (https://127.0.0.1:<port>/ is the vaultUri), since the secrets client
 * parses a secret id's path as /secrets/<name>/<version> and so takes no path prefix. It answers a request
 * without a token with Key Vault's bearer challenge, and shares the management fake's violations.
 * Vault names are global, soft delete is always on (a deleted vault keeps its name until purged), and
 * the data plane of a deleted vault stops answering, as its DNS name goes.
 */
import { randomBytes } from "node:crypto";
import { armError, ArmFake, type ArmRequest, type ArmResponse } from "./arm-fake";
import type { Json, JsonObject } from "./openapi";
import {
  asObject,
  badRequest,
  Jobs,
  lower,
  preconditionFailed,
  resourceNotFound,
  succeedLater,
} from "./model-kit";

export const KEYVAULT_SPECS = [
  "keyvault/resource-manager/Microsoft.KeyVault/stable/2023-07-01/keyvault.json",
];
export const SECRETS_SPECS = ["keyvault/data-plane/Microsoft.KeyVault/stable/7.5/secrets.json"];

/** The version GET /secrets/<name>/ (no version: the latest) is rewritten to, for the description's path. */
const LATEST = "~latest";
const DAY = 86400;

interface SecretVersion {
  version: string;
  value: string;
  contentType?: string;
  tags?: Json;
  enabled: boolean;
  nbf?: number;
  exp?: number;
  created: number;
  updated: number;
}

export interface Secret {
  name: string;
  /** Oldest first. */
  versions: SecretVersion[];
  deleted?: { deletedDate: number; scheduledPurgeDate: number };
}

export interface Vault {
  name: string;
  resource: JsonObject;
  etag: string;
  secrets: Map<string, Secret>;
  port?: number;
  plane?: ArmFake;
  deleted?: { deletionDate: string; scheduledPurgeDate: string };
}

/** What a data-plane call needs in Azure RBAC: its data action on the secret (or vault) scope. */
export interface DataPlaneAccess {
  vault: Vault;
  /** The bearer token the request carries. */
  token: string;
  action: string;
  scope: string;
}

export class KeyVaultState {
  /** By lower-case name: vault names are global. */
  readonly vaults = new Map<string, Vault>();
  /** Azure RBAC for vaults with enableRbacAuthorization; default: every caller may do everything. */
  authorize: (access: DataPlaneAccess) => boolean = () => true;
  readonly jobs = new Jobs();
  private revision = 0;

  /** Ends pending operations (a purge) without the client polling. */
  settle(): Promise<void> {
    return this.jobs.settle();
  }

  /** Stops every vault's data plane (the management fake is stopped by whoever started it). */
  async stop(): Promise<void> {
    await Promise.all([...this.vaults.values()].map((vault) => closePlane(vault)));
  }

  /** The latest enabled value of a secret, as a node reading it would get it. */
  secretValue(vaultName: string, secretName: string): string | undefined {
    const secret = this.vaults.get(lower(vaultName))?.secrets.get(lower(secretName));
    return secret && !secret.deleted ? secret.versions.at(-1)?.value : undefined;
  }

  nextEtag(): string {
    return `"${++this.revision}"`;
  }
}

export function installKeyVault(fake: ArmFake, state = new KeyVaultState()): KeyVaultState {
  fake.on("Vaults_CreateOrUpdate", (req) => createOrUpdate(fake, state, req));
  fake.on("Vaults_Get", (req) => {
    const vault = active(state, req.path);
    if (!vault) return resourceNotFound(req, "Microsoft.KeyVault/vaults");
    return { status: 200, body: vault.resource, headers: { ETag: vault.etag } };
  });
  fake.on("Vaults_ListByResourceGroup", (req) => {
    const scope = lower(req.path.replace(/\/providers\/.*$/i, ""));
    const value = [...state.vaults.values()]
      .filter((v) => !v.deleted && lower(String(v.resource.id)).startsWith(`${scope}/`))
      .map((v) => v.resource);
    return { status: 200, body: { value } };
  });
  fake.on("Vaults_Delete", async (req) => {
    const vault = active(state, req.path);
    if (!vault) return { status: 204 };
    const properties = asObject(vault.resource.properties);
    const now = new Date();
    const days = Number(properties.softDeleteRetentionInDays);
    vault.deleted = {
      deletionDate: now.toISOString(),
      scheduledPurgeDate: new Date(now.getTime() + days * DAY * 1000).toISOString(),
    };
    await closePlane(vault);
    return { status: 200 };
  });
  fake.on("Vaults_GetDeleted", (req) => {
    const vault = deletedVault(state, req);
    if (!vault) return deletedNotFound(req);
    return { status: 200, body: deletedView(vault, req.params.subscriptionId!) };
  });
  fake.on("Vaults_ListDeleted", (req) => ({
    status: 200,
    body: {
      value: [...state.vaults.values()]
        .filter(
          (v) =>
            v.deleted && String(v.resource.id).startsWith(`/subscriptions/${req.params.subscriptionId}/`),
        )
        .map((v) => deletedView(v, req.params.subscriptionId!)),
    },
  }));
  fake.on("Vaults_PurgeDeleted", (req) => {
    const vault = deletedVault(state, req);
    if (!vault) return deletedNotFound(req);
    if (asObject(vault.resource.properties).enablePurgeProtection === true)
      return armError(
        409,
        "Conflict",
        `Operation 'purge' is not allowed: purge protection is enabled for vault '${vault.name}'; it is purged after its retention period.`,
      );
    const finish = state.jobs.add(() => {
      if (state.vaults.get(lower(vault.name)) === vault) state.vaults.delete(lower(vault.name));
    });
    return { status: 202, headers: succeedLater(fake, req, finish) };
  });
  fake.on("Vaults_CheckNameAvailability", (req) => {
    const name = String(asObject(req.body).name);
    const invalid = nameProblem(name);
    const taken = state.vaults.has(lower(name));
    const body: JsonObject = invalid
      ? { nameAvailable: false, reason: "AccountNameInvalid", message: invalid }
      : taken
        ? {
            nameAvailable: false,
            reason: "AlreadyExists",
            message: `The vault name '${name}' is already in use.`,
          }
        : { nameAvailable: true };
    return { status: 200, body };
  });
  return state;
}

function active(state: KeyVaultState, id: string): Vault | undefined {
  const vault = state.vaults.get(lower(id.split("/").pop()!));
  return vault && !vault.deleted && lower(String(vault.resource.id)) === lower(id) ? vault : undefined;
}

const normalLocation = (location: string) => location.replace(/\s+/g, "").toLowerCase();

function deletedVault(state: KeyVaultState, req: ArmRequest): Vault | undefined {
  const vault = state.vaults.get(lower(req.params.vaultName!));
  if (!vault?.deleted) return undefined;
  const sameSubscription = String(vault.resource.id).startsWith(
    `/subscriptions/${req.params.subscriptionId}/`,
  );
  const sameLocation =
    normalLocation(String(vault.resource.location)) === normalLocation(req.params.location!);
  return sameSubscription && sameLocation ? vault : undefined;
}

const deletedNotFound = (req: ArmRequest) =>
  armError(
    404,
    "ResourceNotFound",
    `The deleted vault '${req.params.vaultName}' was not found in ${req.params.location}.`,
  );

function deletedView(vault: Vault, subscriptionId: string): JsonObject {
  const location = normalLocation(String(vault.resource.location));
  return {
    id: `/subscriptions/${subscriptionId}/providers/Microsoft.KeyVault/locations/${location}/deletedVaults/${vault.name}`,
    name: vault.name,
    type: "Microsoft.KeyVault/deletedVaults",
    properties: {
      vaultId: String(vault.resource.id),
      location,
      deletionDate: vault.deleted!.deletionDate,
      scheduledPurgeDate: vault.deleted!.scheduledPurgeDate,
      tags: asObject(vault.resource.tags),
      purgeProtectionEnabled: asObject(vault.resource.properties).enablePurgeProtection === true,
    },
  };
}

/** Azure's naming rule beyond the description's pattern (3-24 of [a-zA-Z0-9-]). */
function nameProblem(name: string): string | undefined {
  if (/^[a-zA-Z](?!.*--)[a-zA-Z0-9-]{1,22}[a-zA-Z0-9]$/.test(name)) return undefined;
  return `The vault name '${name}' is invalid. A vault's name must be between 3-24 alphanumeric characters. The name must begin with a letter, end with a letter or digit, and not contain consecutive hyphens.`;
}

async function createOrUpdate(fake: ArmFake, state: KeyVaultState, req: ArmRequest): Promise<ArmResponse> {
  const name = req.params.vaultName!;
  const invalid = nameProblem(name);
  if (invalid) return badRequest("VaultNameNotValid", invalid);
  const body = req.body as JsonObject;
  const properties = asObject(body.properties);
  const known = state.vaults.get(lower(name));
  const existing =
    known && !known.deleted && lower(String(known.resource.id)) === lower(req.path) ? known : undefined;
  const precondition = preconditionFailed(req, existing?.etag);
  if (precondition) return precondition;
  if (known && !existing && !known.deleted)
    return armError(409, "VaultAlreadyExists", `The vault name '${name}' is already in use.`);
  const recovering = properties.createMode === "recover";
  if (known?.deleted && !recovering)
    return armError(
      409,
      "ConflictError",
      `A vault with the same name already exists in deleted state. You need to either recover or purge existing key vault. Vault name: ${name}.`,
    );
  if (recovering && (!known?.deleted || lower(String(known.resource.id)) !== lower(req.path)))
    return armError(404, "ResourceNotFound", `No deleted vault '${name}' to recover at ${req.path}.`);
  const refused = checkProperties(properties, asObject(existing?.resource.properties));
  if (refused) return refused;

  const vault: Vault = existing ?? known ?? { name, resource: {}, etag: "", secrets: new Map() };
  const before = asObject(vault.resource.properties);
  const { createMode: _mode, ...given } = properties;
  void _mode;
  // Recovery brings the vault back as it was deleted; the body only names it.
  const kept = recovering ? before : { ...given };
  vault.resource = {
    id: req.path,
    name,
    type: "Microsoft.KeyVault/vaults",
    location: recovering ? String(vault.resource.location) : String(body.location),
    tags: recovering ? asObject(vault.resource.tags) : asObject(body.tags),
    properties: {
      ...kept,
      enableSoftDelete: true,
      softDeleteRetentionInDays: Number(
        kept.softDeleteRetentionInDays ?? before.softDeleteRetentionInDays ?? 90,
      ),
      enableRbacAuthorization: kept.enableRbacAuthorization === true,
      ...(before.enablePurgeProtection === true ? { enablePurgeProtection: true } : {}),
      accessPolicies: (kept.accessPolicies as Json) ?? [],
      provisioningState: "RegisteringDns",
    },
  };
  vault.etag = state.nextEtag();
  delete vault.deleted;
  state.vaults.set(lower(name), vault);
  await openPlane(fake, state, vault);
  asObject(vault.resource.properties).vaultUri = `https://127.0.0.1:${vault.port}/`;
  const finish = state.jobs.add(
    () => void (asObject(vault.resource.properties).provisioningState = "Succeeded"),
  );
  const headers = { ...succeedLater(fake, req, finish), ETag: vault.etag };
  return { status: existing ? 200 : 201, body: vault.resource, headers };
}

function checkProperties(properties: JsonObject, before: JsonObject): ArmResponse | undefined {
  if (properties.enableSoftDelete === false)
    return badRequest(
      "BadRequest",
      'The property "enableSoftDelete" cannot be set to false: soft delete is mandatory for all vaults.',
    );
  const days = properties.softDeleteRetentionInDays;
  if (days !== undefined && (typeof days !== "number" || days < 7 || days > 90))
    return badRequest("BadRequest", "softDeleteRetentionInDays must be between 7 and 90.");
  if (
    before.softDeleteRetentionInDays !== undefined &&
    days !== undefined &&
    days !== before.softDeleteRetentionInDays
  )
    return badRequest("BadRequest", 'The property "softDeleteRetentionInDays" cannot be changed once set.');
  if (properties.enablePurgeProtection === false)
    return badRequest(
      "BadRequest",
      'The property "enablePurgeProtection" cannot be set to false. Enabling the purge protection for a vault is an irreversible action.',
    );
  return undefined;
}

// ---- the data plane ----

async function openPlane(fake: ArmFake, state: KeyVaultState, vault: Vault): Promise<void> {
  if (vault.plane) return;
  const plane = await ArmFake.start(SECRETS_SPECS, { violations: fake.violations, port: vault.port });
  vault.plane = plane;
  vault.port = Number(new URL(plane.endpoint).port);
  const tenant = () => String(asObject(vault.resource.properties).tenantId);
  plane.intercept = ({ method, url, headers }) => {
    if (!/^Bearer \S+/.test(headers.authorization ?? ""))
      return {
        ...armError(401, "Unauthorized", "AKV10000: Request is missing a Bearer or PoP token."),
        headers: {
          "WWW-Authenticate": `Bearer authorization="https://login.microsoftonline.com/${tenant()}", resource="https://vault.azure.net"`,
        },
      };
    // The description marks the version required and documents it as optional (the latest).
    const latest = /^\/secrets\/([^/]+)\/?$/.exec(url.pathname);
    if (method === "GET" && latest) url.pathname = `/secrets/${latest[1]}/${LATEST}`;
    return undefined;
  };
  const guarded = (action: string, handler: (req: ArmRequest) => ArmResponse) => (req: ArmRequest) => {
    const rbac = asObject(vault.resource.properties).enableRbacAuthorization === true;
    const token = String(req.headers.authorization).replace(/^Bearer /, "");
    const name = req.params["secret-name"];
    const scope = `${String(vault.resource.id)}${name ? `/secrets/${name}` : ""}`;
    if (rbac && !state.authorize({ vault, token, action, scope }))
      return {
        status: 403,
        body: {
          error: {
            code: "Forbidden",
            message: `Caller is not authorized to perform action on resource. Action: '${action}' Resource: '${scope.toLowerCase()}'`,
            innererror: { code: "ForbiddenByRbac" },
          },
        },
      };
    return handler(req);
  };
  const secrets = "Microsoft.KeyVault/vaults/secrets";
  plane
    .on(
      "SetSecret",
      guarded(`${secrets}/setSecret/action`, (req) => setSecret(vault, req)),
    )
    .on(
      "GetSecret",
      guarded(`${secrets}/getSecret/action`, (req) => getSecret(vault, req)),
    )
    .on(
      "UpdateSecret",
      guarded(`${secrets}/update/action`, (req) => updateSecret(vault, req)),
    )
    .on(
      "GetSecrets",
      guarded(`${secrets}/readMetadata/action`, () => listSecrets(vault)),
    )
    .on(
      "GetSecretVersions",
      guarded(`${secrets}/readMetadata/action`, (req) => listVersions(vault, req)),
    )
    .on(
      "DeleteSecret",
      guarded(`${secrets}/delete`, (req) => deleteSecret(vault, req)),
    )
    .on(
      "GetDeletedSecret",
      guarded(`${secrets}/readMetadata/action`, (req) => getDeleted(vault, req)),
    )
    .on(
      "GetDeletedSecrets",
      guarded(`${secrets}/readMetadata/action`, () => listDeleted(vault)),
    )
    .on(
      "RecoverDeletedSecret",
      guarded(`${secrets}/recover/action`, (req) => recoverSecret(vault, req)),
    )
    .on(
      "PurgeDeletedSecret",
      guarded(`${secrets}/purge/action`, (req) => purgeSecret(vault, req)),
    );
}

async function closePlane(vault: Vault): Promise<void> {
  const plane = vault.plane;
  delete vault.plane;
  await plane?.stop();
}

const now = () => Math.floor(Date.now() / 1000);
const baseUrl = (vault: Vault) => `https://127.0.0.1:${vault.port}`;
const retention = (vault: Vault) => Number(asObject(vault.resource.properties).softDeleteRetentionInDays);

function kvError(status: number, code: string, message: string, inner?: string): ArmResponse {
  return { status, body: { error: { code, message, ...(inner ? { innererror: { code: inner } } : {}) } } };
}

const secretNotFound = (name: string) =>
  kvError(
    404,
    "SecretNotFound",
    `A secret with (name/id) ${name} was not found in this key vault. If you recently deleted this secret you may be able to recover it using the correct recovery command.`,
  );

function attributes(vault: Vault, v: SecretVersion): JsonObject {
  const purgeProtected = asObject(vault.resource.properties).enablePurgeProtection === true;
  return {
    enabled: v.enabled,
    ...(v.nbf !== undefined ? { nbf: v.nbf } : {}),
    ...(v.exp !== undefined ? { exp: v.exp } : {}),
    created: v.created,
    updated: v.updated,
    recoverableDays: retention(vault),
    recoveryLevel: purgeProtected ? "Recoverable" : "Recoverable+Purgeable",
  };
}

function bundle(vault: Vault, secret: Secret, v: SecretVersion, withValue: boolean): JsonObject {
  return {
    ...(withValue ? { value: v.value } : {}),
    id: `${baseUrl(vault)}/secrets/${secret.name}/${v.version}`,
    ...(v.contentType !== undefined ? { contentType: v.contentType } : {}),
    attributes: attributes(vault, v),
    tags: v.tags ?? {},
  };
}

function deletedBundle(vault: Vault, secret: Secret): JsonObject {
  return {
    ...bundle(vault, secret, secret.versions.at(-1)!, false),
    recoveryId: `${baseUrl(vault)}/deletedsecrets/${secret.name}`,
    deletedDate: secret.deleted!.deletedDate,
    scheduledPurgeDate: secret.deleted!.scheduledPurgeDate,
  };
}

function liveSecret(vault: Vault, name: string): Secret | undefined {
  const secret = vault.secrets.get(lower(name));
  return secret && !secret.deleted ? secret : undefined;
}

function setSecret(vault: Vault, req: ArmRequest): ArmResponse {
  const name = req.params["secret-name"]!;
  const body = asObject(req.body);
  const existing = vault.secrets.get(lower(name));
  if (existing?.deleted)
    return kvError(
      409,
      "Conflict",
      `Secret ${name} is currently in a deleted but recoverable state, and its name cannot be reused; in this state, the secret can only be recovered or purged.`,
      "ObjectIsDeletedButRecoverable",
    );
  const given = asObject(body.attributes);
  const time = now();
  const version: SecretVersion = {
    version: randomBytes(16).toString("hex"),
    value: String(body.value),
    ...(body.contentType !== undefined ? { contentType: String(body.contentType) } : {}),
    ...(body.tags !== undefined ? { tags: body.tags } : {}),
    enabled: given.enabled !== false,
    ...(typeof given.nbf === "number" ? { nbf: given.nbf } : {}),
    ...(typeof given.exp === "number" ? { exp: given.exp } : {}),
    created: time,
    updated: time,
  };
  const secret = existing ?? { name, versions: [] };
  secret.versions.push(version);
  vault.secrets.set(lower(name), secret);
  return { status: 200, body: bundle(vault, secret, version, true) };
}

function findVersion(
  vault: Vault,
  req: ArmRequest,
): { secret: Secret; version: SecretVersion } | ArmResponse {
  const name = req.params["secret-name"]!;
  const wanted = req.params["secret-version"]!;
  const secret = liveSecret(vault, name);
  const version =
    wanted === LATEST ? secret?.versions.at(-1) : secret?.versions.find((v) => v.version === lower(wanted));
  if (!secret || !version) return secretNotFound(wanted === LATEST ? name : `${name}/${wanted}`);
  return { secret, version };
}

function getSecret(vault: Vault, req: ArmRequest): ArmResponse {
  const found = findVersion(vault, req);
  if ("status" in found) return found;
  if (!found.version.enabled)
    return kvError(403, "Forbidden", "Operation get is not allowed on a disabled secret.", "SecretDisabled");
  return { status: 200, body: bundle(vault, found.secret, found.version, true) };
}

function updateSecret(vault: Vault, req: ArmRequest): ArmResponse {
  const found = findVersion(vault, req);
  if ("status" in found) return found;
  const body = asObject(req.body);
  const given = asObject(body.attributes);
  const version = found.version;
  if (typeof given.enabled === "boolean") version.enabled = given.enabled;
  if (typeof given.nbf === "number") version.nbf = given.nbf;
  if (typeof given.exp === "number") version.exp = given.exp;
  if (body.contentType !== undefined) version.contentType = String(body.contentType);
  if (body.tags !== undefined) version.tags = body.tags;
  version.updated = now();
  return { status: 200, body: bundle(vault, found.secret, version, false) };
}

function item(vault: Vault, secret: Secret, v: SecretVersion, withVersion: boolean): JsonObject {
  return {
    id: `${baseUrl(vault)}/secrets/${secret.name}${withVersion ? `/${v.version}` : ""}`,
    attributes: attributes(vault, v),
    tags: v.tags ?? {},
    ...(v.contentType !== undefined ? { contentType: v.contentType } : {}),
  };
}

function listSecrets(vault: Vault): ArmResponse {
  const value = [...vault.secrets.values()]
    .filter((s) => !s.deleted)
    .map((s) => item(vault, s, s.versions.at(-1)!, false));
  return { status: 200, body: { value } };
}

function listVersions(vault: Vault, req: ArmRequest): ArmResponse {
  const secret = liveSecret(vault, req.params["secret-name"]!);
  if (!secret) return secretNotFound(req.params["secret-name"]!);
  return { status: 200, body: { value: secret.versions.map((v) => item(vault, secret, v, true)) } };
}

function deleteSecret(vault: Vault, req: ArmRequest): ArmResponse {
  const secret = liveSecret(vault, req.params["secret-name"]!);
  if (!secret) return secretNotFound(req.params["secret-name"]!);
  const time = now();
  secret.deleted = { deletedDate: time, scheduledPurgeDate: time + retention(vault) * DAY };
  return { status: 200, body: deletedBundle(vault, secret) };
}

function deletedSecret(vault: Vault, req: ArmRequest): Secret | undefined {
  const secret = vault.secrets.get(lower(req.params["secret-name"]!));
  return secret?.deleted ? secret : undefined;
}

const deletedSecretNotFound = (name: string) =>
  kvError(404, "SecretNotFound", `Deleted Secret not found: ${name}`);

function getDeleted(vault: Vault, req: ArmRequest): ArmResponse {
  const secret = deletedSecret(vault, req);
  if (!secret) return deletedSecretNotFound(req.params["secret-name"]!);
  return { status: 200, body: deletedBundle(vault, secret) };
}

function listDeleted(vault: Vault): ArmResponse {
  const value = [...vault.secrets.values()]
    .filter((s) => s.deleted)
    .map((s) => {
      const { value: _value, ...rest } = deletedBundle(vault, s);
      void _value;
      return { ...rest, id: `${baseUrl(vault)}/secrets/${s.name}` };
    });
  return { status: 200, body: { value } };
}

function recoverSecret(vault: Vault, req: ArmRequest): ArmResponse {
  const secret = deletedSecret(vault, req);
  if (!secret) return deletedSecretNotFound(req.params["secret-name"]!);
  delete secret.deleted;
  return { status: 200, body: bundle(vault, secret, secret.versions.at(-1)!, false) };
}

function purgeSecret(vault: Vault, req: ArmRequest): ArmResponse {
  const secret = deletedSecret(vault, req);
  if (!secret) return deletedSecretNotFound(req.params["secret-name"]!);
  if (asObject(vault.resource.properties).enablePurgeProtection === true)
    return kvError(
      403,
      "Forbidden",
      `Operation "purge" is not allowed: purge protection is enabled for this vault.`,
    );
  vault.secrets.delete(lower(secret.name));
  return { status: 204 };
}
