import {
  resolveRef,
  type DiscoveryDocument,
  type DiscoveryMethod,
  type DiscoverySchema,
  type Route,
} from "./discovery";

/**
 * Checks a JSON value against a discovery schema the way Google's front ends do: unknown fields are
 * refused ("Unknown name"), every value must have the JSON type its schema gives, enums take only their
 * listed values. int64/uint64 are JSON strings in discovery, and Google also accepts them as numbers.
 * Returns the problems found, each naming the field (empty when the value is valid).
 */
export function validateValue(
  document: DiscoveryDocument,
  schema: DiscoverySchema,
  value: unknown,
  where: string,
): string[] {
  const resolved = resolveRef(document, schema);
  if (value === null) return [];
  switch (resolved.type) {
    case "string":
      if (typeof value === "number" && /^u?int64$/.test(resolved.format ?? "")) return [];
      if (typeof value !== "string") return [`${where}: expected a string, got ${describe(value)}`];
      if (resolved.enum && !resolved.enum.includes(value))
        return [`${where}: "${value}" is not one of ${resolved.enum.join(", ")}`];
      return [];
    case "integer":
      if (typeof value === "string" && /^-?\d+$/.test(value)) return [];
      return Number.isInteger(value) ? [] : [`${where}: expected an integer, got ${describe(value)}`];
    case "number":
      return typeof value === "number" ? [] : [`${where}: expected a number, got ${describe(value)}`];
    case "boolean":
      return typeof value === "boolean" ? [] : [`${where}: expected a boolean, got ${describe(value)}`];
    case "array":
      if (!Array.isArray(value)) return [`${where}: expected an array, got ${describe(value)}`];
      return value.flatMap((item, i) =>
        validateValue(document, resolved.items ?? {}, item, `${where}[${i}]`),
      );
    case "any":
      return [];
    case "object":
    case undefined:
      return validateObject(document, resolved, value, where);
    default:
      return [`${where}: the schema has an unknown type ${resolved.type}`];
  }
}

function validateObject(
  document: DiscoveryDocument,
  schema: DiscoverySchema,
  value: unknown,
  where: string,
): string[] {
  if (typeof value !== "object" || Array.isArray(value))
    return [`${where}: expected an object, got ${describe(value)}`];
  return Object.entries(value as Record<string, unknown>).flatMap(([key, field]) => {
    const fieldSchema = schema.properties?.[key] ?? schema.additionalProperties;
    if (!fieldSchema)
      return [`Invalid JSON payload received. Unknown name "${key}" at '${where}': Cannot find field.`];
    return validateValue(document, fieldSchema, field, `${where}.${key}`);
  });
}

const describe = (value: unknown) =>
  Array.isArray(value) ? "an array" : `${typeof value} ${JSON.stringify(value)}`;

/** The path template's parameters of a matched route, decoded, or undefined when the path does not match. */
export function matchPath(route: Route, pathname: string): Record<string, string> | undefined {
  const match = route.regex.exec(pathname);
  if (!match) return undefined;
  const params: Record<string, string> = {};
  route.names.forEach((name, i) => (params[name] = decodeURIComponent(match[i + 1])));
  for (const [name, value] of Object.entries(params)) {
    const pattern = route.method.parameters?.[name]?.pattern;
    if (pattern && !new RegExp(`^(?:${pattern.replace(/^\^|\$$/g, "")})$`).test(value)) return undefined;
  }
  return params;
}

/**
 * Query parameters: each must be the method's or one of the API's standard parameters (which Google also
 * accepts with a `$` prefix, as the gRPC-fallback clients send `$alt`); required ones must be present;
 * typed ones must parse; enums take only their values.
 */
export function validateQuery(
  document: DiscoveryDocument,
  method: DiscoveryMethod,
  query: URLSearchParams,
): string[] {
  const problems: string[] = [];
  for (const [name, value] of query) {
    const schema =
      method.parameters?.[name] ?? document.parameters[name] ?? document.parameters[name.replace(/^\$/, "")];
    if (!schema || (method.parameters?.[name] && schema.location !== "query")) {
      problems.push(`Invalid query parameter "${name}" for ${method.id}`);
      continue;
    }
    // `$alt=json;enum-encoding=int`: the format, then options for how enums are written.
    const scalar = name === "$alt" ? value.split(";")[0] : value;
    problems.push(...validateScalar(schema, scalar, `query parameter ${name}`));
  }
  for (const [name, schema] of Object.entries(method.parameters ?? {}))
    if (schema.location === "query" && schema.required && !query.has(name))
      problems.push(`Required parameter: ${name} (${method.id})`);
  return problems;
}

function validateScalar(schema: DiscoverySchema, value: string, where: string): string[] {
  if (schema.type === "boolean" && value !== "true" && value !== "false")
    return [`${where}: expected true or false, got "${value}"`];
  if ((schema.type === "integer" || /^u?int64$/.test(schema.format ?? "")) && !/^-?\d+$/.test(value))
    return [`${where}: expected an integer, got "${value}"`];
  if (schema.enum && !schema.enum.includes(value))
    return [`${where}: "${value}" is not one of ${schema.enum.join(", ")}`];
  return [];
}

/** The JSON body against the method's request schema; a method without one takes no body (or `{}`). */
export function validateBody(document: DiscoveryDocument, method: DiscoveryMethod, body: unknown): string[] {
  if (body === undefined) return [];
  if (!method.request) {
    // The official REST clients send `""` or `{}` to methods that take no body (wait, resize, …).
    const empty =
      body === "" || (typeof body === "object" && body !== null && Object.keys(body).length === 0);
    return empty ? [] : [`${method.id} takes no request body, got ${JSON.stringify(body)}`];
  }
  const schema = resolveRef(document, method.request);
  return validateValue(document, method.request, body, schema.id ?? method.request.$ref);
}

/**
 * `$alt=json;enum-encoding=int` (what the official clients' REST transport sends): enum values in the body
 * may be their numbers. Google's front end reads each as the enum's name at that index; so does the fake,
 * before validating, so that handlers see names either way.
 */
export function enumsByName(document: DiscoveryDocument, schema: DiscoverySchema, value: unknown): unknown {
  const resolved = resolveRef(document, schema);
  if (value === null || value === undefined) return value;
  if (resolved.enum && typeof value === "number") return resolved.enum[value] ?? value;
  if (resolved.type === "array" && Array.isArray(value))
    return value.map((item) => enumsByName(document, resolved.items ?? {}, item));
  if (
    (resolved.type === "object" || resolved.type === undefined) &&
    typeof value === "object" &&
    !Array.isArray(value)
  )
    return Object.fromEntries(
      Object.entries(value as Record<string, unknown>).map(([key, field]) => {
        const fieldSchema = resolved.properties?.[key] ?? resolved.additionalProperties;
        return [key, fieldSchema ? enumsByName(document, fieldSchema, field) : field];
      }),
    );
  return value;
}
