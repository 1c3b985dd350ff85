// N TrainingJobs (one worker, one GPU each) created at once on kwok GPU nodes: how long until
// every worker pod exists, compared in the same run with a plain client that creates the same
// pods and Services at the same client rate; the operator's API writes per job; its memory.
//
//   npm run cluster -- up
//   node bench/trainingjobs.ts [--jobs 500] [--qps 50] [--burst 100] [--extra-pods 3500]
//
// Adds kwok nodes with enough GPUs (product BENCH-GPU) for every job, so gang admission admits
// all of them; removes them and its namespaces at the end.
import { execFileSync, spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, readdirSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { KubeConfig } from '@kubernetes/client-node';
import { KubeClient } from '../src/core/client.ts';
import { type KubeObject, Resources } from '../src/core/resources.ts';
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

const { values } = parseArgs({
  options: {
    jobs: { type: 'string', default: '500' },
    qps: { type: 'string', default: '50' },
    burst: { type: 'string', default: '100' },
    'extra-pods': { type: 'string', default: '3500' },
    // Requests the plain client sends at a time.
    concurrency: { type: 'string', default: '16' },
    // Reconciles at once in the operator (its --concurrency; 4 is its default).
    'operator-concurrency': { type: 'string', default: '4' },
    renice: { type: 'boolean', default: false },
  },
});
const N = Number(values.jobs);
const QPS = Number(values.qps);
const BURST = Number(values.burst);
const EXTRA = Number(values['extra-pods']);
const PRODUCT = 'BENCH-GPU';

const kubeconfig = process.env.KUBECONFIG ?? readState(join(repoRoot, '.cluster'))?.kubeconfig;
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

async function countPods(ns: string): Promise<number> {
  return (await admin.list(Resources.Pod, { namespace: ns, labelSelector: 'lepton.ai/job-name' }))
    .items.length;
}

async function namespace(name: string): Promise<string> {
  await admin.create(Resources.Namespace, {
    apiVersion: 'v1',
    kind: 'Namespace',
    metadata: { name },
  });
  return name;
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

async function main(): Promise<void> {
  installCrds();
  const nodes = await addNodes();
  const plainNs = await namespace(`bench-plain-${stamp}`);
  const opNs = await namespace(`bench-op-${stamp}`);
  const rows: string[] = [];
  try {
    // 1. The plain client: the same pods and Services, created at the same client rate.
    const plain = new KubeClient(kc, { qps: QPS, burst: BURST, fieldManager: 'bench-plain' });
    let t = performance.now();
    await parallel(
      Array.from({ length: N }, (_, i) => i),
      16,
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
    await admin.delete(Resources.Namespace, '', plainNs);
    await waitFor(
      "the plain client's pods to be gone",
      async () => (await countPods(plainNs)) === 0,
      300_000,
    );

    // 2. The operator, at the same client rate.
    const [metrics, probe] = await Promise.all([freePort(), freePort()]);
    // Heap snapshots on SIGUSR2 measure live objects only (a snapshot collects garbage first).
    const snapshots = mkdtempSync(join(tmpdir(), 'lepton-bench-heap-'));
    const op = new OperatorProcess(
      [
        `--namespaces=${opNs}`,
        '--leader-elect=false',
        `--kube-api-qps=${QPS}`,
        `--kube-api-burst=${BURST}`,
        '--log-level=warn',
        `--concurrency=${values['operator-concurrency']}`,
      ],
      { metrics, probe },
      kubeconfig,
      ['--heapsnapshot-signal=SIGUSR2', `--diagnostic-dir=${snapshots}`],
    );
    try {
      await op.ready();
      // On this 2-core machine the API server, etcd and the bench share the CPUs with the
      // operator: a higher scheduling priority keeps the event-loop lag about the operator's own
      // work, not about waiting for a core (measured both ways; see bench/README.md).
      if (values.renice) execFileSync('renice', ['-n', '-10', '-p', String(op.pid)]);
      const heapIdle = metricValue(await op.metrics(), 'nodejs_heap_size_used_bytes');
      const liveIdle = await liveHeap(op, snapshots);
      // The heap snapshot stalls the event loop by design: the lag of the burst is read from
      // prom-client's per-scrape maximum, reset by this scrape and taken at every scrape below.
      await op.metrics();
      let lagMax = 0;
      const probe = lagProbe();
      t = performance.now();
      await parallel(
        Array.from({ length: N }, (_, i) => i),
        16,
        (i) => admin.create(Resources.TrainingJob, job(opNs, i)),
      );
      await waitFor(`${N} worker pods`, async () => (await countPods(opNs)) >= N, 600_000);
      const opSeconds = (performance.now() - t) / 1000;
      // Let every job settle (Running, nothing queued or in flight, no new write for 3 s), then
      // count the operator's writes.
      await waitUntilSettled(op, {
        quietMs: 3000,
        timeoutMs: 600_000,
        also: (text) => {
          lagMax = Math.max(lagMax, metricValue(text, 'nodejs_eventloop_lag_max_seconds'));
          return metricValue(text, 'lepton_trainingjobs', { phase: 'Running' }) === N;
        },
      });
      const text = await op.metrics();
      lagMax = Math.max(lagMax, metricValue(text, 'nodejs_eventloop_lag_max_seconds'));
      const probeLagMs = await probe.stop();
      const writes = ['POST', 'PUT', 'PATCH', 'DELETE'].map(
        (verb) => [verb, metricValue(text, 'lepton_client_requests_total', { verb })] as const,
      );
      const posts = writes.reduce((n, [, v]) => n + v, 0);
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
      const rss = metricValue(after, 'process_resident_memory_bytes');

      rows.push(
        `TrainingJobs: ${N}, client rate ${QPS} qps (burst ${BURST}), plain client ${values.concurrency} requests at a time, operator --concurrency ${values['operator-concurrency']}`,
        `plain client, ${N} pods + ${N} Services: ${plainSeconds.toFixed(1)} s`,
        `operator, until all ${N} worker pods exist: ${opSeconds.toFixed(1)} s (${(opSeconds / plainSeconds).toFixed(2)}x the plain client)`,
        `operator API writes: ${posts} (${(posts / N).toFixed(2)} per job: ${writes.map(([v, n]) => `${v} ${n}`).join(', ')}; by resource: ${byResource.join(', ')})`,
        `operator memory with ${cached} cached objects (incl. ${N} pods counted twice, in the owned and the capacity caches): heap ${(heap / 1e6).toFixed(1)} MB (idle ${(heapIdle / 1e6).toFixed(1)} MB), RSS ${(rss / 1e6).toFixed(1)} MB, ${Math.round((heap - heapIdle) / cached)} heap bytes per cached object; live heap after GC (heap snapshot) ${(live / 1e6).toFixed(1)} MB (idle ${(liveIdle / 1e6).toFixed(1)} MB), ${Math.round((live - liveIdle) / cached)} live bytes per cached object`,
        `operator event-loop lag, maximum from the burst until every job settled: ${(lagMax * 1000).toFixed(1)} ms (with the heap snapshots: ${(metricValue(after, 'lepton_event_loop_lag_max_seconds') * 1000).toFixed(1)} ms); an idle Node process beside it over the same time (the machine's own stalls): ${probeLagMs.toFixed(1)} ms`,
      );
    } finally {
      await op.stop();
    }
  } finally {
    for (const ns of [plainNs, opNs])
      await admin.delete(Resources.Namespace, '', ns).catch(() => undefined);
    await parallel(nodes, 8, (n) => admin.delete(Resources.Node, '', n).catch(() => undefined));
  }
  process.stdout.write(`${rows.join('\n')}\n`);
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
