import {
  type NodeCapacity,
  type PodSet,
  amountOf,
  capacityView,
  describeFree,
  describeNeed,
  fits,
  parseQuantity,
  podAmounts,
  qualifies,
  reserve,
} from '../../../src/scheduling/capacity.ts';
import { node, pod } from './fixtures.ts';

const GPU = 'nvidia.com/gpu';
const PRODUCT = 'nvidia.com/gpu.product';

const gpuTaint = { key: GPU, effect: 'NoSchedule' };
const h100 = (name: string) =>
  node(
    name,
    { [GPU]: '8', cpu: '96', memory: '1Ti', pods: '110' },
    { labels: { [PRODUCT]: 'H100' }, spec: { taints: [gpuTaint] } },
  );
const gpuSet = (count: number, gpus: number, product?: string): PodSet => ({
  name: 'worker',
  count,
  requests: { [GPU]: gpus },
  nodeSelector: product ? { [PRODUCT]: product } : {},
  tolerations: [{ key: GPU, operator: 'Exists', effect: 'NoSchedule' }],
});

describe('quantities', () => {
  it.each([
    ['500m', 0.5],
    ['2', 2],
    ['1Gi', 2 ** 30],
    ['1.5G', 1.5e9],
    ['1e3', 1000],
    ['12Mi', 12 * 2 ** 20],
  ])('%s is %d', (q, v) => expect(parseQuantity(q)).toBe(v));

  it('refuses what is not a quantity', () => {
    expect(parseQuantity('lots')).toBeNaN();
    expect(parseQuantity('1Qi')).toBeNaN();
  });

  it('counts CPU in millicores, rounding up as the scheduler does', () => {
    expect(amountOf('cpu', '250m')).toBe(250);
    expect(amountOf('cpu', '0.0005')).toBe(1);
    expect(amountOf('memory', '1Ki')).toBe(1024);
  });

  it('a pod holds its requests, its limits where a resource has no request, and one pod slot', () => {
    expect(
      podAmounts(
        pod('n', { requests: { cpu: '1' }, limits: { cpu: '2', [GPU]: '4', memory: '1Gi' } }),
      ),
    ).toEqual({ pods: 1, cpu: 1000, [GPU]: 4, memory: 2 ** 30 });
  });
});

describe('capacityView', () => {
  it('subtracts what bound pods that have not ended hold, and skips nodes that cannot take pods', () => {
    const view = capacityView(
      [
        h100('h0'),
        node('cpu', { cpu: '32', memory: '128Gi', pods: '110' }),
        node('cordoned', { cpu: '8', pods: '10' }, { spec: { unschedulable: true } }),
        node('down', { cpu: '8', pods: '10' }, { ready: false }),
        node(
          'tainted',
          { cpu: '8', pods: '10' },
          {
            spec: { taints: [{ key: 'node.kubernetes.io/unreachable', effect: 'NoExecute' }] },
          },
        ),
      ],
      [
        pod('h0', { limits: { [GPU]: '3' }, requests: { cpu: '4' } }),
        pod('h0', { limits: { [GPU]: '2' } }, 'Succeeded'),
        pod(undefined, { limits: { [GPU]: '8' } }),
        pod('cpu', { requests: { cpu: '500m', memory: '1Gi' } }),
        pod('cpu', { requests: { cpu: '31' } }, 'Failed'),
      ],
    );
    expect(view.map((n) => [n.name, n.free])).toEqual([
      ['h0', { [GPU]: 5, cpu: 92_000, memory: 2 ** 40, pods: 109 }],
      ['cpu', { cpu: 31_500, memory: 127 * 2 ** 30, pods: 109 }],
    ]);
  });
});

describe('which nodes a pod set may use', () => {
  const view = capacityView(
    [h100('h0'), node('cpu', { cpu: '32', memory: '128Gi', pods: '110' })],
    [],
  ) as NodeCapacity[];
  const [h0, cpu] = view as [NodeCapacity, NodeCapacity];

  it('a GPU set with the toleration and product goes to GPU nodes of that product only', () => {
    expect(qualifies(h0, gpuSet(1, 1, 'H100'))).toBe(true);
    expect(qualifies(h0, gpuSet(1, 1, 'A100'))).toBe(false);
    expect(qualifies(cpu, gpuSet(1, 1))).toBe(false);
  });

  it("a CPU-only set without the GPU taint's toleration stays off GPU nodes", () => {
    const set: PodSet = { name: 'w', count: 1, requests: { cpu: 1000 } };
    expect(qualifies(h0, set)).toBe(false);
    expect(qualifies(cpu, set)).toBe(true);
    expect(qualifies(h0, { ...set, tolerations: [{ operator: 'Exists' }] })).toBe(true);
  });
});

