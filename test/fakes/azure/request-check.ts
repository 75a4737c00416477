/**
 * Matches a request to one operation of the loaded descriptions and lists everything about it that the
 * description does not allow: the path, the api-version, parameters (required, types, patterns, unknown
 * query parameters), the bearer token and the JSON body.
 */
import type { IncomingHttpHeaders } from "node:http";
import type { ArmRequest } from "./arm-fake";
import type { Json, JsonObject, Operation, Parameter, SpecSet } from "./openapi";
import { checkValue } from "./schema-check";

export interface Checked {
  operation?: Operation;
  request?: ArmRequest;
  problems: string[];
  /** ARM's error code for the first problem. */
  code: string;
}

/** Query parameters every ARM call may carry without its description naming them. */
const ALWAYS_ALLOWED_QUERY = new Set(["api-version"]);

export function checkRequest(
  specs: SpecSet,
  method: string,
  url: URL,
  headers: IncomingHttpHeaders,
  raw: string,
): Checked {
  const path = url.pathname;
  const onPath = specs.operations.filter((op) => op.pattern.test(path) && queryPartMatches(op, url));
  const candidates = onPath.filter((op) => op.method === method);
  if (candidates.length === 0) {
    const problem = onPath.length
      ? `the descriptions allow only ${[...new Set(onPath.map((op) => op.method))].join(", ")} on this path`
      : "no operation of the loaded descriptions has this path";
    return { problems: [problem], code: "NoMatchingOperation" };
  }
  const apiVersion = url.searchParams.get("api-version");
  if (apiVersion === null)
    return { problems: ["the api-version query parameter is missing"], code: "MissingApiVersionParameter" };
  const operation = mostSpecific(candidates.filter((op) => op.apiVersion === apiVersion));
  if (!operation) {
    const known = candidates.map((op) => op.apiVersion).join(", ");
    return {
      problems: [`api-version ${apiVersion} is not one the descriptions define for this path (${known})`],
      code: "InvalidApiVersionParameter",
    };
  }

  const problems: string[] = [];
  const params = pathParams(operation, path);
  if (!/^Bearer \S+/.test(headers.authorization ?? "")) problems.push("no bearer token in Authorization");
  for (const parameter of operation.parameters) {
    if (parameter.in === "path")
      checkScalar(parameter, params[parameter.name], `path parameter ${parameter.name}`, problems);
    if (parameter.in === "query") {
      const value = url.searchParams.get(parameter.name) ?? undefined;
      if (value === undefined && parameter.required)
        problems.push(`the query parameter ${parameter.name} is missing`);
      else if (value !== undefined)
        checkScalar(parameter, value, `query parameter ${parameter.name}`, problems);
    }
    if (parameter.in === "header") {
      const value = headers[parameter.name.toLowerCase()];
      if (value === undefined && parameter.required) problems.push(`the header ${parameter.name} is missing`);
    }
  }
  const knownQuery = new Set(operation.parameters.filter((p) => p.in === "query").map((p) => p.name));
  for (const name of url.searchParams.keys())
    if (!knownQuery.has(name) && !ALWAYS_ALLOWED_QUERY.has(name))
      problems.push(`the description has no query parameter ${name}`);

  const body = parseBody(specs, operation, headers, raw, problems);
  const code = problems.length ? "InvalidRequestContent" : "";
  return {
    operation,
    problems,
    code,
    request: { operation, method, path, params, query: url.searchParams, headers, body },
  };
}

function parseBody(
  specs: SpecSet,
  operation: Operation,
  headers: IncomingHttpHeaders,
  raw: string,
  problems: string[],
): Json | undefined {
  const bodyParameter = operation.parameters.find((p) => p.in === "body");
  if (raw.length === 0) {
    if (bodyParameter?.required) problems.push(`the request body (${bodyParameter.name}) is missing`);
    return undefined;
  }
  if (!bodyParameter) {
    problems.push(`${operation.operationId} takes no request body`);
    return undefined;
  }
  if (!/^application\/json/i.test(headers["content-type"] ?? ""))
    problems.push(
      `the body is sent as ${headers["content-type"] ?? "no content type"}, not application/json`,
    );
  let body: Json;
  try {
    body = JSON.parse(raw) as Json;
  } catch {
    problems.push("the body is not JSON");
    return undefined;
  }
  problems.push(...checkValue(specs, bodyParameter.schema, body, "body", "request"));
  return body;
}

/** Path and query parameters: type, enum, pattern and length limits of the parameter object. */
function checkScalar(
  parameter: Parameter,
  value: string | undefined,
  what: string,
  problems: string[],
): void {
  const node = parameter.schema.node;
  if (value === undefined || value === "") {
    if (parameter.required) problems.push(`${what} is missing`);
    return;
  }
  if (node.type === "integer" && !/^-?\d+$/.test(value))
    problems.push(`${what}: expected an integer, got ${value}`);
  if (node.type === "boolean" && !/^(true|false)$/i.test(value))
    problems.push(`${what}: expected true or false, got ${value}`);
  if (typeof node.pattern === "string" && !new RegExp(node.pattern, "u").test(value))
    problems.push(`${what}: ${JSON.stringify(value)} does not match ${node.pattern}`);
  if (typeof node.minLength === "number" && value.length < node.minLength)
    problems.push(`${what}: shorter than ${node.minLength} characters`);
  if (typeof node.maxLength === "number" && value.length > node.maxLength)
    problems.push(`${what}: longer than ${node.maxLength} characters`);
  const values = node.enum as Json[] | undefined;
  const open = (node["x-ms-enum"] as JsonObject | undefined)?.modelAsString === true;
  if (values && !open && !values.map(String).includes(value))
    problems.push(`${what}: expected one of ${values.join(", ")}`);
}

function pathParams(operation: Operation, path: string): Record<string, string> {
  const match = operation.pattern.exec(path)!;
  return Object.fromEntries(operation.pathParams.map((name, i) => [name, decodeURIComponent(match[i + 1]!)]));
}

/**
 * Of several operations whose templates match a path, the one with the most literal segments: ARM routes
 * `…/privateDnsZones/z/ALL` to RecordSets_List, not to RecordSets_ListByType with a recordType "ALL", and
 * an image path to Images_Get, not to the catch-all Resources_GetById `/{resourceId}` of the same version.
 */
function mostSpecific(operations: Operation[]): Operation | undefined {
  const literals = (op: Operation) =>
    op.path
      .split("?")[0]!
      .split("/")
      .filter((segment) => segment && !segment.includes("{")).length;
  return operations.reduce<Operation | undefined>(
    (best, op) => (best === undefined || literals(op) > literals(best) ? op : best),
    undefined,
  );
}

/** x-ms-paths keys such as `/x?disambiguation` require that query parameter. */
function queryPartMatches(operation: Operation, url: URL): boolean {
  const query = operation.path.split("?")[1];
  if (!query) return true;
  return [...new URLSearchParams(query).keys()].every((key) => url.searchParams.has(key));
}
