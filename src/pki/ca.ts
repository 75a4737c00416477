/**
 * Rotating one of the cluster's CAs in three steps, so that no certificate is ever signed by a CA that
 * some component does not trust yet (docs/security.md, "Rotating a CA"). During a rotation a CA's files are
 * a trust bundle: <ca>.crt holds two CA certificates and <ca>.key their two keys, in the same order. The
 * first pair signs; every certificate is trusted (masters split them: src/node/issue-certs).
 *   add     a new CA after the current one: everyone learns to trust it, nothing is signed with it yet;
 *   use     the new CA first: masters sign with it and still trust the old one;
 *   retire  every CA but the first: once nothing still in use was signed by the old one.
 * For the cluster CA the operator's admin kubeconfig follows: it trusts the same bundle, and `use` reissues
 * its certificate from the new CA. Pure apart from randomness: the caller reads and writes the files.
 */
import "reflect-metadata";
import { createPrivateKey, createPublicKey } from "node:crypto";
import * as x509 from "@peculiar/x509";
import { parse } from "yaml";
import { invalidInput } from "../errors";
import type { RotationStep } from "./encryption";
import {
  ADMIN_SUBJECT,
  adminKubeconfig,
  CA_DAYS,
  issue,
  keyPem,
  LEAF_DAYS,
  selfSignedCA,
  signingKey,
  validFrom,
  type AdminKubeconfig,
  type PkiFile,
} from "./pki";

/** The CAs of the cluster PKI, by the base name of their files. */
export type CaName = "ca" | "etcd-ca" | "front-proxy-ca";

/** One CA of a bundle: its certificate and key as PEM text (each ending in a newline), and the parsed certificate. */
export interface CaPair {
  cert: string;
  key: string;
  certificate: x509.X509Certificate;
}

/** Where a CA's two files are, for messages. */
export interface CaFiles {
  cert: string;
  key: string;
}

const PEM_BLOCK = /-----BEGIN ([A-Z0-9 ]+)-----[\s\S]*?-----END \1-----/g;

/** The PEM blocks of a file, each with its newline; anything but blocks of LABEL (and blank space) is refused. */
function pemBlocks(text: string, label: string, file: string, what: string): string[] {
  const blocks = [...text.matchAll(PEM_BLOCK)];
  const other = blocks.find((b) => b[1] !== label);
  if (other) throw invalidInput(`${file}: expected ${what} only, found a ${other[1]}`);
  if (text.replace(PEM_BLOCK, "").trim() !== "")
    throw invalidInput(`${file}: expected ${what} only (-----BEGIN ${label}-----), found other text`);
  return blocks.map((b) => `${b[0]}\n`);
}

/** The pairs of a CA's files, the signing one first; refused unless each key belongs to its certificate. */
export function caPairs(certText: string, keyText: string, files: CaFiles): CaPair[] {
  const certs = pemBlocks(certText, "CERTIFICATE", files.cert, "PEM certificates");
  const keys = pemBlocks(keyText, "PRIVATE KEY", files.key, "PKCS#8 PEM private keys");
  if (certs.length < 1 || certs.length > 2)
    throw invalidInput(
      `${files.cert}: expected one or two CA certificates (the signing one first), found ${certs.length}`,
    );
  if (keys.length !== certs.length)
    throw invalidInput(
      `${files.key}: expected ${certs.length} key(s), one for each certificate of ${files.cert} in the same order, found ${keys.length}`,
    );
  return certs.map((cert, i) => caPair(cert, keys[i]!, i + 1, files));
}

function caPair(cert: string, key: string, n: number, files: CaFiles): CaPair {
  let certificate: x509.X509Certificate;
  try {
    certificate = new x509.X509Certificate(cert);
  } catch {
    throw invalidInput(`${files.cert}: certificate ${n}: not an X.509 certificate`);
  }
  if (certificate.getExtension(x509.BasicConstraintsExtension)?.ca !== true)
    throw invalidInput(`${files.cert}: certificate ${n} (${certificate.subject}): expected a CA certificate`);
  let publicKey: Buffer;
  try {
    publicKey = createPublicKey(createPrivateKey(key)).export({ type: "spki", format: "der" });
  } catch {
    throw invalidInput(`${files.key}: key ${n}: not a private key`);
  }
  if (!publicKey.equals(Buffer.from(certificate.publicKey.rawData)))
    throw invalidInput(
      `${files.key}: key ${n} does not belong to certificate ${n} of ${files.cert} (${certificate.subject})`,
    );
  return { cert, key, certificate };
}

