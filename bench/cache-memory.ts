// Memory and sync time of the operator's informer cache (src/core/informer.ts) per cached
// object, measured on the local cluster with real API objects.
//
//   npm run cluster -- up
//   node --expose-gc bench/cache-memory.ts [--pods 5000] [--jobs 1000]
//
// Creates the objects in a fresh namespace with a plain client (pods that stay Pending and so
// carry the scheduler's condition, TrainingJobs from examples/), then, for growing subsets,
// starts an Informer in a fresh process, waits for it to sync, forces GC and reads the heap.
// Prints a table and the slope in bytes per object (one-off allocations of a process cancel out
// in the slope). Deletes the namespace at the end.
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import {
  CoreV1Api,
  CustomObjectsApi,
  KubeConfig,
  type KubernetesListObject,
  type KubernetesObject,
  type ListPromise,
  type ObjectCache,
  makeInformer,
} from '@kubernetes/client-node';
import { parseAllDocuments } from 'yaml';
import { KubeClient } from '../src/core/client.ts';
import { Informer } from '../src/core/informer.ts';
import { createLogger } from '../src/core/logging.ts';
import {
  type KubeObject,
  type ResourceType,
  Resources,
  resourcePath,
} from '../src/core/resources.ts';
import { readState, repoRoot } from '../test/cluster/cluster.ts';

const { values } = parseArgs({
  options: {
    pods: { type: 'string', default: '5000' },
    jobs: { type: 'string', default: '1000' },
    // Internal: measure one cache in this (fresh) process and print JSON.
    measure: { type: 'string' },
    namespace: { type: 'string' },
    selector: { type: 'string' },
    impl: { type: 'string', default: 'lepton' },
  },
});
const nPods = Number(values.pods);
const nJobs = Number(values.jobs);
const gc = (globalThis as { gc?: () => void }).gc;
if (!gc) throw new Error('Run with node --expose-gc');

const state = readState(join(repoRoot, '.cluster'));
const kubeconfig = process.env.KUBECONFIG ?? state?.kubeconfig;
if (!kubeconfig)
  throw new Error('Start the local cluster first (npm run cluster -- up) or set KUBECONFIG');
const kc = new KubeConfig();
kc.loadFromFile(kubeconfig);
const client = new KubeClient(kc, { qps: 0, burst: 0, fieldManager: 'bench' });
const logger = createLogger('warn');
const ns = values.namespace ?? `bench-mem-${Date.now().toString(36)}`;
const label = 'bench.lepton.ai/batch';

async function createAll(
  count: number,
  make: (i: number) => KubeObject,
  rt: ResourceType,
): Promise<void> {
  let next = 0;
  const worker = async () => {
    while (next < count) {
      const i = next++;
      await client.create(rt, make(i));
    }
  };
  await Promise.all(Array.from({ length: 32 }, worker));
}

const pod = (i: number): KubeObject =>
  ({
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: {
      name: `worker-${i}`,
      namespace: ns,
      labels: {
        [label]: String(i % 10),
        'lepton.ai/job-name': `job-${i}`,
        'lepton.ai/replica-index': '0',
        'lepton.ai/role': 'chief',
      },
    },
    spec: {
      restartPolicy: 'Never',
      nodeSelector: { 'nvidia.com/gpu.product': 'no-such-gpu' },
      tolerations: [{ key: 'nvidia.com/gpu', operator: 'Exists', effect: 'NoSchedule' }],
      automountServiceAccountToken: false,
      containers: [
        {
          name: 'trainer',
          image: 'lepton-ai/runtime:0.1.0-gpu',
          args: ['train'],
          env: [
            { name: 'LEPTON_RANK', value: '0' },
            { name: 'LEPTON_WORLD_SIZE', value: '1' },
          ],
          resources: { limits: { 'nvidia.com/gpu': '1' } },
        },
      ],
    },
  }) as KubeObject;

// The example file holds the job and what it needs (a PVC, ...): take the TrainingJob.
const example = parseAllDocuments(
  readFileSync(join(repoRoot, 'examples', 'trainingjob-gpu-h100.yaml'), 'utf8'),
)
  .map((d) => d.toJS() as KubeObject)
  .find((o) => o.kind === 'TrainingJob') as KubeObject;
const job = (i: number): KubeObject => ({
  ...example,
  metadata: { name: `job-${i}`, namespace: ns, labels: { [label]: String(i % 10) } },
});

async function syncInformer(
  holder: { informer?: Informer<KubeObject> },
  rt: ResourceType,
  labelSelector: string | undefined,
): Promise<number> {
  const started = performance.now();
  holder.informer = new Informer<KubeObject>({
    client,
    resource: rt,
    namespace: ns,
    labelSelector,
    logger,
    relistIntervalMs: 0,
  });
  holder.informer.start();
  await holder.informer.waitForSync();
  await holder.informer.stop();
  return performance.now() - started;
}

const settledHeap = (): number => {
  for (let i = 0; i < 3; i++) gc?.();
  return process.memoryUsage().heapUsed;
};

