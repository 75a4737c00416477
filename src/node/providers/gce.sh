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
# gce_access_token: this instance's OAuth access token (its service account's), from the metadata server.
gce_access_token() { gce_metadata instance/service-accounts/default/token | jq -er .access_token; }
# gce_zone: this instance's zone's name (the metadata server gives projects/N/zones/Z).
gce_zone() {
  local zone
  zone=$(gce_metadata instance/zone) || return 1
  printf '%s' "${zone##*/}"
}
provider_node_ip() { gce_metadata instance/network-interfaces/0/ip; }
# The metadata server answers NTP in every VPC network, with or without internet.
provider_time_servers() { echo metadata.google.internal; }

provider_fetch_secret() {
  local name=$1 dest=$2 prefix token api
  case "${SECRET_SOURCE:-}" in
    secretmanager:projects/*/secrets/*) prefix=${SECRET_SOURCE#secretmanager:} ;;
    *) die "SECRET_SOURCE '${SECRET_SOURCE:-}' is not secretmanager:projects/P/secrets/PREFIX, the source of provider gce" ;;
  esac
  token=$(gce_access_token) || die "the metadata server gave no access token"
  api=${GCE_SECRETMANAGER_ENDPOINT:-https://secretmanager.googleapis.com}
  # The token reaches curl through a file descriptor, never as an argument (those are public).
  retry "$(api_deadline)" "Secret Manager $prefix-$(secret_id "$name")" http_call "" 15 \
    -H @<(printf 'Authorization: Bearer %s\n' "$token") \
    "$api/v1/$prefix-$(secret_id "$name")/versions/latest:access" || return 1
  printf '%s' "$HTTP_BODY" | jq -r .payload.data | base64 -d >"$dest"
}

# provider_instance_ready: the launch gate on GCE (no lifecycle hooks there): this master votes and serves,
# said as the guest attribute LAUNCH_HOOK (namespace/key) of the instance, which only this VM can write
# (through its metadata server) and which a recreated VM starts without. `cluster apply` reads it
# (instances.getGuestAttributes) before it replaces the next master.
provider_instance_ready() {
  case "${LAUNCH_HOOK:-}" in
    */*) ;;
    *) die "LAUNCH_HOOK '${LAUNCH_HOOK:-}' is not a guest attribute (namespace/key), the launch gate of provider gce" ;;
  esac
  retry "$(imds_deadline)" "GCE guest attribute $LAUNCH_HOOK" \
    http_call "" 5 -X PUT -H 'Metadata-Flavor: Google' --data-binary "ready" \
    "http://$GCE_METADATA/computeMetadata/v1/instance/guest-attributes/$LAUNCH_HOOK" || return 1
  log "told the rollout this master is ready (guest attribute $LAUNCH_HOOK)"
}

