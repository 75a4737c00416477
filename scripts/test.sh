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
sh test/upstream/build-etcdutl.sh >/dev/null
# containerd, its shim and ctr at the release spec's version (under a minute, then cached).
sh test/upstream/build-containerd.sh >/dev/null
# kube-bench, the CIS benchmark's runner the boot test runs on its nodes (under a minute, then cached).
sh test/upstream/build-kube-bench.sh >/dev/null
# The add-on images (pause, flannel, its CNI plugin, CoreDNS, the boot test's probe) from their sources:
# about 4 minutes the first time (root: mmdebstrap makes the flannel images' Debian root), then cached.
sh test/upstream/build-images.sh >/dev/null
npx eslint .
npx prettier --check . >/dev/null || { npx prettier --check .; exit 1; }
npx tsc --noEmit
results=$(mktemp -d)
trap 'rm -rf "$results"' EXIT
status=0
if [ $# -gt 0 ]; then
  npx jest --json --outputFile="$results/all.json" "$@" || status=$?
else
  # The boot tests run two TCG guests that want both host cores: every other file first (two workers), then
  # those alone. Side by side, they ran three times slower and the whole suite took longer.
  boots='/test/boot[^/]*\.test\.ts$'
  npx jest --json --outputFile="$results/rest.json" --testPathIgnorePatterns="$boots" || status=$?
  npx jest --json --outputFile="$results/boots.json" --runInBand "$boots" || status=$?
fi
# The plain closing line CI reads: "N passed, N failed[, N skipped]".
node -e 'const fs = require("node:fs"), dir = process.argv[1];
  const sum = { passed: 0, failed: 0, skipped: 0 };
  for (const f of fs.readdirSync(dir)) {
    const r = JSON.parse(fs.readFileSync(`${dir}/${f}`, "utf8"));
    sum.passed += r.numPassedTests; sum.failed += r.numFailedTests; sum.skipped += r.numPendingTests;
  }
  console.log(`${sum.passed} passed, ${sum.failed} failed` + (sum.skipped ? `, ${sum.skipped} skipped` : ""));' "$results" || true
exit "$status"
