import {
  type NodeGpus,
  fits,
  gpuView,
  reserve,
} from '../../../../src/controllers/trainingjob/capacity.ts';

const node = (
  name: string,
  product: string,
  gpus: number,
  extra: Record<string, unknown> = {},
) => ({
  metadata: { name, labels: { 'nvidia.com/gpu.product': product } },
  spec: {},
  status: {
    allocatable: { 'nvidia.com/gpu': String(gpus) },
    conditions: [{ type: 'Ready', status: 'True' }],
  },
  ...extra,
});
const pod = (nodeName: string | undefined, gpus: number, phase = 'Running') => ({
  metadata: { name: `p-${Math.random()}` },
  spec: { nodeName, containers: [{ resources: { limits: { 'nvidia.com/gpu': String(gpus) } } }] },
  status: { phase },
});

describe('gpuView', () => {
  it('subtracts the GPUs of bound pods that have not ended, and skips nodes that cannot take pods', () => {
    const view = gpuView(
      [
        node('h0', 'H100', 8),
        node('h1', 'H100', 8),
        node('cpu', '', 0),
        node('cordoned', 'H100', 8, { spec: { unschedulable: true } }),
        node('down', 'H100', 8, {
          status: {
            allocatable: { 'nvidia.com/gpu': '8' },
            conditions: [{ type: 'Ready', status: 'False' }],
          },
        }),
      ],
      [pod('h0', 3), pod('h0', 2, 'Succeeded'), pod(undefined, 8), pod('h1', 8, 'Failed')],
      'nvidia.com/gpu',
    );
    expect(view).toEqual([
      { name: 'h0', product: 'H100', total: 8, free: 5 },
      { name: 'h1', product: 'H100', total: 8, free: 8 },
    ]);
  });
});

describe('fits and reserve', () => {
  const view = (): NodeGpus[] => [
    { name: 'h0', product: 'H100', total: 8, free: 5 },
    { name: 'h1', product: 'H100', total: 8, free: 8 },
    { name: 'a0', product: 'A100', total: 4, free: 4 },
  ];

  it.each([
    [
      'one worker per node, each on its own node',
      { workers: 2, perWorker: 5, product: 'H100' },
      true,
    ],
    ['more workers than slots of that size', { workers: 3, perWorker: 5, product: 'H100' }, false],
    ['small workers packed onto one node', { workers: 4, perWorker: 2, product: 'H100' }, true],
    ['a product with too few GPUs per node', { workers: 1, perWorker: 8, product: 'A100' }, false],
    ['any product', { workers: 3, perWorker: 4 }, true],
    ['no GPUs', { workers: 100, perWorker: 0 }, true],
  ])('%s', (_case, demand, want) => {
    expect(fits(view(), demand)).toBe(want);
  });

  it('checks against total capacity for "can never fit"', () => {
    expect(fits(view(), { workers: 2, perWorker: 8, product: 'H100' })).toBe(false);
    expect(fits(view(), { workers: 2, perWorker: 8, product: 'H100' }, 'total')).toBe(true);
  });

  it('reserves each worker on the node with the most free GPUs, as the scheduler spreads them', () => {
    const v = view();
    reserve(v, { workers: 2, perWorker: 4, product: 'H100' });
    expect(v.map((n) => n.free)).toEqual([1, 4, 4]);
    expect(fits(v, { workers: 1, perWorker: 4, product: 'H100' })).toBe(true);
    expect(fits(v, { workers: 2, perWorker: 4, product: 'H100' })).toBe(false);
  });
});
