import { readFileSync } from "node:fs";
import { join, resolve } from "node:path";

/**
 * Google API discovery documents (https://developers.google.com/discovery/v1/reference/apis), the parts the
 * fake needs to know which requests Google would accept: methods with their HTTP verb and path template,
 * parameters, request and response schemas.
 */
export interface DiscoverySchema {
  id?: string;
  type?: string;
  format?: string;
  $ref?: string;
  enum?: string[];
  pattern?: string;
  items?: DiscoverySchema;
  properties?: Record<string, DiscoverySchema>;
  additionalProperties?: DiscoverySchema;
  repeated?: boolean;
  required?: boolean;
  location?: "path" | "query";
}

export interface DiscoveryMethod {
  id: string;
  httpMethod: string;
  path: string;
  flatPath?: string;
  parameters?: Record<string, DiscoverySchema>;
  request?: { $ref: string };
  response?: { $ref: string };
  mediaUpload?: { protocols: Record<string, { path: string; multipart?: boolean }> };
}

export interface DiscoveryDocument {
  name: string;
  version: string;
  rootUrl: string;
  servicePath: string;
  parameters: Record<string, DiscoverySchema>;
  schemas: Record<string, DiscoverySchema>;
  resources?: Record<string, DiscoveryResource>;
  methods?: Record<string, DiscoveryMethod>;
}

interface DiscoveryResource {
  methods?: Record<string, DiscoveryMethod>;
  resources?: Record<string, DiscoveryResource>;
}

/** The official documents, kept in the shared reference folder (`storage.v1`, `compute.v1`, `dns.v1`, …). */
export const REFERENCE_FOLDER = resolve(__dirname, "../../../../shared/reference/apis/gcp");

export function loadDiscovery(api: string, folder = REFERENCE_FOLDER): DiscoveryDocument {
  return JSON.parse(readFileSync(join(folder, `${api}.json`), "utf8")) as DiscoveryDocument;
}

/** How a request path reaches a method: its ordinary path, or one of its media upload protocols. */
export type Route = {
  document: DiscoveryDocument;
  method: DiscoveryMethod;
  /** undefined for the method's ordinary path; "simple" or "resumable" for a media upload path. */
  upload?: string;
  regex: RegExp;
  names: string[];
  /** The number of literal characters: with several matches, the most specific template wins. */
  literal: number;
};

export function routesOf(document: DiscoveryDocument): Route[] {
  const routes: Route[] = [];
  const service = `/${document.servicePath}`;
  for (const method of allMethods(document)) {
    routes.push({ document, method, ...compileTemplate(service + method.path) });
    for (const [upload, protocol] of Object.entries(method.mediaUpload?.protocols ?? {}))
      routes.push({ document, method, upload, ...compileTemplate(protocol.path) });
  }
  return routes;
}

function allMethods(document: {
  methods?: Record<string, DiscoveryMethod>;
  resources?: Record<string, DiscoveryResource>;
}): DiscoveryMethod[] {
  return [
    ...Object.values(document.methods ?? {}),
    ...Object.values(document.resources ?? {}).flatMap((resource) => allMethods(resource)),
  ];
}

/**
 * A URI template (RFC 6570 level 2, as discovery uses it): `{name}` is one path segment, `{+name}` may span
 * segments (reserved expansion, used by APIs whose names are paths such as `projects/p/secrets/s`).
 */
export function compileTemplate(template: string): { regex: RegExp; names: string[]; literal: number } {
  const names: string[] = [];
  let literal = 0;
  const source = template.replace(
    /\{(\+?)([^}]+)\}|([^{]+)/g,
    (_all, plus: string, name: string, text: string) => {
      if (text !== undefined) {
        literal += text.length;
        return text.replace(/[.*+?^$()|[\]\\]/g, "\\$&");
      }
      names.push(name);
      return plus ? "(.+?)" : "([^/]+?)";
    },
  );
  return { regex: new RegExp(`^${source}$`), names, literal };
}

export function resolveRef(document: DiscoveryDocument, schema: DiscoverySchema): DiscoverySchema {
  if (!schema.$ref) return schema;
  const target = document.schemas[schema.$ref];
  if (!target) throw new Error(`${document.name}.${document.version}: no schema ${schema.$ref}`);
  return target;
}
