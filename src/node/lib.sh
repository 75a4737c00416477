#!/bin/bash
# Shared helpers for kubebake's node scripts. Sourced, never run.
# shellcheck disable=SC2034  # variables here are used by the scripts that source this file

KUBEBAKE_SYSCONFIG_DIR=${KUBEBAKE_SYSCONFIG_DIR:-/etc/sysconfig}

log() { printf 'kubebake %s: %s\n' "${0##*/}" "$*"; }
die() {
  log "error: $*" >&2
  exit 1
}

# The role file decides: a node with the masters file is a master, else a minion with the minions file.
detect_role() {
  if [ -f "$KUBEBAKE_SYSCONFIG_DIR/kubernetes-masters" ]; then
    echo masters
  elif [ -f "$KUBEBAKE_SYSCONFIG_DIR/kubernetes-minions" ]; then
    echo minions
  else
    die "no role file: expected $KUBEBAKE_SYSCONFIG_DIR/kubernetes-masters or kubernetes-minions"
  fi
}

# Loads the role file and checks what every script relies on.
load_role() {
  ROLE=$(detect_role)
  # shellcheck disable=SC1090
  . "$KUBEBAKE_SYSCONFIG_DIR/kubernetes-$ROLE"
  [ -n "${CLUSTER_NAME:-}" ] || die "CLUSTER_NAME is not set in $KUBEBAKE_SYSCONFIG_DIR/kubernetes-$ROLE"
  case "$CLUSTER_NAME" in
    *[!a-z0-9-]* | -* | *-) die "CLUSTER_NAME '$CLUSTER_NAME' must be lowercase letters, digits and inner '-'" ;;
  esac
  CLOUD_PROVIDER=${CLOUD_PROVIDER:-none}
  case "$CLOUD_PROVIDER" in
    aws | gce | azure | none) ;;
    *) die "CLOUD_PROVIDER '$CLOUD_PROVIDER' is not one of aws, gce, azure, none" ;;
  esac
  MASTERS_FQDN="masters.${CLUSTER_NAME}.${DISCOVERY_DOMAIN}"
  # The masters group's live members, ready or still joining (the discovery reconciler's etcd record):
  # the peers etcd-member looks at. masters.* lists only masters whose API is ready.
  ETCD_PEERS_FQDN="etcd.${CLUSTER_NAME}.${DISCOVERY_DOMAIN}"
}

# Secret names as stored in a cloud secret store: the file name with '.' as '-'.
secret_id() { printf '%s' "${1//./-}"; }

# Writes stdin to a file atomically with the given mode.
write_atomic() {
  local dest=$1 mode=$2 tmp
  tmp=$(mktemp "${dest}.XXXXXX")
  cat >"$tmp"
  chmod "$mode" "$tmp"
  mv -f "$tmp" "$dest"
}
