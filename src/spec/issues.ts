import type { z } from "zod";

/**
 * zod's own messages ("Invalid input: expected string, received number") are for programmers. Specs are
 * parsed with an error map that marks every issue the schema gave no message of its own; those are worded
 * here from the issue's facts. Messages the schema wrote are kept, and type errors add what was found.
 */
export const NO_SCHEMA_MESSAGE = "\u0000kubebake:no-schema-message";

export interface PlainIssue {
  /** Where the problem is: the field itself, or for a missing or unknown field its parent. */
  path: (string | number)[];
  /** The key under `path` the message is about, for its line (unknown fields). */
  key?: string;
  message: string;
}

export function plainIssues(issue: z.core.$ZodIssue): PlainIssue[] {
  const path = issue.path.map((p) => (typeof p === "symbol" ? String(p) : p));
  const own =
    issue.message === NO_SCHEMA_MESSAGE
      ? undefined
      : issue.code === "custom"
        ? issue.message
        : withExpected(issue.message);
  if (issue.code === "unrecognized_keys") {
    return issue.keys.map((key) => ({ path, key, message: `unknown field ${key}` }));
  }
  // Parsed with reportInput: a field's problem without an input is a missing field.
  if (issue.code !== "custom" && issue.input === undefined && path.length > 0) {
    const key = path.at(-1)!;
    return [{ path: path.slice(0, -1), message: `missing field ${key}${own ? `; ${own}` : ""}` }];
  }
  switch (issue.code) {
    case "invalid_type": {
      const expected = own ?? `expected ${typeName(issue.expected)}`;
      return [{ path, message: `${expected}, got ${describe(issue.input)}` }];
    }
    default:
      return [{ path, message: own ?? wordsFor(issue) }];
  }
}

/** The schema's messages say what was expected; a bare "a list" reads better as "expected a list". */
const withExpected = (message: string) => (message.startsWith("expected") ? message : `expected ${message}`);

function wordsFor(issue: z.core.$ZodIssue): string {
  switch (issue.code) {
    case "invalid_value":
      return issue.values.length === 1
        ? `expected ${show(issue.values[0])}, got ${describeValue(issue.input)}`
        : `expected one of ${issue.values.map(show).join(", ")}, got ${describeValue(issue.input)}`;
    case "too_small":
      return `expected ${bound(issue.origin, "at least", issue.minimum, issue.inclusive)}, got ${describeSize(issue.origin, issue.input)}`;
    case "too_big":
      return `expected ${bound(issue.origin, "at most", issue.maximum, issue.inclusive)}, got ${describeSize(issue.origin, issue.input)}`;
    case "invalid_format":
      return `expected a ${issue.format === "regex" ? "value of the documented form" : issue.format}, got ${describeValue(issue.input)}`;
    case "not_multiple_of":
      return `expected a multiple of ${issue.divisor}`;
    case "invalid_union": {
      // A discriminated union (the cluster spec's `cloud`): name the accepted values, and the one given.
      const { discriminator, options } = issue as { discriminator?: string; options?: unknown[] };
      if (discriminator && options) {
        const given = (issue.input as Record<string, unknown> | undefined)?.[discriminator];
        return `expected one of ${options.map(show).join(", ")}, got ${describeValue(given)}`;
      }
      return `expected one of the documented forms, got ${describe(issue.input)}`;
    }
    case "invalid_key":
      return `unknown key ${describeValue(issue.input)}`;
    default:
      return "is not valid";
  }
}

function bound(origin: string, side: string, limit: number | bigint, inclusive?: boolean): string {
  const n = Number(limit);
  const strict = inclusive === false;
  switch (origin) {
    case "string":
      return n === 1 && side === "at least" ? "a non-empty string" : `a string of ${side} ${n} characters`;
    case "array":
    case "set":
      return n === 1 && side === "at least" ? "at least one item" : `${side} ${n} items`;
    default:
      return strict ? `a number ${side === "at least" ? "above" : "below"} ${n}` : `a number of ${side} ${n}`;
  }
}

function describeSize(origin: string, input: unknown): string {
  if (origin === "array" || origin === "set")
    return Array.isArray(input) ? `${input.length} item(s)` : describe(input);
  if (origin === "string")
    return typeof input === "string" ? `${input.length} character(s)` : describe(input);
  return describeValue(input);
}

function typeName(expected: string): string {
  switch (expected) {
    case "object":
      return "a mapping";
    case "array":
      return "a list";
    case "int":
      return "a whole number";
    case "boolean":
      return "true or false";
    case "undefined":
    case "never":
      return "nothing here";
    default:
      return `a ${expected}`;
  }
}

/** What kind of value was found. */
export function describe(input: unknown): string {
  if (input === null) return "nothing (null)";
  if (Array.isArray(input)) return "a list";
  if (typeof input === "number") return Number.isInteger(input) ? "a number" : `the fraction ${input}`;
  if (typeof input === "object") return "a mapping";
  if (typeof input === "boolean") return `${input}`;
  return `a ${typeof input}`;
}

/** A scalar as found (quoted, cut short), or its kind. */
function describeValue(input: unknown): string {
  if (typeof input === "string") return show(input.length > 60 ? `${input.slice(0, 57)}...` : input);
  if (typeof input === "number") return String(input);
  return describe(input);
}

const show = (value: unknown) => JSON.stringify(value) ?? String(value);
