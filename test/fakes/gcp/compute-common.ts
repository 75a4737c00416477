import { createHash } from "node:crypto";
import type { OperationFailure } from "./compute";
import { googleError, type FakeRequest, type FakeResponse } from "./fake";

/**
 * What the Compute resource fakes share: GCE's name rule and error answers, references in every form GCE
 * takes them, list filters and pages, IPv4 ranges.
 */
export type Json = Record<string, unknown>;

export const NAME = /^[a-z](?:[-a-z0-9]{0,61}[a-z0-9])?$/;

/** `https://…/compute/v1/projects/P/…` for a resource path, with the fake's base URL as host. */
export const urlOf = (request: FakeRequest | string, path: string) =>
  `${typeof request === "string" ? request : request.baseUrl}/compute/v1/${path}`;

export const notFound = (path: string) =>
  googleError(404, `The resource '${path}' was not found`, "notFound");

export const alreadyExists = (path: string) =>
  googleError(409, `The resource '${path}' already exists`, "alreadyExists");

export const invalid = (field: string, value: unknown, why: string) =>
  googleError(
    400,
    `Invalid value for field '${field}': '${typeof value === "string" ? value : JSON.stringify(value)}'. ${why}`,
    "invalid",
  );

export const badName = (field: string, name: unknown): FakeResponse | undefined =>
  typeof name === "string" && NAME.test(name)
    ? undefined
    : name === undefined
      ? googleError(400, `Required field '${field}' not specified`, "required")
      : invalid(field, name, `Must be a match of regex '${NAME.source}'`);

/** An operation's error entry (it ends DONE with `error.errors[]`). */
export const failure = (code: string, message: string): OperationFailure => ({ code, message });

export const staleFingerprint = () =>
  googleError(
    412,
    "Supplied fingerprint does not match current fingerprint. Get the resource again and retry.",
    "conditionNotMet",
  );

/** Google's opaque fingerprints: 8 bytes, base64. Each call gives a new one. */
let fingerprints = 0;
export const newFingerprint = () =>
  createHash("sha256").update(`fingerprint-${++fingerprints}`).digest().subarray(0, 8).toString("base64");

export interface Reference {
  project: string;
  /** `global`, `regions/R` or `zones/Z`. */
  scope: string;
  name: string;
  /** The canonical `projects/P/<scope>/<collection>/<name>`, the form compared. */
  path: string;
}

/**
 * A reference to another resource as GCE takes it: a full URL (any host, v1/beta/alpha), `projects/P/…`,
 * or `global/…` / `regions/R/…` (the request's project). A bare name is malformed, as GCE answers.
 */
