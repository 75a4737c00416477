#!/bin/sh
# Builds containerd, containerd-shim-runc-v2 and ctr from containerd's Go module at the version pinned in
# containerd/go.mod (the release spec's; a unit test checks that), static and -trimpath like build.sh's
# programs, so the fixture image runs the containerd a release image runs (and its config format). Without cgo: the btrfs, devmapper and zfs snapshotters (which need it) are left out; nodes use
# overlayfs. A script of its own so that adding it did not invalidate build.sh's cache.
#
#   test/upstream/build-containerd.sh [--quiet]     prints the folder holding the programs (last line of stdout)
set -eu

here=$(cd "$(dirname "$0")" && pwd)
quiet=${1:-}
GOTOOLCHAIN=go1.26.8
arch=amd64
export GOTOOLCHAIN CGO_ENABLED=0 GOOS=linux GOARCH=$arch GOFLAGS=-mod=readonly

say() { [ "$quiet" = --quiet ] || echo "upstream: $*" >&2; }

key=$(cat "$0" "$here"/containerd/go.mod "$here"/containerd/go.sum | { cat; echo "$GOTOOLCHAIN $arch"; } |
  sha256sum | cut -c1-16)
cache=${XDG_CACHE_HOME:-$HOME/.cache}/kubebake/upstream-containerd
out=$cache/$key

if [ -f "$out/.complete" ]; then
  say "containerd cached in $out"
  echo "$out"
  exit 0
fi

mkdir -p "$cache"
tmp=$(mktemp -d "$cache/.tmp.XXXXXX")
trap 'rm -rf "$tmp"' EXIT INT TERM
module=github.com/containerd/containerd/v2
version=$(awk -v m="$module" '$1 == "require" && $2 == m { print $3; exit }' "$here/containerd/go.mod")
# Upstream's Makefile stamps the version package; a build from a module zip has no git revision.
ldflags="-s -w -X $module/version.Version=$version -X $module/version.Package=$module -X $module/version.Revision=archive"
for program in containerd containerd-shim-runc-v2 ctr; do
  say "building $program $version"
  (cd "$here/containerd" && go build -trimpath -tags no_btrfs,no_devmapper,no_zfs -ldflags "$ldflags" \
    -o "$tmp/$program" "$module/cmd/$program")
  [ -x "$tmp/$program" ] || { echo "upstream: $program was not built" >&2; exit 1; }
done
touch "$tmp/.complete"
rm -rf "$out"
mv "$tmp" "$out"
say "containerd built into $out"
echo "$out"
