// How long one admission takes as the number of workloads grows: N one-GPU workloads arrive one
// after another on 64 nodes of 8 GPUs, each admitted through the shared ledger while all the
// earlier ones count as admitted with unbound pods (the worst case of a burst: no pod bound yet).
//
//   node bench/admission.ts [--workloads 500] [--nodes 64]
import { parseArgs } from 'node:util';
import { FakeClock } from '../src/core/clock.ts';
import type { Cache, InformerHandler } from '../src/core/informer.ts';
import { type KubeObject, Resources, keyOf } from '../src/core/resources.ts';
import { type Admittable, AdmissionLedger } from '../src/scheduling/ledger.ts';

const { values } = parseArgs({
  options: {
    workloads: { type: 'string', default: '500' },
    nodes: { type: 'string', default: '64' },
  },
});

/** The part of a cache the ledger reads, over a fixed list. */
function listCache<T extends KubeObject>(items: T[]): Cache<T> {
  const byKey = new Map(items.map((o) => [keyOf(o.metadata), o]));
  return {
    resource: Resources.Node,
    addHandler: (_h: InformerHandler<T>) => undefined,
    get: (ns, name) => byKey.get(keyOf({ namespace: ns, name })),
    list: () => items,
    listOwnedBy: () => [],
    size: items.length,
    hasSynced: () => true,
    waitForSync: async () => undefined,
    start: () => undefined,
    stop: async () => undefined,
  };
}

const nodes = Array.from({ length: Number(values.nodes) }, (_, i) => ({
  metadata: { name: `n${i}`, labels: { 'nvidia.com/gpu.product': 'BENCH-GPU' } },
  spec: { taints: [{ key: 'nvidia.com/gpu', effect: 'NoSchedule' }] },
  status: {
    allocatable: { 'nvidia.com/gpu': '8', cpu: '96', memory: '1Ti', pods: '110' },
    conditions: [{ type: 'Ready', status: 'True' }],
  },
}));
const workloads: Admittable[] = [];
const ledger = new AdmissionLedger({
  nodes: listCache(nodes as KubeObject[]),
  pods: listCache([]),
  clock: new FakeClock(Date.parse('2026-12-01T00:00:00Z')),
});
ledger.register({ kind: 'TrainingJob', list: () => workloads, wake: () => undefined });
const times: number[] = [];
for (let i = 0; i < Number(values.workloads); i++) {
  const w: Admittable = {
    uid: `u${i}`,
    namespace: 'ns',
    name: `j${i}`,
    kind: 'TrainingJob',
    creationTimestamp: '2026-12-01T00:00:00Z',
    podSets: [
      {
        name: 'worker',
        count: 1,
        requests: { 'nvidia.com/gpu': 1 },
        nodeSelector: { 'nvidia.com/gpu.product': 'BENCH-GPU' },
        tolerations: [{ key: 'nvidia.com/gpu', operator: 'Exists', effect: 'NoSchedule' }],
      },
    ],
    state: 'waiting',
  };
  workloads.push(w);
  const t0 = process.hrtime.bigint();
  const v = ledger.admit(w);
  times.push(Number(process.hrtime.bigint() - t0) / 1e6);
  if (!v.admitted) throw new Error(`workload ${i} not admitted: ${v.message}`);
  w.state = 'admitted';
}
const sum = times.reduce((a, b) => a + b, 0);
const last = times.slice(-50);
console.log(
  `${times.length} admissions on ${nodes.length} nodes: total ${sum.toFixed(0)} ms, ` +
    `mean ${(sum / times.length).toFixed(2)} ms, last 50 mean ${(last.reduce((a, b) => a + b, 0) / last.length).toFixed(2)} ms`,
);
