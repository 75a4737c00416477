#!/bin/bash
# Provider "none" (local VMs, bare metal): the hostname and first global address; secrets are files
# delivered with the user data (SECRET_SOURCE=files:/path, default /etc/kubebake/secrets).
# Sourced by node-config; defines provider_node_name, provider_node_ip, provider_fetch_secret.

provider_node_name() { hostname -s | tr '[:upper:]' '[:lower:]'; }

provider_node_ip() {
  ip -4 -o addr show scope global | awk '{ split($4, a, "/"); print a[1]; exit }'
}

provider_fetch_secret() {
  local name=$1 dest=$2 dir
  case "${SECRET_SOURCE:-files:/etc/kubebake/secrets}" in
    files:/*) dir=${SECRET_SOURCE:-files:/etc/kubebake/secrets} && dir=${dir#files:} ;;
    *) die "SECRET_SOURCE '$SECRET_SOURCE' is not files:/path, the only source of provider none" ;;
  esac
  [ -f "$dir/$name" ] || return 1
  install -m 0600 "$dir/$name" "$dest"
}

# No launch gate on this provider yet: nothing waits for the instance.
provider_instance_ready() { log "provider $CLOUD_PROVIDER has no launch gate: nothing to tell"; }

# Nodes of this provider do not write to their secret store: join-token cannot publish a new token.
provider_can_publish_secret() { false; }
provider_publish_secret() { die "provider $CLOUD_PROVIDER cannot publish secrets"; }
# No group to tell here yet: an unhealthy master is only logged.
provider_instance_unhealthy() { log "provider $CLOUD_PROVIDER cannot ask for this machine's replacement: replace it by hand"; }

# The distribution's default NTP servers, whatever the local network offers.
provider_time_servers() { :; }

# No machine identity on this provider: the join token is the only credential a node shows, so a request of
# the right form is approved (docs/security.md).
provider_join_proof() { :; }
provider_verify_join() { echo "approve provider none has no machine identity: the join token is the credential"; }
# No record of a machine's addresses but the Node object: approve-kubelet-certs checks against that alone.
provider_has_address_record() { false; }
provider_node_addresses() { :; }
