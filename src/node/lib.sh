#!/bin/bash
# Shared helpers for kubebake's node scripts. Sourced, never run.
# shellcheck disable=SC2034  # variables here are used by the scripts that source this file

KUBEBAKE_SYSCONFIG_DIR=${KUBEBAKE_SYSCONFIG_DIR:-/etc/sysconfig}

log() { printf 'kubebake %s: %s\n' "${0##*/}" "$*"; }
die() {
  log "error: $*" >&2
  exit 1
}

# The role file decides: a node with the masters file is a master, else a minion with the minions file.
detect_role() {
  if [ -f "$KUBEBAKE_SYSCONFIG_DIR/kubernetes-masters" ]; then
    echo masters
  elif [ -f "$KUBEBAKE_SYSCONFIG_DIR/kubernetes-minions" ]; then
    echo minions
  else
    die "no role file: expected $KUBEBAKE_SYSCONFIG_DIR/kubernetes-masters or kubernetes-minions"
  fi
}

# Loads the role file and checks what every script relies on.
load_role() {
  ROLE=$(detect_role)
  # shellcheck disable=SC1090
  . "$KUBEBAKE_SYSCONFIG_DIR/kubernetes-$ROLE"
  [ -n "${CLUSTER_NAME:-}" ] || die "CLUSTER_NAME is not set in $KUBEBAKE_SYSCONFIG_DIR/kubernetes-$ROLE"
  case "$CLUSTER_NAME" in
    *[!a-z0-9-]* | -* | *-) die "CLUSTER_NAME '$CLUSTER_NAME' must be lowercase letters, digits and inner '-'" ;;
  esac
  CLOUD_PROVIDER=${CLOUD_PROVIDER:-none}
  case "$CLOUD_PROVIDER" in
    aws | gce | azure | none) ;;
    *) die "CLOUD_PROVIDER '$CLOUD_PROVIDER' is not one of aws, gce, azure, none" ;;
  esac
  MASTERS_FQDN="masters.${CLUSTER_NAME}.${DISCOVERY_DOMAIN}"
  # The masters group's live members, ready or still joining (the discovery reconciler's etcd record):
  # the peers etcd-member looks at. masters.* lists only masters whose API is ready.
  ETCD_PEERS_FQDN="etcd.${CLUSTER_NAME}.${DISCOVERY_DOMAIN}"
}

# Secret names as stored in a cloud secret store: the file name with '.' as '-'.
secret_id() { printf '%s' "${1//./-}"; }

# Writes stdin to a file atomically with the given mode.
write_atomic() {
  local dest=$1 mode=$2 tmp
  tmp=$(mktemp "${dest}.XXXXXX")
  cat >"$tmp"
  chmod "$mode" "$tmp"
  mv -f "$tmp" "$dest"
}

# The exit status of a transient failure (EX_TEMPFAIL): the only one `retry` tries again.
TRANSIENT=75

# retry DEADLINE_SECONDS WHAT COMMAND…: runs COMMAND (in this shell: a function may set variables) until it
# succeeds. A transient failure (status $TRANSIENT) is tried again after a wait that starts at 1 s and doubles
# up to 30 s, each a random 50 to 100 % of that (so that a fleet booting at once does not retry in step),
# until DEADLINE_SECONDS have passed; any other failure is final at once. COMMAND's stderr is kept: a failure
# is logged with WHAT and its last line. The deadline bounds when an attempt may start, and http_call ends
# its request by then. The error checks of `set -e` are off in COMMAND (it runs in a `||` list): it checks
# its own steps and, not to lose its message in the kept stderr, does not die.
retry() {
  local limit=$1 what=$2 retry_until attempt=0 delay=1 rc err last pause left started=$SECONDS
  shift 2
  retry_until=$((SECONDS + limit))
  err=$(mktemp)
  while :; do
    attempt=$((attempt + 1))
    rc=0
    "$@" 2>"$err" || rc=$?
    if [ "$rc" -eq 0 ]; then
      [ ! -s "$err" ] || cat "$err" >&2
      rm -f "$err"
      return 0
    fi
    last=$(grep -v '^[[:space:]]*$' "$err" | tail -n1 || true)
    last=${last:-exit status $rc}
    if [ "$rc" -ne "$TRANSIENT" ]; then
      rm -f "$err"
      log "error: $what: $last" >&2
      return 1
    fi
    left=$((retry_until - SECONDS))
    if [ "$left" -le 0 ]; then
      rm -f "$err"
      log "error: $what: gave up after $attempt attempts in $((SECONDS - started))s (deadline ${limit}s): $last" >&2
      return 1
    fi
    pause=$((delay * 500 + RANDOM % (delay * 500 + 1)))
    [ "$pause" -le "$((left * 1000))" ] || pause=$((left * 1000))
    log "$what: attempt $attempt failed: $last; trying again in $((pause / 1000)).$((pause % 1000 / 100))s" >&2
    sleep "$((pause / 1000)).$(printf '%03d' "$((pause % 1000))")"
    delay=$((delay * 2 > 30 ? 30 : delay * 2))
  done
}

