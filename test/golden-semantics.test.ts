/**
 * What the rendered config files mean, checked without the golden files (which UPDATE_GOLDEN=1 rewrites
 * wholesale): who is anonymous, which authorizers run, which subject gets which role, and whether the
 * add-ons agree with the image spec's cluster settings. Rendered twice: with the real image spec and
 * with other cluster settings, so a value written into a template by hand is caught too.
 */
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { parse, parseAllDocuments } from "yaml";
import { renderTree, type TreeEntry } from "../src/bake/render";
import { loadImageSpec } from "../src/spec/load";
import type { ImageSpec } from "../src/spec/schema";
import { realSpec, repoRoot } from "./helpers";

const realImageSpec = loadImageSpec(realSpec).spec;
const otherImageSpec: ImageSpec = {
  ...realImageSpec,
  cluster: {
    ...realImageSpec.cluster,
    serviceCIDR: "10.96.0.0/12",
    podCIDR: "10.244.0.0/16",
    clusterDNS: "10.96.0.53",
    clusterDomain: "corp.internal",
  },
};

function renderedFiles(spec: ImageSpec) {
  const files = renderTree(spec, repoRoot).filter(
    (e): e is Extract<TreeEntry, { kind: "file" }> => e.kind === "file",
  );
  const text = (path: string) => {
    const file = files.find((f) => f.path === path);
    if (!file) throw new Error(`${path} is not rendered`);
    return file.content.toString();
  };
  return { text, yaml: (path: string) => parse(text(path)) };
}

/** The flags of a unit's ExecStart, as a map flag -> value. */
function unitFlags(unit: string): Map<string, string> {
  const line = /^ExecStart=(.+)$/m.exec(unit.replace(/\\\n\s*/g, " "))![1]!;
  return new Map(
    line
      .trim()
      .split(/\s+/)
      .filter((word) => word.startsWith("--"))
      .map((word) => [word.split("=")[0]!, word.slice(word.indexOf("=") + 1)] as const),
  );
}

/** The documents of a multi-document manifest, as plain objects. */
const manifests = (text: string) =>
  parseAllDocuments(text)
    .map((doc) => doc.toJS() as Record<string, any> | null)
    .filter((doc): doc is Record<string, any> => doc !== null);

const find = (docs: Record<string, any>[], kind: string, name: string) => {
  const doc = docs.find((d) => d.kind === kind && d.metadata?.name === name);
  if (!doc) throw new Error(`no ${kind} ${name}`);
  return doc;
};