export function parseReference(ref: unknown, project: string, collection: string): Reference | undefined {
  if (typeof ref !== "string") return undefined;
  const partial = ref.replace(/^https?:\/\/[^/]+\/compute\/(?:v1|beta|alpha)\//, "");
  const match = new RegExp(
    `^(?:projects/([^/]+)/)?(global|regions/[a-z0-9-]+|zones/[a-z0-9-]+)/${collection}/([^/]+)$`,
  ).exec(partial);
  if (!match) return undefined;
  const [, owner = project, scope, name] = match;
  return { project: owner, scope, name, path: `projects/${owner}/${scope}/${collection}/${name}` };
}

/** `projects/P/global/images/N`, `…/images/family/F`, `global/images/N`, or a URL of one of them. */
export const IMAGE_REF =
  /^(?:https?:\/\/[^/]+\/compute\/(?:v1|beta|alpha)\/)?(?:projects\/([^/]+)\/)?global\/images\/(family\/)?([^/]+)$/;

/** JSON merge patch (RFC 7396), as GCE's patch methods apply it: objects merge, arrays replace, null clears. */
export function mergePatch(target: Json, patch: Json): Json {
  const merged: Json = { ...target };
  for (const [field, value] of Object.entries(patch)) {
    const current = merged[field];
    if (value === null) delete merged[field];
    else if (isObject(value) && isObject(current)) merged[field] = mergePatch(current, value);
    else merged[field] = value;
  }
  return merged;
}

const isObject = (value: unknown): value is Json =>
  typeof value === "object" && value !== null && !Array.isArray(value);

export const malformed = (field: string, ref: unknown) => invalid(field, ref, "The URL is malformed.");

/**
 * GCE list filters, the subset the fakes understand: `FIELD eq "RE2"` / `ne` (the regex matches the whole
 * value), `FIELD = "X"` / `!=` (quotes optional), FIELD a dotted path (`name`, `labels.k`, `status`),
 * `( … )` groupings joined by `AND` or whitespace. Anything else throws: the fake answers 500 and records
 * it in `fake.invalid`, so a test notices a filter it cannot trust the fake with.
 */
export function filterOf(filter: string | null | undefined): (item: Json) => boolean {
  const terms: ((item: Json) => boolean)[] = [];
  let rest = filter?.trim() ?? "";
  let depth = 0;
  const fail = (why: string) =>
    new Error(`the fake does not understand the filter ${JSON.stringify(filter)}: ${why}`);
  while (rest) {
    const open = /^\(\s*/.exec(rest);
    const close = /^\)\s*/.exec(rest);
    const and = terms.length > 0 ? /^AND\s+/.exec(rest) : null;
    const term = /^([a-zA-Z][\w.]*)\s*(!=|=|eq(?=\s)|ne(?=\s))\s*("(?:[^"\\]|\\.)*"|[^\s()"]+)\s*/.exec(rest);
    const match = open ?? close ?? and ?? term;
    if (!match) throw fail(`at ${rest}`);
    if (open) depth++;
    if (close && --depth < 0) throw fail("unbalanced parentheses");
    if (match === term) {
      const [, field, op, raw] = term;
      terms.push(termOf(field, op, raw.startsWith('"') ? raw.slice(1, -1).replace(/\\"/g, '"') : raw));
    }
    rest = rest.slice(match[0].length);
  }
  if (depth !== 0) throw fail("unbalanced parentheses");
  return (item) => terms.every((term) => term(item));
}

function termOf(field: string, op: string, value: string): (item: Json) => boolean {
  const regex = op === "eq" || op === "ne" ? new RegExp(`^(?:${value})$`) : undefined;
  return (item) => {
    const found = field.split(".").reduce<unknown>((at, key) => (at as Json | undefined)?.[key], item);
    const text = found === undefined || found === null ? undefined : String(found);
    const same = text !== undefined && (regex ? regex.test(text) : text === value);
    return op === "=" || op === "eq" ? same : !same;
  };
}

/**
 * One page of a list, sorted by name as GCE lists are. `maxResults` (at most 500) and `pageToken` page it;
 * an `orderBy` other than name or creationTimestamp is not modelled (throws). undefined: a bad token.
 */
export function pageOf<T extends Json>(
  items: T[],
  query: URLSearchParams,
): { items: T[]; nextPageToken?: string } | undefined {
  const order = query.get("orderBy") ?? "name";
  const by = /^(name|creationTimestamp)(?: (asc|desc))?$/.exec(order);
  if (!by) throw new Error(`the fake does not model orderBy ${order}`);
  const sorted = [...items].sort(
    (a, b) => String(a[by[1]]).localeCompare(String(b[by[1]])) * (by[2] === "desc" ? -1 : 1),
  );
  const size = Math.min(Number(query.get("maxResults") || 500), 500);
  const token = query.get("pageToken");
  const start = token ? Number(/^offset:(\d+)$/.exec(Buffer.from(token, "base64url").toString())?.[1]) : 0;
  if (Number.isNaN(start)) return undefined;
  const end = start + size;
  return {
    items: sorted.slice(start, end),
    ...(end < sorted.length ? { nextPageToken: Buffer.from(`offset:${end}`).toString("base64url") } : {}),
  };
}

export const badPageToken = (query: URLSearchParams) =>
  invalid("pageToken", query.get("pageToken"), "The page token is not one this list gave.");

/** A list method's answer: the filtered page, or 400 for a page token the fake did not mint. */
export function listAnswer(request: FakeRequest, kind: string, path: string, items: Json[]): FakeResponse {
  const page = pageOf(items.filter(filterOf(request.query.get("filter"))), request.query);
  if (!page) return badPageToken(request.query);
  return { json: { kind, id: path, selfLink: urlOf(request, path), ...page } };
}

/** An aggregatedList's answer: items grouped by scope (`zones/Z`, `regions/R`), paged over all of them. */
export function aggregatedAnswer(
  request: FakeRequest,
  kind: string,
  field: string,
  path: string,
  items: { scope: string; item: Json }[],
): FakeResponse {
  const keep = filterOf(request.query.get("filter"));
  const flat = items.filter(({ item }) => keep(item)).map(({ scope, item }) => ({ ...item, __scope: scope }));
  const page = pageOf(flat, request.query);
  if (!page) return badPageToken(request.query);
  const grouped: Record<string, Record<string, Json[]>> = {};
  for (const { __scope, ...item } of page.items)
    ((grouped[__scope as string] ??= { [field]: [] })[field] as Json[]).push(item);
  return {
    json: {
      kind,
      id: path,
      selfLink: urlOf(request, path),
      items: grouped,
      ...(page.nextPageToken ? { nextPageToken: page.nextPageToken } : {}),
    },
  };
}

// ---- paths and references shared by the handlers ----

export const globalPath = (request: FakeRequest, collection: string, name: string) =>
  `projects/${request.params.project}/global/${collection}/${name}`;
export const regionalPath = (request: FakeRequest, collection: string, name: string) =>
  `projects/${request.params.project}/regions/${request.params.region}/${collection}/${name}`;
export const now = () => new Date().toISOString();

/** The network a `network` field names, when it exists: its name, or the answer GCE gives. */
export function existingNetwork(
  state: { networks: Map<string, Json> },
  request: FakeRequest,
  field: string,
  ref: unknown,
): string | FakeResponse {
  const parsed = parseReference(ref, request.params.project!, "networks");
  if (!parsed || parsed.scope !== "global") return malformed(field, ref);
  if (parsed.project !== request.params.project || !state.networks.has(parsed.name))
    return notFound(parsed.path);
  return parsed.name;
}

/** Whether a read-modify-write body's field still says what the resource has (references canonically). */
export function sameField(field: string, current: unknown, value: unknown): boolean {
  if (field === "network")
    return parseReference(value, "", "networks")?.name === parseReference(current, "", "networks")?.name;
  if (field === "region") return String(value).split("/").pop() === String(current).split("/").pop();
  return JSON.stringify(current) === JSON.stringify(value);
}

export const gone = (path: string) => failure("RESOURCE_NOT_FOUND", `The resource '${path}' was not found`);

/** A field that should hold an array, as one (absent: empty). */
export const list = (value: unknown) => (Array.isArray(value) ? (value as Json[]) : []);

/** An IPv4 range: its first address as a number and its prefix length. */
export interface Cidr {
  base: number;
  prefix: number;
  /** False when the address has host bits set (`10.0.0.1/24`), which subnet ranges must not. */
  exact: boolean;
}

export function parseCidr(text: unknown, allowAddress = false): Cidr | undefined {
  const match = /^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})(?:\/(\d{1,2}))?$/.exec(String(text));
  if (!match || (match[5] === undefined && !allowAddress)) return undefined;
  const octets = match.slice(1, 5).map(Number);
  const prefix = Number(match[5] ?? 32);
  if (octets.some((o) => o > 255) || prefix > 32) return undefined;
  const address = octets.reduce((n, o) => n * 256 + o, 0);
  const size = 2 ** (32 - prefix);
  const base = address - (address % size);
  return { base, prefix, exact: base === address };
}

export const cidrSize = (cidr: Cidr) => 2 ** (32 - cidr.prefix);
export const overlaps = (a: Cidr, b: Cidr) => a.base < b.base + cidrSize(b) && b.base < a.base + cidrSize(a);
export const ipText = (n: number) =>
  [24, 16, 8, 0].map((shift) => Math.floor(n / 2 ** shift) % 256).join(".");
