import { labelProblem, maskPaths, page } from "./common";
import { rpcError, type FakeRequest, type FakeResponse, type GoogleApiFake } from "./fake";
import type { IamState } from "./iam";
import { bindingChecker, getPolicy, IamPolicy, setPolicy } from "./project-iam";

/**
 * Secret Manager v1 behind the fake. What it holds clients to, as GCP does:
 * - names in answers carry the project NUMBER when one is known (`projects/123/secrets/s`), whatever the
 *   request said; requests may use the id or the number;
 * - create needs a secretId (`^[a-zA-Z0-9_-]{1,255}$`) and a replication (automatic, or userManaged with
 *   replicas); a duplicate is 409 ALREADY_EXISTS; labels follow Google's label rules;
 * - a version's payload is base64, at most 64 KiB; a dataCrc32c (CRC32C, Castagnoli) must match it (400);
 * - `versions/latest` is the most recently CREATED version whatever its state (GCP's documented alias:
 *   when the newest is disabled or destroyed, access answers 400 FAILED_PRECONDITION rather than falling
 *   back to an older one); accessing a disabled or destroyed version is 400 FAILED_PRECONDITION;
 * - destroy wipes the payload and is final; each secret has its own IAM policy (see project-iam.ts).
 * Version aliases, rotation, topics, TTLs and CMEK are not modelled: a request using them answers 501.
 */
export type VersionState = "ENABLED" | "DISABLED" | "DESTROYED";

export interface StoredVersion {
  id: number;
  state: VersionState;
  data?: Buffer;
  createTime: string;
  destroyTime?: string;
  etag: string;
  clientChecksum: boolean;
}

export interface StoredSecret {
  project: string;
  id: string;
  replication: unknown;
  labels: Record<string, string>;
  annotations: Record<string, string>;
  createTime: string;
  etag: string;
  versions: StoredVersion[];
  policy: IamPolicy;
}

const SECRET_ID = /^[a-zA-Z0-9_-]{1,255}$/;
const ANNOTATION_KEY = /^(?:[a-z0-9.-]{1,253}\/)?[A-Za-z0-9](?:[A-Za-z0-9._-]{0,61}[A-Za-z0-9])?$/;
const MAX_PAYLOAD = 64 * 1024;
const MODELLED = ["name", "replication", "labels", "annotations", "etag", "createTime"];

export class SecretsState {
  /** Secrets by `PROJECT_ID/SECRET_ID`. */
  readonly secrets = new Map<string, StoredSecret>();
  private stamps = 0;

  /** `projectNumbers`: project id → number, the number answered in names. */
  constructor(
    readonly iam?: IamState,
    readonly projectNumbers: Record<string, string> = {},
  ) {
    iam?.onAccountDeleted((email, uid) => {
      for (const secret of this.secrets.values())
        secret.policy.rewriteMember(`serviceAccount:${email}`, `deleted:serviceAccount:${email}?uid=${uid}`);
    });
  }

  secret(project: string, id: string): StoredSecret | undefined {
    return this.secrets.get(`${this.projectId(project)}/${id}`);
  }

  /** A version's payload as text: "latest" or a number; undefined when it has none to give. */
  value(project: string, id: string, version = "latest"): string | undefined {
    const found = this.secret(project, id);
    return found && resolveVersion(found, version)?.data?.toString("utf8");
  }

  /** A project id, given its id or number. */
  projectId(project: string): string {
    return Object.entries(this.projectNumbers).find(([, number]) => number === project)?.[0] ?? project;
  }

  secretName(secret: StoredSecret): string {
    return `projects/${this.projectNumbers[secret.project] ?? secret.project}/secrets/${secret.id}`;
  }

  /** A Secret Manager etag: a quoted string that changes on every write. */
  etag(): string {
    return `"${(Date.now() * 1000 + (++this.stamps % 1000)).toString(16)}"`;
  }
}

