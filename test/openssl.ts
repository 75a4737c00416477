/** Certificates made with openssl for tests, the way the node scripts make theirs (src/node/issue-certs). */
import { spawnSync } from "node:child_process";
import { writeFileSync } from "node:fs";
import { join } from "node:path";

/** Runs openssl in `cwd`; its output, or an error with its message. */
export function openssl(args: string[], cwd: string): string {
  const result = spawnSync("openssl", args, { cwd, encoding: "utf8" });
  if (result.status !== 0) throw new Error(`openssl ${args.join(" ")}: ${result.stderr}`);
  return result.stdout;
}

export interface Signed {
  /** openssl's subject, e.g. "/O=system:nodes/CN=system:node:n1" */
  subject: string;
  /** the CA's certificate and key, without ".crt"/".key" (relative to the folder or absolute) */
  ca: string;
  /** extendedKeyUsage, default clientAuth */
  usage?: string;
  /** subjectAltName, if any */
  sans?: string;
  /** the issuer's address (Authority Information Access, "CA Issuers"), if any */
  aia?: string;
  /** an intermediate CA's certificate (basic constraints and key usage) instead of a leaf's usage */
  isCa?: boolean;
}

/** A P-256 key and a certificate request for it: `${name}.key` and `${name}.csr` in `dir`. */
export function certificateRequest(dir: string, name: string, subject: string, sans?: string) {
  openssl(
    [
      "req",
      "-new",
      "-newkey",
      "ec",
      "-pkeyopt",
      "ec_paramgen_curve:prime256v1",
      "-nodes",
      "-subj",
      subject,
    ].concat(sans ? ["-addext", `subjectAltName=${sans}`] : [], [
      "-keyout",
      `${name}.key`,
      "-out",
      `${name}.csr`,
    ]),
    dir,
  );
}

/** A P-256 key and a one-day certificate signed by a CA: `${name}.key` and `${name}.crt` in `dir`. */
export function signCertificate(
  dir: string,
  name: string,
  { subject, ca, usage = "clientAuth", sans, aia, isCa }: Signed,
) {
  certificateRequest(dir, name, subject);
  const role = isCa
    ? "basicConstraints=critical,CA:true\nkeyUsage=critical,keyCertSign,cRLSign\n"
    : `extendedKeyUsage=${usage}\n`;
  writeFileSync(
    join(dir, `${name}.ext`),
    `${role}${sans ? `subjectAltName=${sans}\n` : ""}${aia ? `authorityInfoAccess=caIssuers;URI:${aia}\n` : ""}`,
  );
  openssl(
    [
      "x509",
      "-req",
      "-in",
      `${name}.csr`,
      "-CA",
      `${ca}.crt`,
      "-CAkey",
      `${ca}.key`,
      "-CAcreateserial",
    ].concat(["-days", "1", "-sha256", "-extfile", `${name}.ext`, "-out", `${name}.crt`]),
    dir,
  );
}
