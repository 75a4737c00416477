import { execFileSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

export interface ServerCertificate {
  key: string;
  /** Self-signed: it is also the CA a client must trust (core-rest-pipeline's tlsOptions.ca). */
  cert: string;
}

let cached: ServerCertificate | undefined;

/**
 * A throwaway certificate for 127.0.0.1, because the Azure SDK's bearer-token policy refuses plain http.
 * Made once per test process with openssl; the key never leaves the temporary folder it is read from.
 */
export function localCertificate(): ServerCertificate {
  if (cached) return cached;
  const dir = mkdtempSync(join(tmpdir(), "kubebake-armfake-"));
  try {
    execFileSync(
      "openssl",
      [
        "req",
        "-x509",
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:prime256v1",
        "-nodes",
        "-keyout",
        join(dir, "key.pem"),
        "-out",
        join(dir, "cert.pem"),
        "-days",
        "2",
        "-subj",
        "/CN=127.0.0.1",
        "-addext",
        "subjectAltName=IP:127.0.0.1",
      ],
      { stdio: "ignore" },
    );
    cached = {
      key: readFileSync(join(dir, "key.pem"), "utf8"),
      cert: readFileSync(join(dir, "cert.pem"), "utf8"),
    };
    return cached;
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
