#!/bin/bash
# Provider "azure": the instance metadata service (IMDS) for identity, managed-identity tokens and the VM's
# attested data; Key Vault for secrets (SECRET_SOURCE=keyvault:VAULT/PREFIX; each secret is
# PREFIX-<name with '.' as '-'>); Resource Manager (ARM), read by masters, for the cluster's VMs.
# Sourced by node-config and the node scripts; defines the provider_* functions.
#
# The role file gives, besides CLUSTER_NAME and SECRET_SOURCE: AZURE_CLIENT_ID (the client id of the VM's
# user-assigned identity: every token is that identity's), AZURE_SUBSCRIPTION_ID and AZURE_RESOURCE_GROUP
# (where the Flexible scale sets kubebake-<cluster>-masters and kubebake-<cluster>-minions keep their VMs),
# and on masters LAUNCH_HOOK (the Key Vault secret of the launch gate).

AZURE_IMDS=${AZURE_IMDS_ENDPOINT:-http://169.254.169.254}
AZURE_ARM=${AZURE_ARM_ENDPOINT:-https://management.azure.com}
# The token audiences, URL-encoded for IMDS.
AZURE_ARM_RESOURCE=https%3A%2F%2Fmanagement.azure.com%2F
AZURE_VAULT_RESOURCE=https%3A%2F%2Fvault.azure.net
AZURE_COMPUTE_API=2024-07-01
AZURE_NETWORK_API=2024-05-01
AZURE_VAULT_API=7.5

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

# azure_token RESOURCE: a token of this VM's identity (AZURE_CLIENT_ID) for RESOURCE (URL-encoded), on stdout
# for the caller's variable: it reaches curl through a file descriptor only.
azure_token() {
  azure_imds "identity/oauth2/token?api-version=2018-02-01&resource=$1${AZURE_CLIENT_ID:+&client_id=$AZURE_CLIENT_ID}" |
    jq -er '.access_token | select(type == "string" and . != "")'
}

# azure_secret_store: SECRET_SOURCE's vault, as the URL of its data plane (vault_url), and its prefix
# (secret_prefix), set for the caller's locals; the node stops naming SECRET_SOURCE if it is not
# keyvault:VAULT/PREFIX.
azure_secret_store() {
  local source
  case "${SECRET_SOURCE:-}" in
    keyvault:?*/?*) source=${SECRET_SOURCE#keyvault:} ;;
    *) die "SECRET_SOURCE '${SECRET_SOURCE:-}' is not keyvault:VAULT/PREFIX, the source of provider azure" ;;
  esac
  vault_url=${AZURE_KEYVAULT_ENDPOINT:-https://${source%%/*}.vault.azure.net}
  vault_url=${vault_url%/}
  secret_prefix=${source#*/}
}

# azure_vault_call METHOD URL [BODY]: one Key Vault request with the caller's vault_token and, if given, the
# JSON BODY; both reach curl through file descriptors made anew for each attempt (the body may hold a
# secret), never as arguments. The answer as http_call leaves it.
azure_vault_call() {
  if [ "$#" -ge 3 ]; then
    http_call "" 15 -X "$1" \
      -H @<(printf 'Authorization: Bearer %s\nContent-Type: application/json\n' "$vault_token") \
      --data-binary @<(printf '%s' "$3") "$2"
  else
    http_call "" 15 -X "$1" -H @<(printf 'Authorization: Bearer %s\n' "$vault_token") "$2"
  fi
}

# azure_next_page NEXT_LINK BASE: the next page's URL on BASE (a list's nextLink is absolute; only its path
# and query are kept, so the token goes to no other host); empty when there is none.
azure_next_page() {
  local rest=$1
  [ -n "$rest" ] || return 0
  rest=${rest#*://}
  case "$rest" in */*) printf '%s/%s' "$2" "${rest#*/}" ;; esac
}

provider_fetch_secret() {
  local name=$1 dest=$2 vault_url secret_prefix vault_token secret
  azure_secret_store
  secret="$secret_prefix-$(secret_id "$name")"
  vault_token=$(azure_token "$AZURE_VAULT_RESOURCE") ||
    die "the instance metadata service gave no managed-identity token"
  retry "$(api_deadline)" "Key Vault secret $secret" azure_vault_call GET \
    "$vault_url/secrets/$secret?api-version=$AZURE_VAULT_API" || return 1
  printf '%s' "$HTTP_BODY" | jq -je .value >"$dest"
}

# azure_set_secret NAME BODY: a new version of the Key Vault secret NAME (SetSecret), with the caller's
# vault_url and vault_token; Key Vault's answer (the new version) in HTTP_BODY.
azure_set_secret() {
  retry "$(api_deadline)" "Key Vault SetSecret $1" azure_vault_call PUT \
    "$vault_url/secrets/$1?api-version=$AZURE_VAULT_API" "$2"
}

# The masters publish the join token they mint (join-token) as a new version of its secret.
provider_can_publish_secret() { true; }

# provider_publish_secret NAME FILE: FILE's content as the newest version of the secret PREFIX-<name>, then
# the secret's enabled versions made before it disabled: a replaced join token stops being readable (a
# disabled version cannot be read; its metadata stays). "Before" by Key Vault's own creation time, not "every
# other": two masters publishing at once then leave the later token enabled, never none; in the same second
# both stay, and the next rotation disables the older. The value goes from the file to jq (--rawfile) and
# from memory to curl's stdin. Every page of the version list is read: Key Vault documents no order for it.
provider_publish_secret() {
  local name=$1 file=$2 vault_url secret_prefix vault_token secret body added created url page older version
  azure_secret_store
  secret="$secret_prefix-$(secret_id "$name")"
  vault_token=$(azure_token "$AZURE_VAULT_RESOURCE") ||
    die "the instance metadata service gave no managed-identity token"
  body=$(jq -cn --rawfile v "$file" '{value: $v}')
  azure_set_secret "$secret" "$body" || return 1
  added=$(jq -r '.id // "" | split("/") | last // ""' <<<"$HTTP_BODY")
  created=$(jq -r '.attributes.created // ""' <<<"$HTTP_BODY")
  if ! [[ $added =~ ^[0-9A-Za-z]+$ && $created =~ ^[0-9]+$ ]]; then
    log "error: Key Vault's answer to SetSecret $secret names no version and its creation time" >&2
    return 1
  fi
  older=""
  url="$vault_url/secrets/$secret/versions?api-version=$AZURE_VAULT_API"
  while [ -n "$url" ]; do
    retry "$(api_deadline)" "Key Vault GetSecretVersions $secret" azure_vault_call GET "$url" || return 1
    page=$(jq -r --arg added "$added" --argjson created "$created" '.value[]? |
      select(.attributes.enabled == true and (.attributes.created | type) == "number" and
        .attributes.created < $created) |
      .id | split("/") | last | select(. != $added and test("^[0-9A-Za-z]+$"))' <<<"$HTTP_BODY") || {
      log "error: Key Vault's list of the versions of $secret is not JSON" >&2
      return 1
    }
    older+="$page"$'\n'
    url=$(azure_next_page "$(jq -r '.nextLink // ""' <<<"$HTTP_BODY")" "$vault_url")
  done
  for version in $older; do
    retry "$(api_deadline)" "Key Vault UpdateSecret $secret/$version" azure_vault_call PATCH \
      "$vault_url/secrets/$secret/$version?api-version=$AZURE_VAULT_API" '{"attributes":{"enabled":false}}' ||
      return 1
    log "disabled version $version of Key Vault secret $secret: a newer one replaces it"
  done
}

# provider_instance_ready: the launch gate on Azure (no lifecycle hooks on scale sets): this master votes and
# serves, said as a new version of the Key Vault secret LAUNCH_HOOK (its name as it is, without the PKI
# prefix; the masters may write it), value "ready", tagged vmId=<this VM's vmId>. `cluster apply` lists the
# secret's versions (their tags come with the list) and waits for the vmId of the master it replaced.
provider_instance_ready() {
  local vault_url secret_prefix vault_token vm_id body
  case "${LAUNCH_HOOK:-}" in
    "") die "LAUNCH_HOOK is not set in the role file: no Key Vault secret to open the launch gate with" ;;
    *[!0-9A-Za-z-]*) die "LAUNCH_HOOK '$LAUNCH_HOOK' is not a Key Vault secret name (letters, digits, '-'), the launch gate of provider azure" ;;
  esac
  azure_secret_store
  vm_id=$(azure_instance | jq -er '.compute.vmId | select(type == "string" and . != "")') ||
    die "the instance metadata service gave no vmId"
  vault_token=$(azure_token "$AZURE_VAULT_RESOURCE") ||
    die "the instance metadata service gave no managed-identity token"
  body=$(jq -cn --arg id "$vm_id" '{value: "ready", tags: {vmId: $id}}')
  azure_set_secret "$LAUNCH_HOOK" "$body" || return 1
  log "told the rollout this master is ready (Key Vault secret $LAUNCH_HOOK, tag vmId=$vm_id)"
}

# provider_instance_unhealthy (api-health): only logged. The Flexible scale sets launch makes do not replace a
# member by themselves (no automatic instance repairs), and the masters' identity holds no right to delete or
# recreate VMs (Reader on the group): asking for that would let any master take down every node. The next
# `kubebake cluster apply` replaces the master.
provider_instance_unhealthy() {
  log "this master is unhealthy, and Azure replaces nothing by itself here: the scale set does not repair its members and the masters may not delete VMs; the next 'kubebake cluster apply' (or an operator) replaces it"
}

# ---- Joins: the VM's attested data -------------------------------------------------------------------
#
# IMDS signs a JSON document for the VM that asks (vmId, subscriptionId, the nonce asked with, its creation
# and expiry) as a PKCS#7 message, with a certificate for metadata.azure.com (or a subdomain of it, as Microsoft
# documents: "accept any subdomain") that the message carries, alone: Microsoft's issuing CA is not in it.
# Microsoft's own sample fetches that intermediate from the certificate's "CA Issuers" address on
# www.microsoft.com, advises against pinning intermediates, and announces its CA changes only in "Azure
# Certificate Authority details" (learn.microsoft.com). The issuers in AZURE_ATTESTED_INTERMEDIATES, if that
# file is there, are tried first; when the chain does not verify with them, the master fetches the issuer as
# the sample does (see azure_fetched_chain; it needs outbound access to Microsoft's PKI). Intermediates,
# written or fetched, are untrusted, only links to the anchors (AZURE_ATTESTED_CA_FILE, the distribution's
# roots).
AZURE_ATTESTED_CA=${AZURE_ATTESTED_CA_FILE:-/etc/ssl/certs/ca-certificates.crt}
AZURE_ATTESTED_CHAIN=${AZURE_ATTESTED_INTERMEDIATES:-/etc/kubebake/azure-attested-intermediates.pem}
# The hosts of Microsoft's PKI that "CA Issuers" addresses may name: those "Azure Certificate Authority
# details" lists for CA certificates (AIA). Space-separated host or host:port, shell patterns allowed.
AZURE_ATTESTED_ISSUER_HOSTS=${AZURE_ATTESTED_AIA_HOSTS:-www.microsoft.com caissuers.microsoft.com cacerts.digicert.com cacerts.digicert.cn cacerts.geotrust.com}
# Where fetched issuers are kept (0700), one PEM file each, named by the SHA-256 of its address.
AZURE_ATTESTED_ISSUER_CACHE=${AZURE_ATTESTED_CACHE:-/var/lib/kubebake/azure-attested}
# The signer's domain: the public cloud's (the sovereign clouds have their own, e.g. metadata.azure.us).
AZURE_ATTESTED_NAME=${AZURE_ATTESTED_DOMAIN:-metadata.azure.com}

# azure_join_nonce CSR_SHA256: the nonce of a join proof: the request's digest bound to this cluster,
# hashed, its first 32 hex digits (128 bits). IMDS signs it into the document, so that the document proves
# that request only. IMDS's API description allows "up to 32 random alphanumeric characters"; the
# learn.microsoft.com page speaks of "a 10-digit string", which would be too few: a holder of the join
# token can read every request's proof, and could make requests until one's digest gave the nonce of another
# node's document.
azure_join_nonce() {
  local hash
  hash=$(printf 'kubebake:join:%s:%s' "$CLUSTER_NAME" "$1" | openssl dgst -sha256 -hex) || return 1
  hash=${hash##* }
  printf '%s' "${hash:0:32}"
}

# azure_attested NONCE: one request for this VM's attested document with NONCE: its signature (the PKCS#7
# message, base64) in the caller's `attested`. Transient when the document signs another nonce: Microsoft
# notes that IMDS may answer from its cache.
azure_attested() {
  local nonce=$1 signed
  http_call "" 5 -H 'Metadata: true' "$AZURE_IMDS/metadata/attested/document?api-version=2020-09-01&nonce=$nonce" ||
    return
  attested=$(jq -er '.signature | strings | gsub("\\s"; "") | select(test("^[A-Za-z0-9+/]+=*$"))' <<<"$HTTP_BODY" 2>/dev/null) || {
    echo "IMDS's answer holds no attested document" >&2
    return 1
  }
  signed=$(base64 -d <<<"$attested" 2>/dev/null | openssl cms -verify -noverify -binary -inform DER 2>/dev/null |
    jq -r '.nonce // ""' 2>/dev/null) || signed=""
  if [ "$signed" != "$nonce" ]; then
    echo "IMDS signed the nonce '$signed', not $nonce" >&2
    return "$TRANSIENT"
  fi
}

# provider_join_proof CSR_SHA256: this VM's attested document for the nonce of the request's digest, as JSON
# for the request's annotation.
provider_join_proof() {
  local attested="" nonce
  [[ $1 =~ ^[0-9a-f]{64}$ ]] || die "'$1' is not the SHA-256 digest of a request"
  nonce=$(azure_join_nonce "$1") || return 1
  retry "$(imds_deadline)" "Azure IMDS attested document" azure_attested "$nonce" || return 1
  printf '%s' "$attested" | jq -Rc '{"attested-document": .}'
}

# azure_signer_named CERT_FILE: whether the certificate is for AZURE_ATTESTED_NAME or a subdomain of it: a DNS
# name of its subject alternative names (openssl's own matching: exact, subdomain, wildcard), or its
# subject's common name.
azure_signer_named() {
  local answer host
  for host in "$AZURE_ATTESTED_NAME" ".$AZURE_ATTESTED_NAME"; do
    answer=$(openssl x509 -in "$1" -noout -checkhost "$host" 2>/dev/null) || return 1
    [[ $answer != *" does match "* ]] || return 0
  done
  # One attribute a line, escaped (no value can bring a line of its own).
  answer=$(openssl x509 -in "$1" -noout -subject -nameopt sep_multiline,sname,esc_2253,esc_ctrl,esc_msb 2>/dev/null) ||
    return 1
  grep -Eiq "^ +CN=(\*\.|([a-z0-9-]+\.)*)${AZURE_ATTESTED_NAME//./\\.}\$" <<<"$answer"
}

# azure_chain CERT UNTRUSTED_FILE…: whether CERT leads to a root of AZURE_ATTESTED_CA through the untrusted
# certificates in the files (put together in one, in CERT's folder). AZURE_ATTESTED_CA is the one trust
# anchor: not openssl's default folder or store (-no-CApath, -no-CAstore: OpenSSL 3). openssl's reason and
# error number in the caller's `reason` and `code`.
azure_chain() {
  local cert=$1 untrusted=() out
  shift
  cat /dev/null "$@" >"${cert%/*}/untrusted.pem" 2>/dev/null || true
  [ ! -s "${cert%/*}/untrusted.pem" ] || untrusted=(-untrusted "${cert%/*}/untrusted.pem")
  out=$(openssl verify -no-CApath -no-CAstore -CAfile "$AZURE_ATTESTED_CA" "${untrusted[@]}" "$cert" 2>&1) && {
    reason="" code=""
    return 0
  }
  out=$(sed -n 's/^error \([0-9]*\) at [0-9]* depth lookup: /\1 /p' <<<"$out" | head -n1)
  code=${out%% *} reason=${out#* }
  return 1
}

# azure_issuer_urls CERT: the "CA Issuers" addresses in CERT's Authority Information Access, one a line.
azure_issuer_urls() {
  openssl x509 -in "$1" -noout -ext authorityInfoAccess 2>/dev/null | sed -n 's/^ *CA Issuers - URI://p'
}

# azure_issuer_allowed URL: whether URL is http(s), plain (no user, query or odd character), on a host of
# AZURE_ATTESTED_ISSUER_HOSTS.
azure_issuer_allowed() {
  local url=$1 form='^https?://([A-Za-z0-9.-]+(:[0-9]{1,5})?)(/[-A-Za-z0-9._~%/!$&()*+,;=:@]*)?$' authority
  local hosts=() host
  [[ $url =~ $form ]] || return 1
  authority=${BASH_REMATCH[1],,}
  read -r -a hosts <<<"$AZURE_ATTESTED_ISSUER_HOSTS"
  for host in "${hosts[@]}"; do
    # shellcheck disable=SC2053  # a pattern, on purpose
    [[ $authority == ${host,,} ]] && return 0
  done
  return 1
}

# azure_issuer DIR URL: the path of the certificate at URL, as PEM in AZURE_ATTESTED_ISSUER_CACHE: kept
# there while it has not expired, else fetched (DER or PEM; no redirect is followed), under the deadline of
# the cloud's APIs. Fails when it cannot be fetched or is not a certificate, saying why.
azure_issuer() {
  local dir=$1 url=$2 file
  file=$(printf '%s' "$url" | openssl dgst -sha256 -hex) || return 1
  file="$AZURE_ATTESTED_ISSUER_CACHE/${file##* }.pem"
  if openssl x509 -in "$file" -noout -checkend 0 >/dev/null 2>&1; then
    printf '%s' "$file"
    return 0
  fi
  if ! mkdir -p "$AZURE_ATTESTED_ISSUER_CACHE" || ! chmod 0700 "$AZURE_ATTESTED_ISSUER_CACHE"; then
    echo "there is no folder $AZURE_ATTESTED_ISSUER_CACHE to keep it in" >&2
    return 1
  fi
  rm -f "$dir/issuer.download"
  retry "$(api_deadline)" "CA issuer of attested documents $url" http_call "$dir/issuer.download" 15 \
    --globoff --proto =http,https --max-filesize 65536 "$url" || return 1
  if ! openssl x509 -inform DER -in "$dir/issuer.download" -out "$dir/issuer.pem" 2>/dev/null &&
    ! openssl x509 -inform PEM -in "$dir/issuer.download" -out "$dir/issuer.pem" 2>/dev/null; then
    echo "$url did not give a certificate" >&2
    return 1
  fi
  write_atomic "$file" 0600 <"$dir/issuer.pem" || return 1
  log "fetched the CA issuer $(openssl x509 -in "$file" -noout -subject 2>/dev/null) from $url into $file" >&2
  printf '%s' "$file"
}

# azure_fetched_chain DIR UNTRUSTED_FILE…: the chain of DIR/signer.pem when the files lack its issuer, as
# Microsoft's sample finds it: through the "CA Issuers" addresses of the signer, then of each issuer fetched
# (three levels at most, four addresses a level). The signer is not verified yet, so those addresses are the
# requester's choice: only the hosts of Microsoft's PKI are asked. What they give is never trusted by itself,
# only added to the untrusted links: the chain must still end at a root of AZURE_ATTESTED_CA. Fails saying
# why: with $TRANSIENT when an issuer could not be fetched (the request is looked at again), else 1.
azure_fetched_chain() {
  local dir=$1 certs fetched=() next level url file refused="" first_reason=$reason
  shift
  certs=("$dir/signer.pem")
  for ((level = 0; level < 3; level++)); do
    next=()
    while IFS= read -r url; do
      [ -n "$url" ] || continue
      if ! azure_issuer_allowed "$url"; then
        refused=$url
        continue
      fi
      file=$(azure_issuer "$dir" "$url") || {
        echo "the issuer of its signer's certificate could not be fetched from $url"
        return "$TRANSIENT"
      }
      [[ " ${fetched[*]} " == *" $file "* ]] || next+=("$file")
    done < <(for file in "${certs[@]}"; do azure_issuer_urls "$file"; done | awk '!seen[$0]++' | head -n4)
    [ "${#next[@]}" -gt 0 ] || break
    fetched+=("${next[@]}")
    azure_chain "$dir/signer.pem" "$@" "${fetched[@]}" && return 0
    # Only a missing issuer is worth another level.
    [ "$code" = 2 ] || [ "$code" = 20 ] || break
    certs=("${next[@]}")
  done
  if [ "${#fetched[@]}" -gt 0 ]; then
    echo "its signer's certificate does not lead to a trusted CA${reason:+ ($reason)}, with the issuers its \"CA Issuers\" addresses gave"
  elif [ -n "$refused" ]; then
    echo "its signer's certificate does not lead to a trusted CA${first_reason:+ ($first_reason)}, and its issuer's address $refused is not on a host of Microsoft's PKI"
  else
    echo "its signer's certificate does not lead to a trusted CA${first_reason:+ ($first_reason)}"
  fi
  return 1
}

# azure_signed_content DIR SIGNATURE: the document the PKCS#7 message SIGNATURE (base64) signs, into
# DIR/content.json, when its one signer's certificate is for AZURE_ATTESTED_NAME and chains to the trust
# anchors; else prints why not and fails ($TRANSIENT: its chain cannot be checked yet). The signature is
# checked against the certificate the message carries (cms -noverify), then that certificate's chain
# (openssl verify, which takes the intermediates as untrusted: cms -verify would not build a chain through
# them).
azure_signed_content() {
  local dir=$1 intermediates=() reason code
  if ! base64 -d <<<"$2" >"$dir/document.der" 2>/dev/null ||
    ! openssl cms -verify -noverify -binary -inform DER -in "$dir/document.der" -signer "$dir/signer.pem" \
      -out "$dir/content.json" >/dev/null 2>&1; then
    echo "it is not a signed PKCS#7 message whose signature matches its content"
    return 1
  fi
  if [ "$(grep -c -- '-----BEGIN CERTIFICATE-----' "$dir/signer.pem")" != 1 ]; then
    echo "it does not have exactly one signer"
    return 1
  fi
  [ ! -s "$AZURE_ATTESTED_CHAIN" ] || intermediates=("$AZURE_ATTESTED_CHAIN")
  if ! azure_chain "$dir/signer.pem" "${intermediates[@]}"; then
    if [ "$code" != 2 ] && [ "$code" != 20 ]; then
      echo "its signer's certificate does not lead to a trusted CA${reason:+ ($reason)}"
      return 1
    fi
    azure_fetched_chain "$dir" "${intermediates[@]}" || return
  fi
  if ! azure_signer_named "$dir/signer.pem"; then
    echo "its signer's certificate is not for $AZURE_ATTESTED_NAME"
    return 1
  fi
}

# azure_epoch TIME: seconds since the epoch of an attested document's time, "MM/DD/YY hh:mm:ss -0000" (UTC).
azure_epoch() {
  [[ $1 =~ ^([0-9]{1,2})/([0-9]{1,2})/([0-9]{2})\ ([0-9]{1,2}):([0-9]{2}):([0-9]{2})\ ([+-][0-9]{4})$ ]] || return 1
  date -u -d "20${BASH_REMATCH[3]}-${BASH_REMATCH[1]}-${BASH_REMATCH[2]} ${BASH_REMATCH[4]}:${BASH_REMATCH[5]}:${BASH_REMATCH[6]} ${BASH_REMATCH[7]}" +%s 2>/dev/null
}

# azure_scale_set_id ROLE: the resource id of the cluster's scale set of masters or minions.
azure_scale_set_id() {
  printf '/subscriptions/%s/resourceGroups/%s/providers/Microsoft.Compute/virtualMachineScaleSets/kubebake-%s-%s' \
    "$AZURE_SUBSCRIPTION_ID" "$AZURE_RESOURCE_GROUP" "$CLUSTER_NAME" "$1"
}

# azure_arm_get URL: one GET to Resource Manager with the caller's arm_token (through a file descriptor).
azure_arm_get() { http_call "" 15 -H @<(printf 'Authorization: Bearer %s\n' "$arm_token") "$1"; }

# azure_members: on a master, the VMs of the cluster's two scale sets (VirtualMachines_List of the group
# filtered by scale set, every page), one JSON object a line in AZURE_MEMBERS: {set, vmId, computerName,
# state, nics}. Fails saying why in AZURE_MEMBERS_PROBLEM.
azure_members() {
  local arm_token role id filter url page
  AZURE_MEMBERS=""
  AZURE_MEMBERS_PROBLEM=""
  if [ -z "${AZURE_SUBSCRIPTION_ID:-}" ] || [ -z "${AZURE_RESOURCE_GROUP:-}" ]; then
    AZURE_MEMBERS_PROBLEM="the role file names no AZURE_SUBSCRIPTION_ID and AZURE_RESOURCE_GROUP"
    return 1
  fi
  arm_token=$(azure_token "$AZURE_ARM_RESOURCE") || {
    AZURE_MEMBERS_PROBLEM="the instance metadata service gave no token for Resource Manager"
    return 1
  }
  for role in masters minions; do
    id=$(azure_scale_set_id "$role")
    filter=$(jq -rn --arg f "'virtualMachineScaleSet/id' eq '$id'" '$f | @uri')
    url="$AZURE_ARM/subscriptions/$AZURE_SUBSCRIPTION_ID/resourceGroups/$AZURE_RESOURCE_GROUP/providers/Microsoft.Compute/virtualMachines?api-version=$AZURE_COMPUTE_API&\$filter=$filter"
    while [ -n "$url" ]; do
      retry "$(api_deadline)" "ARM VirtualMachines_List of scale set ${id##*/}" azure_arm_get "$url" || {
        AZURE_MEMBERS_PROBLEM="Resource Manager did not list the VMs of scale set ${id##*/} (HTTP $HTTP_STATUS)"
        return 1
      }
      # The filter is checked again: only members of that scale set count.
      page=$(jq -c --arg set "${id##*/}" --arg id "${id,,}" '.value[]? |
        select((.properties.virtualMachineScaleSet.id // "" | ascii_downcase) == $id) |
        {set: $set, vmId: (.properties.vmId // ""), computerName: (.properties.osProfile.computerName // ""),
          state: (.properties.provisioningState // ""), nics: [.properties.networkProfile.networkInterfaces[]?.id]}' \
        <<<"$HTTP_BODY" 2>/dev/null) || {
        AZURE_MEMBERS_PROBLEM="Resource Manager's list of scale set ${id##*/} is not JSON"
        return 1
      }
      [ -z "$page" ] || AZURE_MEMBERS+="$page"$'\n'
      url=$(azure_next_page "$(jq -r '.nextLink // ""' <<<"$HTTP_BODY")" "$AZURE_ARM")
    done
  done
}

# provider_verify_join NODE CSR_SHA256 PROOF: on a master, whether a join request for NODE comes from that VM.
# Prints "approve REASON", "deny REASON" or "wait REASON". The proof is an attested document: signed by
# metadata.azure.com as above, for the nonce of this request's digest, of this subscription, not expired, and
# naming a VM (vmId) that Resource Manager lists in one of the cluster's scale sets with the host name NODE.
# A VM that ARM does not list is denied: ARM creates the VM (its vmId, its scale set) before it boots, so a
# VM that can ask IMDS is listed already, and a genuine node denied makes a new request on its next start.
# A failing ARM is "wait": the request is looked at again on the next pass.
provider_verify_join() {
  local node=$1 digest=$2 proof=$3 document dir signed problem content nonce expires now vm_id member name
  if [ -z "$proof" ]; then
    echo "deny the request carries no proof of its machine (annotation kubebake.io/join-proof)"
    return
  fi
  document=$(jq -r 'if type == "object" and keys == ["attested-document"] and (."attested-document" | type) == "string"
    then ."attested-document" else error("not a proof") end' <<<"$proof" 2>/dev/null) || document=""
  if ! [[ $document =~ ^[A-Za-z0-9+/]+=*$ ]]; then
    echo "deny the proof is not the attested document of an Azure VM"
    return
  fi
  if [ ! -s "$AZURE_ATTESTED_CA" ]; then
    echo "wait there are no trust anchors to check attested documents with ($AZURE_ATTESTED_CA is missing)"
    return
  fi
  if [ -z "${AZURE_SUBSCRIPTION_ID:-}" ]; then
    echo "wait the role file names no AZURE_SUBSCRIPTION_ID to check attested documents against"
    return
  fi
  dir=$(mktemp -d)
  signed=0
  problem=$(azure_signed_content "$dir" "$document") || signed=$?
  content=$(cat "$dir/content.json" 2>/dev/null) || content=""
  rm -rf "$dir"
  if [ "$signed" -eq "$TRANSIENT" ]; then
    echo "wait the attested document cannot be checked yet: ${problem:-its chain is not complete}"
    return
  fi
  if [ "$signed" -ne 0 ]; then
    echo "deny the attested document is not Azure's: ${problem:-it is not signed}"
    return
  fi
  nonce=none
  if [[ $digest =~ ^[0-9a-f]{64}$ ]]; then nonce=$(azure_join_nonce "$digest") || nonce=none; fi
  problem=$(jq -r --arg nonce "$nonce" --arg subscription "${AZURE_SUBSCRIPTION_ID,,}" '
    if type != "object" then "it is not a JSON object"
    elif .nonce != $nonce then "it was made for another request or cluster"
    elif ((.subscriptionId // "") | ascii_downcase) != $subscription then
      "it is of subscription \(.subscriptionId // "none"), not \($subscription)"
    elif ((.vmId // "") | tostring | test("^[0-9A-Fa-f]{8}(-[0-9A-Fa-f]{4}){3}-[0-9A-Fa-f]{12}$") | not) then
      "it names no VM"
    else "" end' <<<"$content" 2>/dev/null) || problem="its content is not JSON"
  if [ -n "$problem" ]; then
    echo "deny the attested document does not prove this request: $problem"
    return
  fi
  expires=$(jq -r '(.timeStamp // .timestamp // {}).expiresOn // ""' <<<"$content")
  now=$(date +%s)
  if ! expires=$(azure_epoch "$expires"); then
    echo "deny the attested document does not prove this request: its expiry is not a time"
    return
  fi
  if [ "$expires" -le "$now" ]; then
    echo "deny the attested document does not prove this request: it has expired"
    return
  fi
  vm_id=$(jq -r '.vmId | ascii_downcase' <<<"$content")
  if ! azure_members; then
    echo "wait $AZURE_MEMBERS_PROBLEM"
    return
  fi
  member=$(jq -c --arg id "$vm_id" 'select((.vmId | ascii_downcase) == $id)' <<<"$AZURE_MEMBERS" | head -n1)
  if [ -z "$member" ]; then
    echo "deny VM $vm_id is not a member of scale set kubebake-$CLUSTER_NAME-masters or kubebake-$CLUSTER_NAME-minions"
    return
  fi
  name=$(jq -r '.computerName | ascii_downcase' <<<"$member")
  if [ "$(jq -r .state <<<"$member")" = Deleting ]; then
    echo "deny VM $name ($vm_id) is being deleted"
  elif [ "$name" != "$node" ]; then
    echo "deny the attested document is VM $name's ($vm_id), not node $node's"
  else
    echo "approve VM $name ($vm_id) of scale set $(jq -r .set <<<"$member") signed the request with its attested data"
  fi
}

# Resource Manager keeps the record of a VM's addresses.
provider_has_address_record() { true; }

# provider_node_addresses NODE: on a master, the addresses Resource Manager gives the cluster's VM NODE (the
# private addresses of its network interfaces, NetworkInterfaces_Get, and its name), one per line as
# certificate names; nothing if no such member of the cluster's scale sets exists.
provider_node_addresses() {
  local node=$1 arm_token member nic found addresses=""
  if ! azure_members; then
    log "error: $AZURE_MEMBERS_PROBLEM" >&2
    return 1
  fi
  member=$(jq -c --arg n "$node" 'select((.computerName | ascii_downcase) == $n and .state != "Deleting")' \
    <<<"$AZURE_MEMBERS" | head -n1)
  [ -n "$member" ] || return 0
  arm_token=$(azure_token "$AZURE_ARM_RESOURCE") || return 1
  for nic in $(jq -r '.nics[] | select(type == "string" and test("^/subscriptions/[^?#]+$"))' <<<"$member"); do
    retry "$(api_deadline)" "ARM NetworkInterfaces_Get ${nic##*/}" azure_arm_get \
      "$AZURE_ARM$nic?api-version=$AZURE_NETWORK_API" || return 1
    found=$(jq -r '.properties.ipConfigurations[]?.properties.privateIPAddress // empty | "IP:\(.)"' \
      <<<"$HTTP_BODY") || return 1
    [ -z "$found" ] || addresses+="$found"$'\n'
  done
  printf '%s' "$addresses" | sort -u
  printf 'DNS:%s\n' "$node"
}
