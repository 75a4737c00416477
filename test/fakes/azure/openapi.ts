/**
 * The operations of Azure Resource Manager OpenAPI (swagger 2.0) descriptions, with every `$ref` resolved
 * across files, so the fake can check a request against exactly what the service publishes.
 */
import { readFileSync } from "node:fs";
import { dirname, join, resolve } from "node:path";

/** The official descriptions, checked out under the shared reference folder. */
export const AZURE_SPECS = resolve(__dirname, "../../../../shared/reference/apis/azure");

export type Json = null | boolean | number | string | Json[] | { [key: string]: Json };
export type JsonObject = { [key: string]: Json };

/** A schema with the file it came from, so the `$ref`s inside it resolve relative to that file. */
export interface Located {
  file: string;
  node: JsonObject;
}

export interface Parameter {
  name: string;
  in: "path" | "query" | "header" | "body" | "formData";
  required: boolean;
  /** For path, query and header parameters: the parameter object itself (type, enum, pattern…). */
  schema: Located;
  skipUrlEncoding: boolean;
}

export interface Operation {
  operationId: string;
  method: string;
  /** The path template, e.g. /subscriptions/{subscriptionId}/resourceGroups/{resourceGroupName}/... */
  path: string;
  /** The description's version, the only api-version its operations accept. */
  apiVersion: string;
  file: string;
  parameters: Parameter[];
  responses: Record<string, Located | undefined>;
  longRunning: boolean;
  /** x-ms-long-running-operation-options.final-state-via, when given. */
  finalStateVia?: string;
  pattern: RegExp;
  pathParams: string[];
}

/** Loads and caches description files; resolves `file#/json/pointer` references. */
export class SpecSet {
  private readonly files = new Map<string, JsonObject>();
  readonly operations: Operation[] = [];

  /** Loads the descriptions at `paths` (relative to the shared reference folder, or absolute). */
  constructor(paths: string[]) {
    for (const path of paths) this.addOperations(resolve(AZURE_SPECS, path));
  }

  document(file: string): JsonObject {
    let doc = this.files.get(file);
    if (!doc) {
      doc = JSON.parse(readFileSync(file, "utf8")) as JsonObject;
      this.files.set(file, doc);
    }
    return doc;
  }

  /** Follows `$ref` chains until a node without one. */
  deref(located: Located): Located {
    let current = located;
    for (let hops = 0; typeof current.node.$ref === "string"; hops++) {
      if (hops > 50) throw new Error(`$ref cycle at ${current.file}`);
      current = this.lookup(current.file, current.node.$ref);
    }
    return current;
  }

  lookup(fromFile: string, ref: string): Located {
    const [filePart, pointer = ""] = ref.split("#");
    const file = filePart ? join(dirname(fromFile), filePart) : fromFile;
    let node: Json = this.document(file);
    for (const raw of pointer.split("/").filter(Boolean)) {
      const key = raw.replace(/~1/g, "/").replace(/~0/g, "~");
      node = node && typeof node === "object" && !Array.isArray(node) ? node[key]! : null;
      if (node === undefined || node === null) throw new Error(`unresolved $ref ${ref} from ${fromFile}`);
    }
    return { file, node: node as JsonObject };
  }

  /** Definitions (in every loaded file) that extend `base` through allOf: polymorphic subtypes. */
  subtypes(base: Located): Located[] {
    const found: Located[] = [];
    for (const [file, doc] of this.files) {
      const definitions = (doc.definitions ?? {}) as Record<string, JsonObject>;
      for (const node of Object.values(definitions)) {
        const parents = (node.allOf ?? []) as JsonObject[];
        if (
          parents.some((p) => typeof p.$ref === "string" && this.deref({ file, node: p }).node === base.node)
        )
          found.push({ file, node });
      }
    }
    return found;
  }

  private addOperations(file: string): void {
    const doc = this.document(file);
    const apiVersion = String((doc.info as JsonObject).version);
    const paths = { ...(doc.paths as JsonObject), ...((doc["x-ms-paths"] as JsonObject) ?? {}) };
    for (const [path, item] of Object.entries(paths) as [string, JsonObject][]) {
      const shared = (item.parameters ?? []) as JsonObject[];
      for (const [method, op] of Object.entries(item) as [string, JsonObject][]) {
        if (method === "parameters") continue;
        const parameters = [...shared, ...((op.parameters ?? []) as JsonObject[])].map((p) =>
          this.parameter({ file, node: p }),
        );
        const responses: Record<string, Located | undefined> = {};
        for (const [status, response] of Object.entries(op.responses as JsonObject)) {
          const r = this.deref({ file, node: response as JsonObject });
          responses[status] = r.node.schema ? { file: r.file, node: r.node.schema as JsonObject } : undefined;
        }
        const { pattern, names } = templatePattern(path, parameters);
        const lro = op["x-ms-long-running-operation-options"] as JsonObject | undefined;
        this.operations.push({
          operationId: String(op.operationId),
          method: method.toUpperCase(),
          path,
          apiVersion,
          file,
          parameters,
          responses,
          longRunning: op["x-ms-long-running-operation"] === true,
          finalStateVia: lro?.["final-state-via"] as string | undefined,
          pattern,
          pathParams: names,
        });
      }
    }
  }

  private parameter(located: Located): Parameter {
    const { file, node } = this.deref(located);
    const where = node.in as Parameter["in"];
    return {
      name: String(node.name),
      in: where,
      required: node.required === true,
      schema: where === "body" ? this.deref({ file, node: node.schema as JsonObject }) : { file, node },
      skipUrlEncoding: node["x-ms-skip-url-encoding"] === true,
    };
  }
}

/**
 * A regular expression for a path template: literal segments match case-insensitively (as ARM does),
 * a parameter matches one segment, or several when the description marks it x-ms-skip-url-encoding (a scope).
 * x-ms-paths keys carry a query part that disambiguates operations; it is checked by the server.
 */
function templatePattern(template: string, parameters: Parameter[]): { pattern: RegExp; names: string[] } {
  const names: string[] = [];
  const pathOnly = template.split("?")[0]!;
  const source = pathOnly
    .split(/(\{[^}]+\})/)
    .map((part) => {
      const name = /^\{([^}]+)\}$/.exec(part)?.[1];
      if (!name) return part.replace(/[.*+?^$()|[\]\\]/g, "\\$&");
      names.push(name);
      const multi = parameters.find((p) => p.name === name && p.in === "path")?.skipUrlEncoding;
      return multi ? "(.+?)" : "([^/]+)";
    })
    .join("");
  return { pattern: new RegExp(`^${source}/?$`, "i"), names };
}
