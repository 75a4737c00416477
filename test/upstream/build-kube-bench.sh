#!/bin/sh
# Builds kube-bench (the CIS Kubernetes Benchmark runner) from its Go module at the version pinned in
# kube-bench/go.mod, the way build.sh builds the other programs, and puts beside it the benchmark's
# checks from the same module (cfg/<benchmark>). The boot test runs it on a booted master and minion with
# test/kube-bench/config.yaml, which says where kubebake keeps each component's files.
#
#   test/upstream/build-kube-bench.sh [--quiet]     prints the folder holding kube-bench and cfg/
set -eu

here=$(cd "$(dirname "$0")" && pwd)
quiet=${1:-}
GOTOOLCHAIN=go1.26.8
arch=amd64
# The CIS benchmark for Kubernetes 1.32 and later, the newest kube-bench ships.
benchmark=cis-1.12
export GOTOOLCHAIN CGO_ENABLED=0 GOOS=linux GOARCH=$arch GOFLAGS=-mod=readonly

say() { [ "$quiet" = --quiet ] || echo "upstream: $*" >&2; }

key=$(cat "$0" "$here"/kube-bench/go.mod "$here"/kube-bench/go.sum | { cat; echo "$GOTOOLCHAIN $arch $benchmark"; } |
  sha256sum | cut -c1-16)
cache=${XDG_CACHE_HOME:-$HOME/.cache}/kubebake/upstream-kube-bench
out=$cache/$key

if [ -f "$out/.complete" ]; then
  say "kube-bench cached in $out"
  echo "$out"
  exit 0
fi

mkdir -p "$cache"
tmp=$(mktemp -d "$cache/.tmp.XXXXXX")
trap 'rm -rf "$tmp"' EXIT INT TERM
module=github.com/aquasecurity/kube-bench
version=$(awk -v m="$module" '$1 == "require" && $2 == m { print $3; exit }' "$here/kube-bench/go.mod")
say "building kube-bench $version"
(cd "$here/kube-bench" && go build -trimpath -ldflags "-s -w -X $module/cmd.KubeBenchVersion=$version" \
  -o "$tmp/kube-bench" "$module")
[ -x "$tmp/kube-bench" ] || { echo "upstream: kube-bench was not built" >&2; exit 1; }
source_dir=$(cd "$here/kube-bench" && go list -m -f '{{.Dir}}' "$module")
mkdir -p "$tmp/cfg"
cp -R "$source_dir/cfg/$benchmark" "$tmp/cfg/$benchmark"
chmod -R u+w "$tmp/cfg"
touch "$tmp/.complete"
rm -rf "$out"
mv "$tmp" "$out"
say "kube-bench built into $out"
echo "$out"
