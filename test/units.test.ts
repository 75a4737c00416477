import { parse as parseToml } from "smol-toml";
import { spawnSync } from "node:child_process";
import { cpSync, existsSync, mkdirSync, readFileSync, readdirSync, statSync, writeFileSync } from "node:fs";
import { dirname, join, relative } from "node:path";
import { parse } from "yaml";
import { bake } from "../src/bake/bake";
import { renderTree, roleFile, TLS_CIPHER_SUITES, type TreeEntry } from "../src/bake/render";
import { loadImageSpec } from "../src/spec/load";
import { silentProgress } from "../src/util/progress";
import { fixtureMirror, fixtureSpec, realSpec, referenceFlags, repoRoot, tempDir } from "./helpers";

const rendered = renderTree(loadImageSpec(realSpec).spec, repoRoot);
const files = rendered.filter((e): e is Extract<TreeEntry, { kind: "file" }> => e.kind === "file");
const text = (path: string) => files.find((f) => f.path === path)!.content.toString();
const units = files.filter((f) => f.path.startsWith("/etc/systemd/system/") && f.path.endsWith(".service"));
const unitName = (path: string) => path.split("/").pop()!;

/** ExecStart= of a unit as words, continuation lines joined. */
function execStart(unit: string): string[] {
  const joined = unit.replace(/\\\n\s*/g, " ");
  const line = /^ExecStart=(.+)$/m.exec(joined);
  if (!line) throw new Error("no ExecStart");
  return line[1]!.trim().split(/\s+/);
}

/** The values node-config writes for the $VARS units pass as extra arguments. */
function nodeEnvArgs(): Record<string, string> {
  const script = readFileSync(join(repoRoot, "src", "node", "node-config"), "utf8");
  const cloudArgs = /cloud_args="(--[^"]+)"/.exec(script)![1]!;
  expect(script).toMatch(/KUBELET_CLOUD_ARGS=\$cloud_args/);
  expect(script).toMatch(/CONTROLLER_MANAGER_CLOUD_ARGS=\$cloud_args/);
  return { $KUBELET_CLOUD_ARGS: cloudArgs, $CONTROLLER_MANAGER_CLOUD_ARGS: cloudArgs };
}

function referenceList(file: string): Map<string, string> {
  const lines = readFileSync(join(referenceFlags, file), "utf8").split("\n");
  return new Map(
    lines.filter((l) => l && !l.startsWith("#")).map((l) => [l.split("\t")[0]!, l.split("\t")[1] ?? ""]),
  );
}

