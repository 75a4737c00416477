#!/bin/sh
# Builds the real Kubernetes programs the tests bake into the fixture image, from their Go modules at the
# versions pinned in the go.mod files beside this script (the same as image/kubebake.yaml; a unit test
# checks that): kube-apiserver, kube-controller-manager, kube-scheduler, kubelet, kube-proxy, kubectl,
# etcd, etcdctl and crictl. Static, -trimpath, stamped with the version the way upstream's release build
# stamps it, with one pinned Go toolchain, so the same inputs give the same bytes on every machine.
#
#   test/upstream/build.sh [--quiet]     prints the folder holding the programs (last line of stdout)
#
# Cached by version under ${XDG_CACHE_HOME:-~/.cache}/kubebake/upstream/<key>: the key is a digest of the
# go.mod and go.sum files, this script and the toolchain, so a second run costs a directory lookup.
set -eu

here=$(cd "$(dirname "$0")" && pwd)
quiet=${1:-}
# One toolchain for everyone: a machine with another Go fetches this one through the module proxy.
GOTOOLCHAIN=go1.26.8
arch=amd64
export GOTOOLCHAIN CGO_ENABLED=0 GOOS=linux GOARCH=$arch GOFLAGS=-mod=readonly

say() { [ "$quiet" = --quiet ] || echo "upstream: $*" >&2; }

key=$(cat "$0" "$here"/kubernetes/go.mod "$here"/kubernetes/go.sum "$here"/etcd/go.mod "$here"/etcd/go.sum \
  "$here"/cri-tools/go.mod "$here"/cri-tools/go.sum | { cat; echo "$GOTOOLCHAIN $arch"; } | sha256sum | cut -c1-16)
cache=${XDG_CACHE_HOME:-$HOME/.cache}/kubebake/upstream
out=$cache/$key
programs="kube-apiserver kube-controller-manager kube-scheduler kubelet kube-proxy kubectl etcd etcdctl crictl"

if [ -f "$out/.complete" ]; then
  say "cached in $out"
  echo "$out"
  exit 0
fi

# The version a module's go.mod requires, e.g. `required k8s.io/kubernetes kubernetes` -> v1.36.3.
required() { awk -v m="$1" '$1 == m || ($1 == "require" && $2 == m) { print $NF; exit }' "$here/$2/go.mod"; }
# When the proxy says the module's version was tagged: upstream's buildDate for a build from a tag.
tagged() { (cd "$here/$2" && go mod download -json "$1" | sed -n 's/.*"Info": "\(.*\)".*/\1/p' | xargs cat |
  sed -n 's/.*"Time": *"\([^"]*\)".*/\1/p'); }

mkdir -p "$cache"
tmp=$(mktemp -d "$cache/.tmp.XXXXXX")
trap 'rm -rf "$tmp"' EXIT INT TERM
started=$(date +%s)

kube=$(required k8s.io/kubernetes kubernetes)
minor=$(echo "$kube" | cut -d. -f2)
# Upstream's hack/lib/version.sh stamps both version packages; a build from a module zip has no git tree.
stamp() { echo "-X 'k8s.io/client-go/pkg/version.$1=$2' -X 'k8s.io/component-base/version.$1=$2'"; }
kube_ldflags="-s -w $(stamp gitVersion "$kube") $(stamp gitMajor 1) $(stamp gitMinor "$minor")"
kube_ldflags="$kube_ldflags $(stamp gitTreeState archive) $(stamp buildDate "$(tagged k8s.io/kubernetes kubernetes)")"
for program in kube-apiserver kube-controller-manager kube-scheduler kubelet kube-proxy kubectl; do
  say "building $program $kube"
  # Upstream's release tags: selinux, notest, grpcnotrace (no x/net/trace in a non-debug build).
  (cd "$here/kubernetes" && go build -trimpath -tags selinux,notest,grpcnotrace -ldflags "all=$kube_ldflags" \
    -o "$tmp/$program" "k8s.io/kubernetes/cmd/$program")
done

etcd=$(required go.etcd.io/etcd/server/v3 etcd)
for module in server etcdctl; do
  program=$([ "$module" = server ] && echo etcd || echo etcdctl)
  say "building $program $etcd"
  (cd "$here/etcd" && go build -trimpath -ldflags "-s -w" -o "$tmp/$program" "go.etcd.io/etcd/$module/v3")
done

crictl=$(required sigs.k8s.io/cri-tools cri-tools)
say "building crictl $crictl"
(cd "$here/cri-tools" && go build -trimpath \
  -ldflags "-s -w -X sigs.k8s.io/cri-tools/pkg/version.Version=$crictl" -o "$tmp/crictl" sigs.k8s.io/cri-tools/cmd/crictl)

for program in $programs; do [ -x "$tmp/$program" ] || { echo "upstream: $program was not built" >&2; exit 1; }; done
touch "$tmp/.complete"
rm -rf "$out"
mv "$tmp" "$out"
say "built in $(($(date +%s) - started)) s into $out"
echo "$out"
