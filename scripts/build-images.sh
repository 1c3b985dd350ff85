#!/usr/bin/env bash
# Builds the project's three images from the Dockerfile's targets, and pushes them with --push:
#
#   PREFIX/operator:TAG       target operator     (what the Helm chart and manifests/ run)
#   PREFIX/runtime:TAG        target runtime      (CPU workload pods: TensorFlow.js on wasm)
#   PREFIX/runtime:TAG-gpu    target runtime-gpu  (GPU workload pods: tfjs-node-gpu, CUDA 11.2)
#
# Usage: scripts/build-images.sh [--push] [--dry-run] [--platform P] [PREFIX [TAG]]
#   PREFIX      registry and namespace of the images (default lepton-ai, the operator's
#               defaults; e.g. ghcr.io/you/lepton)
#   TAG         default: package.json's version
#   --push      push each image after building it (log in to the registry first)
#   --dry-run   print the commands instead of running them (needs no container engine)
#   --platform  passed to the build, e.g. linux/amd64 (the GPU image exists only for amd64:
#               libtensorflow's GPU build does)
#   DOCKER      the client to call (default docker; podman and nerdctl take the same arguments)
#
# This repository's CI has no Docker engine, so this script never runs there; its --dry-run
# output is checked by test/unit/ship/dockerfile.test.ts against the Dockerfile and the operator's
# default images. With another PREFIX or TAG, give the operator the runtime images it should put
# in pods: --runtime-image and --runtime-gpu-image (the chart's runtimeImage and runtimeGpuImage).
set -euo pipefail
cd "$(dirname "$0")/.."

push=false
dry_run=false
platform=()
args=()
while [ $# -gt 0 ]; do
  case $1 in
    --push) push=true ;;
    --dry-run) dry_run=true ;;
    --platform)
      [ $# -ge 2 ] || { echo "build-images: --platform needs a value (e.g. linux/amd64)" >&2; exit 2; }
      platform=(--platform "$2")
      shift
      ;;
    --platform=*) platform=(--platform "${1#--platform=}") ;;
    -h | --help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    -*) echo "build-images: unknown flag $1 (see --help)" >&2; exit 2 ;;
    *) args+=("$1") ;;
  esac
  shift
done
[ ${#args[@]} -le 2 ] || { echo "build-images: at most PREFIX and TAG, got: ${args[*]}" >&2; exit 2; }

version=$(sed -n 's/^  "version": "\([^"]*\)",$/\1/p' package.json)
prefix=${args[0]:-lepton-ai}
tag=${args[1]:-$version}
prefix=${prefix%/}
if [ -z "$tag" ] || ! [[ $tag =~ ^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$ ]]; then
  echo "build-images: \"$tag\" is not an image tag (letters, digits, _ . -; at most 128)" >&2
  exit 2
fi
docker=${DOCKER:-docker}

run() {
  if $dry_run; then
    printf '%s\n' "$*"
  else
    printf '+ %s\n' "$*" >&2
    "$@"
  fi
}

# target and image, one pair a line.
images="operator $prefix/operator:$tag
runtime $prefix/runtime:$tag
runtime-gpu $prefix/runtime:$tag-gpu"

while read -r target image; do
  run "$docker" build "${platform[@]}" --target "$target" --tag "$image" .
  if $push; then run "$docker" push "$image"; fi
done <<<"$images"

if ! $dry_run && [ "$prefix/runtime:$tag" != "lepton-ai/runtime:$version" ]; then
  echo "The operator's default runtime images are lepton-ai/runtime:$version(-gpu); run it with" >&2
  echo "  --runtime-image=$prefix/runtime:$tag --runtime-gpu-image=$prefix/runtime:$tag-gpu" >&2
fi
