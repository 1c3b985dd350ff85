// N TrainingJobs (one worker, one GPU each) created at once on kwok GPU nodes: how long until
// every worker pod exists, compared in the same run with a plain client that creates the same
// pods and Services at the same client rate; the operator's API writes per job; its memory.
// Then, side by side at the same client rate, the same N jobs for this operator and for Kubeflow
// training-operator v1.8.1 (N one-Master, one-GPU PyTorchJobs), built on first use by
// scripts/build-peers.sh (Go, cached outside the repository; --no-peer skips it).
//
//   npm run cluster -- up
//   node bench/trainingjobs.ts [--jobs 500] [--qps 50] [--burst 100] [--extra-pods 3500] [--no-peer]
//
// Adds kwok nodes with enough GPUs (product BENCH-GPU) for every job, so gang admission admits
// all of them; removes them and its namespaces at the end. Each run has a namespace and an
// operator process of its own, and the next starts once the previous namespace is gone.
import { execFileSync, spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { KubeConfig } from '@kubernetes/client-node';
import { KubeClient } from '../src/core/client.ts';
import { type KubeObject, type ResourceType, Resources } from '../src/core/resources.ts';
import {
  type TrainingJob,
  rendezvousService,
  workerPod,
} from '../src/controllers/trainingjob/builders.ts';
import { freePort, readState, repoRoot, waitFor } from '../test/cluster/cluster.ts';
import {
  OperatorProcess,
  apiWrites,
  installCrds,
  metricValue,
  waitUntilSettled,
} from '../test/integration/harness.ts';
import { apiserverWrites, eventWrites, since, writesTo } from './api-writes.ts';
import {
  PEER_BURST,
  PEER_QPS,
  PEER_VERSION,
  PeerOperator,
  PyTorchJobs,
  installPeerCrd,
  peerBinary,
  peerDir,
  pyTorchJob,
} from './training-operator.ts';

const { values } = parseArgs({
  options: {
    jobs: { type: 'string', default: '500' },
    // The operator's defaults (and the plain client's rate).
    qps: { type: 'string', default: '50' },
    burst: { type: 'string', default: '100' },
    'extra-pods': { type: 'string', default: '3500' },
    // Requests the plain client sends at a time.
    concurrency: { type: 'string', default: '16' },
    // Reconciles at once in the operator (its --concurrency; 4 is its default).
    'operator-concurrency': { type: 'string', default: '4' },
    // training-operator's --controller-threads (1 is its default).
    'peer-threads': { type: 'string', default: '1' },
    // Only the side-by-side runs (no plain client, no run at our defaults, no memory phase).
    'side-by-side-only': { type: 'boolean', default: false },
    // Run ours without Kubeflow training-operator (and do not build it).
    'no-peer': { type: 'boolean', default: false },
    renice: { type: 'boolean', default: false },
  },
});
const N = Number(values.jobs);
const QPS = Number(values.qps);
const BURST = Number(values.burst);
const EXTRA = Number(values['extra-pods']);
const PRODUCT = 'BENCH-GPU';
const QUIET_MS = 3000;
const SETTLE_TIMEOUT_MS = 600_000;

const kubeconfig = process.env.KUBECONFIG ?? readState(join(repoRoot, '.cluster'))?.kubeconfig;
/** The Node flags of the image's entry point (Dockerfile), read from it so the two agree. */
const IMAGE_NODE_FLAGS = (() => {
  const entry = /ENTRYPOINT \[(.*)\]/.exec(readFileSync(join(repoRoot, 'Dockerfile'), 'utf8'));
  const words = entry ? (JSON.parse(`[${entry[1]}]`) as string[]) : [];
  return words.filter((w) => w.startsWith('--'));
})();
if (!kubeconfig)
  throw new Error('Start the local cluster first (npm run cluster -- up) or set KUBECONFIG');
process.env.LEPTON_TEST_KUBECONFIG = kubeconfig;
const kc = new KubeConfig();
kc.loadFromFile(kubeconfig);
const admin = new KubeClient(kc, { qps: 0, burst: 0, fieldManager: 'bench' });
const stamp = Date.now().toString(36);

async function parallel<T>(
  items: T[],
  width: number,
  fn: (item: T) => Promise<unknown>,
): Promise<void> {
  let next = 0;
  await Promise.all(
    Array.from({ length: width }, async () => {
      while (next < items.length) await fn(items[next++] as T);
    }),
  );
}

async function addNodes(): Promise<string[]> {
  const names = Array.from({ length: Math.ceil(N / 8) + 1 }, (_, i) => `bench-gpu-${stamp}-${i}`);
  await parallel(names, 8, (name) =>
    admin.create(Resources.Node, {
      apiVersion: 'v1',
      kind: 'Node',
      metadata: {
        name,
        annotations: { 'kwok.x-k8s.io/node': 'fake' },
        labels: { type: 'kwok', 'kubernetes.io/hostname': name, 'nvidia.com/gpu.product': PRODUCT },
      },
      status: {
        capacity: { cpu: '96', memory: '1Ti', pods: '110', 'nvidia.com/gpu': '8' },
        allocatable: { cpu: '96', memory: '1Ti', pods: '110', 'nvidia.com/gpu': '8' },
      },
    } as KubeObject),
  );
  await waitFor(
    'bench nodes Ready',
    async () => {
      const nodes = await admin.list<
        KubeObject & { status?: { conditions?: { type: string; status: string }[] } }
      >(Resources.Node, {
        labelSelector: `nvidia.com/gpu.product=${PRODUCT}`,
      });
      return (
        nodes.items.filter((n) =>
          n.status?.conditions?.some((c) => c.type === 'Ready' && c.status === 'True'),
        ).length === names.length
      );
    },
    120_000,
  );
  return names;
}

function job(ns: string, i: number): TrainingJob {
  return {
    apiVersion: 'lepton.ai/v1alpha1',
    kind: 'TrainingJob',
    metadata: { name: `job-${i}`, namespace: ns },
    spec: {
      model: { preset: 'mlp' },
      dataset: { synthetic: { generator: 'blobs' } },
      output: { uri: `file:///var/lib/lepton/job-${i}` },
      resources: { gpu: { count: 1, product: PRODUCT } },
    },
  } as TrainingJob;
}

/** Pods in a run's namespace: only the operator under test creates pods there. */
async function countPods(ns: string): Promise<number> {
  return (await admin.list(Resources.Pod, { namespace: ns })).items.length;
}

async function namespace(name: string): Promise<string> {
  await admin.create(Resources.Namespace, {
    apiVersion: 'v1',
    kind: 'Namespace',
    metadata: { name },
  });
  return name;
}

/**
 * Deletes a run's namespace and waits until it is gone: its pods free their GPUs, and the
 * deletions are not counted in the next run's writes.
 */
async function removeNamespace(name: string): Promise<void> {
  await admin.delete(Resources.Namespace, '', name).catch(() => undefined);
  await waitFor(
    `namespace ${name} to be gone`,
    () =>
      admin.get(Resources.Namespace, '', name).then(
        () => false,
        (err: { code?: number }) => err.code === 404,
      ),
    600_000,
  );
}

/** Live heap of the operator: it writes a heap snapshot on SIGUSR2; the sum of its nodes' sizes. */
async function liveHeap(op: OperatorProcess, dir: string): Promise<number> {
  const before = new Set(readdirSync(dir));
  op.child.kill('SIGUSR2');
  let file = '';
  let size = -1;
  await waitFor(
    'the heap snapshot',
    () => {
      file = readdirSync(dir).find((f) => f.endsWith('.heapsnapshot') && !before.has(f)) ?? '';
      if (!file) return false;
      const now = statSync(join(dir, file)).size;
      const done = now > 0 && now === size;
      size = now;
      return done;
    },
    120_000,
  );
  const snap = JSON.parse(readFileSync(join(dir, file), 'utf8')) as {
    snapshot: { meta: { node_fields: string[] } };
    nodes: number[];
  };
  const fields = snap.snapshot.meta.node_fields;
  const self = fields.indexOf('self_size');
  let total = 0;
  for (let i = self; i < snap.nodes.length; i += fields.length) total += snap.nodes[i] ?? 0;
  rmSync(join(dir, file));
  return total;
}

/** Resident set size now (VmRSS) and its high-water mark (VmHWM), in bytes, from /proc. */
function rss(pid: number): { now: number; peak: number } {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const kb = (field: string) =>
    Number(new RegExp(`^${field}:\\s+(\\d+) kB`, 'm').exec(status)?.[1]);
  return { now: kb('VmRSS') * 1024, peak: kb('VmHWM') * 1024 };
}

/** Resets VmHWM to the current RSS (Linux clear_refs), so the peak read later is the burst's. */
function resetPeak(pid: number): void {
  writeFileSync(`/proc/${pid}/clear_refs`, '5');
}

/** One operator under test, as the side-by-side measurement sees it. */
interface Contender {
  /** What ran, with its real concurrency. */
  name: string;
  pid: number;
  jobs: ResourceType;
  job: (ns: string, i: number) => KubeObject;
  /** The process's own count of its write requests so far. */
  selfWrites: () => Promise<number>;
  /** Resolves once it has settled with `running` jobs Running. */
  settle: (running: number) => Promise<void>;
  /** Whether an Event's reporting component is this operator. */
  reports: (component: string) => boolean;
}

interface RunResult {
  name: string;
  qps: number;
  burst: number;
  seconds: number;
  /** The operator's POSTs of pods and Services: what the create-only floor is made of. */
  creates: number;
  pods: number;
  services: number;
  jobWrites: number;
  events: number;
  self: number;
  /** kube-controller-manager's EndpointSlice and Endpoints writes: the cost of the Services. */
  endpoints: number;
  rssIdle: number;
  rssPeak: number;
  /** The window's other writes (other components; Events of everyone), largest first. */
  others: string;
}

/**
 * Times one contender from the first create until all N pods exist, then counts what it wrote
 * (API server side) once it settled, and reads its memory: idle after its caches synced and
 * before any job, and the high-water mark of the burst.
 */
async function measure(
  c: Contender,
  ns: string,
  rate: { qps: number; burst: number },
  beforeBurst: () => Promise<void> = async () => undefined,
): Promise<RunResult> {
  await c.settle(0);
  const rssIdle = rss(c.pid).now;
  await beforeBurst();
  resetPeak(c.pid);
  const before = apiserverWrites(kubeconfig as string);
  const selfBefore = await c.selfWrites();
  const t = performance.now();
  await parallel(
    Array.from({ length: N }, (_, i) => i),
    16,
    (i) => admin.create(c.jobs, c.job(ns, i)),
  );
  await waitFor(`${N} pods of ${c.name}`, async () => (await countPods(ns)) >= N, 600_000);
  const seconds = (performance.now() - t) / 1000;
  await c.settle(N);
  const rssPeak = rss(c.pid).peak;
  const d = since(apiserverWrites(kubeconfig as string), before);
  const self = (await c.selfWrites()) - selfBefore;
  let events = 0;
  for (const [reporter, n] of await eventWrites(admin, ns)) if (c.reports(reporter)) events += n;
  const pods = writesTo(d, '', 'pods', { subresource: '' });
  const services = writesTo(d, '', 'services');
  return {
    name: c.name,
    ...rate,
    seconds,
    creates:
      writesTo(d, '', 'pods', { subresource: '', verb: 'POST' }) +
      writesTo(d, '', 'services', { verb: 'POST' }),
    pods,
    services,
    // The bench's own N creates of the jobs are not the operator's.
    jobWrites: writesTo(d, c.jobs.group, c.jobs.plural) - N,
    events,
    self,
    endpoints: writesTo(d, 'discovery.k8s.io', 'endpointslices') + writesTo(d, '', 'endpoints'),
    rssIdle,
    rssPeak,
    others: [...d]
      .filter(([k]) => {
        const [g, r, sub] = k.split('/');
        const mine = g === '' && ((r === 'pods' && sub === '') || r === 'services');
        return !mine && !(g === c.jobs.group && r === c.jobs.plural);
      })
      .sort((a, b) => b[1] - a[1])
      .map(([k, n]) => {
        const [g, r, sub, verb] = k.split('/');
        return `${g ? `${g}/` : ''}${r}${sub ? `/${sub}` : ''} ${verb} ${n}`;
      })
      .join(', '),
  };
}

async function startOurs(
  ns: string,
  rate: { qps: number; burst: number },
  nodeArgs: string[] = [],
): Promise<OperatorProcess> {
  const [metrics, probe] = await Promise.all([freePort(), freePort()]);
  const op = new OperatorProcess(
    [
      `--namespaces=${ns}`,
      '--leader-elect=false',
      `--kube-api-qps=${rate.qps}`,
      `--kube-api-burst=${rate.burst}`,
      '--log-level=warn',
      `--concurrency=${values['operator-concurrency']}`,
    ],
    { metrics, probe },
    kubeconfig,
    // As the image runs it (Dockerfile): compiled, with the young generation the image sets.
    [...IMAGE_NODE_FLAGS, ...nodeArgs],
    join(repoRoot, 'dist', 'src', 'main.js'),
  );
  await op.ready();
  // On this 2-core machine the API server, etcd and the bench share the CPUs with the
  // operator: a higher scheduling priority keeps the event-loop lag about the operator's own
  // work, not about waiting for a core (measured both ways; see bench/README.md).
  if (values.renice) execFileSync('renice', ['-n', '-10', '-p', String(op.pid)]);
  return op;
}

/** Our operator as a contender; `onScrape` sees every /metrics text the settle loop reads. */
async function ours(
  op: OperatorProcess,
  onScrape: (text: string) => void = () => undefined,
): Promise<Contender> {
  // What ran, read from the process rather than from the flag the bench meant to pass.
  const concurrency = metricValue(await op.metrics(), 'lepton_max_concurrent_reconciles', {
    controller: 'trainingjob',
  });
  return {
    name: `lepton-operator --concurrency ${concurrency}`,
    pid: op.pid,
    jobs: Resources.TrainingJob,
    job,
    selfWrites: async () => apiWrites(await op.metrics()),
    settle: async (running) => {
      await waitUntilSettled(op, {
        quietMs: QUIET_MS,
        timeoutMs: SETTLE_TIMEOUT_MS,
        also: (text) => {
          onScrape(text);
          return metricValue(text, 'lepton_trainingjobs', { phase: 'Running' }) === running;
        },
      });
    },
    reports: (component) => component.startsWith('lepton.ai/'),
  };
}

interface PyTorchJobObject extends KubeObject {
  status?: { conditions?: { type: string; status: string }[] };
}

function peer(op: PeerOperator, ns: string): Contender {
  return {
    name: `training-operator ${PEER_VERSION} --controller-threads ${op.workers}`,
    pid: op.pid,
    jobs: PyTorchJobs,
    job: (namespace, i) => pyTorchJob(namespace, `job-${i}`, PRODUCT),
    selfWrites: async () => PeerOperator.writes(await op.metrics()),
    settle: (running) =>
      op.settled({
        quietMs: QUIET_MS,
        timeoutMs: SETTLE_TIMEOUT_MS,
        also: async () =>
          (await admin.list<PyTorchJobObject>(PyTorchJobs, { namespace: ns })).items.filter((j) =>
            j.status?.conditions?.some((c) => c.type === 'Running' && c.status === 'True'),
          ).length === running,
      }),
    reports: (component) => component === 'pytorchjob-controller',
  };
}

const mb = (bytes: number) => `${(bytes / 1e6).toFixed(0)} MB`;

function tableRow(r: RunResult): string {
  const floor = Math.max(0, r.creates - r.burst) / r.qps;
  const perJob = (n: number) => (n / N).toFixed(2);
  const total = r.pods + r.services + r.jobWrites + r.events;
  return `| ${r.name} | ${r.qps}/${r.burst} | ${r.seconds.toFixed(1)} s | ${floor.toFixed(1)} s | ${floor > 0 ? `${(r.seconds / floor).toFixed(2)}x` : '—'} | ${perJob(total)} (${perJob(r.pods)} + ${perJob(r.services)} + ${perJob(r.jobWrites)} + ${perJob(r.events)}) | ${perJob(r.self)} | ${perJob(r.endpoints)} | ${mb(r.rssIdle)} | ${mb(r.rssPeak)} |`;
}

/** Mean latency in ms of the operator's requests of one verb, from its own histogram. */
function meanMs(metrics: string, verb: string): string {
  const sum = metricValue(metrics, 'lepton_client_request_duration_seconds_sum', { verb });
  const count = metricValue(metrics, 'lepton_client_request_duration_seconds_count', { verb });
  return count > 0 ? ((sum / count) * 1000).toFixed(1) : 'n/a';
}

async function main(): Promise<void> {
  // The operator runs compiled, as in the image: build it from this tree first.
  execFileSync('npm', ['run', '-s', 'build'], { cwd: repoRoot, stdio: 'inherit' });
  console.log(`our operator: node ${IMAGE_NODE_FLAGS.join(' ')} dist/src/main.js`);
  installCrds();
  // The peer is built on first use (Go from the module proxy, cached outside the repository);
  // without Go the bench runs ours alone and says so.
  if (!peerBinary() && !values['no-peer']) {
    try {
      execFileSync('bash', [join(repoRoot, 'scripts', 'build-peers.sh')], { stdio: 'inherit' });
    } catch (err) {
      console.log(
        `training-operator could not be built (${(err as Error).message}); running ours alone`,
      );
    }
  }
  const peerBin = values['no-peer'] ? undefined : peerBinary();
  if (peerBin) installPeerCrd(kubeconfig as string);
  const nodes = await addNodes();
  const lines: string[] = [];
  const results: RunResult[] = [];
  const namespaces: string[] = [];
  try {
    if (!values['side-by-side-only']) {
      const plainNs = await namespace(`bench-plain-${stamp}`);
      namespaces.push(plainNs);
      // 1. The plain client: the same pods and Services, created at the same client rate.
      const plain = new KubeClient(kc, { qps: QPS, burst: BURST, fieldManager: 'bench-plain' });
      const t = performance.now();
      await parallel(
        Array.from({ length: N }, (_, i) => i),
        Number(values.concurrency),
        async (i) => {
          const j = {
            ...job(plainNs, i),
            metadata: {
              ...job(plainNs, i).metadata,
              uid: `00000000-0000-0000-0000-${String(i).padStart(12, '0')}`,
            },
          };
          await plain.create(Resources.Service, rendezvousService(j as TrainingJob));
          const pod = workerPod(j as TrainingJob, 0, 0, {
            runtimeImage: 'lepton-ai/runtime:bench',
            runtimeGpuImage: 'lepton-ai/runtime:bench-gpu',
          });
          pod.metadata.ownerReferences = undefined;
          await plain.create(Resources.Pod, pod);
        },
      );
      const plainSeconds = (performance.now() - t) / 1000;
      // Free the GPUs the plain client's pods hold before the operator's turn.
      await removeNamespace(plainNs);
      lines.push(
        `plain client, ${N} pods + ${N} Services at ${QPS} qps (burst ${BURST}), ${values.concurrency} requests at a time: ${plainSeconds.toFixed(1)} s`,
      );
      lines.push(...(await oursAtDefaults(plainSeconds, results, namespaces)));
    }

    // 4. Side by side at training-operator's client rate (controller-runtime's default, which
    // v1.8.1 has no flag for): ours, then training-operator, each on a fresh namespace.
    const rate = { qps: PEER_QPS, burst: PEER_BURST };
    const sideNs = await namespace(`bench-side-op-${stamp}`);
    namespaces.push(sideNs);
    const op = await startOurs(sideNs, rate);
    try {
      results.push(await measure(await ours(op), sideNs, rate));
    } finally {
      await op.stop();
    }
    await removeNamespace(sideNs);

    if (!peerBin) {
      lines.push(
        `training-operator ${PEER_VERSION}: skipped (no binary in ${peerDir()}; build it with bash scripts/build-peers.sh)`,
      );
    } else {
      const peerNs = await namespace(`bench-side-kubeflow-${stamp}`);
      namespaces.push(peerNs);
      const threads = Number(values['peer-threads']);
      const to = await PeerOperator.start({
        admin,
        kubeconfig: kubeconfig as string,
        namespace: peerNs,
        threads,
      });
      try {
        if (values.renice) execFileSync('renice', ['-n', '-10', '-p', String(to.pid)]);
        results.push(await measure(peer(to, peerNs), peerNs, rate));
      } finally {
        await to.stop(admin);
      }
      await removeNamespace(peerNs);
    }
  } finally {
    for (const ns of namespaces)
      await admin.delete(Resources.Namespace, '', ns).catch(() => undefined);
    await parallel(nodes, 8, (n) => admin.delete(Resources.Node, '', n).catch(() => undefined));
  }
  process.stdout.write(
    [
      `${N} jobs (1 pod, 1 GPU each), created by the bench 16 at a time; ${new Date().toISOString()}`,
      ...lines,
      '',
      '| operator (what ran) | client qps/burst | all pods exist | create-only floor | time/floor | API writes per job (pods + Services + job + Events) | self-counted writes per job | EndpointSlice+Endpoints writes per job (kube-controller-manager) | RSS idle | RSS peak (burst) |',
      '|---|---|---|---|---|---|---|---|---|---|',
      ...results.map(tableRow),
      '',
      'Other writes in each window (other components, and Events of everyone):',
      ...results.map((r) => `  ${r.name}, ${r.qps}/${r.burst}: ${r.others}`),
      '',
    ].join('\n'),
  );
}

/**
 * 2. Our operator at its defaults: the same table row as the side-by-side runs, and the live
 * heap per cached object and the event-loop lag. Returns the report lines.
 */
async function oursAtDefaults(
  plainSeconds: number,
  results: RunResult[],
  namespaces: string[],
): Promise<string[]> {
  const opNs = await namespace(`bench-op-${stamp}`);
  namespaces.push(opNs);
  // Heap snapshots on SIGUSR2 measure live objects only (a snapshot collects garbage first).
  const snapshots = mkdtempSync(join(tmpdir(), 'lepton-bench-heap-'));
  const rate = { qps: QPS, burst: BURST };
  const op = await startOurs(opNs, rate, [
    '--heapsnapshot-signal=SIGUSR2',
    `--diagnostic-dir=${snapshots}`,
  ]);
  const lines: string[] = [];
  try {
    const heapIdle = metricValue(await op.metrics(), 'nodejs_heap_size_used_bytes');
    let liveIdle = 0;
    let lagMax = 0;
    let probe: ReturnType<typeof lagProbe> | undefined;
    // The heap snapshot stalls the event loop by design (and raises the RSS high-water mark,
    // which measure() resets after it): the lag of the burst is prom-client's per-scrape
    // maximum, reset by the scrape after the snapshot and taken at every scrape below.
    const run = await measure(
      await ours(op, (text) => {
        if (probe) lagMax = Math.max(lagMax, metricValue(text, 'nodejs_eventloop_lag_max_seconds'));
      }),
      opNs,
      rate,
      async () => {
        liveIdle = await liveHeap(op, snapshots);
        await op.metrics();
        probe = lagProbe();
      },
    );
    // Its RSS stays higher after the idle heap snapshot: the side-by-side rows are the clean ones.
    results.push({ ...run, name: `${run.name} (RSS after a heap snapshot)` });
    const text = await op.metrics();
    lagMax = Math.max(lagMax, metricValue(text, 'nodejs_eventloop_lag_max_seconds'));
    const probeLagMs = await (probe as ReturnType<typeof lagProbe>).stop();
    const byResource = ['pods', 'services', 'trainingjobs', 'events'].map(
      (r) => `${r} ${apiWrites(text, { resource: r })}`,
    );

    // 3. Memory after syncing many objects: extra pods in the watched namespace.
    await parallel(
      Array.from({ length: EXTRA }, (_, i) => i),
      32,
      (i) =>
        admin.create(Resources.Pod, {
          apiVersion: 'v1',
          kind: 'Pod',
          metadata: { name: `extra-${i}`, namespace: opNs, labels: { app: 'extra' } },
          spec: { nodeSelector: { 'no-such': 'node' }, containers: [{ name: 'c', image: 'x' }] },
        } as KubeObject),
    );
    await waitFor(
      'the operator to cache the extra pods',
      async () =>
        metricValue(await op.metrics(), 'lepton_informer_objects', {
          resource: 'pods',
          selector: 'status.phase!=Succeeded,status.phase!=Failed',
        }) >=
        N + EXTRA,
      120_000,
    );
    const after = await op.metrics();
    const cached = ['pods', 'services', 'trainingjobs', 'nodes'].reduce(
      (n, r) => n + metricValue(after, 'lepton_informer_objects', { resource: r }),
      0,
    );
    const heap = metricValue(after, 'nodejs_heap_size_used_bytes');
    const live = await liveHeap(op, snapshots);
    const rssAfter = rss(op.pid).now;

    lines.push(
      `${run.name} at its defaults (${QPS} qps, burst ${BURST}), until all ${N} worker pods exist: ${run.seconds.toFixed(1)} s (${(run.seconds / plainSeconds).toFixed(2)}x the plain client)`,
      `  its own count of its writes since start: ${apiWrites(text)} (by resource: ${byResource.join(', ')})`,
      `  memory with ${cached} cached objects (incl. ${N} pods counted twice, in the owned and the capacity caches): heap ${(heap / 1e6).toFixed(1)} MB (idle ${(heapIdle / 1e6).toFixed(1)} MB), RSS ${mb(rssAfter)}, ${Math.round((heap - heapIdle) / cached)} heap bytes per cached object; live heap after GC (heap snapshot) ${(live / 1e6).toFixed(1)} MB (idle ${(liveIdle / 1e6).toFixed(1)} MB), ${Math.round((live - liveIdle) / cached)} live bytes per cached object`,
      `  its requests' mean latency at the API server, creates (POST) ${meanMs(text, 'POST')} ms, status writes and other patches (PATCH) ${meanMs(text, 'PATCH')} ms: with --concurrency reconciles at once, creates cannot go faster than concurrency / latency`,
      `  event-loop lag, maximum from the burst until every job settled: ${(lagMax * 1000).toFixed(1)} ms (with the heap snapshots: ${(metricValue(after, 'lepton_event_loop_lag_max_seconds') * 1000).toFixed(1)} ms); an idle Node process beside it over the same time (the machine's own stalls): ${probeLagMs.toFixed(1)} ms`,
    );
  } finally {
    await op.stop();
  }
  await removeNamespace(opNs);
  return lines;
}

await main();

/**
 * A Node process that does nothing but measure its own event-loop delay: what the machine alone
 * (other processes on the 2 cores, the VM) does to a process's event loop during the burst.
 */
function lagProbe(): { stop: () => Promise<number> } {
  const child = spawn(
    process.execPath,
    [
      '-e',
      `const h = require('node:perf_hooks').monitorEventLoopDelay({ resolution: 10 }); h.enable();
       setInterval(() => {}, 1000);
       process.on('SIGTERM', () => { process.stdout.write(String(h.max / 1e6)); process.exit(0); });`,
    ],
    { stdio: ['ignore', 'pipe', 'inherit'] },
  );
  let out = '';
  child.stdout?.on('data', (d: Buffer) => (out += d.toString()));
  return {
    stop: () =>
      new Promise((resolve) => {
        child.once('exit', () => resolve(Number(out)));
        child.kill('SIGTERM');
      }),
  };
}
