#!/bin/sh
# Builds the Kubernetes add-on container images the tests run, from their sources at pinned versions, as OCI
# image layouts (no registry is reachable here): pause (build/pause/linux/pause.c of the k8s.io/kubernetes
# module test/upstream/kubernetes pins), flannel (flanneld), flannel-cni-plugin, coredns, and probe, the
# tests' own program for pods with no shell. Static programs, Go ones with the toolchain, flags and version
# stamps of build.sh and of each project's own Makefile; the flannel images' Debian root from exact package
# versions (images/debian.lock) through mmdebstrap. Layers are tars with sorted names, zero times and owners,
# gzip -n: the same inputs give the same digests, byte for byte.
#
#   test/upstream/build-images.sh [--quiet]     prints the folder holding the layouts (last line of stdout)
#
# Needs root (mmdebstrap --mode=root), gcc with glibc's static libc (libc6-dev), GNU tar, gzip and Node.
# <folder>/<image>/ is an OCI image layout: index.json names one image index listing the linux/amd64
# manifest. <folder>/images.json maps each image to its version, digests and layout path.
#
# Cached under ${XDG_CACHE_HOME:-~/.cache}/kubebake/upstream-images/<key>: the key is a digest of this
# script, the files of images/, test/upstream/kubernetes/go.mod (pause's version), the Go toolchain and the
# versions of the host tools that shape the bytes (gcc, libc6-dev, mmdebstrap, tar, gzip).
set -eu

