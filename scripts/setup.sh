#!/usr/bin/env bash
# Installs everything the project needs, from its own files: Node >= 22, npm packages, and the
# local cluster's binaries (built from the Go module proxy, cached in ~/.cache/lepton/bin).
# Safe to run again: each step is skipped when its result is already there.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/env.sh
# The local node gives pods network namespaces with iproute2's `ip` (see test/cluster/localnode).
if ! command -v ip >/dev/null && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
  echo "[setup] installing iproute2" >&2
  (apt-get update -qq && apt-get install -y -qq iproute2) >&2
fi
# Fashion-MNIST as IDX files (31 MB), read by the runtime's data tests and the federated bench.
if [ ! -d /usr/share/datasets/fashion-mnist ] && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
  echo "[setup] installing dataset-fashion-mnist" >&2
  (apt-get update -qq && apt-get install -y -qq dataset-fashion-mnist) >&2 || echo "[setup] dataset-fashion-mnist not installed: its tests skip" >&2
fi
for tool in go openssl; do
  command -v "$tool" >/dev/null || { echo "[setup] $tool is required (see README: Prerequisites)" >&2; exit 1; }
done
go_minor=$(go env GOVERSION | sed -E 's/^go1\.([0-9]+).*/\1/')
[ "$go_minor" -ge 26 ] || { echo "[setup] Go >= 1.26 is required, found $(go env GOVERSION)" >&2; exit 1; }
if [ ! -d node_modules ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  echo "[setup] installing npm packages" >&2
  npm ci --no-audit --no-fund >&2
fi
bash test/cluster/build-binaries.sh >/dev/null
echo "[setup] ready: Node $(node --version), cluster binaries in ${LEPTON_BIN_DIR:-$HOME/.cache/lepton/bin/k8s-v1.36.3}" >&2
