#!/bin/sh
# Builds etcdutl (snapshot status and restore; etcdctl lost both in etcd 3.6) from its Go module at the
# version pinned in etcdutl/go.mod (the fixture's etcd version; a unit test checks that), the way build.sh
# builds the other programs. A script of its own so that adding it did not invalidate build.sh's cache.
#
#   test/upstream/build-etcdutl.sh [--quiet]     prints the folder holding etcdutl (last line of stdout)
set -eu

here=$(cd "$(dirname "$0")" && pwd)
quiet=${1:-}
GOTOOLCHAIN=go1.26.8
arch=amd64
export GOTOOLCHAIN CGO_ENABLED=0 GOOS=linux GOARCH=$arch GOFLAGS=-mod=readonly

say() { [ "$quiet" = --quiet ] || echo "upstream: $*" >&2; }

key=$(cat "$0" "$here"/etcdutl/go.mod "$here"/etcdutl/go.sum | { cat; echo "$GOTOOLCHAIN $arch"; } | sha256sum | cut -c1-16)
cache=${XDG_CACHE_HOME:-$HOME/.cache}/kubebake/upstream-etcdutl
out=$cache/$key

if [ -f "$out/.complete" ]; then
  say "etcdutl cached in $out"
  echo "$out"
  exit 0
fi

mkdir -p "$cache"
tmp=$(mktemp -d "$cache/.tmp.XXXXXX")
trap 'rm -rf "$tmp"' EXIT INT TERM
version=$(awk '$1 == "require" && $2 == "go.etcd.io/etcd/etcdutl/v3" { print $3; exit }' "$here/etcdutl/go.mod")
say "building etcdutl $version"
(cd "$here/etcdutl" && go build -trimpath -ldflags "-s -w" -o "$tmp/etcdutl" go.etcd.io/etcd/etcdutl/v3)
[ -x "$tmp/etcdutl" ] || { echo "upstream: etcdutl was not built" >&2; exit 1; }
touch "$tmp/.complete"
rm -rf "$out"
mv "$tmp" "$out"
say "etcdutl built into $out"
echo "$out"