/** One rotation step: the pairs after it, or a refusal naming the file when it does not follow the last one. */
export async function rotateCa(
  pairs: readonly CaPair[],
  step: RotationStep,
  now: Date,
  file: string,
): Promise<CaPair[]> {
  const names = pairs.map((p) => p.certificate.subject).join(", ");
  switch (step) {
    case "add":
      if (pairs.length > 1)
        throw invalidInput(
          `${file}: a rotation is under way (${names}): finish it with "use" and "retire" first`,
        );
      return [...pairs, await newCaPair(pairs[0]!, now)];
    case "use":
      if (pairs.length < 2) throw invalidInput(`${file}: only ${names}: "add" a CA before using it`);
      if (pairs[1]!.certificate.notBefore <= pairs[0]!.certificate.notBefore)
        throw invalidInput(
          `${file}: already signs with the newer CA ${pairs[0]!.certificate.subject}: "retire" the older one`,
        );
      return [pairs[1]!, pairs[0]!];
    case "retire":
      if (pairs.length < 2) throw invalidInput(`${file}: only ${names}: nothing to retire`);
      return [pairs[0]!];
  }
}

/**
 * A CA's name with the day it was made, `CN=kubebake-demo-ca-20261201` (`-2` when taken): each CA of a
 * bundle has a name of its own, so a certificate's issuer names exactly one of them, for OpenSSL's lookup
 * by name as for whoever reads `openssl x509 -issuer`.
 */
export function caSubject(current: x509.X509Certificate, now: Date): string {
  const name = current.subjectName.getField("CN")[0] ?? "kubebake-ca";
  const base = name.replace(/-\d{8}(-\d+)?$/, "");
  const day = `${base}-${now.toISOString().slice(0, 10).replaceAll("-", "")}`;
  // Only the current CA's name can be taken: `add` runs on a bundle of one.
  return `CN=${day === name ? `${day}-2` : day}`;
}

/**
 * A new CA that starts at least a second after the current one (X.509 times are whole seconds), even on a
 * fast run or a clock behind the one that made it: `use` tells the new CA from the old by that.
 */
async function newCaPair(current: CaPair, now: Date): Promise<CaPair> {
  const after = current.certificate.notBefore.getTime() + 1000;
  const notBefore = new Date(Math.max(validFrom(now).getTime(), after));
  const ca = await selfSignedCA(caSubject(current.certificate, now), notBefore, CA_DAYS);
  return {
    cert: ca.cert.toString("pem") + "\n",
    key: (await keyPem(ca.keys.privateKey)) + "\n",
    certificate: ca.cert,
  };
}

/** The operator's kubeconfig without the CA it trusts, which each step writes anew. */
export type AdminCredential = Omit<AdminKubeconfig, "ca">;

/** The admin kubeconfig as `pki init` wrote it; anything else is refused with the field that is wrong. */
export function readAdminKubeconfig(text: string, file: string): AdminCredential {
  let doc: unknown;
  try {
    doc = parse(text);
  } catch (error) {
    throw invalidInput(`${file}: not YAML (${(error as Error).message.split("\n")[0]})`);
  }
  const config = doc as {
    clusters?: { name?: unknown; cluster?: { server?: unknown } }[];
    users?: { user?: Record<string, unknown> }[];
  } | null;
  const cluster = config?.clusters?.[0];
  const user = config?.users?.[0]?.user;
  const field = (value: unknown, path: string, expected: string) => {
    if (typeof value !== "string" || value === "")
      throw invalidInput(`${file}: ${path}: expected ${expected}`);
    return value;
  };
  const pemData = (key: string) =>
    Buffer.from(field(user?.[key], `users[0].user.${key}`, "base64 of PEM"), "base64").toString();
  return {
    cluster: field(cluster?.name, "clusters[0].name", "the cluster's name"),
    server: field(cluster?.cluster?.server, "clusters[0].cluster.server", "the API server's URL"),
    cert: pemData("client-certificate-data"),
    key: pemData("client-key-data"),
  };
}

/**
 * The operator's credential after a step of the cluster CA: its kubeconfig trusts the new bundle, and on
 * `use` its certificate is reissued from the new signing CA (the old one would stop working at `retire`).
 */
export async function adminFiles(
  admin: AdminCredential,
  pairs: readonly CaPair[],
  step: RotationStep,
  now: Date,
  file: string,
): Promise<PkiFile[]> {
  const ca = pairs.map((p) => p.cert).join("");
  if (step !== "use") return [kubeconfigFile({ ...admin, ca })];
  const signer = pairs[0]!;
  const privateKey = await signingKey(signer.key).catch(() => {
    throw invalidInput(`${file}: key 1: expected an ECDSA P-256 key, as kubebake makes them, to sign with`);
  });
  const issued = await issue(
    { cert: signer.certificate, keys: { privateKey } },
    { subject: ADMIN_SUBJECT },
    validFrom(now),
    LEAF_DAYS,
  );
  const cert = issued.cert.toString("pem") + "\n";
  const key = (await keyPem(issued.keys.privateKey)) + "\n";
  return [
    { name: "admin.crt", content: cert, secret: false },
    { name: "admin.key", content: key, secret: true },
    kubeconfigFile({ ...admin, ca, cert, key }),
  ];
}

const kubeconfigFile = (config: AdminKubeconfig): PkiFile => ({
  name: "admin.kubeconfig",
  content: adminKubeconfig(config),
  secret: true,
});
