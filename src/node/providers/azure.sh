#!/bin/bash
# Provider "azure": the instance metadata service for identity and a managed-identity token; Key Vault
# for secrets (SECRET_SOURCE=keyvault:VAULT/PREFIX; each secret is PREFIX-<name with '.' as '-'>).
# Sourced by node-config; defines provider_node_name, provider_node_ip, provider_fetch_secret.

AZURE_IMDS=${AZURE_IMDS_ENDPOINT:-http://169.254.169.254}

azure_imds() { curl -sSf --max-time 5 -H 'Metadata: true' "$AZURE_IMDS/metadata/$1"; }

azure_instance() { azure_imds 'instance?api-version=2021-02-01'; }

provider_node_name() { azure_instance | jq -r .compute.osProfile.computerName | tr '[:upper:]' '[:lower:]'; }
provider_node_ip() { azure_instance | jq -r '.network.interface[0].ipv4.ipAddress[0].privateIpAddress'; }

provider_fetch_secret() {
  local name=$1 dest=$2 source vault prefix token vault_url
  case "${SECRET_SOURCE:-}" in
    keyvault:*/*) source=${SECRET_SOURCE#keyvault:} ;;
    *) die "SECRET_SOURCE '${SECRET_SOURCE:-}' is not keyvault:VAULT/PREFIX, the source of provider azure" ;;
  esac
  vault=${source%%/*}
  prefix=${source#*/}
  token=$(azure_imds "identity/oauth2/token?api-version=2018-02-01&resource=https%3A%2F%2Fvault.azure.net${AZURE_CLIENT_ID:+&client_id=$AZURE_CLIENT_ID}" | jq -r .access_token)
  vault_url=${AZURE_KEYVAULT_ENDPOINT:-https://$vault.vault.azure.net}
  curl -sSf --max-time 15 -H "Authorization: Bearer $token" \
    "$vault_url/secrets/$prefix-$(secret_id "$name")?api-version=7.5" | jq -je .value >"$dest"
}

# No launch gate on this provider yet: nothing waits for the instance.
provider_instance_ready() { log "provider $CLOUD_PROVIDER has no launch gate: nothing to tell"; }