const CRC_TABLE = Array.from({ length: 256 }, (_, n) => {
  let c = n;
  for (let k = 0; k < 8; k++) c = c & 1 ? (c >>> 1) ^ 0x82f63b78 : c >>> 1;
  return c >>> 0;
});

/** CRC32C (Castagnoli), the checksum Secret Manager's dataCrc32c carries. */
export function crc32c(data: Buffer): number {
  let c = 0xffffffff;
  for (const byte of data) c = CRC_TABLE[(c ^ byte) & 0xff] ^ (c >>> 8);
  return (c ^ 0xffffffff) >>> 0;
}

function resolveVersion(secret: StoredSecret, version: string): StoredVersion | undefined {
  if (version === "latest") return secret.versions.at(-1);
  return /^[1-9]\d*$/.test(version) ? secret.versions[Number(version) - 1] : undefined;
}

export function installSecrets(fake: GoogleApiFake, state = new SecretsState()): SecretsState {
  const m = "secretmanager.projects.secrets";
  /** The secret a `projects/P/secrets/S[/versions/V]` name points at, or its 404. */
  const lookup = (name: string): { secret: StoredSecret; version?: string } | FakeResponse => {
    const match = /^projects\/([^/]+)\/secrets\/([^/]+)(?:\/versions\/([^/]+))?$/.exec(name)!;
    const secret = state.secret(match[1], match[2]);
    if (!secret)
      return rpcError(404, "NOT_FOUND", `Secret [${name.replace(/\/versions\/.*/, "")}] not found.`);
    return { secret, version: match[3] };
  };
  const withSecret =
    (
      name: (request: FakeRequest) => string,
      then: (secret: StoredSecret, request: FakeRequest) => FakeResponse,
    ) =>
    (request: FakeRequest) => {
      const found = lookup(name(request));
      return "secret" in found ? then(found.secret, request) : found;
    };
  const withVersion =
    (then: (secret: StoredSecret, version: StoredVersion, request: FakeRequest) => FakeResponse) =>
    (request: FakeRequest) => {
      const found = lookup(request.params.name);
      if (!("secret" in found)) return found;
      const version = resolveVersion(found.secret, found.version!);
      if (!version)
        return found.version === "latest"
          ? rpcError(
              404,
              "NOT_FOUND",
              `Secret [${state.secretName(found.secret)}] not found or has no versions.`,
            )
          : rpcError(404, "NOT_FOUND", `Secret Version [${request.params.name}] not found.`);
      return then(found.secret, version, request);
    };
  const versionJson = (secret: StoredSecret, version: StoredVersion) => ({
    name: `${state.secretName(secret)}/versions/${version.id}`,
    createTime: version.createTime,
    ...(version.destroyTime ? { destroyTime: version.destroyTime } : {}),
    state: version.state,
    etag: version.etag,
    ...(version.clientChecksum ? { clientSpecifiedPayloadChecksum: true } : {}),
  });
  const secretJson = (secret: StoredSecret) => ({
    name: state.secretName(secret),
    replication: secret.replication,
    createTime: secret.createTime,
    ...(Object.keys(secret.labels).length ? { labels: secret.labels } : {}),
    ...(Object.keys(secret.annotations).length ? { annotations: secret.annotations } : {}),
    etag: secret.etag,
  });
  const stale = () =>
    rpcError(409, "ABORTED", "The etag does not match: the resource changed since it was read.");
  const notEnabled = (secret: StoredSecret, version: StoredVersion) =>
    rpcError(
      400,
      "FAILED_PRECONDITION",
      `Secret Version [${state.secretName(secret)}/versions/${version.id}] is in ${version.state} state.`,
    );

  fake.on(`${m}.create`, (request) => {
    const project = state.projectId(request.params.parent.replace(/^projects\//, ""));
    const id = request.query.get("secretId") ?? "";
    if (!SECRET_ID.test(id))
      return rpcError(400, "INVALID_ARGUMENT", `secret_id "${id}" must match ${SECRET_ID.source}.`);
    const body = (request.json ?? {}) as Record<string, unknown> & {
      replication?: { automatic?: object; userManaged?: { replicas?: { location?: string }[] } };
      labels?: Record<string, string>;
      annotations?: Record<string, string>;
    };
    // Empty values are what a client's defaults send (the official client's proto3 JSON: `tags: {}`).
    const empty = (value: unknown) =>
      value === null ||
      value === "" ||
      (typeof value === "object" && Object.keys(value as object).length === 0);
    const unmodelled = Object.keys(body).filter(
      (field) => !MODELLED.includes(field) && !empty((body as Record<string, unknown>)[field]),
    );
    if (unmodelled.length)
      return rpcError(501, "UNIMPLEMENTED", `the fake does not model ${unmodelled.join(", ")}`);
    const problem = replicationProblem(body.replication) ?? metadataProblem(body);
    if (problem) return rpcError(400, "INVALID_ARGUMENT", problem);
    if (state.secret(project, id))
      return rpcError(
        409,
        "ALREADY_EXISTS",
        `Secret [${request.params.parent}/secrets/${id}] already exists.`,
      );
    const secret: StoredSecret = {
      project,
      id,
      replication: body.replication,
      labels: { ...body.labels },
      annotations: { ...body.annotations },
      createTime: new Date().toISOString(),
      etag: state.etag(),
      versions: [],
      policy: new IamPolicy(),
    };
    state.secrets.set(`${project}/${id}`, secret);
    return { json: secretJson(secret) };
  });
  fake.on(
    `${m}.get`,
    withSecret(
      (request) => request.params.name,
      (secret) => ({ json: secretJson(secret) }),
    ),
  );
  fake.on(`${m}.list`, (request) => {
    const project = state.projectId(request.params.parent.replace(/^projects\//, ""));
    const keep = secretFilter(request.query.get("filter"));
    if (!keep) return rpcError(400, "INVALID_ARGUMENT", `the fake does not understand the filter`);
    // Listed by name, ascending, as GCP documents.
    const all = [...state.secrets.values()]
      .filter((secret) => secret.project === project)
      .sort((a, b) => a.id.localeCompare(b.id))
      .filter((secret) => keep(secret, state.secretName(secret)));
    const tag = `secrets:${project}:${request.query.get("filter") ?? ""}`;
    return listAnswer("secrets", all.map(secretJson), request, tag);
  });
  fake.on(
    `${m}.delete`,
    withSecret(
      (request) => request.params.name,
      (secret, request) => {
        const etag = request.query.get("etag");
        if (etag && etag !== secret.etag) return stale();
        state.secrets.delete(`${secret.project}/${secret.id}`); // its versions and policy go with it
        return { json: {} };
      },
    ),
  );
  fake.on(
    `${m}.patch`,
    withSecret(
      (request) => request.params.name,
      (secret, request) => {
        const body = (request.json ?? {}) as Record<string, unknown> & {
          labels?: Record<string, string>;
          annotations?: Record<string, string>;
          etag?: string;
        };
        const paths = maskPaths(request.query.get("updateMask"));
        if (!paths.length) return rpcError(400, "INVALID_ARGUMENT", "update_mask is required.");
        if (paths.includes("replication"))
          return rpcError(400, "INVALID_ARGUMENT", "replication cannot be changed after creation.");
        const unmodelled = paths.filter((path) => path !== "labels" && path !== "annotations");
        if (unmodelled.length)
          return rpcError(501, "UNIMPLEMENTED", `the fake does not model ${unmodelled.join(", ")}`);
        if (body.etag && body.etag !== secret.etag) return stale();
        const problem = metadataProblem(body);
        if (problem) return rpcError(400, "INVALID_ARGUMENT", problem);
        if (paths.includes("labels")) secret.labels = { ...body.labels };
        if (paths.includes("annotations")) secret.annotations = { ...body.annotations };
        secret.etag = state.etag();
        return { json: secretJson(secret) };
      },
    ),
  );
  fake.on(
    `${m}.addVersion`,
    withSecret(
      (request) => request.params.parent,
      (secret, request) => {
        const payload = (request.json as { payload?: { data?: string; dataCrc32c?: string | number } })
          ?.payload;
        if (payload?.data === undefined)
          return rpcError(400, "INVALID_ARGUMENT", "payload.data is required.");
        if (!/^[A-Za-z0-9+/_-]*={0,2}$/.test(payload.data))
          return rpcError(400, "INVALID_ARGUMENT", "payload.data is not base64.");
        const data = Buffer.from(payload.data, "base64");
        if (data.length > MAX_PAYLOAD)
          return rpcError(
            400,
            "INVALID_ARGUMENT",
            `Secret payload is ${data.length} bytes, the limit is 64 KiB.`,
          );
        const given = payload.dataCrc32c;
        if (given !== undefined && String(given) !== String(crc32c(data)))
          return rpcError(
            400,
            "INVALID_ARGUMENT",
            `Checksum mismatch: the payload's CRC32C is ${crc32c(data)}, the request says ${given}.`,
          );
        const version: StoredVersion = {
          id: secret.versions.length + 1,
          state: "ENABLED",
          data,
          createTime: new Date().toISOString(),
          etag: state.etag(),
          clientChecksum: given !== undefined,
        };
        secret.versions.push(version);
        return { json: versionJson(secret, version) };
      },
    ),
  );
  fake.on(
    `${m}.versions.access`,
    withVersion((secret, version) => {
      if (version.state !== "ENABLED") return notEnabled(secret, version);
      return {
        json: {
          name: `${state.secretName(secret)}/versions/${version.id}`,
          payload: { data: version.data!.toString("base64"), dataCrc32c: String(crc32c(version.data!)) },
        },
      };
    }),
  );
  fake.on(
    `${m}.versions.get`,
    withVersion((secret, version) => ({ json: versionJson(secret, version) })),
  );
  fake.on(
    `${m}.versions.list`,
    withSecret(
      (request) => request.params.parent,
      (secret, request) => {
        const filter = request.query.get("filter");
        const state_ = /^state\s*[:=]\s*(ENABLED|DISABLED|DESTROYED)$/.exec(filter ?? "")?.[1];
        if (filter && !state_)
          return rpcError(400, "INVALID_ARGUMENT", "the fake understands state:STATE only");
        const all = [...secret.versions].reverse().filter((v) => !state_ || v.state === state_);
        const tag = `versions:${secret.project}/${secret.id}:${filter ?? ""}`;
        return listAnswer(
          "versions",
          all.map((v) => versionJson(secret, v)),
          request,
          tag,
        );
      },
    ),
  );
  const transition = (to: VersionState) =>
    withVersion((secret, version, request) => {
      const etag = (request.json as { etag?: string } | undefined)?.etag;
      if (etag && etag !== version.etag) return stale();
      if (version.state === "DESTROYED")
        return rpcError(
          400,
          "FAILED_PRECONDITION",
          `Secret Version [${state.secretName(secret)}/versions/${version.id}] is already destroyed.`,
        );
      version.state = to;
      version.etag = state.etag();
      if (to === "DESTROYED") {
        version.data = undefined;
        version.destroyTime = new Date().toISOString();
      }
      return { json: versionJson(secret, version) };
    });
  fake.on(`${m}.versions.destroy`, transition("DESTROYED"));
  fake.on(`${m}.versions.disable`, transition("DISABLED"));
  fake.on(`${m}.versions.enable`, transition("ENABLED"));
  fake.on(
    `${m}.getIamPolicy`,
    withSecret(
      (request) => request.params.resource,
      (secret, request) => getPolicy(secret.policy, request.query.get("options.requestedPolicyVersion") ?? 0),
    ),
  );
  fake.on(
    `${m}.setIamPolicy`,
    withSecret(
      (request) => request.params.resource,
      (secret, request) => setPolicy(secret.policy, request.json, bindingChecker(state.iam, secret.project)),
    ),
  );
  return state;
}

function listAnswer(field: string, all: unknown[], request: FakeRequest, tag: string): FakeResponse {
  const found = page(all, {
    pageSize: request.query.get("pageSize"),
    pageToken: request.query.get("pageToken"),
    tag,
    default: 25000,
    max: 25000,
  });
  if (!found) return rpcError(400, "INVALID_ARGUMENT", "Invalid page token");
  // proto3 JSON: empty lists and a zero totalSize are left out.
  return {
    json: {
      ...(found.items.length ? { [field]: found.items } : {}),
      ...(found.nextPageToken ? { nextPageToken: found.nextPageToken } : {}),
      ...(all.length ? { totalSize: all.length } : {}),
    },
  };
}

function replicationProblem(replication: unknown): string | undefined {
  const r = replication as { automatic?: object; userManaged?: { replicas?: { location?: string }[] } };
  if (!r || (r.automatic === undefined) === (r.userManaged === undefined))
    return "Secret.replication is required: exactly one of automatic or userManaged.";
  if (r.userManaged) {
    const locations = (r.userManaged.replicas ?? []).map((replica) => replica.location ?? "");
    if (!locations.length || locations.some((l) => !l) || new Set(locations).size !== locations.length)
      return "Secret.replication.userManaged needs replicas with distinct locations.";
  }
  return undefined;
}

function metadataProblem(body: {
  labels?: Record<string, string>;
  annotations?: Record<string, string>;
}): string | undefined {
  const labels = labelProblem(body.labels);
  if (labels) return labels;
  const annotations = Object.entries(body.annotations ?? {});
  const bad = annotations.find(([key]) => !ANNOTATION_KEY.test(key));
  if (bad) return `invalid annotation key "${bad[0]}"`;
  const size = annotations.reduce((sum, [key, value]) => sum + key.length + value.length, 0);
  return size > 16 * 1024 ? `annotations are ${size} bytes, the limit is 16 KiB` : undefined;
}

/**
 * The filters the fake understands: `labels.K=V`, `labels.K:V`, `labels.K:*`, `name:SUBSTRING` (`*` a
 * wildcard), `name=NAME`, each without spaces; terms joined by spaces or AND; OR binds tighter than AND
 * (AIP-160). Undefined for anything else.
 */
function secretFilter(filter: string | null): ((secret: StoredSecret, name: string) => boolean) | undefined {
  const conjuncts: string[][] = [];
  let or = false;
  for (const token of (filter ?? "").trim().split(/\s+/).filter(Boolean)) {
    if (token === "AND" || token === "OR") or = token === "OR";
    else if (or && conjuncts.length) conjuncts.at(-1)!.push(token);
    else conjuncts.push([token]);
    if (token !== "OR") or = false;
  }
  const terms = conjuncts.map((alternatives) => alternatives.map(termOf));
  if (terms.some((alternatives) => alternatives.some((term) => !term))) return undefined;
  return (secret, name) => terms.every((alternatives) => alternatives.some((term) => term!(secret, name)));
}

function termOf(term: string): ((secret: StoredSecret, name: string) => boolean) | undefined {
  const match = /^(labels\.[a-z][a-z0-9_-]*|name)([:=])"?([^"]*)"?$/.exec(term);
  if (!match) return undefined;
  const [, field, op, value] = match;
  if (field === "name") {
    if (op === "=") return (_secret, name) => name === value || name.endsWith(`/secrets/${value}`);
    const parts = value.split("*").map((part) => part.replace(/[.+?^${}()|[\]\\]/g, "\\$&"));
    const pattern = new RegExp(parts.join(".*"));
    return (_secret, name) => pattern.test(name);
  }
  const key = field.slice("labels.".length);
  return (secret) => (op === ":" && value === "*" ? key in secret.labels : secret.labels[key] === value);
}
