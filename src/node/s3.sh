#!/bin/bash
# The etcd snapshot store on S3 (SNAPSHOT_STORE=s3://bucket/prefix in the masters' role file): put, list,
# get and delete objects under the prefix, signed with SigV4 (providers/aws.sh; the instance role's
# credentials). AWS_ENDPOINT_URL_S3 names another endpoint, addressed path-style as the SDK does then.
# Sourced by etcd-member after providers/aws.sh; defines store_put, store_list, store_get, store_read,
# store_delete.
# shellcheck disable=SC2154  # aws_region, aws_token: set by aws_credentials (providers/aws.sh)

EMPTY_SHA256=e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855

s3_target() {
  local rest=${SNAPSHOT_STORE#s3://}
  s3_bucket=${rest%%/*}
  s3_prefix=""
  [ "$rest" = "$s3_bucket" ] || s3_prefix=${rest#*/}
  s3_prefix=${s3_prefix%/}
  if [ -z "$s3_bucket" ] || [ "$SNAPSHOT_STORE" = "$rest" ]; then
    die "SNAPSHOT_STORE '$SNAPSHOT_STORE' is not s3://bucket/prefix"
  fi
}

uri_encode() { jq -rn --arg s "$1" '$s | @uri'; }

# An object key as a URI path: each segment encoded once (S3 does not normalize), '/' kept.
key_path() {
  local IFS=/ out="" segment
  for segment in $1; do out="$out/$(uri_encode "$segment")"; done
  printf '%s' "$out"
}

# s3_call METHOD KEY QUERY UPLOAD_FILE OUT_FILE HEADER_DUMP [META_SHA256]: one signed request, tried again
# on a transient failure (no answer, 5xx, SlowDown) until $(s3_deadline)s, or s3_call_deadline if the caller
# sets it; the body goes to OUT_FILE, the response headers to HEADER_DUMP. Fails, with S3's error code on
# stderr, unless 2xx.
s3_call() {
  local method=$1 key=$2 query=$3 upload=$4 out=$5 dump=$6 meta=${7:-}
  local base path payload_hash headers options=()
  aws_credentials
  if [ -n "${AWS_ENDPOINT_URL_S3:-}" ]; then
    base=${AWS_ENDPOINT_URL_S3%/}
    path="/$s3_bucket$(key_path "$key")"
  else
    base="https://$s3_bucket.$(aws_host s3)"
    path=$(key_path "$key")
    path=${path:-/}
  fi
  payload_hash=$EMPTY_SHA256
  [ -z "$upload" ] || payload_hash=$(sha256_hex <"$upload")
  headers=("x-amz-content-sha256:$payload_hash")
  [ -z "$meta" ] || headers+=("x-amz-meta-sha256:$meta")
  [ -z "$upload" ] || options+=(--upload-file "$upload")
  retry "${s3_call_deadline:-$(s3_deadline)}" "s3 $method ${key:-/}" \
    aws_request s3 "$method" "$base" "$path" "$query" "$payload_hash" "${headers[@]}" -- \
    "$out" 600 -D "$dump" "${options[@]}"
}

# Runs s3_call with scratch files; the body is printed. For small objects and listings: tried as long as
# an API call, not a transfer.
s3_simple() {
  local tmp rc=0 s3_call_deadline
  s3_call_deadline=$(api_deadline)
  tmp=$(mktemp -d)
  s3_call "$1" "$2" "$3" "" "$tmp/body" "$tmp/headers" || rc=$?
  [ "$rc" -ne 0 ] || cat "$tmp/body"
  rm -rf "$tmp"
  return "$rc"
}

# store_put FILE NAME: uploads FILE as NAME under the prefix, its SHA-256 in the object's metadata.
store_put() {
  local tmp rc=0
  s3_target
  tmp=$(mktemp -d)
  s3_call PUT "$s3_prefix/$2" "" "$1" "$tmp/body" "$tmp/headers" "$(sha256_hex <"$1")" || rc=$?
  rm -rf "$tmp"
  return "$rc"
}

# store_list: the names under the prefix, one per line, sorted (every page of the listing).
store_list() {
  local token="" query page
  s3_target
  while :; do
    query=""
    [ -z "$token" ] || query="continuation-token=$(uri_encode "$token")&"
    query="${query}list-type=2&prefix=$(uri_encode "$s3_prefix/")"
    page=$(s3_simple GET "" "$query") || return 1
    printf '%s' "$page" | grep -o '<Key>[^<]*</Key>' | sed -e 's/<[^>]*>//g' -e "s|^$s3_prefix/||" || true
    token=$(printf '%s' "$page" | grep -o '<NextContinuationToken>[^<]*</NextContinuationToken>' |
      sed 's/<[^>]*>//g' || true)
    [ -n "$token" ] || break
  done | sort
}

# store_get NAME DEST: downloads NAME to DEST; prints the SHA-256 its metadata records (empty if none).
store_get() {
  local tmp rc=0
  s3_target
  tmp=$(mktemp -d)
  s3_call GET "$s3_prefix/$1" "" "" "$2" "$tmp/headers" || rc=$?
  [ "$rc" -ne 0 ] || tr -d '\r' <"$tmp/headers" | awk 'tolower($1) == "x-amz-meta-sha256:" { print $2 }'
  rm -rf "$tmp"
  return "$rc"
}

# store_read NAME: a small object's content on stdout.
store_read() {
  s3_target
  s3_simple GET "$s3_prefix/$1" ""
}

store_delete() {
  s3_target
  s3_simple DELETE "$s3_prefix/$1" "" >/dev/null
}
