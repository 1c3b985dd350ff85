#!/usr/bin/env bash
# Builds the local cluster's binaries (etcd, kube-apiserver, kube-controller-manager,
# kube-scheduler, kubectl, kwok, helm and kube-score to test the chart, promtool and prometheus
# to check and scrape the operator's metrics, and versitygw, the cluster's S3 server) from the
# Go module proxy and caches them by version outside the repository. Skips what already exists.
# Needs Go >= 1.26.
#
#   LEPTON_BIN_DIR   where to put them (default: ~/.cache/lepton/bin/k8s-<version>)
#
# k8s.io/kubernetes cannot be `go install`ed (its go.mod replaces the staging modules with
# local paths), so we build it through a throwaway wrapper module that pins every staging
# module to its published v0.<minor>.<patch> tag.
set -euo pipefail

K8S_VERSION=${K8S_VERSION:-v1.36.3}
ETCD_VERSION=${ETCD_VERSION:-v3.6.14}
KWOK_VERSION=${KWOK_VERSION:-v0.8.0}
HELM_VERSION=${HELM_VERSION:-v3.22.0}
KUBE_SCORE_VERSION=${KUBE_SCORE_VERSION:-v1.20.0}
# The Go module version of Prometheus 3.16.0 (Prometheus tags each release twice).
PROMETHEUS_VERSION=${PROMETHEUS_VERSION:-v0.316.0}
VERSITYGW_VERSION=${VERSITYGW_VERSION:-v1.8.0}
OUT=${LEPTON_BIN_DIR:-$HOME/.cache/lepton/bin/k8s-$K8S_VERSION}
mkdir -p "$OUT"
export GOFLAGS=${GOFLAGS:--mod=mod}
export CGO_ENABLED=0