/** The same cache built with client-node's makeInformer and its typed list calls, for comparison. */
async function syncClientNodeInformer(
  holder: { cache?: ObjectCache<KubernetesObject> },
  rt: ResourceType,
  labelSelector: string | undefined,
): Promise<number> {
  const started = performance.now();
  const list: ListPromise<KubernetesObject> =
    rt.kind === 'Pod'
      ? () => kc.makeApiClient(CoreV1Api).listNamespacedPod({ namespace: ns, labelSelector })
      : () =>
          kc.makeApiClient(CustomObjectsApi).listNamespacedCustomObject({
            group: rt.group,
            version: rt.version,
            plural: rt.plural,
            namespace: ns,
            labelSelector,
          }) as Promise<KubernetesListObject<KubernetesObject>>;
  const informer = makeInformer<KubernetesObject>(kc, resourcePath(rt, ns), list, labelSelector);
  holder.cache = informer;
  const synced = new Promise<void>((resolve) =>
    informer.on('connect', () => setTimeout(resolve, 0)),
  );
  await informer.start();
  await synced;
  await informer.stop();
  return performance.now() - started;
}

/** Heap that a synced cache adds (after GC), the cache still referenced when it is read. */
async function cacheHeap(
  rt: ResourceType,
  labelSelector: string | undefined,
): Promise<{ heap: number; size: number; syncMs: number }> {
  const holder: { informer?: Informer<KubeObject>; cache?: ObjectCache<KubernetesObject> } = {};
  const before = settledHeap();
  const syncMs =
    values.impl === 'client-node'
      ? await syncClientNodeInformer(holder, rt, labelSelector)
      : await syncInformer(holder, rt, labelSelector);
  const heap = settledHeap() - before;
  return { heap, size: holder.informer?.size ?? holder.cache?.list().length ?? 0, syncMs };
}

/** Runs one measurement in a fresh process, so no earlier cache is still being collected. */
function measureInChild(
  rt: ResourceType,
  selector: string | undefined,
  impl: string,
): { heap: number; size: number; syncMs: number } {
  const args = [
    '--expose-gc',
    fileURLToPath(import.meta.url),
    '--measure',
    rt.kind,
    '--namespace',
    ns,
    '--impl',
    impl,
  ];
  if (selector) args.push('--selector', selector);
  const out = execFileSync(process.execPath, args, {
    encoding: 'utf8',
    env: { ...process.env, KUBECONFIG: kubeconfig },
  });
  return JSON.parse(out) as { heap: number; size: number; syncMs: number };
}

async function main(): Promise<void> {
  await client.create(Resources.Namespace, {
    apiVersion: 'v1',
    kind: 'Namespace',
    metadata: { name: ns },
  });
  process.stderr.write(`Creating ${nPods} pods and ${nJobs} TrainingJobs in ${ns}\n`);
  let t = performance.now();
  await createAll(nPods, pod, Resources.Pod);
  await createAll(nJobs, job, Resources.TrainingJob);
  process.stderr.write(`Created in ${((performance.now() - t) / 1000).toFixed(1)} s\n`);

  const rows: string[] = [
    '| cache | objects | resource | cached | heap after sync (MB) | bytes/object | sync (ms) |',
    '|---|---|---|---|---|---|---|',
  ];
  const slopes: string[] = [];
  for (const impl of ['lepton', 'client-node'])
    for (const [rt, total] of [
      [Resources.Pod, nPods],
      [Resources.TrainingJob, nJobs],
    ] as const) {
      const points: [number, number][] = [];
      for (const fraction of [1, 5, 10]) {
        // The label splits objects into ten batches; a selector on the first `fraction` batches.
        const selector =
          fraction === 10
            ? undefined
            : `${label} in (${Array.from({ length: fraction }, (_, i) => i).join(',')})`;
        const { heap, size, syncMs } = measureInChild(rt, selector, impl);
        points.push([size, heap]);
        rows.push(
          `| ${impl} | ${Math.round((total * fraction) / 10)} | ${rt.plural} | ${size} | ${(heap / 1e6).toFixed(1)} | ${Math.round(heap / Math.max(1, size))} | ${Math.round(syncMs)} |`,
        );
      }
      // Marginal cost between the middle and the largest cache: one-off allocations cancel out.
      const [[n1, h1], [n2, h2]] = [points[1] ?? [0, 0], points[2] ?? [0, 0]];
      slopes.push(
        `${impl} ${rt.plural}: ${Math.round((h2 - h1) / Math.max(1, n2 - n1))} bytes per cached object (slope ${n1}→${n2})`,
      );
    }
  process.stdout.write(`${rows.join('\n')}\n\n${slopes.join('\n')}\n`);
  t = performance.now();
  await client.delete(Resources.Namespace, '', ns);
  process.stderr.write(`Deleted ${ns} (${((performance.now() - t) / 1000).toFixed(1)} s)\n`);
}

if (values.measure) {
  const rt = values.measure === 'Pod' ? Resources.Pod : Resources.TrainingJob;
  process.stdout.write(JSON.stringify(await cacheHeap(rt, values.selector)));
} else {
  await main();
}
