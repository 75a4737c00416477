#!/usr/bin/env bash
# The Debian tools the tests use. Installs what is missing when run as root; otherwise says what to install.
set -euo pipefail

# command:package
tools=(
  shellcheck:shellcheck
  systemd-analyze:systemd
  dpkg-deb:dpkg
  apt-get:apt
  openssl:openssl
  curl:curl
  jq:jq
  ip:iproute2
  unshare:util-linux
  getent:libc-bin
  # bootable disks and boot tests
  mmdebstrap:mmdebstrap
  qemu-img:qemu-utils
  qemu-system-x86_64:qemu-system-x86
  cloud-localds:cloud-image-utils
  genisoimage:genisoimage
  mkfs.vfat:dosfstools
  mcopy:mtools
  sfdisk:fdisk
  mkfs.ext4:e2fsprogs
  debugfs:e2fsprogs
  dnsmasq:dnsmasq-base
  docker-registry:docker-registry
  # the add-on images built from source (test/upstream/build-images.sh): pause is static C
  gcc:gcc
  /usr/lib/x86_64-linux-gnu/libc.a:libc6-dev
  /usr/lib/systemd/boot/efi/systemd-bootx64.efi:systemd-boot-efi
  /usr/share/OVMF/OVMF_CODE_4M.fd:ovmf
)

missing=()
for entry in "${tools[@]}"; do
  tool=${entry%%:*}
  if [ "${tool#/}" != "$tool" ]; then [ -e "$tool" ] && continue; else command -v "$tool" >/dev/null 2>&1 && continue; fi
  missing+=("${entry#*:}")
done
[ ${#missing[@]} -eq 0 ] && exit 0

if [ "$(id -u)" -ne 0 ]; then
  echo "kubebake tests need Debian packages that are not installed: ${missing[*]}" >&2
  echo "install them with: sudo apt-get install -y --no-install-recommends ${missing[*]}" >&2
  exit 5
fi
echo "installing test tools from Debian: ${missing[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
