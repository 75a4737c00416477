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

# aws_json_call SERVICE TARGET BODY: a signed AWS JSON 1.1 request; prints the response body.
aws_json_call() {
  local service=$1 target=$2 body=$3 region creds role akid secret token endpoint host
  region=${AWS_REGION:-$(aws_imds meta-data/placement/region)}
  role=$(aws_imds meta-data/iam/security-credentials/ | head -n1) || die "the instance has no IAM role"
  creds=$(aws_imds "meta-data/iam/security-credentials/$role")
  akid=$(jq -r .AccessKeyId <<<"$creds")
  secret=$(jq -r .SecretAccessKey <<<"$creds")
  token=$(jq -r .Token <<<"$creds")
  endpoint=${AWS_ENDPOINT_URL_SSM:-https://$service.$region.amazonaws.com}
  host=${endpoint#*://}
  host=${host%%/*}
  local amz_date date_stamp scope canonical_headers signed_headers canonical_request string_to_sign k
  amz_date=$(date -u +%Y%m%dT%H%M%SZ)
  date_stamp=${amz_date%%T*}
  scope="$date_stamp/$region/$service/aws4_request"
  canonical_headers="content-type:application/x-amz-json-1.1"$'\n'"host:$host"$'\n'"x-amz-date:$amz_date"$'\n'"x-amz-security-token:$token"$'\n'"x-amz-target:$target"$'\n'
  signed_headers="content-type;host;x-amz-date;x-amz-security-token;x-amz-target"
  canonical_request="POST"$'\n'"/"$'\n'$'\n'"$canonical_headers"$'\n'"$signed_headers"$'\n'"$(printf '%s' "$body" | sha256_hex)"
  string_to_sign="AWS4-HMAC-SHA256"$'\n'"$amz_date"$'\n'"$scope"$'\n'"$(printf '%s' "$canonical_request" | sha256_hex)"
  k=$(hmac_hex "key:AWS4$secret" "$date_stamp")
  k=$(hmac_hex "hexkey:$k" "$region")
  k=$(hmac_hex "hexkey:$k" "$service")
  k=$(hmac_hex "hexkey:$k" aws4_request)
  curl -sSf --max-time 15 -X POST "$endpoint/" \
    -H "Content-Type: application/x-amz-json-1.1" -H "X-Amz-Date: $amz_date" \
    -H "X-Amz-Security-Token: $token" -H "X-Amz-Target: $target" \
    -H "Authorization: AWS4-HMAC-SHA256 Credential=$akid/$scope, SignedHeaders=$signed_headers, Signature=$(hmac_hex "hexkey:$k" "$string_to_sign")" \
    --data-binary "$body"
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
