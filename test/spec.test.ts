import { readdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { parse, stringify } from "yaml";
import { ExitCode, KubebakeError } from "../src/errors";
import { KNOWN_COMPONENTS } from "../src/spec/components";
import { loadImageSpec } from "../src/spec/load";
import { fixtureSpec, realSpec, runCli, tempDir } from "./helpers";

const dir = tempDir("spec");
const valid = () => parse(readFileSync(fixtureSpec, "utf8"));
const realValid = () => parse(readFileSync(realSpec, "utf8"));

/** Writes a spec and returns the error loadImageSpec raises, or fails. */
function errorFor(
  name: string,
  spec: unknown,
  raw?: string,
): { file: string; text: string; message: string } {
  const file = join(dir, `${name}.yaml`);
  const text = raw ?? stringify(spec, { lineWidth: 0 });
  writeFileSync(file, text);
  try {
    loadImageSpec(file);
  } catch (error) {
    expect(error).toBeInstanceOf(KubebakeError);
    expect((error as KubebakeError).exitCode).toBe(ExitCode.invalidInput);
    return { file, text, message: (error as KubebakeError).message };
  }
  throw new Error(`${name}: the spec was accepted`);
}

/** 1-based line of the first line containing needle (after `after` if given). */
function lineOf(text: string, needle: string, after = ""): number {
  const lines = text.split("\n");
  const start = after ? lines.findIndex((l) => l.includes(after)) : 0;
  const index = lines.findIndex((l, i) => i >= start && l.includes(needle));
  if (index < 0) throw new Error(`no line contains ${needle}`);
  return index + 1;
}

type Case = [
  name: string,
  mutate: (s: any) => void,
  path: string,
  message: string,
  needle: string,
  after?: string,
];

const cases: Case[] = [
  [
    "wrong apiVersion",
    (s) => (s.apiVersion = "v1"),
    "apiVersion",
    'expected "kubebake.io/v1alpha1"',
    "apiVersion",
  ],
  ["wrong kind", (s) => (s.kind = "Image"), "kind", 'expected "ImageSpec"', "kind:"],
  [
    "name with capitals",
    (s) => (s.name = "Node"),
    "name",
    "expected a lowercase name of letters, digits and '-'",
    "name: Node",
  ],
  ["missing name", (s) => delete s.name, "", "missing field name; expected a name", "apiVersion"],
  ["unknown top-level field", (s) => (s.flavour = 1), "", "unknown field flavour", "flavour:"],
  [
    "other distribution",
    (s) => (s.base.distribution = "ubuntu"),
    "base.distribution",
    'expected "debian"',
    "distribution",
  ],
  [
    "other suite",
    (s) => (s.base.suite = "trixie"),
    "base.suite",
    'expected "bookworm" (the one suite kubebake supports now)',
    "suite",
  ],
  [
    "bad package name",
    (s) => (s.base.packages[1] = "Curl Tools"),
    "base.packages[1]",
    "expected a Debian package name, like etcd-server",
    "Curl Tools",
  ],
  [
    "packages not a list",
    (s) => (s.base.packages = "curl"),
    "base.packages",
    "expected a list of Debian package names, got a string",
    "packages: curl",
  ],
  [
    "bad service CIDR",
    (s) => (s.cluster.serviceCIDR = "10.32.0.0"),
    "cluster.serviceCIDR",
    "expected an IPv4 CIDR like 10.32.0.0/16",
    "serviceCIDR",
  ],
  [
    "CIDR octet too large",
    (s) => (s.cluster.podCIDR = "10.300.0.0/16"),
    "cluster.podCIDR",
    "expected an IPv4 CIDR like 10.32.0.0/16",
    "podCIDR",
  ],
  [
    "bad cluster DNS",
    (s) => (s.cluster.clusterDNS = "10.32.0"),
    "cluster.clusterDNS",
    "expected an IPv4 address",
    "clusterDNS",
  ],
  [
    "cluster DNS outside the service CIDR",
    (s) => (s.cluster.clusterDNS = "10.96.0.10"),
    "cluster.clusterDNS",
    "expected an address inside cluster.serviceCIDR 10.32.0.0/16, got 10.96.0.10",
    "clusterDNS",
  ],
  [
    "cluster DNS on the kubernetes service address",
    (s) => (s.cluster.clusterDNS = "10.32.0.1"),
    "cluster.clusterDNS",
    "expected an address inside cluster.serviceCIDR 10.32.0.0/16 other than its first two and its last (network, the kubernetes service, broadcast), got 10.32.0.1",
    "clusterDNS",
  ],
  [
    "leader lease in minutes",
    (s) => (s.cluster.leaderElection.leaseDuration = "1m"),
    "cluster.leaderElection.leaseDuration",
    'expected a duration in whole seconds, like "15s"',
    "leaseDuration",
  ],
  [
    "renew deadline as long as the lease",
    (s) => (s.cluster.leaderElection.renewDeadline = "60s"),
    "cluster.leaderElection.renewDeadline",
    "expected less than leaseDuration (60s), got 60s",
    "renewDeadline",
  ],
  [
    "renew deadline within the retry jitter",
    (s) => (s.cluster.leaderElection.retryPeriod = "40s"),
    "cluster.leaderElection.renewDeadline",
    "expected more than 1.2 times retryPeriod (40s), got 45s",
    "renewDeadline",
  ],
  [
    "bad cluster domain",
    (s) => (s.cluster.clusterDomain = "Cluster_Local"),
    "cluster.clusterDomain",
    "expected a DNS domain like cluster.local",
    "clusterDomain",
  ],
  [
    "add-on image without a registry",
    (s) => (s.addons.pause = "pause"),
    "addons.pause",
    "expected a container image reference with a registry, pinned by digest, like registry.k8s.io/pause:3.10.2@sha256:<64 hex>",
    "pause: pause",
  ],
  [
    "add-on image by tag alone",
    (s) => (s.addons.coredns = "registry.k8s.io/coredns/coredns:v1.12.1"),
    "addons.coredns",
    "expected the image pinned by digest, like registry.k8s.io/coredns/coredns:v1.12.1@sha256:<64 hex>; a tag alone can change under you",
    "coredns: registry.k8s.io/coredns/coredns:v1.12.1",
  ],
  [
    "extra image with a short digest",
    (s) => (s.addons.extra = ["docker.io/library/busybox:1.36@sha256:abc"]),
    "addons.extra[0]",
    "expected a container image reference with a registry, pinned by digest, like registry.k8s.io/pause:3.10.2@sha256:<64 hex>",
    "docker.io/library/busybox:1.36@sha256:abc",
  ],
  [
    "no components",
    (s) => (s.components = []),
    "components",
    "expected at least one component",
    "components",
  ],
  [
    "short digest",
    (s) => (s.components[0].source.upstream.artifacts.amd64.sha256 = "abc123"),
    "components[0].source.upstream.artifacts.amd64.sha256",
    "expected a SHA-256 digest (64 lowercase hex characters)",
    "sha256: abc123",
  ],
  [
    "uppercase digest",
    (s) => (s.components[1].source.upstream.artifacts.amd64.sha256 = "A".repeat(64)),
    "components[1].source.upstream.artifacts.amd64.sha256",
    "expected a SHA-256 digest (64 lowercase hex characters)",
    "AAAA",
  ],
  [
    "missing digest",
    (s) => delete s.components[0].source.upstream.artifacts.amd64.sha256,
    "components[0].source.upstream.artifacts.amd64",
    "missing field sha256; expected a SHA-256 digest (64 lowercase hex characters)",
    "amd64:",
    "name: kube-apiserver",
  ],
  [
    "URL without scheme",
    (s) => (s.components[2].source.upstream.artifacts.amd64.url = "standins.invalid/x"),
    "components[2].source.upstream.artifacts.amd64.url",
    "expected an http(s) URL with a path, like https://dl.k8s.io/release/v1.36.3/bin/linux/amd64/kubelet",
    "url: standins.invalid/x",
  ],
  [
    "unknown architecture",
    (s) =>
      (s.components[0].source.upstream.artifacts.riscv64 = {
        url: "https://x.invalid/a",
        sha256: "0".repeat(64),
      }),
    "components[0].source.upstream.artifacts",
    "unknown field riscv64",
    "riscv64",
  ],
  [
    "unknown format",
    (s) => (s.components[0].source.upstream.format = "zip"),
    "components[0].source.upstream.format",
    'expected "binary" or "tar.gz"',
    "format: zip",
  ],
  [
    "both sources",
    (s) => (s.components[7].source.debian = s.components[9].source.debian),
    "components[7].source",
    "expected exactly one of upstream or debian",
    "source:",
    "name: etcd",
  ],
  [
    "unknown role",
    (s) => (s.components[0].roles = ["workers"]),
    "components[0].roles[0]",
    "expected a role: masters or minions",
    "workers",
  ],
  [
    "no roles",
    (s) => (s.components[0].roles = []),
    "components[0].roles",
    "expected at least one role",
    "roles: []",
  ],
  [
    "bad version",
    (s) => (s.components[0].version = "1.36 final"),
    "components[0].version",
    "expected a version like v1.36.3 or a Debian version like 3.4.23-4+b4",
    "1.36 final",
  ],
  [
    "duplicate component",
    (s) => {
      s.components[1].name = s.components[0].name;
      s.components[1].install = [{ from: "x", to: "/usr/local/bin/x" }];
    },
    "components[1].name",
    'expected a unique name; "kube-apiserver" is also components[0]',
    "name: kube-apiserver",
    "format: binary",
  ],
  [
    "misspelt component",
    (s) => (s.components[3].name = "kube-apiservr"),
    "components[3].name",
    'unknown component "kube-apiservr"; did you mean "kube-apiserver"?',
    "name: kube-apiservr",
  ],
  [
    "component kubebake does not know",
    (s) => (s.components[5].name = "helm"),
    "components[5].name",
    'unknown component "helm"; kubebake knows kube-apiserver, kube-controller-manager, kube-scheduler, kubelet, kube-proxy, kubectl, etcd, etcdctl, containerd, runc, cni-plugins, crictl',
    "name: helm",
  ],
  [
    "relative install path",
    (s) => (s.components[7].install[0].to = "usr/local/bin/etcd"),
    "components[7].install[0].to",
    "expected an absolute file path in the image, without '..' or a trailing '/'",
    "to: usr/local/bin/etcd",
  ],
  [
    "install escaping the archive",
    (s) => (s.components[7].install[0].from = "../../etc/shadow"),
    "components[7].install[0].from",
    "expected a relative path inside the archive, without '..'",
    "../../etc/shadow",
  ],
  [
    "bad mode",
    (s) => (s.components[7].install[0].mode = "755"),
    "components[7].install[0].mode",
    'expected an octal mode like "0755"',
    "mode:",
  ],
  [
    "archive without install",
    (s) => delete s.components[7].install,
    "components[7].install",
    "expected the files to take from the archive (install: [{from, to}]) for an archive source",
    "name: etcd",
  ],
  [
    "two components, one path",
    (s) => (s.components[8].install[0].to = "/usr/local/bin/etcd"),
    "components[8].install[0].to",
    "expected a path no other component installs; /usr/local/bin/etcd is also installed by etcd",
    "to: /usr/local/bin/etcd",
    "name: containerd",
  ],
  [
    "bad Debian package",
    (s) => (s.components[9].source.debian.package = "Etcd Server"),
    "components[9].source.debian.package",
    "expected a Debian package name, like etcd-server",
    "Etcd Server",
  ],
];

describe("image spec validation", () => {
  test("the shipped spec and the fixture spec are valid", () => {
    expect(loadImageSpec(realSpec).spec.components).toHaveLength(11);
    expect(loadImageSpec(fixtureSpec).spec.components.map((c) => c.name)).toContain("kube-apiserver");
  });

  for (const [name, mutate, path, message, needle, after] of cases) {
    test(name, () => {
      const spec = valid();
      mutate(spec);
      const { file, text, message: actual } = errorFor(name.replace(/\W+/g, "-"), spec);
      const line = message.startsWith("missing field name") ? 1 : lineOf(text, needle, after);
      expect(actual).toBe(`${file}:${line}: ${path ? `${path}: ` : ""}${message}`);
    });
  }

  test("every problem is reported, each on its own line", () => {
    const spec = realValid();
    spec.kind = "Image";
    spec.components[3].version = "bad version";
    const { message } = errorFor("several", spec);
    expect(message.split("\n")).toHaveLength(2);
    expect(message).toMatch(/: kind: expected "ImageSpec"\n.*: components\[3\]\.version: expected a version/);
  });

  test("YAML syntax errors name the file and line", () => {
    const { file, message } = errorFor(
      "syntax",
      null,
      "apiVersion: kubebake.io/v1alpha1\nkind: [ImageSpec\n",
    );
    expect(message).toMatch(new RegExp(`^${file}:\\d+: not valid YAML: `));
  });

  test("duplicate keys are refused", () => {
    const { file, message } = errorFor("dupkey", null, "apiVersion: a\napiVersion: b\n");
    expect(message).toMatch(new RegExp(`^${file}:2: not valid YAML: Map keys must be unique`));
  });

  test("a missing file is a clear error", () => {
    expect(() => loadImageSpec(join(dir, "nope.yaml"))).toThrow(
      /nope\.yaml: cannot read the file \(ENOENT\)/,
    );
  });

  test("the CLI exits 2 with the message and no stack trace", () => {
    const spec = valid();
    spec.components[0].source.upstream.artifacts.amd64.sha256 = "xyz";
    const file = join(dir, "cli.yaml");
    writeFileSync(file, stringify(spec));
    const result = runCli("kubebake", ["spec", "validate", "--spec", file]);
    expect(result.code).toBe(2);
    expect(result.stderr).toMatch(
      /^error: .*cli\.yaml:\d+: components\[0\]\.source\.upstream\.artifacts\.amd64\.sha256: expected a SHA-256/,
    );
    expect(result.stderr).not.toMatch(/\n\s+at /);
    expect(runCli("bake-image", ["--out", join(dir, "o"), "--spec", file]).code).toBe(2);
  });

  test("a misspelt component is refused by spec validate and by the bake (exit 2, did you mean)", () => {
    const spec = valid();
    spec.components[3].name = "kube-apiservr";
    const file = join(dir, "misspelt.yaml");
    writeFileSync(file, stringify(spec));
    const validate = runCli("kubebake", ["spec", "validate", "--spec", file]);
    expect(validate.code).toBe(2);
    expect(validate.stderr).toMatch(
      /misspelt\.yaml:\d+: components\[3\]\.name: unknown component "kube-apiservr"; did you mean "kube-apiserver"\?\n$/,
    );
    const bake = runCli("bake-image", ["--out", join(dir, "misspelt-out"), "--spec", file]);
    expect(bake.code).toBe(2);
    expect(bake.stderr).toContain('unknown component "kube-apiservr"');
  });

  test("the known components include every program the units run from the bin folder", () => {
    const unitsDir = join(__dirname, "..", "units", "systemd");
    const programs = readdirSync(unitsDir).flatMap((unit) =>
      [
        ...readFileSync(join(unitsDir, unit), "utf8").matchAll(/^ExecStart\w*=-?<%= paths\.bin %>\/(\S+)/gm),
      ].map((m) => m[1]!),
    );
    expect(programs.length).toBeGreaterThanOrEqual(7);
    for (const program of programs) expect(KNOWN_COMPONENTS).toContain(program);
    expect(
      loadImageSpec(realSpec)
        .spec.components.map((c) => c.name)
        .sort(),
    ).toEqual(
      KNOWN_COMPONENTS.filter((c) => c !== "etcdctl").sort(), // etcdctl comes in etcd's tarball there
    );
  });

  test("the committed JSON Schema is the one the code generates", () => {
    const result = runCli("kubebake", ["spec", "schema"]);
    expect(result.code).toBe(0);
    expect(result.stdout).toBe(readFileSync(join(__dirname, "..", "image", "spec.schema.json"), "utf8"));
  });
});
