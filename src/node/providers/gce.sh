#!/bin/bash
# Provider "gce": the metadata server for identity and a token; Secret Manager for secrets
# (SECRET_SOURCE=secretmanager:projects/P/secrets/PREFIX; each secret is PREFIX-<name with '.' as '-'>).
# Sourced by node-config; defines provider_node_name, provider_node_ip, provider_fetch_secret.

GCE_METADATA=${GCE_METADATA_HOST:-metadata.google.internal}

# gce_metadata PATH: the metadata server's answer at PATH, tried again until $(imds_deadline)s.
gce_metadata() {
  retry "$(imds_deadline)" "GCE metadata $1" \
    http_call "" 5 -H 'Metadata-Flavor: Google' "http://$GCE_METADATA/computeMetadata/v1/$1" || return 1
  printf '%s' "$HTTP_BODY"
}

provider_node_name() { gce_metadata instance/name; }
provider_node_ip() { gce_metadata instance/network-interfaces/0/ip; }
# The metadata server answers NTP in every VPC network, with or without internet.
provider_time_servers() { echo metadata.google.internal; }

provider_fetch_secret() {
  local name=$1 dest=$2 prefix token api
  case "${SECRET_SOURCE:-}" in
    secretmanager:projects/*/secrets/*) prefix=${SECRET_SOURCE#secretmanager:} ;;
    *) die "SECRET_SOURCE '${SECRET_SOURCE:-}' is not secretmanager:projects/P/secrets/PREFIX, the source of provider gce" ;;
  esac
  token=$(gce_metadata instance/service-accounts/default/token | jq -r .access_token) ||
    die "the metadata server gave no access token"
  api=${GCE_SECRETMANAGER_ENDPOINT:-https://secretmanager.googleapis.com}
  # The token reaches curl through a file descriptor, never as an argument (those are public).
  retry "$(api_deadline)" "Secret Manager $prefix-$(secret_id "$name")" http_call "" 15 \
    -H @<(printf 'Authorization: Bearer %s\n' "$token") \
    "$api/v1/$prefix-$(secret_id "$name")/versions/latest:access" || return 1
  printf '%s' "$HTTP_BODY" | jq -r .payload.data | base64 -d >"$dest"
}

# No launch gate on this provider yet: nothing waits for the instance.
provider_instance_ready() { log "provider $CLOUD_PROVIDER has no launch gate: nothing to tell"; }

# Nodes of this provider do not write to their secret store: join-token cannot publish a new token.
provider_can_publish_secret() { false; }
provider_publish_secret() { die "provider $CLOUD_PROVIDER cannot publish secrets"; }
# No group to tell here yet: an unhealthy master is only logged.
provider_instance_unhealthy() { log "provider $CLOUD_PROVIDER cannot ask for this machine's replacement: replace it by hand"; }

# Not yet: a GCE instance's identity token (audience-bound, signed by Google) is issue 16's. Until then no
# node of this provider can join, rather than join unverified.
provider_join_proof() { :; }
provider_verify_join() { echo "deny provider gce cannot verify a machine's identity yet"; }
# No record of a machine's addresses but the Node object: approve-kubelet-certs checks against that alone.
provider_node_addresses() { :; }
