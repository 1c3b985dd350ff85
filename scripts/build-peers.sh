#!/usr/bin/env bash
# Builds the operators bench/trainingjobs.ts measures side by side with ours, cached outside
# the repository like the cluster binaries (skipped when the cache is complete). Bench only:
# nothing in CI or `npm test` needs them.
#
#   bash scripts/build-peers.sh
#
# Kubeflow training-operator v1.8.1, from the Go module proxy (needs Go; about 10 minutes cold
# on 2 cores): ~/.cache/lepton/bin/peers/training-operator-v1.8.1/
#   training-operator.v1   the binary
#   crds/                  its PyTorchJob CRD (the only scheme the bench enables)
set -euo pipefail

VERSION=v1.8.1
MODULE=github.com/kubeflow/training-operator
DEST="${LEPTON_PEERS_DIR:-$HOME/.cache/lepton/bin/peers}/training-operator-$VERSION"
CRD=kubeflow.org_pytorchjobs.yaml

if [[ -x "$DEST/training-operator.v1" && -f "$DEST/crds/$CRD" ]]; then
  echo "training-operator $VERSION is cached in $DEST"
  exit 0
fi
command -v go >/dev/null || {
  echo "Go is needed to build training-operator $VERSION" >&2
  exit 1
}

mkdir -p "$DEST/crds"
echo "Building training-operator $VERSION into $DEST"
GOBIN="$DEST" go install "$MODULE/cmd/training-operator.v1@$VERSION"
# The module cache is read-only; a copy keeps the CRD next to the binary it belongs to.
install -m 0644 "$(go env GOMODCACHE)/$MODULE@$VERSION/manifests/base/crds/$CRD" "$DEST/crds/$CRD"
echo "training-operator $VERSION is in $DEST"
