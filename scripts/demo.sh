#!/usr/bin/env bash
# The local demo, from a fresh clone, in one command: installs what is missing, starts the local
# cluster (real control plane + simulated GPU nodes), installs the CRDs, runs the operator from this
# checkout on free ports, applies the examples and shows the phase and conditions of each, then runs
# for real on the local node, printing their progress as it happens: a TrainingJob (epochs), an
# InferenceService serving its model (the prediction URL, a real prediction), a TrainingJob on Parquet
# in the cluster's S3 server, a hyperparameter search (trials) and a federated campaign (round by
# round). A real Prometheus (scripts/demo-prometheus.ts) scrapes the operator and the workload pods
# from the start. Then it prints how to look, with the values of some of the Grafana dashboard's
# queries, and keeps everything running until Ctrl-C, which stops Prometheus, the operator and the
# cluster (so does Ctrl-C at any point before).
#
#   bash scripts/demo.sh            (npm run demo) waits for Ctrl-C at the end when stdin is a terminal
#   bash scripts/demo.sh --detach   (npm run demo -- --detach) returns at the end, leaving it running
#   bash scripts/demo.sh down       (npm run demo -- down) stops what a detached demo left running
set -euo pipefail
cd "$(dirname "$0")/.."
STATE=.cluster
DETACH=
for arg in "$@"; do
  case "$arg" in
    down | --detach) ;;
    *) echo "usage: bash scripts/demo.sh [--detach | down]" >&2; exit 2 ;;
  esac
done
[[ " $* " == *" --detach "* ]] && DETACH=1
[ -t 0 ] || DETACH=1

stop_operator() {
  [ -f "$STATE/operator.pid" ] || return 0
  local pid
  pid=$(cat "$STATE/operator.pid")
  if kill -0 "$pid" 2>/dev/null && ps -o args= -p "$pid" | grep -q 'src/main.ts'; then
    kill -TERM "$pid"
    for _ in $(seq 1 40); do kill -0 "$pid" 2>/dev/null || break; sleep 0.25; done
    echo "Stopped the operator (pid $pid)"
  fi
  rm -f "$STATE/operator.pid" "$STATE/operator.ports"
}
stop_all() {
  node scripts/demo-prometheus.ts stop --state "$STATE" || true  # it says what failed; stop the rest anyway
  stop_operator
  npm run --silent cluster -- down
}
if [ "${1:-}" = down ]; then
  source scripts/env.sh
  stop_all
  exit 0
fi

# Ctrl-C (or a TERM) at any point stops what the demo started; a failure leaves it running, to look.
interrupted() {
  trap - INT TERM EXIT
  echo
  echo "== Interrupted: stopping Prometheus, the operator and the local cluster"
  stop_all
  exit 130
}
failed() {
  local rc=$?
  [ "$rc" -eq 0 ] && return
  echo >&2
  echo "The demo failed (exit code $rc). The cluster, the operator and Prometheus are left running to look at:" >&2
  echo "  logs in $STATE/logs/ (the operator's: $STATE/logs/operator.log); stop with: npm run demo -- down" >&2
}
trap interrupted INT TERM
trap failed EXIT

T0=$SECONDS
# A section heading with the time since the demo started.
step() { printf '\n== [%d:%02d] %s\n' $(((SECONDS - T0) / 60)) $(((SECONDS - T0) % 60)) "$*"; }
# Follows one object, printing its progress, until it is done (demo-watch.ts exits 1 if it fails).
watch_until_done() { node scripts/demo-watch.ts "$@"; }

bash scripts/setup.sh
source scripts/env.sh
npm run --silent cluster -- up >/dev/null
export KUBECONFIG=$PWD/$STATE/kubeconfig
BIN=${LEPTON_BIN_DIR:-$HOME/.cache/lepton/bin/k8s-v1.36.3}
kubectl() { "$BIN/kubectl" "$@"; }
export KUBECTL=$BIN/kubectl

step "Nodes: kwok simulates GPU nodes; the real kube-scheduler places pods on them"
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
  step "The operator is already running (pid $(cat "$STATE/operator.pid"))"
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
  step "Started the operator (pid $!, log $STATE/logs/operator.log)"
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

step "Prometheus (the real one), scraping the operator and the workload pods on the local node"
node scripts/demo-prometheus.ts start --state "$STATE" --operator "127.0.0.1:$METRICS_PORT" --kubeconfig "$KUBECONFIG"

step "Applying the examples (on kwok's simulated nodes, where pods only pretend)"
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
# examples/kustomization.yaml lists them all (the samples overlay includes it).
kubectl apply --server-side -n demo -k examples/
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
step "What the operator made of them (kubectl get lepton -n demo)"
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
step "A pod that really runs, on the local node (a process in its own network namespace)"
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

