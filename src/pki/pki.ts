import "reflect-metadata"; // @peculiar/x509's dependency injection needs it loaded first
import { randomBytes, webcrypto } from "node:crypto";
import * as x509 from "@peculiar/x509";
import { encryptionConfig, newKey } from "./encryption";

type CryptoKey = webcrypto.CryptoKey;
type CryptoKeyPair = webcrypto.CryptoKeyPair;

x509.cryptoProvider.set(webcrypto as unknown as Parameters<typeof x509.cryptoProvider.set>[0]);

/** What names the cluster's certificates carry. */
export interface PkiParams {
  cluster: string;
  /** The discovery zone's domain: the operator's admin kubeconfig reaches masters.<cluster>.<domain>. (The
   * cluster domain and service addresses are named by each master's own certificates, issue-certs.) */
  discoveryDomain: string;
  /** Certificates are valid from this moment (tests pin it). */
  now?: Date;
  /** Validity of the CAs and of the leaf certificates, in days. */
  caDays?: number;
  leafDays?: number;
}

/** One file of the cluster PKI, named as the nodes' secret sources name it (see src/node/node-config). */
export interface PkiFile {
  name: string;
  content: string;
  secret: boolean;
}

const EC = { name: "ECDSA", namedCurve: "P-256" } as const;
const SIGNING = { name: "ECDSA", hash: "SHA-256" } as const;
const DAY = 86_400_000;
/** How long a CA lives, and the operator's admin certificate, in days (unless PkiParams says otherwise). */
export const CA_DAYS = 3650;
export const LEAF_DAYS = 365;
export const ADMIN_SUBJECT = "CN=kubebake-admin, O=system:masters";

export interface Issued {
  cert: x509.X509Certificate;
  keys: CryptoKeyPair;
}

/** What signs: a CA's certificate and its private key. */
export interface Signer {
  cert: x509.X509Certificate;
  keys: Pick<CryptoKeyPair, "privateKey">;
}

const pem = (label: string, der: ArrayBuffer) => x509.PemConverter.encode(der, label);
export const keyPem = async (key: CryptoKey) =>
  pem("PRIVATE KEY", await webcrypto.subtle.exportKey("pkcs8", key));
const newKeys = () => webcrypto.subtle.generateKey(EC, true, ["sign", "verify"]) as Promise<CryptoKeyPair>;

/** Certificates start five minutes before now, to tolerate small clock skew between nodes. */
export const validFrom = (now: Date) => new Date(now.getTime() - 5 * 60_000);

/** A PKCS#8 PEM key to sign with; it must be ECDSA P-256, as every key kubebake makes (else this throws). */
export const signingKey = (pkcs8Pem: string): Promise<CryptoKey> =>
  webcrypto.subtle.importKey("pkcs8", x509.PemConverter.decodeFirst(pkcs8Pem), EC, false, ["sign"]);

export async function selfSignedCA(name: string, notBefore: Date, days: number): Promise<Issued> {
  const keys = await newKeys();
  const cert = await x509.X509CertificateGenerator.createSelfSigned({
    name,
    keys,
    notBefore,
    notAfter: new Date(notBefore.getTime() + days * DAY),
    signingAlgorithm: SIGNING,
    serialNumber: serial(),
    extensions: [
      new x509.BasicConstraintsExtension(true, 0, true),
      new x509.KeyUsagesExtension(
        x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign | x509.KeyUsageFlags.digitalSignature,
        true,
      ),
      await x509.SubjectKeyIdentifierExtension.create(keys.publicKey),
    ],
  });
  return { cert, keys };
}

/** A client certificate: the only kind kubebake issues here (masters issue their serving ones at boot). */
interface LeafSpec {
  subject: string;
}

export async function issue(ca: Signer, spec: LeafSpec, notBefore: Date, days: number): Promise<Issued> {
  const keys = await newKeys();
  const cert = await x509.X509CertificateGenerator.create({
    subject: spec.subject,
    issuer: ca.cert.subject,
    publicKey: keys.publicKey,
    signingKey: ca.keys.privateKey,
    notBefore,
    notAfter: new Date(notBefore.getTime() + days * DAY),
    signingAlgorithm: SIGNING,
    serialNumber: serial(),
    extensions: [
      new x509.BasicConstraintsExtension(false, undefined, true),
      new x509.KeyUsagesExtension(
        x509.KeyUsageFlags.digitalSignature | x509.KeyUsageFlags.keyEncipherment,
        true,
      ),
      new x509.ExtendedKeyUsageExtension([x509.ExtendedKeyUsage.clientAuth]),
      await x509.SubjectKeyIdentifierExtension.create(keys.publicKey),
      await x509.AuthorityKeyIdentifierExtension.create(ca.cert),
    ],
  });
  return { cert, keys };
}

