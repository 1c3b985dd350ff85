# syntax=docker/dockerfile:1
# The project's three images, one target each (scripts/build-images.sh builds and pushes them):
#
#   docker build --target operator    -t lepton-ai/operator:0.1.0        .
#   docker build --target runtime     -t lepton-ai/runtime:0.1.0         .   # CPU: tfjs + wasm
#   docker build --target runtime-gpu -t lepton-ai/runtime:0.1.0-gpu     .   # tfjs-node-gpu
#
# The operator's defaults (--runtime-image, --runtime-gpu-image) name the two runtime images.
# Every final image runs as a numeric user (the kubelet can only check a number against
# runAsNonRoot) and writes nothing outside /tmp, so it runs with a read-only root filesystem and
# an emptyDir on /tmp; workload pods get that emptyDir from the operator (src/engine/pod.ts).
# test/unit/ship/dockerfile.test.ts checks the stages, users and entry points against the code
# and runs the steps that need no Docker engine; this repository's CI has none.

ARG NODE_IMAGE=node:24-bookworm-slim
# CUDA 11.2 and cuDNN 8.1: what libtensorflow 2.9.1, under tfjs-node-gpu 4.22, was built against.
ARG CUDA_IMAGE=nvidia/cuda:11.2.2-cudnn8-runtime-ubuntu20.04

FROM ${NODE_IMAGE} AS node

# The whole dependency tree, TypeScript included, and the compiled dist/ that every image runs.
# No install scripts: the only ones are the optional tfjs-node builds, which tsc does not need.
FROM node AS build
WORKDIR /src
COPY package.json package-lock.json ./
RUN npm ci --ignore-scripts --no-audit --no-fund
COPY tsconfig.json tsconfig.build.json ./
COPY src ./src
RUN npm run build

# What the operator loads and nothing else: docker/operator.package.json lists the packages of
# src/main.ts's module graph (no TensorFlow.js, Parquet or S3 client, which only the runtime
# imports) at package.json's versions; npm ci installs that subset at package-lock.json's versions.
FROM node AS operator-deps
WORKDIR /app
COPY docker/operator.package.json ./package.json
COPY package-lock.json ./
RUN npm ci --omit=dev --ignore-scripts --no-audit --no-fund

FROM node AS operator
ENV NODE_ENV=production
WORKDIR /app
COPY --from=operator-deps /app/package.json ./
COPY --from=operator-deps /app/node_modules ./node_modules
COPY --from=build /src/dist ./dist
USER 65532:65532
EXPOSE 8080 8081
# A young generation of 2 MB semi-spaces instead of V8's default (up to 32 MB each on a host with
# much memory): a burst of 500 new jobs then adds tens of MB to the resident memory instead of
# about a hundred, for a few more scavenges. The old generation is left to Node, which sizes it
# from the container's memory limit.
ENTRYPOINT ["node", "--max-semi-space-size=2", "dist/src/main.js"]

# The runtime's production dependencies without the optional tfjs-node builds: TensorFlow.js with
# its wasm backend (the fastest one without a native libtensorflow), Parquet, the S3 client.
FROM node AS runtime-deps
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --omit=dev --omit=optional --ignore-scripts --no-audit --no-fund

# Workload pods give only the mode as args (train, serve, ...); the image supplies the program.
# Pods run as spec.podTemplate's runAsUser, else as the operator's default, which USER repeats.
FROM node AS runtime
ENV NODE_ENV=production HOME=/tmp
WORKDIR /app
COPY package.json ./
COPY --from=runtime-deps /app/node_modules ./node_modules
COPY --from=build /src/dist ./dist
USER 1000:1000
EXPOSE 8080 7070
ENTRYPOINT ["node", "dist/src/runtime/main.js"]

# The same tree plus tfjs-node-gpu, whose install script downloads libtensorflow 2.9.1 (GPU) and
# the prebuilt N-API binding (network needed). tfjs-node, the CPU build, is unpacked by npm ci as
# the other optional package and removed unbuilt; it shares every dependency with tfjs-node-gpu.
FROM node AS runtime-gpu-deps
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --omit=dev --ignore-scripts --no-audit --no-fund \
 && npm rebuild @tensorflow/tfjs-node-gpu --foreground-scripts \
 && rm -rf node_modules/@tensorflow/tfjs-node

# Node 24 on NVIDIA's CUDA 11.2 / cuDNN 8.1 runtime (Ubuntu 20.04, glibc 2.31: Node's official
# Linux binaries need 2.28). The NVIDIA container toolkit mounts the driver at run time.
FROM ${CUDA_IMAGE} AS runtime-gpu
COPY --from=node /usr/local/bin/node /usr/local/bin/node
# CUDA caches kernels it compiles from PTX under $HOME/.nv unless told otherwise: keep it in /tmp.
ENV NODE_ENV=production HOME=/tmp CUDA_CACHE_PATH=/tmp/.nv/ComputeCache
WORKDIR /app
COPY package.json ./
COPY --from=runtime-gpu-deps /app/node_modules ./node_modules
COPY --from=build /src/dist ./dist
USER 1000:1000
EXPOSE 8080 7070
ENTRYPOINT ["node", "dist/src/runtime/main.js"]