describe("rendered units and config files", () => {
  const goldenDir = join(repoRoot, "test", "golden");
  // The node scripts are copied, not rendered; the add-on manifests are rendered.
  const renderedFiles = files.filter(
    (f) => !f.path.startsWith("/usr/lib/kubebake/") || f.path.includes("/addons/"),
  );

  test("match the golden files (UPDATE_GOLDEN=1 to accept a change)", () => {
    for (const file of renderedFiles) {
      const golden = join(goldenDir, ...file.path.split("/").filter(Boolean));
      if (process.env.UPDATE_GOLDEN) {
        mkdirSync(dirname(golden), { recursive: true });
        writeFileSync(golden, file.content);
      }
      expect(`${file.path}:\n${file.content}`).toBe(`${file.path}:\n${readFileSync(golden, "utf8")}`);
    }
    expect(renderedFiles.length).toBeGreaterThanOrEqual(18);
  });

  test("every golden file is of a file still rendered (delete the golden of one no longer rendered)", () => {
    const goldens = readdirSync(goldenDir, { recursive: true, withFileTypes: true })
      .filter((entry) => !entry.isDirectory())
      .map((entry) => "/" + relative(goldenDir, join(entry.parentPath, entry.name)))
      .sort();
    const rendered = new Set(renderedFiles.map((f) => f.path));
    expect(goldens.filter((path) => !rendered.has(path))).toEqual([]);
    expect(goldens).toHaveLength(renderedFiles.length);
  });

  test("every flag a unit passes is a current, non-deprecated flag of that binary", () => {
    const extra = nodeEnvArgs();
    const checked = new Set<string>();
    for (const unit of units) {
      const [binary, ...args] = execStart(unit.content.toString());
      const component = binary!.split("/").pop()!;
      if (!existsSync(join(referenceFlags, `${component}.flags`))) continue;
      const flags = referenceList(`${component}.flags`);
      const expanded = args.flatMap((a) => (a.startsWith("$") ? [extra[a] ?? `unknown variable ${a}`] : [a]));
      for (const arg of expanded) {
        const flag = arg.split("=")[0]!;
        expect(`${component} ${flag}: ${flags.has(flag) ? flags.get(flag) || "current" : "unknown"}`).toBe(
          `${component} ${flag}: current`,
        );
      }
      checked.add(component);
    }
    const flagFiles = readdirSync(referenceFlags).filter((f) => f.endsWith(".flags"));
    expect([...checked].sort()).toEqual(flagFiles.map((f) => f.replace(/\.flags$/, "")).sort());
  });

  test("the 2016 guide's flags are gone: no insecure port, no --api-servers, no in-tree cloud provider", () => {
    const all = units.map((u) => u.content.toString()).join("\n");
    expect(all).not.toMatch(/--insecure-port|--api-servers|--cloud-provider=(aws|gce|azure)|:8080/);
    expect(text("/etc/systemd/system/kube-apiserver.service")).toMatch(/--secure-port=6443/);
  });

  test.each([
    ["/etc/kubernetes/kubelet-config.yaml", "kubelet-config.fields"],
    ["/etc/kubernetes/kube-proxy-config.yaml", "kube-proxy-config.fields"],
  ])("%s uses only fields of its config type (%s)", (path, fieldsFile) => {
    const fields = referenceList(fieldsFile);
    const config = parse(text(path)) as Record<string, unknown>;
    for (const key of Object.keys(config)) expect(`${key}: ${fields.has(key)}`).toBe(`${key}: true`);
  });

  test("kubelet is secure by default", () => {
    const config = parse(text("/etc/kubernetes/kubelet-config.yaml"));
    expect(config.authentication.anonymous.enabled).toBe(false);
    expect(config.authentication.webhook.enabled).toBe(true);
    expect(config.authorization.mode).toBe("Webhook");
    expect(config.readOnlyPort).toBe(0);
    expect(config.cgroupDriver).toBe("systemd");
    expect(execStart(text("/etc/systemd/system/kubelet.service"))).toContain(
      "--bootstrap-kubeconfig=/etc/kubernetes/bootstrap-kubelet.kubeconfig",
    );
    const etcd = execStart(text("/etc/systemd/system/etcd.service"));
    // The API server's loopback, and this master's address for the other masters' etcd-member; both
    // only with a certificate of the etcd CA, as on the peer port.
    expect(etcd).toContain("--listen-client-urls=https://127.0.0.1:2379,https://${NODE_IP}:2379");
    expect(etcd).toContain("--client-cert-auth=true");
    expect(etcd).toContain("--peer-client-cert-auth=true");
    // etcd runs as its own user and reads its certificate, key and CA as credentials: each file it names in
    // the credentials folder (%d) is a loaded copy of the PKI file of that name, and nothing else is loaded.
    const etcdUnit = text("/etc/systemd/system/etcd.service");
    expect(etcdUnit).toMatch(/^User=etcd$/m);
    const loaded = [...etcdUnit.matchAll(/^LoadCredential=([^:]+):(.+)$/gm)].map((m) => `${m[1]} ${m[2]}`);
    const named = [...new Set(etcd.flatMap((arg) => /=%d\/(.+)$/.exec(arg)?.[1] ?? []))].sort();
    expect(named).toEqual(["etcd-ca.crt", "etcd-member.crt", "etcd-member.key"]);
    expect(loaded.sort()).toEqual(named.map((name) => `${name} /etc/kubernetes/pki/${name}`));
  });

  test("every TLS server offers TLS 1.2 or later with the strong suites only; no profiling endpoint", () => {
    const flag = (unit: string, name: string) =>
      execStart(text(`/etc/systemd/system/${unit}.service`))
        .find((a) => a.startsWith(`${name}=`))
        ?.slice(name.length + 1);
    const strong = [...TLS_CIPHER_SUITES].join(",");
    for (const suite of TLS_CIPHER_SUITES)
      // forward secrecy (ECDHE) and AEAD ciphers only
      expect(suite).toMatch(
        /^TLS_ECDHE_(ECDSA|RSA)_WITH_(AES_(128|256)_GCM_SHA(256|384)|CHACHA20_POLY1305_SHA256)$/,
      );
    for (const unit of ["kube-apiserver", "kube-controller-manager", "kube-scheduler"]) {
      expect(`${unit} ${flag(unit, "--tls-cipher-suites")}`).toBe(`${unit} ${strong}`);
      expect(`${unit} ${flag(unit, "--tls-min-version")}`).toBe(`${unit} VersionTLS12`);
    }
    expect(flag("etcd", "--cipher-suites")).toBe(strong);
    expect(flag("etcd", "--tls-min-version")).toBe("TLS1.2");
    const kubelet = parse(text("/etc/kubernetes/kubelet-config.yaml"));
    expect(kubelet.tlsCipherSuites).toEqual([...TLS_CIPHER_SUITES]);
    expect(kubelet.tlsMinVersion).toBe("VersionTLS12");
    expect(flag("kube-apiserver", "--profiling")).toBe("false");
    expect(flag("kube-controller-manager", "--profiling")).toBe("false");
    expect(parse(text("/etc/kubernetes/kube-scheduler.yaml"))).toMatchObject({
      enableProfiling: false,
      enableContentionProfiling: false,
    });
  });

  test("the API server encrypts Secrets, audits every request at Metadata only, and enforces Pod Security baseline", () => {
    const apiserver = execStart(text("/etc/systemd/system/kube-apiserver.service"));
    const flag = (name: string) => apiserver.find((a) => a.startsWith(`${name}=`))?.slice(name.length + 1);
    // node-config fetches the encryption config with the masters' secrets, as generateClusterPki names it.
    expect(flag("--encryption-provider-config")).toBe("/etc/kubernetes/pki/encryption-config.yaml");
    expect(readFileSync(join(repoRoot, "src", "node", "node-config"), "utf8")).toMatch(
      /secrets="[^"]*\bencryption-config\.yaml\b[^"]*"\nelse/,
    );
    const policy = parse(text(flag("--audit-policy-file")!));
    expect(policy.kind).toBe("Policy");
    // No rule logs request or response bodies (Secrets, tokens, pod specs); the last rule catches the rest.
    expect(policy.rules.map((r: { level: string }) => r.level)).not.toContain("Request");
    expect(policy.rules.map((r: { level: string }) => r.level)).not.toContain("RequestResponse");
    expect(policy.rules.at(-1)).toEqual({ level: "Metadata" });
    expect(flag("--audit-log-path")).toBe("/var/log/kubernetes/audit.log");
    expect(Number(flag("--audit-log-maxbackup"))).toBeGreaterThan(0);
    expect(Number(flag("--audit-log-maxsize"))).toBeGreaterThan(0);
    const admission = parse(text(flag("--admission-control-config-file")!));
    const podSecurity = admission.plugins.find((p: { name: string }) => p.name === "PodSecurity");
    expect(podSecurity.configuration.defaults).toMatchObject({
      enforce: "baseline",
      warn: "restricted",
      audit: "restricted",
    });
    expect(podSecurity.configuration.exemptions.namespaces).toEqual(["kube-system"]);
  });

  const masters = [
    "etcd",
    "etcd-snapshot",
    "kube-apiserver",
    "kube-controller-manager",
    "kube-scheduler",
    "kubebake-addons",
    "kubebake-api-health",
    "kubebake-certs",
    "kubebake-csr-approver",
    "kubebake-join-token",
    "kubebake-launch-ready",
    "kubebake-node-gc",
  ];
  const everyNode = ["containerd", "kubebake-images", "kubelet", "kube-proxy"];
  test("the role file alone decides what starts: each unit carries its role's condition", () => {
    for (const name of masters) {
      const unit = text(`/etc/systemd/system/${name}.service`);
      expect(unit).toContain(`\nConditionPathExists=${roleFile("masters")}\n`);
      expect(unit).not.toContain("kubernetes-minions");
    }
    // Masters are nodes too: either role file starts these (systemd's "|" makes the conditions an OR).
    for (const name of everyNode) {
      const unit = text(`/etc/systemd/system/${name}.service`);
      expect(unit).toContain(
        `\nConditionPathExists=|${roleFile("masters")}\nConditionPathExists=|${roleFile("minions")}\n`,
      );
      expect(unit).not.toContain("ConditionPathExists=!");
    }
    const nodeConfig = text("/etc/systemd/system/kubebake-node-config.service");
    expect(nodeConfig).toContain(`ConditionPathExists=|${roleFile("masters")}`);
    expect(nodeConfig).toContain(`ConditionPathExists=|${roleFile("minions")}`);
    expect(units.map((u) => unitName(u.path)).sort()).toEqual(
      [...masters, ...everyNode, "kubebake-node-config"].map((n) => `${n}.service`).sort(),
    );
  });

  const timed = ["etcd-snapshot", "kubebake-api-health", "kubebake-certs", "kubebake-node-gc"];
  test("every unit is enabled in the one image; the snapshot, API health, certificate and node-gc services through their timers only, the join token's at boot and by its timer; every timer has the masters' condition", () => {
    for (const name of [...timed, "kubebake-join-token"]) {
      const timer = files.find((f) => f.path === `/etc/systemd/system/${name}.timer`);
      expect(timer?.content?.toString()).toContain(`\nConditionPathExists=${roleFile("masters")}\n`);
      expect(
        rendered.find((e) => e.path === `/etc/systemd/system/timers.target.wants/${name}.timer`),
      ).toEqual(expect.objectContaining({ kind: "symlink", target: `/etc/systemd/system/${name}.timer` }));
      if (timed.includes(name))
        expect(text(`/etc/systemd/system/${name}.service`)).not.toContain("[Install]");
    }
    for (const unit of units.filter((u) => !timed.some((name) => u.path.endsWith(`/${name}.service`)))) {
      const link = rendered.find(
        (e) => e.path === `/etc/systemd/system/multi-user.target.wants/${unitName(unit.path)}`,
      );
      expect(link).toEqual(expect.objectContaining({ kind: "symlink", target: unit.path }));
    }
  });

  test("the node scripts pass shellcheck", () => {
    const nodeDir = join(repoRoot, "src", "node");
    // Every script and shell library of the node (the jq program is tested on its own).
    const scripts = (readdirSync(nodeDir, { recursive: true }) as string[])
      .filter((f) => !f.endsWith(".jq") && !statSync(join(nodeDir, f)).isDirectory())
      .sort();
    expect(scripts).toEqual(
      expect.arrayContaining(["etcd-member", "launch-ready", "s3.sh", "providers/aws.sh"]),
    );
    const result = spawnSync("shellcheck", ["-x", "-P", "SCRIPTDIR", ...scripts], {
      cwd: nodeDir,
      encoding: "utf8",
    });
    expect(result.error).toBeUndefined();
    expect(result.stdout + result.stderr).toBe("");
    expect(result.status).toBe(0);
  });
});

