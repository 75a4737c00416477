#!/usr/bin/env bash
# `npm test`: the Debian tools the tests use, then lint, format check, type-check and every jest test.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/host-tools.sh
# apt must know the Debian packages the fixture spec pins (a fresh machine has empty lists).
if [ -z "$(apt-cache policy etcd-server 2>/dev/null | grep -v 'Candidate: (none)' | grep Candidate)" ]; then
  if [ "$(id -u)" -eq 0 ]; then apt-get update -qq; else echo "run 'sudo apt-get update' first" >&2 && exit 5; fi
fi
# The real Kubernetes programs the fixture image bakes in, from their Go modules: about 15 minutes the first
# time on two cores, then cached by version (test/upstream/build.sh).
command -v go >/dev/null || { echo "test: go is not on PATH; the tests build Kubernetes from its Go modules (Go 1.26)" >&2; exit 5; }
sh test/upstream/build.sh >/dev/null
# The add-on images (pause, flannel, its CNI plugin, CoreDNS, the boot test's probe) from their sources:
# about 4 minutes the first time (root: mmdebstrap makes the flannel images' Debian root), then cached.
sh test/upstream/build-images.sh >/dev/null
npx eslint .
npx prettier --check . >/dev/null || { npx prettier --check .; exit 1; }
npx tsc --noEmit
results=$(mktemp)
trap 'rm -f "$results"' EXIT
status=0
npx jest --json --outputFile="$results" "$@" || status=$?
# The plain closing line CI reads: "N passed, N failed[, N skipped]".
node -e 'const r = JSON.parse(require("node:fs").readFileSync(process.argv[1], "utf8"));
  console.log(`${r.numPassedTests} passed, ${r.numFailedTests} failed` + (r.numPendingTests ? `, ${r.numPendingTests} skipped` : ""));' "$results" || true
exit "$status"
