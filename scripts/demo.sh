#!/usr/bin/env bash
# The local demo, from a fresh clone: installs what is missing, starts the local cluster (real
# control plane + simulated GPU nodes), installs the CRDs, runs the operator from this checkout
# on free ports, applies the examples and shows the phase and conditions of each, then runs a pod,
# TrainingJobs (one on Parquet in the cluster's S3 server), an InferenceService, a hyperparameter search and a federated
# campaign for real on the local node. `npm run demo -- down` stops everything.
set -euo pipefail
cd "$(dirname "$0")/.."
STATE=.cluster
if [ "${1:-}" = down ]; then
  source scripts/env.sh
  if [ -f "$STATE/operator.pid" ] && kill -0 "$(cat "$STATE/operator.pid")" 2>/dev/null; then
    kill -TERM "$(cat "$STATE/operator.pid")"
    echo "Stopped the operator"
  fi
  rm -f "$STATE/operator.pid" "$STATE/operator.ports"
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

# The operator this demo started, if it still runs: the recorded pid is alive, runs src/main.ts
# (not some later process that got the same pid) and its ports were recorded.
demo_operator() {
  [ -f "$STATE/operator.pid" ] && [ -f "$STATE/operator.ports" ] || return 1
  local pid
  pid=$(cat "$STATE/operator.pid")
  kill -0 "$pid" 2>/dev/null && ps -o args= -p "$pid" | grep -q 'src/main.ts'
}

# Two ports nothing listens on, from the kernel (port 0), held together so that they differ.
free_ports() {
  node -e '
    const net = require("node:net");
    const servers = [net.createServer(), net.createServer()];
    Promise.all(servers.map((s) => new Promise((ok) => s.listen(0, "127.0.0.1", () => ok(s.address().port)))))
      .then((ports) => { console.log(ports.join(" ")); for (const s of servers) s.close(); });'
}

if demo_operator; then
  read -r METRICS_PORT PROBE_PORT <"$STATE/operator.ports"
  echo "== The operator is already running (pid $(cat "$STATE/operator.pid"))"
else
  if [ -f "$STATE/operator.pid" ] && kill -0 "$(cat "$STATE/operator.pid")" 2>/dev/null \
    && ps -o args= -p "$(cat "$STATE/operator.pid")" | grep -q 'src/main.ts'; then
    # Started by an earlier version of this script, on ports it did not record.
    kill -TERM "$(cat "$STATE/operator.pid")"
  fi
  read -r METRICS_PORT PROBE_PORT < <(free_ports)
  node src/main.ts --kubeconfig="$KUBECONFIG" --metrics-bind-address="127.0.0.1:$METRICS_PORT" \
    --health-probe-bind-address="127.0.0.1:$PROBE_PORT" >"$STATE/logs/operator.log" 2>&1 &
  echo $! >"$STATE/operator.pid"
  echo "$METRICS_PORT $PROBE_PORT" >"$STATE/operator.ports"
  echo "== Started the operator (pid $!, log $STATE/logs/operator.log)"
fi
# Ready means: our process is alive, has logged that it listens on the probe port we gave it
# (so the port is its own: another process on that port makes it exit with EADDRINUSE), and
# its /readyz answers.
OPERATOR_PID=$(cat "$STATE/operator.pid")
ready=
for _ in $(seq 1 120); do
  if ! kill -0 "$OPERATOR_PID" 2>/dev/null; then
    echo "The operator (pid $OPERATOR_PID) exited; the end of $STATE/logs/operator.log:" >&2
    tail -n 5 "$STATE/logs/operator.log" >&2
    rm -f "$STATE/operator.pid" "$STATE/operator.ports"
    exit 1
  fi
  if grep 'Started the manager' "$STATE/logs/operator.log" | grep -q "\"probes\":\"127.0.0.1:$PROBE_PORT\"" \
    && curl -sf "http://127.0.0.1:$PROBE_PORT/readyz" >/dev/null; then
    ready=1
    break
  fi
  sleep 0.5
done
[ -n "$ready" ] || { echo "The operator did not become ready; see $STATE/logs/operator.log" >&2; exit 1; }