step "A TrainingJob that really trains: two workers on the local node, averaging through the chief"
echo "(the operator reads the chief's progress every 10 s; each line is what kubectl get shows then)"
kubectl delete trainingjob moons -n demo --ignore-not-found >/dev/null
kubectl apply --server-side -n demo -f - >/dev/null <<'JOB'
apiVersion: lepton.ai/v1alpha1
kind: TrainingJob
metadata: { name: moons }
spec:
  model: { preset: mlp, hiddenUnits: [32, 32] }
  dataset: { synthetic: { generator: moons, samples: 24000, noise: 0.25 }, validationSplit: 0.2 }
  hyperparameters: { epochs: 60, optimizer: sgd, learningRate: 0.01, batchSize: 64 }
  workers: 2
  resources: { gpu: { count: 1, product: Lepton-Local-Simulated-GPU } }
  output: { uri: pvc://models/moons }
  podTemplate:
    spec:
      tolerations: [{ key: lepton.ai/local-node, operator: Exists, effect: NoSchedule }]
JOB
watch_until_done trainingjob demo moons --timeout 300 || { kubectl get trainingjob moons -n demo -o yaml; exit 1; }
kubectl get trainingjob moons -n demo
kubectl get trainingjob moons -n demo -o jsonpath='model: {.status.model.uri}  digest: {.status.model.digest}{"\n"}'
echo "worker logs: npm run cluster -- logs -n demo moons-worker-0"

step "An InferenceService that really serves the trained model: two replicas on the local node"
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
watch_until_done inferenceservice demo moons --timeout 180 || { kubectl get infsvc moons -n demo -o yaml; exit 1; }
kubectl get infsvc moons -n demo
# No kube-proxy here, so the Service's cluster address answers nothing: ask a ready pod of its
# endpoints, at the port the EndpointSlice gives, as kube-proxy would.
read -r ep port < <(kubectl get endpointslices -n demo -l kubernetes.io/service-name=moons-predictor -o json | node -e '
  const slices = JSON.parse(require("node:fs").readFileSync(0, "utf8")).items;
  for (const s of slices) {
    const e = (s.endpoints ?? []).find((e) => e.conditions?.ready !== false);
    if (e && s.ports?.[0]?.port) { console.log(e.addresses[0], s.ports[0].port); process.exit(0); }
  }
  process.exit(1);') || { echo "No ready endpoint for the Service moons-predictor" >&2; exit 1; }
PREDICT_URL=http://$ep:$port/v1/models/moons:predict
echo "status.url (inside the cluster): $(kubectl get infsvc moons -n demo -o jsonpath='{.status.url}')"
echo "prediction URL (from this machine, a pod of the Service): $PREDICT_URL"
echo "\$ curl -s -d '{\"instances\": [[0.5, -0.2], [-0.8, 0.6]]}' $PREDICT_URL"
curl -sS --max-time 10 -d '{"instances": [[0.5, -0.2], [-0.8, 0.6]]}' "$PREDICT_URL"
echo
input=$(curl -sS --max-time 10 "http://$ep:$port/v2/models/moons" | node -e 'console.log(JSON.parse(require("node:fs").readFileSync(0, "utf8")).inputs[0].name)')
V2_BODY="{\"inputs\": [{\"name\": \"$input\", \"shape\": [1, 2], \"datatype\": \"FP32\", \"data\": [0.5, -0.2]}]}"
echo "\$ curl -s -d '$V2_BODY' http://$ep:$port/v2/models/moons/infer"
curl -sS --max-time 10 -d "$V2_BODY" "http://$ep:$port/v2/models/moons/infer"
echo

step "A TrainingJob on a data lake: partitioned Parquet in the cluster's S3 server (versitygw), streamed by two workers"
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
watch_until_done trainingjob demo moons-lake --timeout 240 || { kubectl get trainingjob moons-lake -n demo -o yaml; exit 1; }
kubectl get trainingjob moons-lake -n demo
kubectl get trainingjob moons-lake -n demo -o jsonpath='model: {.status.model.uri}  digest: {.status.model.digest}{"\n"}data:  {.status.dataset.uri} {.status.dataset.files} files, {.status.dataset.rows} rows, {.status.dataset.digest}{"\n"}'
echo "The files the model was trained on, from lepton.json next to it in S3 (the partition filter left date=2026-11-29 out):"
node scripts/demo-lake.ts card demo-lake models/moons-lake/lepton.json

step "A hyperparameter search that really trains: TPE over learning rate and hidden units, ASHA pruning, on the local node"
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
    numTrials: 8
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
watch_until_done trainingjob demo moons-search --timeout 400 || { kubectl get trainingjob moons-search -n demo -o yaml; exit 1; }
kubectl get trainingjob moons-search -n demo
kubectl get trainingjob -n demo -l lepton.ai/tuning=moons-search \
  -o custom-columns='TRIAL:.metadata.name,PHASE:.status.phase,REASON:.status.conditions[?(@.type=="Succeeded")].reason,LR:.spec.hyperparameters.learningRate,HIDDEN:.spec.model.hiddenUnits,VAL-ACC:.status.progress.valAccuracy'
kubectl get trainingjob moons-search -n demo -o jsonpath='best trial: {.status.tuning.bestTrial.name} {.status.tuning.bestTrial.parameters}  model: {.status.model.uri}{"\n"}'

step "A federated campaign that really trains: three sites on the local node, secure aggregation, round by round"
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
    rounds: 4
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
watch_until_done trainingjob demo blobs-fl --timeout 400 \
  || { kubectl get trainingjob blobs-fl -n demo -o yaml; kubectl get fround -n demo -l lepton.ai/campaign=blobs-fl -o yaml; exit 1; }
kubectl get fround -n demo -l lepton.ai/campaign=blobs-fl -o wide
kubectl get trainingjob blobs-fl -n demo -o jsonpath='global model: {.status.model.uri}  digest: {.status.model.digest}{"\n"}'

step "How to look (the demo took $(((SECONDS - T0) / 60)) min $(((SECONDS - T0) % 60)) s)"
cat <<LOOK
kubectl (the project's, v1.36.3, in this shell):
  export KUBECONFIG=$KUBECONFIG
  alias kubectl=$BIN/kubectl
  kubectl get lepton -n demo                                      # TrainingJobs, FederatedRounds, InferenceServices
  kubectl get trainingjob moons -n demo -o jsonpath='{.status.progress}'
  kubectl get trainingjob -n demo -l lepton.ai/tuning=moons-search  # the search's trials
  kubectl get federatedround -n demo -l lepton.ai/campaign=blobs-fl -o wide
  kubectl describe inferenceservice moons -n demo
  kubectl get pods -n demo -o wide
  npm run cluster -- logs -n demo moons-worker-0                   # a pod's log (kubectl logs cannot reach the local node)
LOOK
if [ -x bin/kubectl-lepton ]; then
  echo "  PATH=$PWD/bin:\$PATH kubectl lepton list all -n demo  # the kubectl plugin: progress bars, loss sparklines, reasons"
fi
cat <<LOOK
Predictions (a pod of the Service moons-predictor; there is no kube-proxy here):
  curl -d '{"instances": [[0.5, -0.2]]}' $PREDICT_URL
Metrics (the operator's and a serving pod's, Prometheus text format):
  curl -s http://127.0.0.1:$METRICS_PORT/metrics | grep -E '^lepton_(trainingjob|federatedround|tuning|inferenceservice)'
  curl -s http://$ep:$port/metrics | grep '^lepton_serving_requests_total'
LOOK
# A taste of each: the first two series of each of the operator's workload metrics, and the
# serving pod's request counts.
echo "Now, from the operator's /metrics (two series of each):"
curl -s "http://127.0.0.1:$METRICS_PORT/metrics" | grep -E '^lepton_(trainingjob|federatedround|tuning|inferenceservice)' \
  | grep -v '_bucket{' | awk -F'[{ ]' '{ n[$1]++ } n[$1] <= 2' | head -n 24 | sed 's/^/  /' || true
echo "and from the serving pod's:"
curl -s "http://$ep:$port/metrics" | grep '^lepton_serving_requests_total' | sed 's/^/  /' || true
# The serving pods were new when the predictions above were sent, before Prometheus first scraped
# them: a few more, concurrent (so the batcher forms batches), give the inference panels a rate.
echo "(24 more predictions first, so that the inference panels have request rates to show)"
seq 1 24 | xargs -P 8 -I{} curl -s -o /dev/null --max-time 10 -d '{"instances": [[0.5, -0.2]]}' "$PREDICT_URL"
node scripts/demo-prometheus.ts show --state "$STATE" --namespace demo
echo "Operator log: $STATE/logs/operator.log; Prometheus' log: $STATE/logs/prometheus.log; cluster logs: $STATE/logs/"
trap - EXIT
if [ -n "$DETACH" ]; then
  echo "Stop: npm run demo -- down"
  exit 0
fi
echo
echo "Everything keeps running; press Ctrl-C to stop Prometheus, the operator and the local cluster."
while :; do sleep 1; done
