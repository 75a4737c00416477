import { readFileSync } from "node:fs";
import { relative } from "node:path";
import { isMap, isNode, isScalar, isSeq, LineCounter, parseDocument, type Document } from "yaml";
import { z } from "zod";
import { invalidInput } from "../errors";
import { NO_SCHEMA_MESSAGE, plainIssues } from "./issues";
import { imageSpecSchema, type ImageSpec } from "./schema";

export interface LoadedSpec {
  path: string;
  /** The file's exact bytes: the bake's inputs are the bytes, not our reading of them. */
  raw: string;
  spec: ImageSpec;
}

/** Reads, parses and validates an image spec; every failure is an invalid-input error naming file, line and field. */
export function loadImageSpec(path: string): LoadedSpec {
  return loadYamlWithSchema(path, imageSpecSchema);
}

/** Any kubebake YAML file (image spec now, cluster spec next) read and validated the same way. */
export function loadYamlWithSchema<S extends z.ZodType>(
  path: string,
  schema: S,
): { path: string; raw: string; spec: z.output<S> } {
  const shown = displayPath(path);
  let raw: string;
  try {
    raw = readFileSync(path, "utf8");
  } catch (error) {
    throw invalidInput(
      `${shown}: cannot read the file (${(error as NodeJS.ErrnoException).code ?? String(error)})`,
    );
  }
  const lineCounter = new LineCounter();
  const doc = parseDocument(raw, { lineCounter, prettyErrors: false, uniqueKeys: true });
  if (doc.errors.length > 0) {
    const first = doc.errors[0]!;
    const { line } = lineCounter.linePos(first.pos[0]);
    throw invalidInput(`${shown}:${line}: not valid YAML: ${first.message.split("\n")[0]}`);
  }
  const result = schema.safeParse(doc.toJS(), { reportInput: true, error: () => NO_SCHEMA_MESSAGE });
  if (!result.success) {
    const messages = result.error.issues.map((issue) => formatIssue(shown, doc, lineCounter, issue));
    throw invalidInput(messages.join("\n"));
  }
  return { path, raw, spec: result.data };
}

function formatIssue(file: string, doc: Document, lines: LineCounter, issue: z.core.$ZodIssue): string {
  return plainIssues(issue)
    .map(({ path, key, message }) => {
      const line = lineOf(doc, lines, key === undefined ? path : [...path, key]);
      return `${file}:${line}: ${path.length > 0 ? `${fieldPath(path)}: ` : ""}${message}`;
    })
    .join("\n");
}

/** The line of the deepest key or item that exists along the path (a missing field points at its parent's key). */
function lineOf(doc: Document, lines: LineCounter, path: (string | number)[]): number {
  let node: unknown = doc.contents;
  let line = isNode(node) && node.range ? lines.linePos(node.range[0]).line : 1;
  for (const step of path) {
    if (isMap(node)) {
      const pair = node.items.find((p) => (isScalar(p.key) ? p.key.value : p.key) === step);
      if (!pair) break;
      if (isNode(pair.key) && pair.key.range) line = lines.linePos(pair.key.range[0]).line;
      node = pair.value;
    } else if (isSeq(node) && typeof step === "number" && node.items[step] !== undefined) {
      node = node.items[step];
      if (isNode(node) && node.range) line = lines.linePos(node.range[0]).line;
    } else {
      break;
    }
  }
  return line;
}

export function fieldPath(path: (string | number)[]): string {
  if (path.length === 0) return "(top level)";
  return path.map((p, i) => (typeof p === "number" ? `[${p}]` : i === 0 ? p : `.${p}`)).join("");
}

/** A path as the user would name it: relative to the working folder when inside it. */
export function displayPath(path: string): string {
  const rel = relative(process.cwd(), path);
  return rel.startsWith("..") ? path : rel;
}