here=$(cd "$(dirname "$0")" && pwd)
quiet=${1:-}
GOTOOLCHAIN=go1.26.8
arch=amd64
# -buildvcs=false: coredns and probe are main packages of our own modules, inside this git repository, and
# the commit would otherwise be stamped into them.
export GOTOOLCHAIN CGO_ENABLED=0 GOOS=linux GOARCH=$arch GOFLAGS="-mod=readonly -buildvcs=false"
SOURCE_DATE_EPOCH=${SOURCE_DATE_EPOCH:-0}
export SOURCE_DATE_EPOCH LC_ALL=C
umask 022
mirror=${DEBIAN_MIRROR:-http://deb.debian.org/debian}

# The versions: pause must be the TAG of build/pause/Makefile in the pinned Kubernetes (checked below), the
# others are the Go modules' versions in images/*/go.mod.
pause=3.10.2

say() { [ "$quiet" = --quiet ] || echo "upstream-images: $*" >&2; }
die() { echo "upstream-images: $*" >&2; exit 1; }

for tool in gcc strip mmdebstrap tar gzip node go; do
  command -v "$tool" >/dev/null || die "$tool is not on PATH"
done
tools=$(gcc -dumpfullversion; dpkg-query -W -f '${Version}\n' libc6-dev; mmdebstrap --version; tar --version | head -n1
  gzip --version | head -n1)
key=$( {
  cat "$0" "$here/kubernetes/go.mod"
  (cd "$here" && find images -type f | sort | while read -r f; do echo "$f"; cat "$f"; done)
  echo "$GOTOOLCHAIN $arch $SOURCE_DATE_EPOCH"
  echo "$tools"
} | sha256sum | cut -c1-16)
cache=${XDG_CACHE_HOME:-$HOME/.cache}/kubebake/upstream-images
out=$cache/$key

if [ -f "$out/.complete" ]; then
  say "cached in $out"
  echo "$out"
  exit 0
fi
[ "$(id -u)" -eq 0 ] || die "the flannel images' Debian root needs root (mmdebstrap --mode=root)"

# The version a module's go.mod requires, e.g. `required k8s.io/kubernetes kubernetes` -> v1.36.3.
required() { awk -v m="$1" '$1 == m || ($1 == "require" && $2 == m) { print $NF; exit }' "$here/$2/go.mod"; }
# Where the module cache holds a module's source.
source_of() { (cd "$here/$2" && go mod download -json "$1" | sed -n 's/.*"Dir": *"\([^"]*\)".*/\1/p'); }

mkdir -p "$cache"
tmp=$(mktemp -d "$cache/.tmp.XXXXXX")
trap 'rm -rf "$tmp"' EXIT INT TERM
started=$(date +%s)
stage=$tmp/.stage
layers=$tmp/.layers
mkdir -p "$stage" "$layers"

# layer NAME DIR: DIR's contents as $layers/NAME.tar.gz, a tar of sorted names with no times, owners or
# process ids (PAX headers under a fixed name), gzip'd without name or time.
layer() {
  (cd "$2" && find . -mindepth 1 -maxdepth 1 -printf '%P\n' | sort |
    tar --sort=name --mtime=@0 --owner=0 --group=0 --numeric-owner --format=posix \
      --pax-option=exthdr.name=%d/PaxHeaders/%f,delete=atime,delete=ctime -cf "$layers/$1.tar" -T -)
  gzip -n -9 "$layers/$1.tar"
}
# image NAME VERSION CONFIG LAYER…: the layout $tmp/NAME and its images.json entry.
image() {
  name=$1 version=$2 config=$3
  shift 3
  list=
  for l in "$@"; do list="$list${list:+, }\"$layers/$l.tar.gz\""; done
  node "$here/images/oci-layout.mjs" "$tmp" "$out" \
    "{\"name\": \"$name\", \"version\": \"$version\", \"config\": {$config}, \"layers\": [$list]}"
}

# pause: upstream's Makefile compiles linux/pause.c with `$(TRIPLE)-gcc $(CFLAGS)` and strips it, CFLAGS
# = -Os -Wall -Werror -static -DVERSION=v$(TAG)-$(REV); REV is `git describe --contains` of the Kubernetes
# commit, at a release the release's tag.
kube=$(required k8s.io/kubernetes kubernetes)
pause_src=$(source_of "k8s.io/kubernetes@$kube" kubernetes)/build/pause
tag=$(sed -n 's/^TAG *?= *//p' "$pause_src/Makefile")
[ "$tag" = "$pause" ] || die "build/pause/Makefile of k8s.io/kubernetes $kube has TAG $tag, not $pause"
say "building pause $pause (k8s.io/kubernetes $kube)"
mkdir -p "$stage/pause"
gcc -Os -Wall -Werror -static "-DVERSION=v$pause-$kube" -o "$stage/pause/pause" "$pause_src/linux/pause.c"
strip "$stage/pause/pause"
layer pause "$stage/pause"

# flannel: its Makefile's `go build -ldflags '-s -w -X …/pkg/version.Version=$(TAG) -extldflags "-static"'`,
# TAG = `git describe --tags` (the release tag), with cgo on amd64: the UDP backend's proxy is C, and its Go
# side does not build without cgo there. Upstream links musl statically; glibc here, so netgo and osusergo
# keep name and user lookups in Go (a static glibc cannot load its NSS modules).
flannel=$(required github.com/flannel-io/flannel images/flannel)
say "building flanneld $flannel"
mkdir -p "$stage/flanneld/opt/bin"
(cd "$here/images/flannel" && CGO_ENABLED=1 go build -trimpath -tags netgo,osusergo \
  -ldflags "-s -w -X github.com/flannel-io/flannel/pkg/version.Version=$flannel -extldflags -static" \
  -o "$stage/flanneld/opt/bin/flanneld" github.com/flannel-io/flannel)
layer flanneld "$stage/flanneld"

# The flannel CNI plugin, stamped as containernetworking/plugins' scripts/release.sh stamps its plugins.
cni=$(required github.com/containernetworking/plugins images/flannel-cni-plugin)
say "building the flannel CNI plugin ($cni)"
(cd "$here/images/flannel-cni-plugin" && go build -trimpath \
  -ldflags "-s -w -X github.com/containernetworking/plugins/pkg/utils/buildversion.BuildVersion=$cni" \
  -o "$stage/flannel-cni-plugin/flannel" github.com/containernetworking/plugins/plugins/meta/flannel)
layer flannel-cni-plugin "$stage/flannel-cni-plugin"

# coredns: its Makefile's `go build -ldflags="-s -w -X …/coremain.GitCommit=$(GITCOMMIT)"`, GITCOMMIT =
# `git describe --dirty --always` (the release tag); images/coredns/main.go holds only the plugins we use.
coredns=$(required github.com/coredns/coredns images/coredns)
say "building coredns $coredns"
(cd "$here/images/coredns" && go build -trimpath \
  -ldflags "-s -w -X github.com/coredns/coredns/coremain.GitCommit=$coredns" -o "$stage/coredns/coredns" .)
layer coredns "$stage/coredns"

say "building probe"
(cd "$here/images/probe" && go build -trimpath -ldflags "-s -w" -o "$stage/probe/probe" .)
layer probe "$stage/probe"

# The Debian root: exactly the packages of debian.lock, installed by dpkg (alternatives point iptables at
# iptables-nft, as on a Debian host), without documentation; then what is not reproducible, or belongs to
# the container runtime (/dev, /etc/hostname, /etc/resolv.conf), or to apt, goes.
say "building the Debian root (mmdebstrap, $mirror)"
packages=$(grep -v '^#' "$here/images/debian.lock" | paste -sd, -)
root=$stage/debian
mkdir -p "$root"
mmdebstrap --quiet --mode=root --variant=custom --include="$packages" \
  --dpkgopt='path-exclude=/usr/share/doc/*' --dpkgopt='path-include=/usr/share/doc/*/copyright' \
  --dpkgopt='path-exclude=/usr/share/man/*' --dpkgopt='path-exclude=/usr/share/info/*' \
  --dpkgopt='path-exclude=/usr/share/locale/*' --dpkgopt='path-exclude=/usr/share/lintian/*' \
  bookworm "$root" "$mirror" >&2 || die "mmdebstrap failed: does $mirror still have every version of images/debian.lock?"
installed=$(chroot "$root" dpkg-query -W -f '${Package}=${Version}\n' | sort)
[ "$installed" = "$(grep -v '^#' "$here/images/debian.lock" | sort)" ] ||
  die "the Debian root holds other packages than images/debian.lock: $(echo "$installed" | paste -sd' ' -)"
find "$root/dev" -mindepth 1 -delete
rm -rf "$root/etc/hostname" "$root/etc/resolv.conf" "$root/etc/machine-id" "$root/etc/apt" "$root/var/lib/apt" \
  "$root/var/cache/apt" "$root/var/cache/ldconfig/aux-cache" "$root/var/log"/* "$root/var/lib/dpkg"/*-old
chroot "$root" cp --version >/dev/null
chroot "$root" iptables --version >/dev/null
chroot "$root" ip6tables --version >/dev/null
layer debian "$root"

say "writing the OCI layouts"
image pause "$pause" '"Entrypoint": ["/pause"], "User": "65535:65535"' pause
image flannel "$flannel" '"Entrypoint": ["/opt/bin/flanneld"]' debian flanneld
# Upstream's image has no entrypoint of its own; the DaemonSet's init container runs this cp.
image flannel-cni-plugin "$cni" '"Cmd": ["cp", "-f", "/flannel", "/opt/cni/bin/flannel"]' debian flannel-cni-plugin
# Root, not upstream's nonroot: upstream's image also sets the file capability cap_net_bind_service=+ep on
# /coredns, without which a non-root user loses the NET_BIND_SERVICE the manifest adds on exec and cannot
# bind :53. Root with only that capability (the manifest drops ALL) is what the manifest grants.
image coredns "$coredns" '"Entrypoint": ["/coredns"], "User": "0"' coredns
image probe v1 '"Entrypoint": ["/probe"], "User": "65534:65534"' probe

rm -rf "$stage" "$layers"
touch "$tmp/.complete"
rm -rf "$out"
mv "$tmp" "$out"
say "built in $(($(date +%s) - started)) s into $out"
echo "$out"