echo "== Applying the examples"
# The claims the examples read from and write to (pvc://datasets/..., pvc://models/...); the local
# node provisions a volume for each, so their pods can be scheduled.
kubectl apply --server-side -n demo -f - >/dev/null <<'CLAIMS'
apiVersion: v1
kind: PersistentVolumeClaim
metadata: { name: datasets }
spec: { accessModes: [ReadWriteMany], resources: { requests: { storage: 1Gi } } }
---
apiVersion: v1
kind: PersistentVolumeClaim
metadata: { name: models }
spec: { accessModes: [ReadWriteMany], resources: { requests: { storage: 1Gi } } }
CLAIMS
kubectl apply --server-side -n demo -f examples/
# Waits until the operator has a settled word on every example: it has seen the current spec, said
# something in a condition, and a TrainingJob has left Pending unless a condition says why not.
settled() {
  kubectl get lepton -n demo -o json | node -e '
    const items = JSON.parse(require("node:fs").readFileSync(0, "utf8")).items;
    const waiting = items.filter((o) => {
      const s = o.status ?? {};
      const conditions = s.conditions ?? [];
      if (s.observedGeneration !== o.metadata.generation || conditions.length === 0) return true;
      return o.kind === "TrainingJob" && (!s.phase || (s.phase === "Pending" && conditions.every((c) => c.status === "True")));
    });
    process.exit(waiting.length ? 1 : 0);'
}
for _ in $(seq 1 120); do
  settled && break
  sleep 0.5
done
echo "== What the operator made of them (kubectl get lepton -n demo)"
kubectl get lepton -n demo
echo
# Every example with its phase and each condition as Type=Status/Reason; anything not
# implemented yet says so in the table.
kubectl get lepton -n demo -o json | node -e '
  const items = JSON.parse(require("node:fs").readFileSync(0, "utf8")).items;
  const rows = [["KIND", "NAME", "PHASE", "CONDITIONS"]];
  const notes = [];
  let silent = 0;
  for (const o of items) {
    const s = o.status ?? {};
    const conditions = s.conditions ?? [];
    if (conditions.length === 0) silent++;
    rows.push([
      o.kind,
      o.metadata.name,
      s.phase ?? "-",
      conditions.map((c) => `${c.type}=${c.status}/${c.reason}`).join(" ") || "NO STATUS",
    ]);
    const notImplemented = conditions.find((c) => c.reason === "NotImplemented");
    if (notImplemented) notes.push(`${o.kind}/${o.metadata.name}: ${notImplemented.message}`);
    else if (!s.phase && conditions.length)
      notes.push(`${o.kind}/${o.metadata.name}: spec checked (Accepted); the operator runs no ${o.kind} workload yet`);
  }
  const widths = rows[0].map((_, i) => Math.max(...rows.map((r) => r[i].length)));
  for (const r of rows) console.log(r.map((c, i) => c.padEnd(widths[i])).join("   ").trimEnd());
  if (notes.length) console.log(`\nNot implemented yet:\n  ${notes.join("\n  ")}`);
  if (silent) {
    console.error(`\n${silent} example(s) got no status at all; see .cluster/logs/operator.log`);
    process.exit(1);
  }'
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

echo "== An InferenceService that really serves the trained model: two replicas on the local node"
kubectl apply --server-side -n demo -f - >/dev/null <<'ISVC'
apiVersion: lepton.ai/v1alpha1
kind: InferenceService
metadata: { name: moons }
spec:
  model:
    trainingJobRef: { name: moons }
    minMetric: { name: valAccuracy, value: 0.6 }
  minReplicas: 2
  batcher: { maxBatchSize: 16, maxLatencyMs: 2 }
  podTemplate:
    spec:
      nodeSelector: { type: local }
      tolerations:
        - { key: lepton.ai/local-node, operator: Exists, effect: NoSchedule }
        - { key: nvidia.com/gpu, operator: Exists, effect: NoSchedule }
ISVC
kubectl wait --for=condition=Ready infsvc/moons -n demo --timeout=120s >/dev/null \
  || { kubectl get infsvc moons -n demo -o yaml; exit 1; }