describe.each([
  ["the real image spec", realImageSpec],
  ["other cluster settings", otherImageSpec],
])("rendered config, semantically (%s)", (_, spec) => {
  const { text, yaml } = renderedFiles(spec);
  const apiserver = unitFlags(text("/etc/systemd/system/kube-apiserver.service"));

  test("authentication: anonymous requests only for /livez, /readyz and /healthz", () => {
    expect(apiserver.get("--authentication-config")).toBe("/etc/kubernetes/authentication-config.yaml");
    // --anonymous-auth would override the file's conditions (and cannot be combined with them).
    expect(apiserver.has("--anonymous-auth")).toBe(false);
    const config = yaml("/etc/kubernetes/authentication-config.yaml");
    expect(config).toEqual({
      apiVersion: "apiserver.config.k8s.io/v1",
      kind: "AuthenticationConfiguration",
      anonymous: {
        enabled: true,
        conditions: [{ path: "/livez" }, { path: "/readyz" }, { path: "/healthz" }],
      },
    });
  });

  test("authorization: the Node authorizer, then RBAC, and nothing else", () => {
    expect(apiserver.get("--authorization-config")).toBe("/etc/kubernetes/authorization-config.yaml");
    expect(apiserver.has("--authorization-mode")).toBe(false);
    expect(yaml("/etc/kubernetes/authorization-config.yaml")).toEqual({
      apiVersion: "apiserver.config.k8s.io/v1",
      kind: "AuthorizationConfiguration",
      authorizers: [
        { type: "Node", name: "node" },
        { type: "RBAC", name: "rbac" },
      ],
    });
  });

  test("bootstrap RBAC: exactly these subjects get exactly these roles, and kubebake's own roles exactly these rights", () => {
    const docs = manifests(text("/usr/lib/kubebake/addons/bootstrap-rbac.yaml"));
    for (const d of docs) expect(d.apiVersion).toBe("rbac.authorization.k8s.io/v1");
    const bindings = docs
      .filter((d) => d.kind.endsWith("Binding"))
      .map((d) => {
        // A Role's rights stay in its namespace; a ClusterRole's are cluster-wide.
        expect(d.roleRef.kind).toBe(d.kind === "RoleBinding" ? "Role" : "ClusterRole");
        const subjects = (d.subjects as { kind: string; name: string }[]).map((s) => `${s.kind} ${s.name}`);
        const where = d.kind === "RoleBinding" ? ` in ${d.metadata.namespace}` : "";
        return `${subjects.join(" + ")} -> ${d.roleRef.name}${where}`;
      });
    expect(bindings.sort()).toEqual(
      [
        // bootstrap tokens may create CSRs; the masters' approver, not the controller manager, approves them
        "Group system:bootstrappers:kubebake -> system:node-bootstrapper",
        // nodes renew their own client certificates, and kube-proxy runs with the node's identity
        "Group system:nodes -> system:certificates.k8s.io:certificatesigningrequests:selfnodeclient",
        "Group system:nodes -> system:node-proxier",
        // the API server's kubelet client reaches kubelets (logs, exec)
        "User kube-apiserver-kubelet-client -> system:kubelet-api-admin",
        // the masters' approver of kubelet certificates (joins and serving), and the collector of gone Nodes
        "User kubebake:kubelet-cert-approver -> kubebake:kubelet-cert-approver",
        "User kubebake:node-gc -> kubebake:node-gc",
        "User kubebake:node-gc -> kubebake:node-gc in kube-node-lease",
        // the masters' add-on applier, and the join token's minter
        "User kubebake:addons -> kubebake:addons",
        "User kubebake:join-token -> kubebake:join-token in kube-system",
      ].sort(),
    );
    const rights = docs
      .filter((d) => d.kind === "ClusterRole" || d.kind === "Role")
      .flatMap((d) =>
        (
          d.rules as { apiGroups: string[]; resources: string[]; verbs: string[]; resourceNames?: string[] }[]
        ).map(
          (r) =>
            `${d.metadata.name}: ${r.verbs.join(",")} ${r.apiGroups.join(",") || "core"}/${r.resources.join(",")}` +
            (r.resourceNames ? ` ${r.resourceNames.join(",")}` : ""),
        ),
      );
    expect(rights).toEqual([
      "kubebake:kubelet-cert-approver: get,list,watch certificates.k8s.io/certificatesigningrequests",
      "kubebake:kubelet-cert-approver: update certificates.k8s.io/certificatesigningrequests/approval",
      "kubebake:kubelet-cert-approver: approve certificates.k8s.io/signers kubernetes.io/kubelet-serving,kubernetes.io/kube-apiserver-client-kubelet",
      "kubebake:kubelet-cert-approver: get core/nodes",
      "kubebake:node-gc: get,list,delete core/nodes",
      "kubebake:node-gc: list coordination.k8s.io/leases",
      "kubebake:addons: get,create,patch core/namespaces kube-flannel",
      "kubebake:addons: get,create,patch core/serviceaccounts flannel,coredns",
      "kubebake:addons: get,create,patch core/configmaps kube-flannel-cfg,coredns",
      "kubebake:addons: get,create,patch core/services kube-dns",
      "kubebake:addons: get,create,patch apps/daemonsets kube-flannel-ds",
      "kubebake:addons: get,create,patch apps/deployments coredns",
      "kubebake:addons: get,create,patch,escalate,bind rbac.authorization.k8s.io/clusterroles kubebake:flannel,kubebake:coredns",
      "kubebake:addons: get,create,patch rbac.authorization.k8s.io/clusterrolebindings kubebake:flannel,kubebake:coredns",
      "kubebake:join-token: get,create,delete core/secrets",
    ]);
    // The applier's rights name every object of the add-on manifests: an object added to them without a
    // right would fail to apply at boot.
    const addonRules = docs.find((d) => d.kind === "ClusterRole" && d.metadata.name === "kubebake:addons")!
      .rules as { apiGroups: string[]; resources: string[]; resourceNames: string[] }[];
    const plural = (kind: string) => `${kind.toLowerCase()}${kind.endsWith("s") ? "es" : "s"}`;
    for (const manifest of ["flannel", "coredns"])
      for (const object of manifests(text(`/usr/lib/kubebake/addons/${manifest}.yaml`))) {
        const group = object.apiVersion.includes("/") ? object.apiVersion.split("/")[0] : "";
        const covered = addonRules.some(
          (r) =>
            r.apiGroups.includes(group) &&
            r.resources.includes(plural(object.kind)) &&
            r.resourceNames.includes(object.metadata.name),
        );
        expect(
          `${manifest}: ${object.kind} ${object.metadata.name} ${covered ? "covered" : "not covered"}`,
        ).toBe(`${manifest}: ${object.kind} ${object.metadata.name} covered`);
      }
    // The group the join tokens carry is the one bound above.
    const joinToken = readFileSync(join(repoRoot, "src", "node", "join-token"), "utf8");
    expect(/auth-extra-groups: (\S+)/.exec(joinToken)?.[1]).toBe("system:bootstrappers:kubebake");
    expect(apiserver.get("--enable-bootstrap-token-auth")).toBe("true");
    expect(apiserver.get("--kubelet-client-certificate")).toBe(
      "/etc/kubernetes/pki/apiserver-kubelet-client.crt",
    );
  });

  test("flannel: its network is the pod CIDR, VXLAN on 8472 (the port the security groups open)", () => {
    const docs = manifests(text("/usr/lib/kubebake/addons/flannel.yaml"));
    const netConf = JSON.parse(find(docs, "ConfigMap", "kube-flannel-cfg").data["net-conf.json"]);
    expect(netConf.Network).toBe(spec.cluster.podCIDR);
    expect(netConf.Backend.Type).toBe("vxlan");
    expect(netConf.Backend.Port ?? 8472).toBe(8472);
    const pod = find(docs, "DaemonSet", "kube-flannel-ds").spec.template.spec;
    const images = [...pod.initContainers, ...pod.containers].map((c: { image: string }) => c.image);
    expect(new Set(images)).toEqual(new Set([spec.addons.flannel, spec.addons.flannelCNIPlugin]));
    const controllerManager = unitFlags(text("/etc/systemd/system/kube-controller-manager.service"));
    expect(controllerManager.get("--cluster-cidr")).toBe(spec.cluster.podCIDR);
    expect(controllerManager.get("--allocate-node-cidrs")).toBe("true");
    expect(yaml("/etc/kubernetes/kube-proxy-config.yaml").clusterCIDR).toBe(spec.cluster.podCIDR);
  });

  test("CoreDNS: its service IP is the kubelet's clusterDNS, it serves the cluster domain", () => {
    const docs = manifests(text("/usr/lib/kubebake/addons/coredns.yaml"));
    expect(find(docs, "Service", "kube-dns").spec.clusterIP).toBe(spec.cluster.clusterDNS);
    const corefile: string = find(docs, "ConfigMap", "coredns").data.Corefile;
    expect(/^\s*kubernetes (\S+) /m.exec(corefile)?.[1]).toBe(spec.cluster.clusterDomain);
    const deployment = find(docs, "Deployment", "coredns").spec.template.spec;
    expect(deployment.containers.map((c: { image: string }) => c.image)).toEqual([spec.addons.coredns]);
    const kubelet = yaml("/etc/kubernetes/kubelet-config.yaml");
    expect(kubelet.clusterDNS).toEqual([spec.cluster.clusterDNS]);
    expect(kubelet.clusterDomain).toBe(spec.cluster.clusterDomain);
    expect(apiserver.get("--service-cluster-ip-range")).toBe(spec.cluster.serviceCIDR);
    expect(
      unitFlags(text("/etc/systemd/system/kube-controller-manager.service")).get(
        "--service-cluster-ip-range",
      ),
    ).toBe(spec.cluster.serviceCIDR);
  });
});
