/**
 * The API server's EncryptionConfiguration for Secrets, and the three steps that rotate its key without
 * a moment where some API server cannot read what another wrote (docs/security.md):
 *   add     a new key, listed after the current one: every master learns to read it, none writes with it;
 *   use     the newest key first: masters write with it (and still read the old one);
 *   retire  every key but the first: once every Secret has been rewritten with it.
 * Pure: the caller reads and writes the file.
 */
import { randomBytes } from "node:crypto";
import { parse } from "yaml";
import { invalidInput } from "../errors";

export interface EncryptionKey {
  name: string;
  /** base64 of 32 random bytes */
  secret: string;
}

export const ROTATION_STEPS = ["add", "use", "retire"] as const;
export type RotationStep = (typeof ROTATION_STEPS)[number];

/** A fresh key named by its day, `key-20261201`, or `key-20261201-2` when that name is taken. */
export function newKey(
  now: Date,
  taken: readonly string[] = [],
  bytes: Buffer = randomBytes(32),
): EncryptionKey {
  const day = `key-${now.toISOString().slice(0, 10).replaceAll("-", "")}`;
  let name = day;
  for (let n = 2; taken.includes(name); n++) name = `${day}-${n}`;
  return { name, secret: bytes.toString("base64") };
}

/**
 * Secrets sealed with secretbox (XSalsa20-Poly1305) under the first key; the others only read. `identity`
 * comes last so Secrets written before encryption was on stay readable until rewritten; it never writes.
 */
export function encryptionConfig(keys: readonly EncryptionKey[]): string {
  return [
    "apiVersion: apiserver.config.k8s.io/v1",
    "kind: EncryptionConfiguration",
    "resources:",
    "  - resources: [secrets]",
    "    providers:",
    "      - secretbox:",
    "          keys:",
    ...keys.flatMap((k) => [`            - name: ${k.name}`, `              secret: ${k.secret}`]),
    "      - identity: {}",
    "",
  ].join("\n");
}

/** The keys of a config this module wrote; anything else is refused with the field that is wrong. */
export function encryptionKeys(text: string, file: string): EncryptionKey[] {
  let doc: unknown;
  try {
    doc = parse(text);
  } catch (error) {
    throw invalidInput(`${file}: not YAML (${(error as Error).message.split("\n")[0]})`);
  }
  const config = doc as { kind?: unknown; resources?: { resources?: unknown; providers?: unknown[] }[] };
  if (config?.kind !== "EncryptionConfiguration")
    throw invalidInput(`${file}: kind: expected EncryptionConfiguration`);
  const entry =
    Array.isArray(config.resources) && config.resources.length === 1 ? config.resources[0] : undefined;
  if (!entry || JSON.stringify(entry.resources) !== '["secrets"]')
    throw invalidInput(`${file}: resources: expected one entry for [secrets], as kubebake writes it`);
  const keys = (entry.providers?.[0] as { secretbox?: { keys?: unknown } } | undefined)?.secretbox?.keys;
  if (!Array.isArray(keys) || keys.length === 0)
    throw invalidInput(`${file}: resources[0].providers[0].secretbox.keys: expected at least one key`);
  return keys.map((key: { name?: unknown; secret?: unknown }, i) => {
    const where = `${file}: resources[0].providers[0].secretbox.keys[${i}]`;
    if (typeof key?.name !== "string" || !/^[a-z0-9-]{1,63}$/.test(key.name))
      throw invalidInput(`${where}.name: expected lowercase letters, digits and '-'`);
    if (typeof key.secret !== "string" || Buffer.from(key.secret, "base64").length !== 32)
      throw invalidInput(`${where}.secret: expected base64 of 32 bytes`);
    return { name: key.name, secret: key.secret };
  });
}

/** One rotation step: the keys after it, or a clear refusal when the step does not follow the last one. */
export function rotate(keys: readonly EncryptionKey[], step: RotationStep, now: Date): EncryptionKey[] {
  const names = keys.map((k) => k.name);
  switch (step) {
    case "add":
      if (keys.length > 1)
        throw invalidInput(
          `a rotation is under way (keys ${names.join(", ")}): finish it with "use" and "retire" first`,
        );
      return [...keys, newKey(now, names)];
    case "use":
      if (keys.length < 2) throw invalidInput(`only key ${names[0]}: "add" a key before using it`);
      return [keys.at(-1)!, ...keys.slice(0, -1)];
    case "retire":
      if (keys.length < 2) throw invalidInput(`only key ${names[0]}: nothing to retire`);
      return [keys[0]!];
  }
}
