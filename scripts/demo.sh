#!/usr/bin/env bash
# The local demo, from a fresh clone: installs what is missing, starts the local cluster (real
# control plane + simulated GPU nodes), installs the CRDs, runs the operator from this checkout
# and applies the examples. `npm run demo -- down` stops everything.
set -euo pipefail
cd "$(dirname "$0")/.."
STATE=.cluster
if [ "${1:-}" = down ]; then
  source scripts/env.sh
  if [ -f "$STATE/operator.pid" ] && kill -0 "$(cat "$STATE/operator.pid")" 2>/dev/null; then
    kill -TERM "$(cat "$STATE/operator.pid")"
    echo "Stopped the operator"
  fi
  rm -f "$STATE/operator.pid"
  npm run --silent cluster -- down
  exit 0
fi

bash scripts/setup.sh
source scripts/env.sh
npm run --silent cluster -- up >/dev/null
export KUBECONFIG=$PWD/$STATE/kubeconfig
BIN=${LEPTON_BIN_DIR:-$HOME/.cache/lepton/bin/k8s-v1.36.3}
kubectl() { "$BIN/kubectl" "$@"; }

echo "== Nodes: kwok simulates GPU nodes; the real kube-scheduler places pods on them"
kubectl get nodes -L nvidia.com/gpu.product -L nvidia.com/gpu.count
kubectl apply --server-side -f crds/ >/dev/null
kubectl wait --for=condition=Established -f crds/ >/dev/null
kubectl create namespace lepton-system --dry-run=client -o yaml | kubectl apply --server-side -f - >/dev/null
kubectl create namespace demo --dry-run=client -o yaml | kubectl apply --server-side -f - >/dev/null

if [ -f "$STATE/operator.pid" ] && kill -0 "$(cat "$STATE/operator.pid")" 2>/dev/null; then
  echo "== The operator is already running (pid $(cat "$STATE/operator.pid"))"
else
  node src/main.ts --kubeconfig="$KUBECONFIG" --metrics-bind-address=127.0.0.1:18080 \
    --health-probe-bind-address=127.0.0.1:18081 >"$STATE/logs/operator.log" 2>&1 &
  echo $! >"$STATE/operator.pid"
  echo "== Started the operator (pid $!, log $STATE/logs/operator.log)"
fi
for _ in $(seq 1 60); do
  curl -sf http://127.0.0.1:18081/readyz >/dev/null && break
  sleep 1
done
curl -sf http://127.0.0.1:18081/readyz >/dev/null || { echo "The operator did not become ready; see $STATE/logs/operator.log" >&2; exit 1; }

echo "== Applying the examples"
kubectl apply --server-side -n demo -f examples/
for _ in $(seq 1 30); do
  pending=$(kubectl get lepton -n demo -o jsonpath='{range .items[*]}{.status.observedGeneration}{"\n"}{end}' | grep -c '^$' || true)
  [ "$pending" = 0 ] && break
  sleep 1
done
echo "== What the operator made of them (kubectl get lepton -n demo)"
kubectl get lepton -n demo
echo
kubectl get lepton -n demo -o custom-columns='KIND:.kind,NAME:.metadata.name,ACCEPTED:.status.conditions[?(@.type=="Accepted")].status,REASON:.status.conditions[?(@.type=="Accepted")].reason'
echo
echo "== A pod that really runs, on the local node (a process in its own network namespace)"
kubectl delete pod hello -n demo --ignore-not-found >/dev/null
kubectl apply --server-side -n demo -f - >/dev/null <<'POD'
apiVersion: v1
kind: Pod
metadata: { name: hello }
spec:
  nodeSelector: { lepton.ai/local-node: "true" }
  tolerations: [{ operator: Exists }]   # the local-node and nvidia.com/gpu taints
  containers:
    - name: web
      image: node:24
      args: [-e, "require('http').createServer((q, s) => s.end('hello from ' + process.env.HOSTNAME + '\\n')).listen(8080, process.env.LEPTON_POD_IP)"]
      readinessProbe: { httpGet: { path: /, port: 8080 }, periodSeconds: 1 }
POD
kubectl wait --for=condition=Ready pod/hello -n demo --timeout=60s >/dev/null
kubectl get pod hello -n demo -o wide
ip=$(kubectl get pod hello -n demo -o jsonpath='{.status.podIP}')
echo "\$ curl http://$ip:8080/"
curl -s "http://$ip:8080/"
echo
echo "== A TrainingJob that really trains: two workers on the local node, averaging through the chief"
kubectl delete trainingjob moons -n demo --ignore-not-found >/dev/null
kubectl apply --server-side -n demo -f - >/dev/null <<'JOB'
apiVersion: v1
kind: PersistentVolumeClaim
metadata: { name: models }
spec: { accessModes: [ReadWriteMany], resources: { requests: { storage: 1Gi } } }
---
apiVersion: lepton.ai/v1alpha1
kind: TrainingJob
metadata: { name: moons }
spec:
  model: { preset: mlp, hiddenUnits: [16, 16] }
  dataset: { synthetic: { generator: moons, samples: 1000 }, validationSplit: 0.2 }
  hyperparameters: { epochs: 20, learningRate: 0.01 }
  workers: 2
  resources: { gpu: { count: 1, product: Lepton-Local-Simulated-GPU } }
  output: { uri: pvc://models/moons }
  podTemplate:
    spec:
      tolerations: [{ key: lepton.ai/local-node, operator: Exists, effect: NoSchedule }]
JOB
kubectl wait --for=jsonpath='{.status.phase}'=Succeeded trainingjob/moons -n demo --timeout=180s >/dev/null \
  || { kubectl get trainingjob moons -n demo -o yaml; exit 1; }
kubectl get trainingjob moons -n demo
kubectl get trainingjob moons -n demo -o jsonpath='model: {.status.model.uri}  digest: {.status.model.digest}{"\n"}'
echo "worker logs: npm run cluster -- logs -n demo moons-worker-0"
echo
echo "Metrics: curl http://127.0.0.1:18080/metrics"
echo "kubectl: export KUBECONFIG=$KUBECONFIG; $BIN/kubectl get lepton -A"
echo "Stop:    npm run demo -- down"