log() { printf '[build-binaries %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
have() { [ -x "$OUT/$1" ]; }

# Prints a dot every 15 s while a long build runs, so a newcomer sees it is alive.
with_heartbeat() {
  local label=$1; shift
  local start=$SECONDS
  ( while sleep 15; do log "$label: still building ($((SECONDS - start))s)"; done ) &
  local hb=$!
  local rc=0
  "$@" || rc=$?
  kill "$hb" 2>/dev/null || true
  wait "$hb" 2>/dev/null || true
  return $rc
}

build_kubernetes() {
  local missing=()
  for c in kube-apiserver kube-controller-manager kube-scheduler kubectl; do
    have "$c" || missing+=("$c")
  done
  [ ${#missing[@]} -eq 0 ] && { log "kubernetes $K8S_VERSION: cached in $OUT"; return; }
  log "kubernetes $K8S_VERSION: building ${missing[*]} (cold: ~30 min on 2 cores)"
  local staging=v0.${K8S_VERSION#v1.} minor
  minor=$(echo "$K8S_VERSION" | cut -d. -f2)
  local w; w=$(mktemp -d); trap 'rm -rf "$w"' RETURN
  (
    cd "$w"
    go mod init local.test/k8sbins >/dev/null 2>&1
    local gomod
    gomod=$(go mod download -json "k8s.io/kubernetes@$K8S_VERSION" | sed -n 's/.*"GoMod": "\(.*\)".*/\1/p')
    go mod edit -require="k8s.io/kubernetes@$K8S_VERSION"
    grep -E '^godebug ' "$gomod" >> go.mod || true
    for m in $(sed -n 's#^[[:space:]]*\(k8s\.io/[A-Za-z0-9._-]*\) => \./staging/.*#\1#p' "$gomod"); do
      go mod edit -replace="$m=$m@$staging"
    done
    for c in "${missing[@]}"; do go mod edit -tool="k8s.io/kubernetes/cmd/$c"; done
    log "resolving modules"
    go mod tidy 2>&1 | grep -v '^go: downloading' || true
    local v="-X k8s.io/component-base/version" c="-X k8s.io/client-go/pkg/version"
    local ldf="-s -w $v.gitVersion=$K8S_VERSION $v.gitMajor=1 $v.gitMinor=$minor $v.gitTreeState=clean"
    ldf="$ldf $c.gitVersion=$K8S_VERSION $c.gitMajor=1 $c.gitMinor=$minor $c.gitTreeState=clean"
    local pkgs=(); for c in "${missing[@]}"; do pkgs+=("k8s.io/kubernetes/cmd/$c"); done
    with_heartbeat kubernetes go build -p 2 -trimpath -ldflags "$ldf" -o "$OUT/" "${pkgs[@]}"
  )
  "$OUT/kube-apiserver" --version >&2
}

build_etcd() {
  have etcd && { log "etcd $ETCD_VERSION: cached"; return; }
  log "etcd $ETCD_VERSION: building"
  local w; w=$(mktemp -d); trap 'rm -rf "$w"' RETURN
  (
    cd "$w"
    go mod init local.test/etcdbin >/dev/null 2>&1
    go mod edit -require="go.etcd.io/etcd/server/v3@$ETCD_VERSION" -tool=go.etcd.io/etcd/server/v3
    go mod tidy 2>&1 | grep -v '^go: downloading' || true
    with_heartbeat etcd go build -trimpath -ldflags "-s -w" -o "$OUT/etcd" go.etcd.io/etcd/server/v3
  )
  "$OUT/etcd" --version >&2 | head -1
}

build_kwok() {
  have kwok && { log "kwok $KWOK_VERSION: cached"; return; }
  log "kwok $KWOK_VERSION: building"
  with_heartbeat kwok env GOBIN="$OUT" go install -trimpath -ldflags "-s -w" "sigs.k8s.io/kwok/cmd/kwok@$KWOK_VERSION"
  # kwok's stock stage definitions ship inside its module; keep the CRD next to the binary.
  local dir; dir=$(go env GOMODCACHE)/sigs.k8s.io/kwok@$KWOK_VERSION
  [ -d "$dir" ] && cp -f "$dir/kustomize/crd/bases/"*.yaml "$OUT/" 2>/dev/null || true
}

build_helm() {
  # The stamp marks a helm built with the Kubernetes version below (older caches lack it).
  have helm && [ -e "$OUT/.helm-kube-version" ] && { log "helm $HELM_VERSION: cached"; return; }
  log "helm $HELM_VERSION: building"
  # As helm's Makefile does: `helm template` and `helm lint` assume the Kubernetes version of the
  # client-go that helm is built with (else v1.20, which a chart's kubeVersion >= 1.30 refuses).
  local gomod k8s
  gomod=$(go mod download -json "helm.sh/helm/v3@$HELM_VERSION" | sed -n 's/.*"GoMod": "\(.*\)".*/\1/p')
  k8s=$(sed -n 's/^[[:space:]]*k8s.io\/client-go v0\.\([0-9]*\)\..*/\1/p' "$gomod" | head -1)
  local v="-X helm.sh/helm/v3/internal/version.version=$HELM_VERSION"
  for p in helm.sh/helm/v3/pkg/chartutil helm.sh/helm/v3/pkg/lint/rules; do
    v="$v -X $p.k8sVersionMajor=1 -X $p.k8sVersionMinor=$k8s"
  done
  with_heartbeat helm env GOBIN="$OUT" go install -trimpath -ldflags "-s -w $v" "helm.sh/helm/v3/cmd/helm@$HELM_VERSION"
  echo "v1.$k8s" > "$OUT/.helm-kube-version"
}

# kube-score: the chart's and the manifests' objects checked against its best-practice rules.
build_kube_score() {
  have kube-score && { log "kube-score $KUBE_SCORE_VERSION: cached"; return; }
  log "kube-score $KUBE_SCORE_VERSION: building"
  local v="-X main.version=$KUBE_SCORE_VERSION"
  with_heartbeat kube-score env GOBIN="$OUT" go install -trimpath -ldflags "-s -w $v" \
    "github.com/zegl/kube-score/cmd/kube-score@$KUBE_SCORE_VERSION"
  "$OUT/kube-score" version 2>&1 | sed -n 1p >&2
}

build_prometheus() {
  have promtool && have prometheus && { log "prometheus $PROMETHEUS_VERSION: cached"; return; }
  log "prometheus $PROMETHEUS_VERSION: building promtool and prometheus"
  # v0.316.0 is release 3.16.0: the module's minor is major * 100 + minor.
  local minor; minor=$(echo "$PROMETHEUS_VERSION" | cut -d. -f2)
  local release=$((minor / 100)).$((minor % 100)).${PROMETHEUS_VERSION##*.}
  local ldf="-s -w -X github.com/prometheus/common/version.Version=$release"
  # remove_all_sd leaves static, file and HTTP discovery: the tests scrape addresses they know,
  # and the cloud providers' SDKs would double the build. No UI assets (builtinassets): the
  # tests use the HTTP API only.
  local mod=github.com/prometheus/prometheus
  with_heartbeat prometheus env GOBIN="$OUT" go install -trimpath -tags remove_all_sd -ldflags "$ldf" \
    "$mod/cmd/promtool@$PROMETHEUS_VERSION" "$mod/cmd/prometheus@$PROMETHEUS_VERSION"
  "$OUT/promtool" --version 2>&1 | sed -n 1p >&2
}

# The cluster's S3 server. versitygw: Apache-2.0, maintained, and POSIX-backed (a bucket is a
# folder, an object a file), so tests can look at what a job wrote; MinIO's server is AGPL.
build_versitygw() {
  have versitygw && { log "versitygw $VERSITYGW_VERSION: cached"; return; }
  log "versitygw $VERSITYGW_VERSION: building (cold: ~2 min)"
  local v="-X main.Version=$VERSITYGW_VERSION"
  with_heartbeat versitygw env GOBIN="$OUT" go install -trimpath -ldflags "-s -w $v" \
    "github.com/versity/versitygw/cmd/versitygw@$VERSITYGW_VERSION"
  "$OUT/versitygw" --version 2>&1 | sed -n 1p >&2
}

build_etcd
build_kwok
build_kubernetes
build_helm
build_kube_score
build_prometheus
build_versitygw
log "all binaries ready in $OUT"
echo "$OUT"