# http_call OUT MAX_TIME CURL_ARG…: one request with curl (-sS, --max-time MAX_TIME, cut to what is left of
# the deadline of the retry it runs under). The answer's body goes to the file OUT or, when OUT is empty, to
# HTTP_BODY (text: it never touches the disk); HTTP_STATUS is its status (000: no answer). Returns 0 for a
# 2xx; $TRANSIENT for no answer (connection refused or reset, timeout, DNS), HTTP 429 or 5xx, or AWS's
# throttling; 1 otherwise. The reason goes to stderr ("HTTP 403 message (Code)" or curl's own line).
# Secrets go in no argument here (/proc/PID/cmdline is public): send headers with -H @FILE, e.g. -H @<(printf …).
http_call() {
  local out=$1 max=$2 rc=0 answer text code="" message=""
  shift 2
  if [ -n "${retry_until:-}" ]; then
    local left=$((retry_until - SECONDS))
    [ "$left" -ge 1 ] || left=1
    [ "$left" -ge "$max" ] || max=$left
  fi
  HTTP_BODY=""
  if [ -n "$out" ]; then
    answer=$(curl -sS --max-time "$max" -o "$out" -w '%{http_code}' "$@") || rc=$?
  else
    answer=$(curl -sS --max-time "$max" -w '\n%{http_code}' "$@") || rc=$?
    HTTP_BODY=${answer%$'\n'*}
  fi
  HTTP_STATUS=${answer##*$'\n'}
  HTTP_STATUS=${HTTP_STATUS:-000}
  if [ "$rc" -ne 0 ]; then
    case "$rc" in
      # resolving, connecting, HTTP/2 framing, a partial body, timeout, TLS handshake, empty reply, send, receive
      5 | 6 | 7 | 16 | 18 | 28 | 35 | 52 | 55 | 56 | 92) return "$TRANSIENT" ;;
      *) return 1 ;;
    esac
  fi
  case "$HTTP_STATUS" in 2??) return 0 ;; esac
  if [ -n "$out" ]; then text=$(head -c 4096 "$out" 2>/dev/null || true); else text=${HTTP_BODY:0:4096}; fi
  # AWS's errors: <Code>/<Message> (Query APIs, S3) or "__type"/"message" (JSON APIs)
  if [[ $text =~ \<Code\>([^<]*)\</Code\> ]]; then code=${BASH_REMATCH[1]}; fi
  if [[ $text =~ \<Message\>([^<]*)\</Message\> ]]; then message=${BASH_REMATCH[1]}; fi
  if [[ $text =~ \"__type\"[[:space:]]*:[[:space:]]*\"([^\"]*)\" ]]; then code=${BASH_REMATCH[1]##*#}; fi
  if [[ $text =~ \"[Mm]essage\"[[:space:]]*:[[:space:]]*\"([^\"]*)\" ]]; then message=${BASH_REMATCH[1]}; fi
  if [ -n "$message" ]; then
    printf 'HTTP %s %s%s\n' "$HTTP_STATUS" "$message" "${code:+ ($code)}" >&2
  else
    printf 'HTTP %s%s\n' "$HTTP_STATUS" "${code:+ $code}" >&2
  fi
  case "$HTTP_STATUS" in 429 | 5??) return "$TRANSIENT" ;; esac
  case "$code" in
    Throttling | ThrottlingException | ThrottledException | RequestThrottled* | RequestLimitExceeded | \
      TooManyRequestsException | SlowDown | PriorRequestNotComplete | RequestTimeout | RequestTimeoutException)
      return "$TRANSIENT"
      ;;
  esac
  return 1
}

# How long each kind of cloud call is tried (seconds): the instance metadata service, the APIs (SSM,
# Auto Scaling, Secret Manager, Key Vault) and S3 (whose transfers may take minutes each).
imds_deadline() { printf '%s' "${KUBEBAKE_IMDS_DEADLINE_SECONDS:-60}"; }
api_deadline() { printf '%s' "${KUBEBAKE_API_DEADLINE_SECONDS:-120}"; }
s3_deadline() { printf '%s' "${KUBEBAKE_S3_DEADLINE_SECONDS:-900}"; }

# kubeconfig FILE SERVER USER then either "token TOKEN" or "cert CERT KEY"
kubeconfig() {
  local file=$1 server=$2 user=$3 kind=$4 credentials
  if [ "$kind" = token ]; then
    credentials="      token: $5"
  else
    credentials="      client-certificate: $5
      client-key: $6"
  fi
  write_atomic "$file" 0600 <<KUBECONFIG
apiVersion: v1
kind: Config
clusters:
  - name: $CLUSTER_NAME
    cluster:
      server: $server
      certificate-authority: $KUBEBAKE_PKI_DIR/ca.crt
users:
  - name: $user
    user:
$credentials
contexts:
  - name: $user@$CLUSTER_NAME
    context: { cluster: $CLUSTER_NAME, user: $user }
current-context: $user@$CLUSTER_NAME
KUBECONFIG
}

# bootstrap_kubeconfig API: the kubelet's join kubeconfig with the token in $KUBEBAKE_PKI_DIR/bootstrap-token.
bootstrap_kubeconfig() {
  kubeconfig "$KUBEBAKE_CONFIG_DIR/bootstrap-kubelet.kubeconfig" "$1" kubelet-bootstrap \
    token "$(cat "$KUBEBAKE_PKI_DIR/bootstrap-token")"
}

# ipv4_addresses NAME: the IPv4 addresses NAME resolves to, one per line, sorted; nothing if it does not
# resolve. The discovery records (masters., minions., etcd.) are read this way.
ipv4_addresses() { getent ahostsv4 "$1" 2>/dev/null | awk '{ print $1 }' | sort -u || true; }

# etcd_ctl ARG…: etcdctl as this master's etcd member (its own certificate is its client identity too).
etcd_ctl() {
  etcdctl --cacert="$KUBEBAKE_PKI_DIR/etcd-ca.crt" --cert="$KUBEBAKE_PKI_DIR/etcd-member.crt" \
    --key="$KUBEBAKE_PKI_DIR/etcd-member.key" --dial-timeout=3s --command-timeout=10s "$@"
}

# whole_number NAME VALUE UNIT: VALUE, a role-file setting, if it is a positive whole number; else the node
# stops naming the setting.
whole_number() {
  case "$2" in
    '' | *[!0-9]* | 0*) die "$1 '$2' in the role file is not a whole number of $3" ;;
  esac
  printf '%s' "$2"
}

# fetch_secret NAME: the secret NAME from the provider (sourced by the caller) into $KUBEBAKE_PKI_DIR/NAME,
# 0600, replaced whole or not at all.
fetch_secret() {
  local dest="$KUBEBAKE_PKI_DIR/$1"
  if ! provider_fetch_secret "$1" "$dest.tmp"; then
    rm -f "$dest.tmp"
    return 1
  fi
  chmod 0600 "$dest.tmp"
  mv -f "$dest.tmp" "$dest"
}

# local_api_ready: whether this master's API server answers /readyz with "ok" (anonymous requests may ask
# the health endpoints only), verified against the cluster CA.
local_api_ready() {
  [ "$(curl -sS --max-time 5 --cacert "$KUBEBAKE_PKI_DIR/ca.crt" \
    "${KUBEBAKE_LOCAL_API:-https://127.0.0.1:6443}/readyz" 2>/dev/null)" = ok ]
}
