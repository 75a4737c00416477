import { readdirSync, readFileSync, statSync } from "node:fs";
import { join, relative } from "node:path";
import ejs from "ejs";
import type { ImageSpec } from "../spec/schema";
import { ROLES } from "../spec/schema";

/** A file of the image tree that kubebake writes itself (not an upstream binary). */
export type TreeEntry =
  | { path: string; kind: "file"; mode: number; content: Buffer }
  | { path: string; kind: "symlink"; target: string };

export const NODE_PATHS = {
  bin: "/usr/local/bin",
  libexec: "/usr/lib/kubebake",
  addons: "/usr/lib/kubebake/addons",
  images: "/usr/lib/kubebake/images",
  config: "/etc/kubernetes",
  pki: "/etc/kubernetes/pki",
  nodeEnv: "/run/kubebake/node.env",
  /** How etcd starts this time (seed, join, own data), written by etcd-member before each start. */
  etcdEnv: "/run/kubebake/etcd.env",
  /** Kubelet config drop-ins node-config writes per role (the control-plane taint on masters). */
  kubeletDropins: "/run/kubebake/kubelet.conf.d",
  systemd: "/etc/systemd/system",
} as const;

/**
 * The TLS 1.2 suites every component offers: ECDHE key exchange with AEAD ciphers only, the strong set of
 * the CIS benchmark. TLS 1.3's suites are fixed by Go and not configurable.
 */
export const TLS_CIPHER_SUITES = [
  "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256",
  "TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384",
  "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256",
  "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256",
  "TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384",
  "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256",
] as const;

export const roleFile = (role: (typeof ROLES)[number]) => `/etc/sysconfig/kubernetes-${role}`;

/** Pure: the values every template sees. */
export function templateContext(spec: ImageSpec, unitNames: string[]) {
  return {
    image: { name: spec.name },
    cluster: spec.cluster,
    addons: spec.addons,
    paths: NODE_PATHS,
    tls: { cipherSuites: TLS_CIPHER_SUITES },
    roleFile: { masters: roleFile("masters"), minions: roleFile("minions") },
    firstServiceIP: firstHost(spec.cluster.serviceCIDR),
    allRoleUnits: unitNames.filter((u) => u !== "kubebake-node-config.service"),
  };
}

/** The first usable address of a CIDR: the API's service IP, a SAN of its certificate. */
export function firstHost(cidr: string): string {
  const [address, bits] = cidr.split("/") as [string, string];
  const value = address.split(".").reduce((acc, octet) => acc * 256 + Number(octet), 0);
  const mask = Number(bits) === 0 ? 0 : (0xffffffff << (32 - Number(bits))) >>> 0;
  const first = ((value & mask) >>> 0) + 1;
  return [24, 16, 8, 0].map((shift) => (first >>> shift) & 255).join(".");
}

function listFiles(dir: string): string[] {
  return readdirSync(dir)
    .sort()
    .flatMap((name) => {
      const path = join(dir, name);
      return statSync(path).isDirectory() ? listFiles(path) : [path];
    });
}

/**
 * The mode of every unit and configuration file kubebake writes: only root reads them (systemd, the
 * programs, the node scripts), and the CIS benchmark asks for 600 on the files that say how the control
 * plane and the kubelet run.
 */
export const CONFIG_MODE = 0o600;

/**
 * Renders units/systemd/*.ejs into /etc/systemd/system, units/files/** into the same path of the
 * image, enables every unit through its [Install] WantedBy=, and adds the node scripts.
 */
export function renderTree(spec: ImageSpec, root: string): TreeEntry[] {
  const unitsDir = join(root, "units");
  const unitTemplates = listFiles(join(unitsDir, "systemd")).filter((f) => f.endsWith(".ejs"));
  const unitNames = unitTemplates.map((f) => relative(join(unitsDir, "systemd"), f).replace(/\.ejs$/, ""));
  const context = templateContext(spec, unitNames);
  const render = (file: string) =>
    Buffer.from(ejs.render(readFileSync(file, "utf8"), context, { filename: file, root: unitsDir }));

  const entries: TreeEntry[] = [];
  unitTemplates.forEach((file, i) => {
    const content = render(file);
    const unit = unitNames[i]!;
    entries.push({ path: `${NODE_PATHS.systemd}/${unit}`, kind: "file", mode: CONFIG_MODE, content });
    for (const target of wantedBy(content.toString())) {
      entries.push({
        path: `${NODE_PATHS.systemd}/${target}.wants/${unit}`,
        kind: "symlink",
        target: `${NODE_PATHS.systemd}/${unit}`,
      });
    }
  });
  for (const file of listFiles(join(unitsDir, "files")).filter((f) => f.endsWith(".ejs"))) {
    const path = "/" + relative(join(unitsDir, "files"), file).replace(/\.ejs$/, "");
    entries.push({ path, kind: "file", mode: CONFIG_MODE, content: render(file) });
  }
  const nodeDir = join(root, "src", "node");
  for (const file of listFiles(nodeDir)) {
    const rel = relative(nodeDir, file);
    // Scripts that run have no extension; what they read (shell libraries, jq programs) has one.
    const mode = /\.(sh|jq)$/.test(rel) ? 0o644 : 0o755;
    entries.push({ path: `${NODE_PATHS.libexec}/${rel}`, kind: "file", mode, content: readFileSync(file) });
  }
  return entries;
}

export function wantedBy(unit: string): string[] {
  return [...unit.matchAll(/^WantedBy=(.+)$/gm)].flatMap((m) => m[1]!.trim().split(/\s+/));
}
