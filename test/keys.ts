import { createPrivateKey, generateKeyPairSync, KeyObject } from "node:crypto";
import { mkdirSync, readFileSync, renameSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

/**
 * An RSA private key made once per machine and kept under the temp folder, by purpose and size. A 4096-bit
 * key takes seconds to generate, and mutation testing runs a test file once per mutant. Made again when the
 * file is absent, damaged or not the requested size.
 */
export function cachedRsaKey(purpose: string, modulusLength: number): KeyObject {
  const file = join(tmpdir(), "kubebake-test-keys", `${purpose}-rsa-${modulusLength}.pem`);
  try {
    const key = createPrivateKey(readFileSync(file));
    if (key.asymmetricKeyType === "rsa" && key.asymmetricKeyDetails?.modulusLength === modulusLength)
      return key;
  } catch {
    // absent or unreadable: made below
  }
  const { privateKey } = generateKeyPairSync("rsa", { modulusLength });
  mkdirSync(join(file, ".."), { recursive: true });
  // Written aside then renamed: jest workers running at once never read half a key.
  const partial = `${file}.${process.pid}.tmp`;
  writeFileSync(partial, privateKey.export({ format: "pem", type: "pkcs8" }), { mode: 0o600 });
  renameSync(partial, file);
  return privateKey;
}
