/** The test programs are built at the versions the image specs pin (test/upstream/build.sh reads go.mod). */
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { loadImageSpec } from "../src/spec/load";
import { fixtureSpec, realSpec, repoRoot } from "./helpers";

/** The version a go.mod requires of a module (in a require block or on one line). */
function required(group: string, module: string): string | undefined {
  const text = readFileSync(join(repoRoot, "test", "upstream", group, "go.mod"), "utf8");
  const line = text
    .split("\n")
    .map((l) =>
      l
        .trim()
        .replace(/^require\s+/, "")
        .split(/\s+/),
    )
    .find(([name]) => name === module);
  return line?.[1];
}

const versionsOf = (path: string) =>
  Object.fromEntries(loadImageSpec(path).spec.components.map((c) => [c.name, c.version]));

describe.each([
  ["image/kubebake.yaml", realSpec],
  ["test/fixtures/image.yaml", fixtureSpec],
])("the go.mod pins match %s", (_, spec) => {
  const versions = versionsOf(spec);
  test.each([
    "kube-apiserver",
    "kube-controller-manager",
    "kube-scheduler",
    "kubelet",
    "kube-proxy",
    "kubectl",
  ])("%s: k8s.io/kubernetes", (name) =>
    expect(required("kubernetes", "k8s.io/kubernetes")).toBe(versions[name]),
  );
  test("etcd: go.etcd.io/etcd server, etcdctl and etcdutl", () => {
    expect(required("etcd", "go.etcd.io/etcd/server/v3")).toBe(versions.etcd);
    expect(required("etcd", "go.etcd.io/etcd/etcdctl/v3")).toBe(versions.etcd);
    expect(required("etcdutl", "go.etcd.io/etcd/etcdutl/v3")).toBe(versions.etcd);
  });
  test("crictl: sigs.k8s.io/cri-tools", () => {
    expect(required("cri-tools", "sigs.k8s.io/cri-tools")).toBe(versions.crictl);
  });
  test("containerd: github.com/containerd/containerd/v2", () => {
    expect(required("containerd", "github.com/containerd/containerd/v2")).toBe(versions.containerd);
  });
});

test("every staging module k8s.io/kubernetes requires is pinned to its v0 twin of the same release", () => {
  const kube = required("kubernetes", "k8s.io/kubernetes")!;
  const twin = kube.replace(/^v1\./, "v0.");
  const text = readFileSync(join(repoRoot, "test", "upstream", "kubernetes", "go.mod"), "utf8");
  const replaces = [...text.matchAll(/^\t(k8s\.io\/[\w-]+) => (k8s\.io\/[\w-]+) (v\S+)$/gm)];
  expect(replaces.length).toBeGreaterThan(25);
  for (const [, from, to, version] of replaces)
    expect(`${from} => ${to} ${version}`).toBe(`${from} => ${from} ${twin}`);
});