describe('fits and reserve', () => {
  const gpuView = (): NodeCapacity[] =>
    capacityView(
      [
        h100('h0'),
        h100('h1'),
        node(
          'a0',
          { [GPU]: '4', cpu: '96', pods: '110' },
          { labels: { [PRODUCT]: 'A100' }, spec: { taints: [gpuTaint] } },
        ),
      ],
      [pod('h0', { limits: { [GPU]: '3' } })],
    );

  it.each([
    ['one worker per node, each on its own node', gpuSet(2, 5, 'H100'), true],
    ['more workers than slots of that size', gpuSet(3, 5, 'H100'), false],
    ['small workers packed onto one node', gpuSet(4, 2, 'H100'), true],
    ['a product with too few GPUs per node', gpuSet(1, 8, 'A100'), false],
    ['any product', gpuSet(3, 4), true],
  ])('%s', (_case, set, want) => {
    expect(fits(gpuView(), [set])).toBe(want);
  });

  it('checks against total capacity for "can never fit", and leaves the view alone', () => {
    const v = gpuView();
    expect(fits(v, [gpuSet(2, 8, 'H100')])).toBe(false);
    expect(fits(v, [gpuSet(2, 8, 'H100')], 'total')).toBe(true);
    expect(v[0]?.free[GPU]).toBe(5);
  });

  it('reserves each pod on the node with the most room for the set, as the scheduler spreads them', () => {
    const v = gpuView();
    expect(reserve(v, [gpuSet(2, 4, 'H100')])).toBe(true);
    expect(v.map((n) => n.free[GPU])).toEqual([1, 4, 4]);
    expect(fits(v, [gpuSet(1, 4, 'H100')])).toBe(true);
    expect(fits(v, [gpuSet(2, 4, 'H100')])).toBe(false);
  });

  it('counts pods per node: 128 CPU workers do not fit a node of 110 pods, whatever their CPU', () => {
    const v = capacityView([node('cpu', { cpu: '32', memory: '128Gi', pods: '110' })], []);
    const workers = (count: number): PodSet => ({ name: 'w', count, requests: { cpu: 100 } });
    expect(fits(v, [workers(128)], 'total')).toBe(false);
    expect(fits(v, [workers(110)])).toBe(true);
  });

  it('counts CPU and memory: a gang larger than the free CPU does not fit', () => {
    const v = capacityView(
      [node('cpu', { cpu: '32', memory: '128Gi', pods: '110' })],
      [pod('cpu', { requests: { cpu: '24' } })],
    );
    const set: PodSet = { name: 'w', count: 2, requests: { cpu: 8000 } };
    expect(fits(v, [{ ...set, count: 1 }])).toBe(true);
    expect(fits(v, [set])).toBe(false);
    expect(fits(v, [set], 'total')).toBe(true);
    expect(fits(v, [{ name: 'm', count: 1, requests: { memory: 129 * 2 ** 30 } }], 'total')).toBe(
      false,
    );
  });

  it('places several pod sets of one gang together or not at all', () => {
    const v = gpuView();
    const sets = [gpuSet(1, 8, 'H100'), { ...gpuSet(1, 4, 'A100'), name: 'aggregator' }];
    expect(fits(v, sets)).toBe(true);
    expect(fits(v, [...sets, { ...gpuSet(1, 1, 'A100'), name: 'third' }])).toBe(false);
  });
});

describe('messages', () => {
  it('speaks of GPUs for a GPU set, of CPU and pods for a CPU-only one', () => {
    const v = capacityView(
      [h100('h0'), node('cpu', { cpu: '32', memory: '128Gi', pods: '110' })],
      [pod('cpu', { requests: { cpu: '24' } })],
    );
    expect(describeNeed([gpuSet(2, 8, 'H100')])).toBe('2 x 8 nvidia.com/gpu (H100)');
    expect(describeFree(v, [gpuSet(2, 8, 'H100')], 'free')).toBe('h0 8/8');
    const cpuSet: PodSet = { name: 'w', count: 128, requests: { cpu: 500, memory: 2 ** 30 } };
    expect(describeNeed([cpuSet])).toBe('128 pods x (cpu 500m, memory 1Gi)');
    expect(describeFree(v, [cpuSet], 'free')).toBe('cpu cpu 8/32, pods 109/110');
  });
});

describe('reserve places pods as one at a time on the node with the most room would', () => {
  /** The plain greedy, pod by pod: the reference reserve's one-pass placement must equal. */
  function greedy(view: NodeCapacity[], set: PodSet): boolean {
    for (let i = 0; i < set.count; i++) {
      let best: NodeCapacity | undefined;
      let bestSlots = 0;
      for (const n of view) {
        if (!qualifies(n, set)) continue;
        let s = n.free.pods ?? 0;
        for (const [r, v] of Object.entries(set.requests))
          if (v > 0) s = Math.min(s, Math.floor((n.free[r] ?? 0) / v));
        if (s > bestSlots) [best, bestSlots] = [n, s];
      }
      if (!best) return false;
      best.free.pods = (best.free.pods ?? 0) - 1;
      for (const [r, v] of Object.entries(set.requests)) best.free[r] = (best.free[r] ?? 0) - v;
    }
    return true;
  }

  it('on 500 random views and sets, the same nodes end with the same free capacity', () => {
    let seed = 42;
    const rand = (n: number) => {
      seed = (seed * 1103515245 + 12345) % 2 ** 31;
      return seed % n;
    };
    for (let round = 0; round < 500; round++) {
      const nodes = Array.from({ length: 1 + rand(8) }, (_, i) =>
        node(`n${i}`, { [GPU]: String(rand(9)), cpu: String(rand(33)), pods: String(rand(12)) }),
      );
      const bound = Array.from({ length: rand(6) }, () =>
        pod(`n${rand(nodes.length)}`, {
          limits: { [GPU]: String(rand(3)) },
          requests: { cpu: String(rand(5)) },
        }),
      );
      const set: PodSet = {
        name: 'w',
        count: rand(20),
        requests: rand(2) ? { [GPU]: 1 + rand(3), cpu: rand(4000) } : { cpu: 1 + rand(8000) },
      };
      const a = capacityView(nodes, bound);
      const b = capacityView(nodes, bound);
      expect([reserve(a, [set]), a.map((n) => n.free)]).toEqual([
        greedy(b, set),
        b.map((n) => n.free),
      ]);
    }
  });
});