kubectl get infsvc moons -n demo
# No kube-proxy here: ask a ready pod address of the Service's endpoints, as kube-proxy would.
ep=$(kubectl get endpointslices -n demo -l kubernetes.io/service-name=moons-predictor -o json | node -e '
  const slices = JSON.parse(require("node:fs").readFileSync(0, "utf8")).items;
  const ready = slices.flatMap((s) => (s.endpoints ?? []).filter((e) => e.conditions?.ready !== false));
  console.log(ready[0]?.addresses[0] ?? "");')
echo "\$ curl -d '{\"instances\": [[0.5, -0.2]]}' http://$ep:8080/v1/models/moons:predict"
curl -s -d '{"instances": [[0.5, -0.2]]}' "http://$ep:8080/v1/models/moons:predict"
echo
input=$(curl -s "http://$ep:8080/v2/models/moons" | node -e 'console.log(JSON.parse(require("node:fs").readFileSync(0, "utf8")).inputs[0].name)')
echo "\$ curl -d '{\"inputs\": [{\"name\": \"$input\", \"shape\": [1, 2], \"datatype\": \"FP32\", \"data\": [0.5, -0.2]}]}' http://$ep:8080/v2/models/moons/infer"
curl -s -d "{\"inputs\": [{\"name\": \"$input\", \"shape\": [1, 2], \"datatype\": \"FP32\", \"data\": [0.5, -0.2]}]}" "http://$ep:8080/v2/models/moons/infer"
echo
echo

echo "== A TrainingJob on a data lake: partitioned Parquet in the cluster's S3 server (versitygw), streamed by two workers"
S3_ENDPOINT=$(node -e 'console.log(JSON.parse(require("node:fs").readFileSync(".cluster/s3.json", "utf8")).endpoint)')
node scripts/demo-lake.ts write demo-lake moons
# The keys stay in a Secret; the operator mounts it read-only into the pods.
kubectl create secret generic demo-lake-creds -n demo --dry-run=client -o yaml \
  --from-literal=AWS_ACCESS_KEY_ID="$(node -e 'console.log(JSON.parse(require("node:fs").readFileSync(".cluster/s3.json", "utf8")).accessKeyId)')" \
  --from-literal=AWS_SECRET_ACCESS_KEY="$(node -e 'console.log(JSON.parse(require("node:fs").readFileSync(".cluster/s3.json", "utf8")).secretAccessKey)')" \
  | kubectl apply --server-side -f - >/dev/null
kubectl delete trainingjob moons-lake -n demo --ignore-not-found >/dev/null
kubectl apply --server-side -n demo -f - >/dev/null <<JOB
apiVersion: lepton.ai/v1alpha1
kind: TrainingJob
metadata: { name: moons-lake }
spec:
  storage: { s3: { endpoint: "$S3_ENDPOINT", secretRef: { name: demo-lake-creds } } }
  model: { preset: mlp, hiddenUnits: [16, 16] }
  dataset:
    uri: s3://demo-lake/moons/
    labelColumn: shape
    partitionFilter: [{ key: date, operator: Gt, values: ["2026-11-29"] }]
    validationSplit: 0.2
  hyperparameters: { epochs: 20, learningRate: 0.01 }
  workers: 2
  output: { uri: s3://demo-lake/models/moons-lake }
  podTemplate:
    spec:
      nodeSelector: { type: local }
      tolerations:
        - { key: lepton.ai/local-node, operator: Exists, effect: NoSchedule }
        - { key: nvidia.com/gpu, operator: Exists, effect: NoSchedule }
JOB
kubectl wait --for=jsonpath='{.status.phase}'=Succeeded trainingjob/moons-lake -n demo --timeout=180s >/dev/null \
  || { kubectl get trainingjob moons-lake -n demo -o yaml; exit 1; }
kubectl get trainingjob moons-lake -n demo
kubectl get trainingjob moons-lake -n demo -o jsonpath='model: {.status.model.uri}  digest: {.status.model.digest}{"\n"}data:  {.status.dataset.uri} {.status.dataset.files} files, {.status.dataset.rows} rows, {.status.dataset.digest}{"\n"}'
echo "The files the model was trained on, from lepton.json next to it in S3 (the partition filter left date=2026-11-29 out):"
node scripts/demo-lake.ts card demo-lake models/moons-lake/lepton.json
echo

echo "== A hyperparameter search that really trains: TPE over learning rate and hidden units, ASHA pruning, on the local node"
kubectl delete trainingjob moons-search -n demo --ignore-not-found >/dev/null
kubectl apply --server-side -n demo -f - >/dev/null <<'JOB'
apiVersion: lepton.ai/v1alpha1
kind: TrainingJob
metadata: { name: moons-search }
spec:
  model: { preset: mlp }
  dataset: { synthetic: { generator: moons, samples: 600, noise: 0.2 }, validationSplit: 0.25 }
  hyperparameters: { epochs: 12, seed: 3 }
  output: { uri: pvc://models/moons-search }
  tuning:
    objectives: [{ metric: valAccuracy, direction: Maximize }]
    parameters:
      - { name: hyperparameters.learningRate, searchSpace: { logUniform: { min: 0.0005, max: 0.2 } } }
      - { name: model.hiddenUnits, searchSpace: { categorical: { choices: ["4", "16", "32,32"] } } }
    searchAlgorithm: { tpe: { startupTrials: 3 } }
    numTrials: 6
    parallelTrials: 2
    seed: 1
    earlyStopping: { asha: { minResource: 2, reductionFactor: 3 } }
  podTemplate:
    spec:
      nodeSelector: { type: local }
      tolerations:
        - { key: lepton.ai/local-node, operator: Exists, effect: NoSchedule }
        - { key: nvidia.com/gpu, operator: Exists, effect: NoSchedule }
JOB
kubectl wait --for=jsonpath='{.status.phase}'=Succeeded trainingjob/moons-search -n demo --timeout=300s >/dev/null \
  || { kubectl get trainingjob moons-search -n demo -o yaml; exit 1; }
kubectl get trainingjob moons-search -n demo
kubectl get trainingjob -n demo -l lepton.ai/tuning=moons-search \
  -o custom-columns='TRIAL:.metadata.name,PHASE:.status.phase,REASON:.status.conditions[?(@.type=="Succeeded")].reason,LR:.spec.hyperparameters.learningRate,HIDDEN:.spec.model.hiddenUnits,VAL-ACC:.status.progress.valAccuracy'
kubectl get trainingjob moons-search -n demo -o jsonpath='best trial: {.status.tuning.bestTrial.name} {.status.tuning.bestTrial.parameters}  model: {.status.model.uri}{"\n"}'
echo

echo "== A federated campaign that really trains: three sites on the local node, secure aggregation"
kubectl delete trainingjob blobs-fl -n demo --ignore-not-found >/dev/null
kubectl apply --server-side -n demo -f - >/dev/null <<'JOB'
apiVersion: lepton.ai/v1alpha1
kind: TrainingJob
metadata: { name: blobs-fl }
spec:
  model: { preset: mlp, hiddenUnits: [16] }
  # The aggregator evaluates each new global model on this.
  dataset: { synthetic: { generator: blobs, samples: 900, features: 4, classes: 3, noise: 0.6, seed: 11 } }
  hyperparameters: { epochs: 2, batchSize: 32, learningRate: 0.02, seed: 5 }
  output: { uri: pvc://models/blobs-fl }
  federated:
    rounds: 3
    timeoutSeconds: 600
    participants:
      # Each site holds a label-skewed third (Dirichlet, alpha 0.5) of the same data.
      - { name: site-a, dataset: { synthetic: { generator: blobs, samples: 900, features: 4, classes: 3, noise: 0.6, seed: 11 }, partition: { count: 3, index: 0, alpha: 0.5, seed: 3 } } }
      - { name: site-b, dataset: { synthetic: { generator: blobs, samples: 900, features: 4, classes: 3, noise: 0.6, seed: 11 }, partition: { count: 3, index: 1, alpha: 0.5, seed: 3 } } }
      - { name: site-c, dataset: { synthetic: { generator: blobs, samples: 900, features: 4, classes: 3, noise: 0.6, seed: 11 }, partition: { count: 3, index: 2, alpha: 0.5, seed: 3 } } }
    privacy: { secureAggregation: {} }
  podTemplate:
    spec:
      nodeSelector: { type: local }
      tolerations:
        - { key: lepton.ai/local-node, operator: Exists, effect: NoSchedule }
        - { key: nvidia.com/gpu, operator: Exists, effect: NoSchedule }
JOB
kubectl wait --for=jsonpath='{.status.phase}'=Succeeded trainingjob/blobs-fl -n demo --timeout=300s >/dev/null \
  || { kubectl get trainingjob blobs-fl -n demo -o yaml; kubectl get fround -n demo -o yaml; exit 1; }
kubectl get fround -n demo -l lepton.ai/campaign=blobs-fl -o wide
kubectl get trainingjob blobs-fl -n demo -o jsonpath='global model: {.status.model.uri}  digest: {.status.model.digest}{"\n"}'
echo
echo "Metrics: curl http://127.0.0.1:$METRICS_PORT/metrics"
echo "kubectl: export KUBECONFIG=$KUBECONFIG; $BIN/kubectl get lepton -A"
echo "Stop:    npm run demo -- down"
