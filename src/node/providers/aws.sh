#!/bin/bash
# Provider "aws": IMDSv2 for identity, SSM Parameter Store (SecureString, SECRET_SOURCE=ssm:/prefix)
# for secrets, signed with the instance role's credentials (SigV4 with openssl: no SDK in the image).
# Sourced by node-config; defines provider_node_name, provider_node_ip, provider_fetch_secret.

AWS_IMDS=${AWS_EC2_METADATA_SERVICE_ENDPOINT:-http://169.254.169.254}
AWS_IMDS=${AWS_IMDS%/}

# imds_attempt PATH: one IMDSv2 request (a token first, if this shell has none), the answer in HTTP_BODY. The
# token travels in a header file (-H @FD), never in curl's arguments.
imds_attempt() {
  if [ -z "${AWS_IMDS_TOKEN:-}" ]; then
    http_call "" 5 -X PUT -H 'X-aws-ec2-metadata-token-ttl-seconds: 21600' "$AWS_IMDS/latest/api/token" || return
    AWS_IMDS_TOKEN=$HTTP_BODY
    [ -n "$AWS_IMDS_TOKEN" ] || {
      echo "IMDSv2 gave an empty token" >&2
      return 1
    }
  fi
  http_call "" 5 -H @<(printf 'X-aws-ec2-metadata-token: %s\n' "$AWS_IMDS_TOKEN") "$AWS_IMDS/latest/$1" && return 0
  local rc=$?
  if [ "$HTTP_STATUS" = 401 ]; then
    # The token expired: the next attempt asks for a new one.
    AWS_IMDS_TOKEN=""
    return "$TRANSIENT"
  fi
  return "$rc"
}

# aws_imds PATH: the instance metadata at PATH (under /latest/), tried again until $(imds_deadline)s.
aws_imds() {
  retry "$(imds_deadline)" "IMDS $1" imds_attempt "$1" || return 1
  printf '%s' "$HTTP_BODY"
}

provider_node_name() { aws_imds meta-data/local-hostname; }
provider_node_ip() { aws_imds meta-data/local-ipv4; }
# Amazon Time Sync: link-local in every VPC, so a node without internet keeps its clock (and certificates valid).
provider_time_servers() { echo 169.254.169.123; }

# sha256_hex: the SHA-256 of stdin, as hex.
sha256_hex() {
  local digest
  digest=$(openssl dgst -sha256 -hex) || return 1
  printf '%s' "${digest##* }"
}

# text_hex TEXT: TEXT's bytes as hex, with builtins only (TEXT may be a secret).
text_hex() {
  local LC_ALL=C i hex=""
  for ((i = 0; i < ${#1}; i++)); do printf -v hex '%s%02x' "$hex" "'${1:i:1}"; done
  printf '%s' "$hex"
}

# hex_escapes HEX: HEX as printf %b escapes (\xHH…), to write those bytes with a builtin.
hex_escapes() {
  local i out=""
  for ((i = 0; i < ${#1}; i += 2)); do out+="\\x${1:i:2}"; done
  printf '%s' "$out"
}

# hmac_hex KEY_HEX DATA: HMAC-SHA256 (RFC 2104) of DATA under the key given as hex, as hex. The key is in no
# program's arguments (those are public in /proc/PID/cmdline, and openssl takes an HMAC key only there): bash
# builtins pad it to SHA-256's 64-byte block and XOR it with the pads, and openssl only hashes its stdin.
hmac_hex() {
  local key=$1 i byte ipad="" opad="" inner zeros
  # A key longer than the block is hashed first.
  [ "${#key}" -le 128 ] || key=$(printf '%b' "$(hex_escapes "$key")" | sha256_hex)
  printf -v zeros '%0128d' 0
  key=$key${zeros:${#key}}
  for ((i = 0; i < 128; i += 2)); do
    byte=$((16#${key:i:2}))
    printf -v ipad '%s\\x%02x' "$ipad" "$((byte ^ 0x36))"
    printf -v opad '%s\\x%02x' "$opad" "$((byte ^ 0x5c))"
  done
  inner=$({
    printf '%b' "$ipad"
    printf '%s' "$2"
  } | sha256_hex)
  printf '%b%b' "$opad" "$(hex_escapes "$inner")" | sha256_hex
}

# The instance role's credentials (or, like the SDK's chain, AWS_ACCESS_KEY_ID… from the environment first),
# and the region: sets aws_akid, aws_secret, aws_token (may be empty), aws_region.
aws_credentials() {
  local role creds now
  # The instance role's credentials last hours: asked again after five minutes, not on every call.
  now=$(date +%s)
  [ "$((now - ${aws_credentials_at:-0}))" -ge 300 ] || return 0
  aws_credentials_at=$now
  aws_region=${AWS_REGION:-$(aws_imds meta-data/placement/region)} || die "IMDS gave no region"
  if [ -n "${AWS_ACCESS_KEY_ID:-}" ]; then
    aws_akid=$AWS_ACCESS_KEY_ID aws_secret=${AWS_SECRET_ACCESS_KEY:-} aws_token=${AWS_SESSION_TOKEN:-}
    return 0
  fi
  role=$(aws_imds meta-data/iam/security-credentials/ | head -n1) || die "the instance has no IAM role"
  creds=$(aws_imds "meta-data/iam/security-credentials/$role") || die "IMDS gave no credentials for role $role"
  # From memory to jq's stdin: never an argument.
  aws_akid=$(printf '%s' "$creds" | jq -r .AccessKeyId)
  aws_secret=$(printf '%s' "$creds" | jq -r .SecretAccessKey)
  aws_token=$(printf '%s' "$creds" | jq -r .Token)
}

# aws_authorization SERVICE METHOD PATH QUERY HEADERS PAYLOAD_HASH: the SigV4 Authorization header value.
# HEADERS are the canonical "name:value" lines, lowercase names sorted, each ending in a newline; the
# caller sends exactly those headers (x-amz-date among them, as $aws_amz_date).
aws_authorization() {
  local service=$1 method=$2 path=$3 query=$4 headers=$5 payload_hash=$6
  local date_stamp scope signed canonical_request string_to_sign k
  date_stamp=${aws_amz_date%%T*}
  scope="$date_stamp/$aws_region/$service/aws4_request"
  signed=$(printf '%s' "$headers" | cut -d: -f1 | paste -sd';')
  canonical_request="$method"$'\n'"$path"$'\n'"$query"$'\n'"$headers"$'\n'"$signed"$'\n'"$payload_hash"
  string_to_sign="AWS4-HMAC-SHA256"$'\n'"$aws_amz_date"$'\n'"$scope"$'\n'"$(printf '%s' "$canonical_request" | sha256_hex)"
  k=$(text_hex "AWS4$aws_secret")
  k=$(hmac_hex "$k" "$date_stamp")
  k=$(hmac_hex "$k" "$aws_region")
  k=$(hmac_hex "$k" "$service")
  k=$(hmac_hex "$k" aws4_request)
  printf 'AWS4-HMAC-SHA256 Credential=%s/%s, SignedHeaders=%s, Signature=%s' \
    "$aws_akid" "$scope" "$signed" "$(hmac_hex "$k" "$string_to_sign")"
}

# aws_request SERVICE METHOD BASE PATH QUERY PAYLOAD_HASH [name:value…] -- OUT MAX_TIME [CURL_OPTION…]: one
# signed request to BASE PATH?QUERY, made with http_call (OUT, MAX_TIME, status and body as there), signed
# anew on each call. It carries and signs host, x-amz-date, the session token if any, and the given headers
# (lowercase names); the CURL_OPTIONs say what is sent. The headers, the session token and the signature
# among them, reach curl through a file descriptor: no argument of any program holds them. Call
# aws_credentials first.
aws_request() {
  local service=$1 method=$2 base=$3 path=$4 query=$5 payload_hash=$6 host line canonical authorization
  shift 6
  host=${base#*://}
  host=${host%%/*}
  aws_amz_date=$(date -u +%Y%m%dT%H%M%SZ)
  local headers=("host:$host" "x-amz-date:$aws_amz_date")
  [ -z "$aws_token" ] || headers+=("x-amz-security-token:$aws_token")
  while [ $# -gt 0 ] && [ "$1" != -- ]; do
    headers+=("$1")
    shift
  done
  [ $# -eq 0 ] || shift
  local out=$1 max=$2
  shift 2
  canonical=$(printf '%s\n' "${headers[@]}" | LC_ALL=C sort)$'\n'
  authorization=$(aws_authorization "$service" "$method" "$path" "$query" "$canonical" "$payload_hash") || {
    echo "cannot sign the request" >&2
    return 1
  }
  http_call "$out" "$max" -X "$method" -H @<(
    for line in "${headers[@]}"; do
      [ "${line%%:*}" = host ] || printf '%s: %s\n' "${line%%:*}" "${line#*:}"
    done
    printf 'Authorization: %s\n' "$authorization"
  ) "$@" "$base$path${query:+?$query}"
}

# aws_host SERVICE: the service's regional host name; the China regions' partition has its own suffix.
aws_host() {
  case "$aws_region" in
    cn-*) echo "$1.$aws_region.amazonaws.com.cn" ;;
    *) echo "$1.$aws_region.amazonaws.com" ;;
  esac
}

# aws_json_call SERVICE TARGET BODY: a signed AWS JSON 1.1 request; the answer in HTTP_BODY (http_call).
aws_json_call() {
  aws_request "$1" POST "${AWS_ENDPOINT_URL_SSM:-https://$(aws_host "$1")}" / "" \
    "$(printf '%s' "$3" | sha256_hex)" content-type:application/x-amz-json-1.1 "x-amz-target:$2" -- \
    "" 15 --data-binary @<(printf '%s' "$3")
}

# A missing parameter (ParameterNotFound, HTTP 400) is not tried again: apply stores every secret before
# the groups launch, so it will not appear by waiting here; node-config fails and systemd starts it again.
provider_fetch_secret() {
  local name=$1 dest=$2 prefix body
  case "${SECRET_SOURCE:-}" in
    ssm:/*) prefix=${SECRET_SOURCE#ssm:} ;;
    *) die "SECRET_SOURCE '${SECRET_SOURCE:-}' is not ssm:/prefix, the source of provider aws" ;;
  esac
  body=$(jq -cn --arg n "${prefix%/}/$name" '{Name: $n, WithDecryption: true}')
  aws_credentials
  retry "$(api_deadline)" "SSM GetParameter ${prefix%/}/$name" aws_json_call ssm AmazonSSM.GetParameter "$body" ||
    return 1
  # The secret goes from memory to jq's stdin: no temporary file, no argument.
  printf '%s' "$HTTP_BODY" | jq -je .Parameter.Value >"$dest"
}

# The nodes of this provider publish the join token (join-token) to the parameter they read it from.
provider_can_publish_secret() { true; }

# provider_publish_secret NAME FILE: FILE's content as the SecureString NAME under SECRET_SOURCE, encrypted
# with SECRET_KMS_KEY (the cluster's key, from the role file) when set. The value goes from the file to jq
# (--rawfile) and from memory to curl's stdin: never an argument.
provider_publish_secret() {
  local name=$1 file=$2 prefix body
  case "${SECRET_SOURCE:-}" in
    ssm:/*) prefix=${SECRET_SOURCE#ssm:} ;;
    *) die "SECRET_SOURCE '${SECRET_SOURCE:-}' is not ssm:/prefix, the source of provider aws" ;;
  esac
  body=$(jq -cn --arg n "${prefix%/}/$name" --arg k "${SECRET_KMS_KEY:-}" --rawfile v "$file" \
    '{Name: $n, Value: $v, Type: "SecureString", Overwrite: true} + (if $k == "" then {} else {KeyId: $k} end)')
  aws_credentials
  retry "$(api_deadline)" "SSM PutParameter ${prefix%/}/$name" aws_json_call ssm AmazonSSM.PutParameter "$body"
}

# aws_query_call SERVICE ENDPOINT BODY: a signed AWS Query API request (form-encoded POST, as Auto Scaling
# speaks it); the answer in HTTP_BODY (http_call).
aws_query_call() {
  aws_request "$1" POST "${2%/}" / "" "$(printf '%s' "$3" | sha256_hex)" \
    "content-type:application/x-www-form-urlencoded; charset=utf-8" -- "" 15 --data-binary "$3"
}

# complete_lifecycle_attempt ENDPOINT BODY: one CompleteLifecycleAction; no action waiting counts as done
# (lifecycle_done says which).
complete_lifecycle_attempt() {
  lifecycle_done=completed
  aws_query_call autoscaling "$1" "$2" && return 0
  local rc=$?
  if [ "$HTTP_STATUS" = 400 ] && [[ $HTTP_BODY == *"No active Lifecycle Action"* ]]; then
    lifecycle_done=none
    return 0
  fi
  return "$rc"
}

# provider_instance_ready: completes this instance's launch lifecycle action (LAUNCH_HOOK of GROUP_NAME in
# the role file), which keeps it out of service until then. No action waiting is not an error: the hook
# was completed already (a restarted unit) or timed out.
provider_instance_ready() {
  local instance body endpoint lifecycle_done=""
  instance=$(aws_imds meta-data/instance-id) || die "IMDS gave no instance id"
  aws_credentials
  endpoint=${AWS_ENDPOINT_URL_AUTO_SCALING:-https://$(aws_host autoscaling)}
  body="Action=CompleteLifecycleAction&AutoScalingGroupName=$(jq -rn --arg s "$GROUP_NAME" '$s | @uri')"
  body="$body&InstanceId=$instance&LifecycleActionResult=CONTINUE"
  body="$body&LifecycleHookName=$(jq -rn --arg s "$LAUNCH_HOOK" '$s | @uri')&Version=2011-01-01"
  retry "$(api_deadline)" "CompleteLifecycleAction for $instance" complete_lifecycle_attempt "$endpoint" "$body" ||
    exit 1
  if [ "$lifecycle_done" = completed ]; then
    log "completed launch hook $LAUNCH_HOOK of $GROUP_NAME for $instance: the group may put it in service"
  else
    log "no launch action waits for $instance in $GROUP_NAME (completed before, or timed out)"
  fi
}

# set_health_attempt ENDPOINT BODY: one SetInstanceHealth call.
set_health_attempt() { aws_query_call autoscaling "$1" "$2"; }

# provider_instance_unhealthy: tells this instance's group that it is unhealthy (after its grace period),
# so the group replaces it (api-health).
provider_instance_unhealthy() {
  local instance endpoint body
  instance=$(aws_imds meta-data/instance-id) || die "IMDS gave no instance id"
  aws_credentials
  endpoint=${AWS_ENDPOINT_URL_AUTO_SCALING:-https://$(aws_host autoscaling)}
  body="Action=SetInstanceHealth&HealthStatus=Unhealthy&InstanceId=$instance&ShouldRespectGracePeriod=true"
  body="$body&Version=2011-01-01"
  retry "$(api_deadline)" "SetInstanceHealth Unhealthy for $instance" set_health_attempt "$endpoint" "$body" ||
    exit 1
  log "told the group that $instance is unhealthy: it will be replaced"
}

# The STS GetCallerIdentity request of a join proof: STS answers it with the ARN of whoever signed it.
STS_IDENTITY_BODY='Action=GetCallerIdentity&Version=2011-06-15'
STS_CONTENT_TYPE='application/x-www-form-urlencoded; charset=utf-8'
sts_endpoint() { printf '%s' "${AWS_ENDPOINT_URL_STS:-https://$(aws_host sts)}"; }

# provider_join_proof CSR_SHA256: proof that this instance asks for the certificate request whose PEM has
# that digest, as JSON for the request's annotation: the headers of an STS GetCallerIdentity request signed
# with the instance role's credentials, the digest among the signed headers. The masters send it to STS,
# which checks the signature and names the signer: the instance role's session, named after the instance.
# It is never sent from here, so whoever reads it can only send it to STS as it is, for this request and
# within STS's 15 minutes; it holds the session token but no key.
provider_join_proof() {
  local digest=$1 base host headers authorization
  aws_credentials
  base=$(sts_endpoint)
  host=${base#*://}
  host=${host%%/*}
  aws_amz_date=$(date -u +%Y%m%dT%H%M%SZ)
  headers=$(
    {
      printf 'content-type:%s\n' "$STS_CONTENT_TYPE"
      printf 'host:%s\n' "$host"
      printf 'x-amz-date:%s\n' "$aws_amz_date"
      [ -z "$aws_token" ] || printf 'x-amz-security-token:%s\n' "$aws_token"
      printf 'x-kubebake-csr-sha256:%s\n' "$digest"
    } | LC_ALL=C sort
  )$'\n'
  authorization=$(aws_authorization sts POST / "" "$headers" "$(printf '%s' "$STS_IDENTITY_BODY" | sha256_hex)") ||
    return 1
  # From memory to jq's stdin: the session token is in no argument.
  printf '%s\n%s\n' "$authorization" "$aws_token" | jq -Rsc --arg d "$aws_amz_date" --arg h "$digest" '
    split("\n") as $l | {"authorization": $l[0], "x-amz-date": $d, "x-kubebake-csr-sha256": $h}
      + (if $l[1] == "" then {} else {"x-amz-security-token": $l[1]} end)'
}

# sts_identity_attempt HEADERS: one GetCallerIdentity with the node's signed headers ("Name: value" lines),
# which reach curl through a file descriptor.
sts_identity_attempt() {
  http_call "" 15 -X POST -H @<(printf 'Content-Type: %s\n%s\n' "$STS_CONTENT_TYPE" "$1") \
    --data-binary "$STS_IDENTITY_BODY" "$(sts_endpoint)/"
}

# ec2_query_attempt BODY: one signed EC2 Query API call (as the master).
ec2_query_attempt() {
  aws_query_call ec2 "${AWS_ENDPOINT_URL_EC2:-https://$(aws_host ec2)}" "$1"
}

# describe_cluster_instance NODE [INSTANCE_ID]: DescribeInstances of this cluster's pending or running
# instance whose private DNS name is NODE (and whose id is INSTANCE_ID, if given); the answer in HTTP_BODY.
describe_cluster_instance() {
  local body
  body="Action=DescribeInstances&Filter.1.Name=private-dns-name&Filter.1.Value.1=$(jq -rn --arg s "$1" '$s | @uri')"
  body="$body&Filter.2.Name=tag%3AKubernetesCluster&Filter.2.Value.1=$CLUSTER_NAME"
  body="$body&Filter.3.Name=instance-state-name&Filter.3.Value.1=pending&Filter.3.Value.2=running"
  [ -z "${2:-}" ] || body="$body&InstanceId.1=$2"
  aws_credentials
  retry "$(api_deadline)" "EC2 DescribeInstances ${2:-$1}" ec2_query_attempt "$body&Version=2016-11-15"
}

# provider_verify_join NODE CSR_SHA256 PROOF: on a master, whether a join request for NODE whose PEM has
# the digest CSR_SHA256 comes from that instance. Prints "approve REASON", "deny REASON" or "wait REASON".
# STS checks the proof's signature; the signer must be the instance role session of one of JOIN_IDENTITIES
# (the role file: the cluster's node roles, in this account), and EC2 must know that instance as a pending
# or running member of this cluster whose private DNS name is NODE.
provider_verify_join() {
  local node=$1 digest=$2 proof=$3 headers signed arn identity instance ok=""
  if [ -z "$proof" ]; then
    echo "deny the request carries no proof of its instance (annotation kubebake.io/join-proof)"
    return
  fi
  [ -n "${JOIN_IDENTITIES:-}" ] || die "JOIN_IDENTITIES is not set in the role file: no node could join"
  # Only the four headers a proof has, each one printable line: nothing else reaches STS's request.
  headers=$(jq -r '
    if type == "object" and (keys - ["authorization", "x-amz-date", "x-amz-security-token", "x-kubebake-csr-sha256"]) == []
      and ([.[] | type == "string" and test("^[ -~]+$")] | all)
    then to_entries[] | "\(.key): \(.value)" else error("not a proof") end' <<<"$proof" 2>/dev/null) || {
    echo "deny the proof is not the headers of a signed request"
    return
  }
  if [ "$(jq -r '."x-kubebake-csr-sha256" // ""' <<<"$proof")" != "$digest" ]; then
    echo "deny the proof was made for another certificate request"
    return
  fi
  signed=$(jq -r '.authorization // ""' <<<"$proof")
  if ! [[ $signed =~ SignedHeaders=([a-z0-9;-]+) ]] || [[ ";${BASH_REMATCH[1]};" != *";x-kubebake-csr-sha256;"* ]]; then
    echo "deny the proof's signature does not cover the request's digest"
    return
  fi
  aws_credentials
  if ! retry "$(api_deadline)" "STS GetCallerIdentity for the join of $node" sts_identity_attempt "$headers"; then
    # 403: a signature that does not match, an expired one or session, an unknown key. Anything else (no
    # answer, throttling) may pass: asked again on the next pass.
    case "$HTTP_STATUS" in
      403) echo "deny STS refused the proof: expired, altered, or not signed by an AWS identity" ;;
      *) echo "wait STS did not confirm the proof (HTTP $HTTP_STATUS)" ;;
    esac
    return
  fi
  [[ $HTTP_BODY =~ \<Arn\>([^<]*)\</Arn\> ]] || {
    echo "wait STS's answer names no ARN"
    return
  }
  arn=${BASH_REMATCH[1]}
  for identity in $JOIN_IDENTITIES; do
    [ "${arn%/*}" != "$identity" ] || ok=yes
  done
  instance=${arn##*/}
  if [ -z "$ok" ] || ! [[ $instance =~ ^i-[0-9a-f]{8,17}$ ]]; then
    echo "deny signed by $arn, not by an instance of this cluster's node roles"
    return
  fi
  # A new instance may not be described yet (InvalidInstanceID.NotFound): asked again on the next pass.
  if ! describe_cluster_instance "$node" "$instance"; then
    echo "wait EC2 did not describe $instance (HTTP $HTTP_STATUS)"
    return
  fi
  if [[ $HTTP_BODY == *"<instanceId>$instance</instanceId>"* ]]; then
    echo "approve $instance of this cluster, whose private DNS name is $node, signed the request"
  else
    echo "deny $instance is not a pending or running instance of cluster $CLUSTER_NAME named $node"
  fi
}

# EC2 keeps the record of an instance's addresses.
provider_has_address_record() { true; }

# provider_node_addresses NODE: on a master, the addresses EC2 gives the cluster's pending or running
# instance whose private DNS name is NODE, as certificate names ("IP:…", "DNS:…"), one per line; nothing
# if EC2 knows no such instance. A node writes its Node object's addresses itself: this is the record it
# cannot write (approve-kubelet-certs checks serving certificates against both).
provider_node_addresses() {
  local node=$1 rest
  describe_cluster_instance "$node" || return 1
  [[ $HTTP_BODY == *"<instanceId>"* ]] || return 0
  rest=$HTTP_BODY
  while [[ $rest =~ \<privateIpAddress\>([0-9.]+)\</privateIpAddress\>(.*) ]]; do
    echo "IP:${BASH_REMATCH[1]}"
    rest=${BASH_REMATCH[2]}
  done | sort -u
  echo "DNS:$node"
}
