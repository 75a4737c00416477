/**
 * The components kubebake knows: the units, node scripts and add-ons run these programs (by these names,
 * from the paths the spec installs them to), so a component of another name would bake a binary nothing
 * runs, and leave the unit that needed the right one failing at boot.
 */
export const KNOWN_COMPONENTS = [
  "kube-apiserver", // kube-apiserver.service
  "kube-controller-manager", // kube-controller-manager.service
  "kube-scheduler", // kube-scheduler.service
  "kubelet", // kubelet.service
  "kube-proxy", // kube-proxy.service
  "kubectl", // apply-addons (the masters' add-on oneshot)
  "etcd", // etcd.service
  "etcdctl", // operators' etcd tool (in the etcd package upstream, its own component in the fixture)
  "containerd", // containerd.service (with containerd-shim-runc-v2 and ctr)
  "runc", // containerd's runtime
  "cni-plugins", // containerd's CNI plugins under /opt/cni/bin (flannel calls bridge, host-local…)
  "crictl", // operators' CRI tool
] as const;
