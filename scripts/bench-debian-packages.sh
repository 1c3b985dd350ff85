#!/usr/bin/env bash
# Installs the Debian packages bench/training-speed.ts compares the runtime with, when missing:
# PyTorch on CPU, NumPy, OpenBLAS (the bench puts it first on LD_LIBRARY_PATH: the reference
# BLAS python3-torch comes with is about 15x slower at matrix multiply) and Fashion-MNIST as IDX
# files. Bench only: nothing in CI or `npm test` needs them. Needs root and apt-get.
#
#   bash scripts/bench-debian-packages.sh
set -euo pipefail

PACKAGES=(python3-torch python3-numpy libopenblas0-pthread dataset-fashion-mnist)
missing=()
for p in "${PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then
  exit 0
fi
if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null; then
  echo "[bench] ${missing[*]} missing; install them as root with apt-get" >&2
  exit 1
fi
echo "[bench] installing ${missing[*]}" >&2
(apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}") >&2
