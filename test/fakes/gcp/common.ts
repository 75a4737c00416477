import { randomBytes } from "node:crypto";

/** Helpers the stateful models share: opaque page tokens, IAM-style etags, label rules. */

/**
 * One page of `items`. Tokens are opaque (base64 of an offset and a tag naming the listing) so a client
 * cannot make one up or reuse one from another listing; a token that is not ours is undefined → 400.
 */
export function page<T>(
  items: T[],
  options: { pageSize?: string | null; pageToken?: string | null; tag: string; default: number; max: number },
): { items: T[]; nextPageToken?: string } | undefined {
  let start = 0;
  if (options.pageToken) {
    const [tag, offset] = Buffer.from(options.pageToken, "base64url").toString().split("|");
    if (tag !== options.tag || !/^\d+$/.test(offset ?? "")) return undefined;
    start = Number(offset);
  }
  const asked = Number(options.pageSize ?? 0);
  const size = asked > 0 ? Math.min(asked, options.max) : options.default;
  const end = start + size;
  return {
    items: items.slice(start, end),
    nextPageToken:
      end < items.length ? Buffer.from(`${options.tag}|${end}`).toString("base64url") : undefined,
  };
}

let etags = 0;

/** An IAM etag: base64 of 8 bytes, as policies and roles carry them ("BwXhqDdUxxo="). */
export function bytesEtag(): string {
  const bytes = Buffer.alloc(8);
  bytes.writeUInt16BE(0x0705, 0);
  bytes.writeUInt32BE(++etags, 4);
  randomBytes(2).copy(bytes, 2);
  return bytes.toString("base64");
}

const LABEL_KEY = /^[a-z][a-z0-9_-]{0,62}$/;
const LABEL_VALUE = /^[a-z0-9_-]{0,63}$/;

/** Google's label rules (the ASCII subset): at most 64, keys start with a letter, all lower case. */
export function labelProblem(labels: Record<string, string> | undefined): string | undefined {
  const entries = Object.entries(labels ?? {});
  if (entries.length > 64) return `at most 64 labels, got ${entries.length}`;
  for (const [key, value] of entries) {
    if (!LABEL_KEY.test(key)) return `invalid label key "${key}": must match ${LABEL_KEY.source}`;
    if (!LABEL_VALUE.test(value)) return `invalid label value "${value}": must match ${LABEL_VALUE.source}`;
  }
  return undefined;
}

/** A field mask's paths (`a,b.c`), empty when none was sent. */
export const maskPaths = (mask: string | null | undefined): string[] =>
  (mask ?? "")
    .split(",")
    .map((path) => path.trim())
    .filter(Boolean);
