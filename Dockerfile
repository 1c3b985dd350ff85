# syntax=docker/dockerfile:1
# The operator image:   docker build -t lepton-ai/operator:0.1.0 .
# (Not built in this repository's CI, which has no Docker engine; see README.)
FROM node:24-bookworm-slim AS build
WORKDIR /src
COPY package.json package-lock.json ./
RUN npm ci --no-audit --no-fund
COPY tsconfig.json tsconfig.build.json ./
COPY src ./src
RUN npm run build && npm prune --omit=dev

FROM node:24-bookworm-slim AS operator
ENV NODE_ENV=production
WORKDIR /app
COPY --from=build /src/node_modules ./node_modules
COPY --from=build /src/dist ./dist
COPY package.json ./
USER node
EXPOSE 8080 8081
# A young generation of 2 MB semi-spaces instead of V8's default (up to 32 MB each on a host with
# much memory): a burst of 500 new jobs then adds tens of MB to the resident memory instead of
# about a hundred, for a few more scavenges. The old generation is left to Node, which sizes it
# from the container's memory limit.
ENTRYPOINT ["node", "--max-semi-space-size=2", "dist/src/main.js"]