# gce_secret_prefix: SECRET_SOURCE's projects/P/secrets/PREFIX, or the node stops naming it.
gce_secret_prefix() {
  case "${SECRET_SOURCE:-}" in
    secretmanager:projects/*/secrets/*) printf '%s' "${SECRET_SOURCE#secretmanager:}" ;;
    *) die "SECRET_SOURCE '${SECRET_SOURCE:-}' is not secretmanager:projects/P/secrets/PREFIX, the source of provider gce" ;;
  esac
}

# gce_bearer_post URL BODY: one POST of the JSON BODY with this instance's access token; both reach curl
# through file descriptors made anew for each attempt (the body may hold a secret), never as arguments.
gce_bearer_post() {
  http_call "" 15 -X POST -H @<(printf 'Authorization: Bearer %s\nContent-Type: application/json\n' "$gce_token") \
    --data-binary @<(printf '%s' "$2") "$1"
}

# The masters publish the join token they mint (join-token) as a new version of its secret.
provider_can_publish_secret() { true; }

# provider_publish_secret NAME FILE: FILE's content as the newest version of the secret PREFIX-<name>, then
# the secret's older enabled versions destroyed (a join token that was replaced must not stay readable).
# The value goes from the file to jq (--rawfile, base64 there) and from memory to curl's stdin.
provider_publish_secret() {
  local name=$1 file=$2 secret api gce_token body added older
  secret="$(gce_secret_prefix)-$(secret_id "$name")"
  api=${GCE_SECRETMANAGER_ENDPOINT:-https://secretmanager.googleapis.com}
  gce_token=$(gce_access_token) || die "the metadata server gave no access token"
  body=$(jq -cn --rawfile v "$file" '{payload: {data: ($v | @base64)}}')
  retry "$(api_deadline)" "Secret Manager addVersion $secret" gce_bearer_post "$api/v1/$secret:addVersion" \
    "$body" || return 1
  added=$(jq -r .name <<<"$HTTP_BODY")
  retry "$(api_deadline)" "Secret Manager versions.list $secret" gce_bearer_call "" \
    "$api/v1/$secret/versions?filter=state%3AENABLED" || return 1
  older=$(jq -r --arg added "$added" '.versions[]?.name | select(. != $added)' <<<"$HTTP_BODY")
  for version in $older; do
    retry "$(api_deadline)" "Secret Manager destroy $version" gce_bearer_post "$api/v1/$version:destroy" '{}' ||
      return 1
  done
}

# provider_instance_unhealthy: asks this master's regional group (GROUP_NAME in the role file) to recreate
# it (api-health): GCE's way for a member to be replaced; the group keeps its size.
provider_instance_unhealthy() {
  local project zone region name gce_token
  project=$(gce_metadata project/project-id) || exit 1
  zone=$(gce_zone) || exit 1
  region=${zone%-*}
  name=$(gce_metadata instance/name) || exit 1
  [ -n "${GROUP_NAME:-}" ] || die "GROUP_NAME is not set in the role file: no group to ask"
  gce_token=$(gce_access_token) || exit 1
  retry "$(api_deadline)" "Compute recreateInstances $name" gce_bearer_post \
    "$GCE_COMPUTE/compute/v1/projects/$project/regions/$region/instanceGroupManagers/$GROUP_NAME/recreateInstances" \
    "$(jq -cn --arg i "zones/$zone/instances/$name" '{instances: [$i]}')" || exit 1
  log "asked group $GROUP_NAME to recreate $name: it will be replaced"
}

# The label that names an instance's cluster (launch sets it on the instance templates).
GCE_CLUSTER_LABEL=kubernetescluster
GCE_COMPUTE=${GCE_COMPUTE_ENDPOINT:-https://compute.googleapis.com}
# Google's certificates for the keys that sign identity tokens, by key id (PEM).
GCE_OAUTH_CERTS=${GCE_OAUTH_CERTS_URL:-https://www.googleapis.com/oauth2/v1/certs}

# The audience of a join proof: the cluster and the request's digest, so a token proves only that request.
gce_join_audience() { printf 'kubebake:join:%s:%s' "$CLUSTER_NAME" "$1"; }

# provider_join_proof CSR_SHA256: this instance's identity token from the metadata server (a JWT Google
# signs, naming the instance, its project and zone: format=full), for an audience that names the request's
# digest, as JSON for the request's annotation. It proves that request only, for the hour it lives.
provider_join_proof() {
  local token
  token=$(gce_metadata "instance/service-accounts/default/identity?audience=$(gce_join_audience "$1")&format=full") ||
    return 1
  printf '%s' "$token" | jq -Rc '{"identity-token": .}'
}

# base64url_decode TEXT: the bytes of a JWT part.
base64url_decode() {
  local s=${1//-/+}
  s=${s//_//}
  case $((${#s} % 4)) in
    2) s+="==" ;;
    3) s+="=" ;;
    1) return 1 ;;
  esac
  printf '%s' "$s" | base64 -d
}

# gce_bearer_call OUT URL: one GET to a Google API with this instance's access token (through a file
# descriptor), the answer as http_call leaves it.
gce_bearer_call() {
  http_call "$1" 15 -H @<(printf 'Authorization: Bearer %s\n' "$gce_token") "$2"
}

# gce_instance PROJECT ZONE NAME: on a master, the Compute API's instance (JSON in HTTP_BODY).
gce_instance() {
  local gce_token
  gce_token=$(gce_access_token) || return 1
  retry "$(api_deadline)" "Compute instances.get $3" gce_bearer_call "" \
    "$GCE_COMPUTE/compute/v1/projects/$1/zones/$2/instances/$3"
}

# provider_verify_join NODE CSR_SHA256 PROOF: on a master, whether a join request for NODE comes from that
# instance. Prints "approve REASON", "deny REASON" or "wait REASON". The proof is an identity token: its
# signature must be one of Google's keys, its audience this cluster and this request's digest, it must not
# have expired, and it must name an instance called NODE in this master's project, which the Compute API
# knows as a provisioning or running instance of this cluster (its label), with the id the token names.
provider_verify_join() {
  local node=$1 digest=$2 proof=$3 token header payload signature kid cert dir claims now project
  if [ -z "$proof" ]; then
    echo "deny the request carries no proof of its instance (annotation kubebake.io/join-proof)"
    return
  fi
  token=$(jq -r 'if type == "object" and keys == ["identity-token"] and (."identity-token" | type) == "string"
    then ."identity-token" else error("not a proof") end' <<<"$proof" 2>/dev/null) || token=""
  if ! [[ $token =~ ^([A-Za-z0-9_-]+)\.([A-Za-z0-9_-]+)\.([A-Za-z0-9_-]+)$ ]]; then
    echo "deny the proof is not an instance identity token"
    return
  fi
  header=${BASH_REMATCH[1]} payload=${BASH_REMATCH[2]} signature=${BASH_REMATCH[3]}
  kid=$(base64url_decode "$header" 2>/dev/null | jq -r 'select(.alg == "RS256") | .kid // empty' 2>/dev/null) || kid=""
  if [ -z "$kid" ]; then
    echo "deny the token is not signed with RS256 by a named key"
    return
  fi
  if ! retry "$(api_deadline)" "Google's token signing certificates" http_call "" 15 "$GCE_OAUTH_CERTS"; then
    echo "wait Google's signing certificates could not be read (HTTP $HTTP_STATUS)"
    return
  fi
  cert=$(jq -r --arg k "$kid" '.[$k] // empty' <<<"$HTTP_BODY" 2>/dev/null) || cert=""
  if [ -z "$cert" ]; then
    echo "deny the token's key $kid is not one Google signs with"
    return
  fi
  dir=$(mktemp -d)
  if ! openssl x509 -pubkey -noout <<<"$cert" >"$dir/key.pem" 2>/dev/null ||
    ! base64url_decode "$signature" >"$dir/signature" 2>/dev/null ||
    ! printf '%s.%s' "$header" "$payload" |
    openssl dgst -sha256 -verify "$dir/key.pem" -signature "$dir/signature" >/dev/null 2>&1; then
    rm -rf "$dir"
    echo "deny the token's signature is not Google's"
    return
  fi
  rm -rf "$dir"
  claims=$(base64url_decode "$payload" 2>/dev/null) || claims='{}'
  now=$(date +%s)
  local problem
  problem=$(jq -r --arg aud "$(gce_join_audience "$digest")" --argjson now "$now" '
    if (.iss | IN("https://accounts.google.com", "accounts.google.com")) | not then "it was not issued by Google"
    elif .aud != $aud then "it was made for another request or cluster"
    elif (.exp | type) != "number" or .exp <= $now then "it has expired"
    elif (.google.compute_engine.instance_name | type) != "string" then "it names no instance"
    else "" end' <<<"$claims" 2>/dev/null) || problem="its claims are not JSON"
  if [ -n "$problem" ]; then
    echo "deny the identity token does not prove this request: $problem"
    return
  fi
  local name zone id
  name=$(jq -r .google.compute_engine.instance_name <<<"$claims")
  zone=$(jq -r '.google.compute_engine.zone // ""' <<<"$claims")
  id=$(jq -r '.google.compute_engine.instance_id // ""' <<<"$claims")
  project=$(gce_metadata project/project-id) || {
    echo "wait the metadata server gave no project"
    return
  }
  if [ "$name" != "$node" ]; then
    echo "deny the identity token is instance $name's, not node $node's"
    return
  fi
  if [ "$(jq -r '.google.compute_engine.project_id // ""' <<<"$claims")" != "$project" ]; then
    echo "deny instance $name is not in project $project"
    return
  fi
  [[ $zone =~ ^[a-z0-9-]+$ ]] || {
    echo "deny the identity token names no zone"
    return
  }
  if ! gce_instance "$project" "$zone" "$name"; then
    case "$HTTP_STATUS" in
      404) echo "deny instance $name does not exist in $zone" ;;
      *) echo "wait the Compute API did not describe instance $name (HTTP $HTTP_STATUS)" ;;
    esac
    return
  fi
  if jq -e --arg l "$GCE_CLUSTER_LABEL" --arg c "$CLUSTER_NAME" --arg id "$id" '
    .labels[$l] == $c and (.status | IN("PROVISIONING", "STAGING", "RUNNING")) and .id == $id' <<<"$HTTP_BODY" >/dev/null; then
    echo "approve instance $name ($id) of this cluster in $zone signed the request with its identity token"
  else
    echo "deny instance $name ($id) in $zone is not a provisioning or running instance of cluster $CLUSTER_NAME"
  fi
}
# Compute keeps the record of an instance's addresses.
provider_has_address_record() { true; }

# provider_node_addresses NODE: on a master, the addresses the Compute API gives this cluster's instance
# NODE (its network interfaces' internal addresses, and its name), one per line as certificate names;
# nothing if no such instance runs. The instance is looked up in the zones of this master's region.
provider_node_addresses() {
  local node=$1 project region gce_token zone
  project=$(gce_metadata project/project-id) || return 1
  zone=$(gce_zone) || return 1
  region=${zone%-*}
  gce_token=$(gce_access_token) || return 1
  # One aggregated read with a filter on name and label: the instance's zone is not in its name.
  retry "$(api_deadline)" "Compute instances.aggregatedList $node" gce_bearer_call "" \
    "$GCE_COMPUTE/compute/v1/projects/$project/aggregated/instances?filter=$(jq -rn --arg f "name = \"$node\" AND labels.$GCE_CLUSTER_LABEL = \"$CLUSTER_NAME\"" '$f | @uri')" ||
    return 1
  jq -r --arg region "$region" '[.items // {} | to_entries[] | select(.key | startswith("zones/\($region)-")) |
    .value.instances // [] | .[] | select(.status | IN("PROVISIONING", "STAGING", "RUNNING"))] |
    if length == 0 then empty else (map(.networkInterfaces[]?.networkIP | "IP:\(.)") | unique[]), "DNS:\(.[0].name)" end' <<<"$HTTP_BODY"
}
