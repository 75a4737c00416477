#!/bin/bash
# Provider "aws": IMDSv2 for identity, SSM Parameter Store (SecureString, SECRET_SOURCE=ssm:/prefix)
# for secrets, signed with the instance role's credentials (SigV4 with openssl: no SDK in the image).
# Sourced by node-config; defines provider_node_name, provider_node_ip, provider_fetch_secret.

AWS_IMDS=${AWS_EC2_METADATA_SERVICE_ENDPOINT:-http://169.254.169.254}
AWS_IMDS=${AWS_IMDS%/}

aws_imds() {
  if [ -z "${AWS_IMDS_TOKEN:-}" ]; then
    AWS_IMDS_TOKEN=$(curl -sSf --max-time 5 -X PUT "$AWS_IMDS/latest/api/token" \
      -H 'X-aws-ec2-metadata-token-ttl-seconds: 300') || die "IMDSv2 gave no token"
  fi
  curl -sSf --max-time 5 -H "X-aws-ec2-metadata-token: $AWS_IMDS_TOKEN" "$AWS_IMDS/latest/$1"
}

provider_node_name() { aws_imds meta-data/local-hostname; }
provider_node_ip() { aws_imds meta-data/local-ipv4; }

sha256_hex() { openssl dgst -sha256 -hex | sed 's/^.* //'; }
# hmac_hex KEYSPEC DATA, KEYSPEC is openssl's "key:..." or "hexkey:..."
hmac_hex() { printf '%s' "$2" | openssl dgst -sha256 -mac HMAC -macopt "$1" | sed 's/^.* //'; }

# The instance role's credentials (or, like the SDK's chain, AWS_ACCESS_KEY_ID… from the environment first),
# and the region: sets aws_akid, aws_secret, aws_token (may be empty), aws_region.
aws_credentials() {
  local role creds now
  # The instance role's credentials last hours: asked again after five minutes, not on every call.
  now=$(date +%s)
  [ "$((now - ${aws_credentials_at:-0}))" -ge 300 ] || return 0
  aws_credentials_at=$now
  aws_region=${AWS_REGION:-$(aws_imds meta-data/placement/region)}
  if [ -n "${AWS_ACCESS_KEY_ID:-}" ]; then
    aws_akid=$AWS_ACCESS_KEY_ID aws_secret=${AWS_SECRET_ACCESS_KEY:-} aws_token=${AWS_SESSION_TOKEN:-}
    return 0
  fi
  role=$(aws_imds meta-data/iam/security-credentials/ | head -n1) || die "the instance has no IAM role"
  creds=$(aws_imds "meta-data/iam/security-credentials/$role")
  aws_akid=$(jq -r .AccessKeyId <<<"$creds")
  aws_secret=$(jq -r .SecretAccessKey <<<"$creds")
  aws_token=$(jq -r .Token <<<"$creds")
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
  k=$(hmac_hex "key:AWS4$aws_secret" "$date_stamp")
  k=$(hmac_hex "hexkey:$k" "$aws_region")
  k=$(hmac_hex "hexkey:$k" "$service")
  k=$(hmac_hex "hexkey:$k" aws4_request)
  printf 'AWS4-HMAC-SHA256 Credential=%s/%s, SignedHeaders=%s, Signature=%s' \
    "$aws_akid" "$scope" "$signed" "$(hmac_hex "hexkey:$k" "$string_to_sign")"
}

# aws_request SERVICE METHOD BASE PATH QUERY PAYLOAD_HASH [name:value…] -- [CURL_OPTION…]: one signed request
# to BASE PATH?QUERY. It carries and signs host, x-amz-date, the session token if any, and the given
# headers (lowercase names); the CURL_OPTIONs say what is sent and what is printed.
aws_request() {
  local service=$1 method=$2 base=$3 path=$4 query=$5 payload_hash=$6 host line canonical args=()
  shift 6
  aws_credentials
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
  canonical=$(printf '%s\n' "${headers[@]}" | LC_ALL=C sort)$'\n'
  for line in "${headers[@]}"; do
    [ "${line%%:*}" = host ] || args+=(-H "${line%%:*}: ${line#*:}")
  done
  curl -sS -X "$method" "${args[@]}" \
    -H "Authorization: $(aws_authorization "$service" "$method" "$path" "$query" "$canonical" "$payload_hash")" \
    "$@" "$base$path${query:+?$query}"
}

# aws_json_call SERVICE TARGET BODY: a signed AWS JSON 1.1 request; prints the response body.
aws_json_call() {
  aws_credentials
  aws_request "$1" POST "${AWS_ENDPOINT_URL_SSM:-https://$1.$aws_region.amazonaws.com}" / "" \
    "$(printf '%s' "$3" | sha256_hex)" content-type:application/x-amz-json-1.1 "x-amz-target:$2" -- \
    -f --max-time 15 --data-binary "$3"
}

provider_fetch_secret() {
  local name=$1 dest=$2 prefix body
  case "${SECRET_SOURCE:-}" in
    ssm:/*) prefix=${SECRET_SOURCE#ssm:} ;;
    *) die "SECRET_SOURCE '${SECRET_SOURCE:-}' is not ssm:/prefix, the source of provider aws" ;;
  esac
  body=$(jq -cn --arg n "${prefix%/}/$name" '{Name: $n, WithDecryption: true}')
  aws_json_call ssm AmazonSSM.GetParameter "$body" | jq -je .Parameter.Value >"$dest"
}

# aws_query_call SERVICE ENDPOINT BODY OUT: a signed AWS Query API request (form-encoded POST, as Auto
# Scaling speaks it); the response body goes to OUT, the HTTP status to stdout.
aws_query_call() {
  aws_request "$1" POST "${2%/}" / "" "$(printf '%s' "$3" | sha256_hex)" \
    "content-type:application/x-www-form-urlencoded; charset=utf-8" -- \
    --max-time 15 --data-binary "$3" -o "$4" -w '%{http_code}'
}

# provider_instance_ready: completes this instance's launch lifecycle action (LAUNCH_HOOK of GROUP_NAME in
# the role file), which keeps it out of service until then. No action waiting is not an error: the hook
# was completed already (a restarted unit) or timed out.
provider_instance_ready() {
  local instance body endpoint status out
  instance=$(aws_imds meta-data/instance-id) || die "IMDS gave no instance id"
  aws_credentials
  endpoint=${AWS_ENDPOINT_URL_AUTO_SCALING:-https://autoscaling.$aws_region.amazonaws.com}
  body="Action=CompleteLifecycleAction&AutoScalingGroupName=$(jq -rn --arg s "$GROUP_NAME" '$s | @uri')"
  body="$body&InstanceId=$instance&LifecycleActionResult=CONTINUE"
  body="$body&LifecycleHookName=$(jq -rn --arg s "$LAUNCH_HOOK" '$s | @uri')&Version=2011-01-01"
  out=$(mktemp)
  status=$(aws_query_call autoscaling "$endpoint" "$body" "$out") || {
    rm -f "$out"
    die "Auto Scaling did not answer CompleteLifecycleAction"
  }
  if [ "$status" = 200 ]; then
    log "completed launch hook $LAUNCH_HOOK of $GROUP_NAME for $instance: the group may put it in service"
  elif grep -q "No active Lifecycle Action" "$out"; then
    log "no launch action waits for $instance in $GROUP_NAME (completed before, or timed out)"
  else
    local answer
    answer=$(grep -o '<Message>[^<]*</Message>' "$out" | sed 's/<[^>]*>//g')
    rm -f "$out"
    die "CompleteLifecycleAction for $instance: HTTP $status ${answer:-}"
  fi
  rm -f "$out"
}
