/**
 * Checks a JSON value against a swagger 2.0 schema the way ARM's request validation does: known properties
 * only (unless additionalProperties), right types, enums, required properties, and in requests no readOnly
 * property. x-ms-client-flatten is a client concern: the wire format stays nested, so it is ignored.
 */
import type { Json, JsonObject, Located, SpecSet } from "./openapi";

export type Mode = "request" | "response";

interface ObjectShape {
  properties: Map<string, Located>;
  required: Set<string>;
  additional?: Located | true;
  discriminator?: string;
}

export function checkValue(specs: SpecSet, schema: Located, value: Json, at: string, mode: Mode): string[] {
  const problems: string[] = [];
  check(specs, schema, value, at, mode, problems, false);
  return problems;
}

function check(
  specs: SpecSet,
  located: Located,
  value: Json,
  at: string,
  mode: Mode,
  problems: string[],
  subtypeChosen: boolean,
): void {
  const schema = specs.deref(located);
  const node = schema.node;
  if (value === null) {
    if (mode === "request" && node["x-nullable"] !== true) problems.push(`${at}: null is not allowed`);
    return;
  }
  const shape =
    node.properties || node.allOf || node.additionalProperties ? objectShape(specs, schema) : undefined;
  const type = (node.type as string | undefined) ?? (shape ? "object" : undefined);
  if (type === "object" && shape?.discriminator && !subtypeChosen && isObject(value)) {
    const kind = value[shape.discriminator];
    const sub = typeof kind === "string" ? findSubtype(specs, schema, kind) : undefined;
    if (sub) return check(specs, sub, value, at, mode, problems, true);
  }
  switch (type) {
    case undefined:
      return; // an untyped schema accepts anything
    case "object":
      if (!isObject(value)) return void problems.push(`${at}: expected an object, got ${describe(value)}`);
      return checkObject(specs, shape ?? objectShape(specs, schema), value, at, mode, problems);
    case "array":
      if (!Array.isArray(value))
        return void problems.push(`${at}: expected an array, got ${describe(value)}`);
      value.forEach((item, i) =>
        check(
          specs,
          { file: schema.file, node: node.items as JsonObject },
          item,
          `${at}[${i}]`,
          mode,
          problems,
          false,
        ),
      );
      return;
    case "string":
      if (typeof value !== "string")
        return void problems.push(`${at}: expected a string, got ${describe(value)}`);
      return checkEnum(node, value, at, problems);
    case "integer":
      if (typeof value !== "number" || !Number.isInteger(value))
        return void problems.push(`${at}: expected an integer, got ${describe(value)}`);
      if (node.format === "int32" && (value < -(2 ** 31) || value >= 2 ** 31))
        problems.push(`${at}: ${value} does not fit in an int32`);
      return checkEnum(node, value, at, problems);
    case "number":
      if (typeof value !== "number")
        return void problems.push(`${at}: expected a number, got ${describe(value)}`);
      return;
    case "boolean":
      if (typeof value !== "boolean") problems.push(`${at}: expected a boolean, got ${describe(value)}`);
      return;
    default:
      return;
  }
}

function checkObject(
  specs: SpecSet,
  shape: ObjectShape,
  value: JsonObject,
  at: string,
  mode: Mode,
  problems: string[],
): void {
  for (const name of shape.required)
    if (!(name in value)) problems.push(`${at}: the required property "${name}" is missing`);
  for (const [name, item] of Object.entries(value)) {
    const where = `${at}.${name}`;
    const property = shape.properties.get(name);
    if (property) {
      if (mode === "request" && isReadOnly(specs, property))
        problems.push(`${where}: "${name}" is read-only and may not be sent`);
      else check(specs, property, item, where, mode, problems, false);
    } else if (shape.additional === true) continue;
    else if (shape.additional) check(specs, shape.additional, item, where, mode, problems, false);
    else problems.push(`${where}: the schema has no property "${name}"`);
  }
}

function checkEnum(node: JsonObject, value: string | number, at: string, problems: string[]): void {
  const values = node.enum as Json[] | undefined;
  const open = (node["x-ms-enum"] as JsonObject | undefined)?.modelAsString === true;
  if (values && !open && !values.includes(value))
    problems.push(`${at}: expected one of ${values.join(", ")}, got ${JSON.stringify(value)}`);
}

/** The properties of a schema and of everything it extends through allOf. */
function objectShape(specs: SpecSet, schema: Located): ObjectShape {
  const shape: ObjectShape = { properties: new Map(), required: new Set() };
  const visit = (located: Located) => {
    const { file, node } = specs.deref(located);
    for (const parent of (node.allOf ?? []) as JsonObject[]) visit({ file, node: parent });
    for (const [name, property] of Object.entries((node.properties ?? {}) as Record<string, JsonObject>))
      shape.properties.set(name, { file, node: property });
    for (const name of (node.required ?? []) as string[]) shape.required.add(name);
    if (node.additionalProperties === true) shape.additional = true;
    else if (isObject(node.additionalProperties ?? null))
      shape.additional = { file, node: node.additionalProperties as JsonObject };
    if (typeof node.discriminator === "string") shape.discriminator = node.discriminator;
  };
  visit(schema);
  return shape;
}

function findSubtype(specs: SpecSet, base: Located, kind: string): Located | undefined {
  for (const sub of specs.subtypes(base)) {
    if (sub.node["x-ms-discriminator-value"] === kind) return sub;
    const deeper = findSubtype(specs, sub, kind);
    if (deeper) return deeper;
  }
  return undefined;
}

/** readOnly may sit on the property next to its $ref, or on the schema the $ref names. */
function isReadOnly(specs: SpecSet, property: Located): boolean {
  return property.node.readOnly === true || specs.deref(property).node.readOnly === true;
}

const isObject = (value: Json | undefined): value is JsonObject =>
  typeof value === "object" && value !== null && !Array.isArray(value);

const describe = (value: Json) =>
  Array.isArray(value) ? "an array" : `${typeof value} ${JSON.stringify(value)}`;