describe("the baked fixture tree", () => {
  const work = tempDir("units");
  const out = join(work, "image");
  const tree = join(out, "rootfs");
  beforeAll(async () => {
    await bake({
      specPath: fixtureSpec,
      out,
      arch: "amd64",
      cacheDir: join(work, "cache"),
      mirror: fixtureMirror,
      progress: silentProgress,
    });
  });

  test("systemd-analyze verify passes on every rendered unit", () => {
    // A root with the tree and the host's systemd units, so dependencies and executables resolve.
    const root = join(work, "verify-root");
    cpSync(tree, root, { recursive: true, verbatimSymlinks: true });
    cpSync("/usr/lib/systemd/system", join(root, "usr/lib/systemd/system"), {
      recursive: true,
      verbatimSymlinks: true,
    });
    mkdirSync(join(root, "usr/sbin"), { recursive: true });
    writeFileSync(join(root, "usr/sbin/modprobe"), "#!/bin/sh\n", { mode: 0o755 });
    spawnSync("ln", ["-s", "usr/sbin", join(root, "sbin")]);
    for (const unit of readdirSync(join(tree, "etc/systemd/system")).filter((u) => u.endsWith(".service"))) {
      const result = spawnSync(
        "systemd-analyze",
        ["verify", `--root=${root}`, `/etc/systemd/system/${unit}`],
        { encoding: "utf8" },
      );
      expect(`${unit}: ${result.status} ${result.stdout}${result.stderr}`).toBe(`${unit}: 0 `);
    }
  });

  /** A unit's command line as the node runs it: the node's values in, config files read from the tree. */
  function commandLine(name: string): [string, string[]] {
    const env = {
      NODE_NAME: "node-1",
      NODE_IP: "10.0.0.5",
      CLUSTER_NAME: "demo",
      KUBEBAKE_ETCD_INITIAL_CLUSTER: "node-1=https://10.0.0.5:2380",
      KUBEBAKE_ETCD_INITIAL_STATE: "new",
    };
    const unit = readFileSync(join(tree, "etc/systemd/system", `${name}.service`), "utf8");
    const [binary, ...args] = execStart(unit);
    const expanded = args
      .flatMap((a) => (a.startsWith("$") ? (nodeEnvArgs()[a] ?? "").split(" ").filter(Boolean) : [a]))
      .map((a) => a.replace(/\$\{(\w+)\}/g, (_, v: keyof typeof env) => env[v]))
      .map((a) => a.replace(/^(--config=)(\/.*)$/, (_, f: string, p: string) => f + join(tree, p)));
    return [join(tree, binary!), expanded];
  }

  // The real programs parse every flag before --version prints and exits: an unknown or removed flag fails.
  test.each([
    ["etcd", /^etcd Version: 3\.6\.14$/m],
    ["kube-apiserver", /^Kubernetes v1\.36\.3$/],
    ["kube-controller-manager", /^Kubernetes v1\.36\.3$/],
    ["kube-scheduler", /^Kubernetes v1\.36\.3$/],
    ["kubelet", /^Kubernetes v1\.36\.3$/],
    ["kube-proxy", /^Kubernetes v1\.36\.3$/],
  ])(
    "the real %s accepts the rendered command line (cloud flags expanded) and is the pinned version",
    (name, version) => {
      const [binary, args] = commandLine(name);
      const result = spawnSync(binary, [...args, "--version"], { encoding: "utf8" });
      expect(
        `${name}: ${result.status} ${result.stderr.split("\n").filter((l) => /rror|unknown|deprecated/i.test(l))}`,
      ).toBe(`${name}: 0 `);
      expect(result.stdout.trim()).toMatch(version);
    },
  );

  test.each([
    ["kube-apiserver", "--insecure-port=8080", "unknown flag: --insecure-port"],
    ["kubelet", "--api-servers=http://master:8080", "unknown flag: --api-servers"],
    ["kube-controller-manager", "--address=0.0.0.0", "unknown flag: --address"],
  ])(
    "the guide's %s flag %s is refused by the real program, and is in no reference list",
    (name, arg, message) => {
      const result = spawnSync(join(tree, "usr/local/bin", name), [arg, "--version"], { encoding: "utf8" });
      expect(result.status).not.toBe(0);
      expect(result.stderr).toContain(message);
      expect(referenceList(`${name}.flags`).has(arg.split("=")[0]!)).toBe(false);
    },
  );

  test("the real kubectl and crictl are the pinned versions", () => {
    const kubectl = spawnSync(join(tree, "usr/local/bin/kubectl"), ["version", "--client", "-o", "json"], {
      encoding: "utf8",
    });
    expect(
      (JSON.parse(kubectl.stdout) as { clientVersion: { gitVersion: string } }).clientVersion.gitVersion,
    ).toBe("v1.36.3");
    const crictl = spawnSync(join(tree, "usr/local/bin/crictl"), ["--version"], { encoding: "utf8" });
    expect(crictl.stdout.trim()).toBe("crictl version v1.36.0");
  });

  test("the real containerd (v2.3.4) reads the rendered config: the pinned pause image, systemd cgroups for runc, the CNI folders", () => {
    const containerd = join(tree, "usr/local/bin/containerd");
    expect(spawnSync(containerd, ["--version"], { encoding: "utf8" }).stdout).toMatch(
      /^containerd github\.com\/containerd\/containerd\/v2 v2\.3\.4 /,
    );
    // What containerd makes of the file: every setting under the name it reads (one it does not know would
    // be dropped, and its default dumped instead).
    const dump = spawnSync(
      containerd,
      ["--config", join(tree, "etc/containerd/config.toml"), "config", "dump"],
      {
        encoding: "utf8",
      },
    );
    expect({ status: dump.status, stderr: dump.stderr }).toEqual({ status: 0, stderr: "" });
    const config = parseToml(dump.stdout) as {
      plugins: Record<string, Record<string, any>>;
    };
    const images = config.plugins["io.containerd.cri.v1.images"]!;
    const runtime = config.plugins["io.containerd.cri.v1.runtime"]!;
    const pause = /sandbox = "([^"]+)"/.exec(
      readFileSync(join(tree, "etc/containerd/config.toml"), "utf8"),
    )![1];
    expect({
      sandbox: images.pinned_images.sandbox,
      runtimeType: runtime.containerd.runtimes.runc.runtime_type,
      systemdCgroup: runtime.containerd.runtimes.runc.options.SystemdCgroup,
      cniBinDirs: runtime.cni.bin_dirs,
      cniConfDir: runtime.cni.conf_dir,
    }).toEqual({
      sandbox: expect.stringMatching(/\/pause:3\.10\.2@sha256:[0-9a-f]{64}$/),
      runtimeType: "io.containerd.runc.v2",
      systemdCgroup: true,
      cniBinDirs: ["/opt/cni/bin"],
      cniConfDir: "/etc/cni/net.d",
    });
    expect(images.pinned_images.sandbox).toBe(pause);
  });

  test("the node loads br_netfilter, nf_conntrack and overlay, turns on bridged iptables and forwarding, and sets the kernel tunables the kubelet protects", () => {
    const lines = (path: string) =>
      readFileSync(join(tree, path), "utf8")
        .split("\n")
        .filter((l) => l && !l.startsWith("#"));
    expect(lines("etc/modules-load.d/kubernetes.conf").sort()).toEqual([
      "br_netfilter",
      "nf_conntrack",
      "overlay",
    ]);
    expect(
      Object.fromEntries(
        lines("etc/sysctl.d/90-kubernetes.conf").map((l) => l.split(/\s*=\s*/) as [string, string]),
      ),
    ).toEqual({
      "net.bridge.bridge-nf-call-iptables": "1",
      "net.bridge.bridge-nf-call-ip6tables": "1",
      "net.ipv4.ip_forward": "1",
      // With protectKernelDefaults the kubelet refuses to start unless these hold (the values of
      // k8s.io/component-helpers/node/util/sysctl that kubelet's container manager checks).
      "vm.overcommit_memory": "1",
      "vm.panic_on_oom": "0",
      "kernel.panic": "10",
      "kernel.panic_on_oops": "1",
      "kernel.keys.root_maxkeys": "1000000",
      "kernel.keys.root_maxbytes": "25000000",
    });
    expect(parse(readFileSync(join(tree, "etc/kubernetes/kubelet-config.yaml"), "utf8"))).toMatchObject({
      protectKernelDefaults: true,
      // graceful node shutdown: pods stop before the machine goes (logind's lock needs D-Bus in the image)
      shutdownGracePeriod: "60s",
      shutdownGracePeriodCriticalPods: "20s",
    });
  });
});