/** A positive serial of 16 random bytes (RFC 5280 allows up to 20 octets). */
function serial(): string {
  const bytes = randomBytes(16);
  bytes[0]! &= 0x7f;
  return bytes.toString("hex");
}

/** A bootstrap token: [a-z0-9]{6}.[a-z0-9]{16}, drawn without bias. */
export function bootstrapToken(): string {
  const alphabet = "abcdefghijklmnopqrstuvwxyz0123456789";
  const draw = (n: number) => {
    let out = "";
    while (out.length < n) {
      for (const byte of randomBytes(n)) if (byte < 252 && out.length < n) out += alphabet[byte % 36];
    }
    return out;
  };
  return `${draw(6)}.${draw(16)}`;
}

/**
 * The cluster's shared secrets: the cluster, front-proxy and etcd CAs, the service-account key pair, the
 * operator's admin certificate and kubeconfig, a bootstrap token and the key that encrypts Secrets in etcd.
 * No master's certificate is here: each master issues its own from the CAs at boot, for its name and
 * address, and renews it (src/node/issue-certs). Pure apart from randomness.
 */
export async function generateClusterPki(params: PkiParams): Promise<PkiFile[]> {
  const now = params.now ?? new Date();
  const notBefore = validFrom(now);
  const caDays = params.caDays ?? CA_DAYS;
  const leafDays = params.leafDays ?? LEAF_DAYS;
  const mastersName = `masters.${params.cluster}.${params.discoveryDomain}`;

  const ca = await selfSignedCA(`CN=kubebake-${params.cluster}-ca`, notBefore, caDays);
  const frontProxyCA = await selfSignedCA(`CN=kubebake-${params.cluster}-front-proxy-ca`, notBefore, caDays);
  const etcdCA = await selfSignedCA(`CN=kubebake-${params.cluster}-etcd-ca`, notBefore, caDays);
  const leaf = (by: Issued, spec: LeafSpec) => issue(by, spec, notBefore, leafDays);

  // The operator's credential. Masters issue their own certificates from the CAs at boot (issue-certs).
  const issued: [string, Issued][] = [["admin", await leaf(ca, { subject: ADMIN_SUBJECT })]];
  const serviceAccount = await newKeys();

  const files: PkiFile[] = [];
  for (const [name, pair] of [
    ["ca", ca],
    ["front-proxy-ca", frontProxyCA],
    ["etcd-ca", etcdCA],
    ...issued,
  ] as [string, Issued][]) {
    files.push({ name: `${name}.crt`, content: pair.cert.toString("pem") + "\n", secret: false });
    files.push({ name: `${name}.key`, content: (await keyPem(pair.keys.privateKey)) + "\n", secret: true });
  }
  files.push({ name: "sa.key", content: (await keyPem(serviceAccount.privateKey)) + "\n", secret: true });
  files.push({
    name: "sa.pub",
    content: pem("PUBLIC KEY", await webcrypto.subtle.exportKey("spki", serviceAccount.publicKey)) + "\n",
    secret: false,
  });
  files.push({ name: "bootstrap-token", content: bootstrapToken(), secret: true });
  files.push({ name: "encryption-config.yaml", content: encryptionConfig([newKey(now)]), secret: true });

  const admin = issued.find(([n]) => n === "admin")![1];
  files.push({
    name: "admin.kubeconfig",
    secret: true,
    content: adminKubeconfig({
      cluster: params.cluster,
      server: `https://${mastersName}:6443`,
      ca: ca.cert.toString("pem") + "\n",
      cert: admin.cert.toString("pem") + "\n",
      key: (await keyPem(admin.keys.privateKey)) + "\n",
    }),
  });
  return files.sort((a, b) => a.name.localeCompare(b.name));
}

/** The operator's kubeconfig: its cluster and server, and the PEM files it embeds (CA bundle, certificate, key). */
export interface AdminKubeconfig {
  cluster: string;
  server: string;
  ca: string;
  cert: string;
  key: string;
}

export function adminKubeconfig({ cluster, server, ca, cert, key }: AdminKubeconfig): string {
  const b64 = (text: string) => Buffer.from(text).toString("base64");
  return [
    "apiVersion: v1",
    "kind: Config",
    "clusters:",
    `  - name: ${cluster}`,
    "    cluster:",
    `      server: ${server}`,
    `      certificate-authority-data: ${b64(ca)}`,
    "users:",
    "  - name: kubebake-admin",
    "    user:",
    `      client-certificate-data: ${b64(cert)}`,
    `      client-key-data: ${b64(key)}`,
    "contexts:",
    `  - name: kubebake-admin@${cluster}`,
    "    context:",
    `      cluster: ${cluster}`,
    "      user: kubebake-admin",
    `current-context: kubebake-admin@${cluster}`,
    "",
  ].join("\n");
}
