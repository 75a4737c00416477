#!/bin/bash
# Provider "azure": the instance metadata service for identity and a managed-identity token; Key Vault
# for secrets (SECRET_SOURCE=keyvault:VAULT/PREFIX; each secret is PREFIX-<name with '.' as '-'>).
# Sourced by node-config; defines provider_node_name, provider_node_ip, provider_fetch_secret.

AZURE_IMDS=${AZURE_IMDS_ENDPOINT:-http://169.254.169.254}

# azure_imds PATH: the instance metadata service's answer at PATH, tried again until $(imds_deadline)s.
azure_imds() {
  retry "$(imds_deadline)" "Azure IMDS ${1%%\?*}" http_call "" 5 -H 'Metadata: true' "$AZURE_IMDS/metadata/$1" ||
    return 1
  printf '%s' "$HTTP_BODY"
}

azure_instance() { azure_imds 'instance?api-version=2021-02-01'; }

provider_node_name() { azure_instance | jq -r .compute.osProfile.computerName | tr '[:upper:]' '[:lower:]'; }
provider_node_ip() { azure_instance | jq -r '.network.interface[0].ipv4.ipAddress[0].privateIpAddress'; }
# Azure gives guests the host's clock (Hyper-V time sync); there is no NTP server of its own to name.
provider_time_servers() { :; }

provider_fetch_secret() {
  local name=$1 dest=$2 source vault prefix token vault_url
  case "${SECRET_SOURCE:-}" in
    keyvault:*/*) source=${SECRET_SOURCE#keyvault:} ;;
    *) die "SECRET_SOURCE '${SECRET_SOURCE:-}' is not keyvault:VAULT/PREFIX, the source of provider azure" ;;
  esac
  vault=${source%%/*}
  prefix=${source#*/}
  token=$(azure_imds "identity/oauth2/token?api-version=2018-02-01&resource=https%3A%2F%2Fvault.azure.net${AZURE_CLIENT_ID:+&client_id=$AZURE_CLIENT_ID}" | jq -r .access_token) ||
    die "the instance metadata service gave no managed-identity token"
  vault_url=${AZURE_KEYVAULT_ENDPOINT:-https://$vault.vault.azure.net}
  # The token reaches curl through a file descriptor, never as an argument (those are public).
  retry "$(api_deadline)" "Key Vault $vault secret $prefix-$(secret_id "$name")" http_call "" 15 \
    -H @<(printf 'Authorization: Bearer %s\n' "$token") \
    "$vault_url/secrets/$prefix-$(secret_id "$name")?api-version=7.5" || return 1
  printf '%s' "$HTTP_BODY" | jq -je .value >"$dest"
}

# No launch gate on this provider yet: nothing waits for the instance.
provider_instance_ready() { log "provider $CLOUD_PROVIDER has no launch gate: nothing to tell"; }

# Nodes of this provider do not write to their secret store: join-token cannot publish a new token.
provider_can_publish_secret() { false; }
provider_publish_secret() { die "provider $CLOUD_PROVIDER cannot publish secrets"; }
# No group to tell here yet: an unhealthy master is only logged.
provider_instance_unhealthy() { log "provider $CLOUD_PROVIDER cannot ask for this machine's replacement: replace it by hand"; }

# Not yet: an Azure VM's attested data is issue 17's. Until then no node of this provider can join, rather
# than join unverified.
provider_join_proof() { :; }
provider_verify_join() { echo "deny provider azure cannot verify a machine's identity yet"; }
# No record of a machine's addresses but the Node object: approve-kubelet-certs checks against that alone.
provider_has_address_record() { false; }
provider_node_addresses() { :; }
