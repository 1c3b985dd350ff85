// The shared admission ledger: two kinds admit against the same capacity, nothing is booked
// twice, order is priority then age across kinds, and released capacity wakes every kind.
import { FakeClock } from '../../../src/core/clock.ts';
import type { KubeObject } from '../../../src/core/resources.ts';
import type { PodObject, PodSet } from '../../../src/scheduling/capacity.ts';
import { type Admittable, AdmissionLedger } from '../../../src/scheduling/ledger.ts';
import { MemoryCache } from '../memory-cache.ts';
import { node, pod } from './fixtures.ts';

const GPU = 'nvidia.com/gpu';

function setup() {
  const nodes = new MemoryCache<KubeObject>([
    node('g0', { [GPU]: '8', cpu: '96', pods: '110' }),
    node('g1', { [GPU]: '8', cpu: '96', pods: '110' }),
  ]);
  const pods = new MemoryCache<PodObject>([]);
  const classes = new MemoryCache<KubeObject>([
    { metadata: { name: 'high' }, value: 1000 } as KubeObject,
  ]);
  const clock = new FakeClock(Date.parse('2026-12-01T00:00:00Z'));
  const ledger = new AdmissionLedger({ nodes, pods, priorityClasses: classes, clock });
  // Two kinds, each with its own list of workloads and its own wake-ups.
  const kinds = { A: new Map<string, Admittable>(), B: new Map<string, Admittable>() };
  const woken: string[] = [];
  for (const kind of ['A', 'B'] as const) {
    ledger.register({
      kind,
      list: () => [...kinds[kind].values()],
      wake: (_ns, name) => woken.push(`${kind}/${name}`),
    });
  }
  let n = 0;
  const workload = (
    kind: 'A' | 'B',
    name: string,
    gpus: number,
    count = 1,
    extra: Partial<Admittable> = {},
  ): Admittable => {
    const w: Admittable = {
      uid: `${kind}-${name}`,
      namespace: 'ns',
      name,
      kind,
      creationTimestamp: `2026-12-01T00:00:${String(n++).padStart(2, '0')}Z`,
      podSets: [{ name: 'worker', count, requests: { [GPU]: gpus } } satisfies PodSet],
      state: 'waiting',
      ...extra,
    };
    kinds[kind].set(name, w);
    return w;
  };
  return { ledger, pods, clock, kinds, woken, workload };
}

describe('one admission ledger shared by two kinds', () => {
  it('§admission two kinds competing for the same GPUs are never double-booked', () => {
    const { ledger, workload } = setup();
    // 16 GPUs: A takes 2 x 8 of them; B then finds none free, whatever its kind.
    expect(ledger.admit(workload('A', 'train', 8, 2)).admitted).toBe(true);
    const b = ledger.admit(workload('B', 'serve', 8));
    expect(b).toMatchObject({ admitted: false, reason: 'InsufficientGPU' });
    expect(b.message).toContain('g0 0/8, g1 0/8');
  });

  it('§admission counts an admitted workload of the other kind until its pods are bound, then by its pods', () => {
    const { ledger, pods, workload, kinds } = setup();
    const a = workload('A', 'train', 8, 2);
    expect(ledger.admit(a).admitted).toBe(true);
    kinds.A.set('train', { ...a, state: 'admitted' });
    // One of its pods is bound: the view counts it; the other still counts as reserved.
    pods.put({
      ...pod('g0', { limits: { [GPU]: '8' } }),
      metadata: { name: 'train-0', uid: 'p0', ownerReferences: [ownerRef(a.uid)] },
    } as PodObject);
    expect(ledger.admit(workload('B', 'serve', 1)).admitted).toBe(false);
  });

  it('§admission a released admission frees its capacity at once and wakes the queued of every kind', () => {
    const { ledger, workload, kinds, woken } = setup();
    const a = workload('A', 'train', 8, 2);
    expect(ledger.admit(a).admitted).toBe(true);
    kinds.A.set('train', { ...a, state: 'admitted' });
    const b = workload('B', 'serve', 8, 1);
    expect(ledger.admit(b).admitted).toBe(false);
    kinds.B.set('serve', { ...b, state: 'queued' });
    const c = workload('A', 'later', 8, 1);
    kinds.A.set('later', { ...c, state: 'queued' });
    ledger.release(a.uid);
    // Oldest first across kinds: B/serve was queued before A/later.
    expect(woken).toEqual(['B/serve', 'A/later']);
    expect(ledger.admit(kinds.B.get('serve') as Admittable).admitted).toBe(true);
  });

  it('§admission wakes higher priority first, then older, across kinds', () => {
    const { ledger, workload, woken } = setup();
    workload('A', 'old', 8, 3, { state: 'queued' });
    workload('B', 'urgent', 8, 3, { state: 'queued', priorityClassName: 'high' });
    workload('A', 'new', 8, 3, { state: 'queued' });
    ledger.wakeQueued();
    expect(woken).toEqual(['B/urgent', 'A/old', 'A/new']);
  });

  it('§admission a queued workload ahead of another kind keeps the GPUs it will fit in', () => {
    const { ledger, workload, kinds } = setup();
    const holder = workload('A', 'holder', 8, 1);
    expect(ledger.admit(holder).admitted).toBe(true);
    kinds.A.set('holder', { ...holder, state: 'admitted' });
    // B's big gang needs both nodes; it is ahead (older) of A's small one, so A waits.
    const big = workload('B', 'big', 8, 2);
    expect(ledger.admit(big).admitted).toBe(false);
    kinds.B.set('big', { ...big, state: 'queued' });
    const small = ledger.admit(workload('A', 'small', 4));
    expect(small).toMatchObject({ admitted: false, reason: 'WaitingForEarlierJobs' });
    expect(small.message).toContain('waiting behind B big');
  });

  it('§admission an assumed admission lapses when the caches never show it', () => {
    const { ledger, workload, clock } = setup();
    expect(ledger.admit(workload('A', 'ghost', 8, 2)).admitted).toBe(true);
    expect(ledger.admit(workload('B', 'next', 8)).admitted).toBe(false);
    clock.advance(61_000);
    expect(ledger.admit(workload('B', 'next', 8)).admitted).toBe(true);
  });

  it('§admission a finished workload holds nothing, even when just admitted', () => {
    const { ledger, workload, kinds } = setup();
    const a = workload('A', 'quick', 8, 2);
    expect(ledger.admit(a).admitted).toBe(true);
    kinds.A.set('quick', { ...a, state: 'inactive' });
    expect(ledger.admit(workload('B', 'next', 8, 2)).admitted).toBe(true);
  });

  it('§admission a gang that can never fit says so, with the capacity it would need', () => {
    const { ledger, workload } = setup();
    const v = ledger.admit(workload('A', 'huge', 8, 3));
    expect(v).toMatchObject({ admitted: false, reason: 'ExceedsClusterCapacity' });
    expect(v.message).toContain('needs 3 x 8 nvidia.com/gpu at once');
    expect(v.message).toContain('g0 capacity 8');
  });

  it('§admission a CPU-only gang larger than the free CPU waits, with what is free', () => {
    const { ledger, pods, kinds } = setup();
    pods.put(pod('g0', { requests: { cpu: '90' } }) as PodObject);
    pods.put(pod('g1', { requests: { cpu: '90' } }) as PodObject);
    const w: Admittable = {
      uid: 'cpu',
      namespace: 'ns',
      name: 'cpu-gang',
      kind: 'A',
      creationTimestamp: '2026-12-01T00:01:00Z',
      podSets: [{ name: 'worker', count: 4, requests: { cpu: 4000 } }],
      state: 'waiting',
    };
    kinds.A.set('cpu-gang', w);
    const v = ledger.admit(w);
    expect(v).toMatchObject({ admitted: false, reason: 'InsufficientResources' });
    expect(v.message).toContain('4 pods x (cpu 4)');
    expect(v.message).toContain('g0 cpu 6/96');
  });
});

function ownerRef(uid: string) {
  return { apiVersion: 'x/v1', kind: 'X', name: 'x', uid, controller: true };
}

describe('an admitted pod the scheduler left without a node', () => {
  it('§admission still holds its GPUs: a later gang is not admitted into the fragments', () => {
    const { ledger, pods, workload, kinds } = setup();
    // Admitted: a probe that needs a whole node (8) and a gang of 2 x 6, which the scheduler
    // spread over both nodes before the probe's pod was placed: 2 + 2 GPUs are left, in pieces.
    const probe = workload('A', 'probe', 8);
    kinds.A.set('probe', { ...probe, state: 'admitted' });
    const gang = workload('B', 'gang', 6, 2);
    kinds.B.set('gang', { ...gang, state: 'admitted' });
    for (const [i, node] of ['g0', 'g1'].entries()) {
      pods.put({
        ...pod(node, { limits: { [GPU]: '6' } }),
        metadata: { name: `gang-${i}`, uid: `gp${i}`, ownerReferences: [ownerRef(gang.uid)] },
      } as PodObject);
    }
    // 2 + 2 GPUs are free, but the probe (8, unbound, fits no node now) holds them.
    const late = ledger.admit(workload('B', 'late', 2, 2));
    expect(late).toMatchObject({ admitted: false });
    expect(late.message).toContain('g0 0/8, g1 0/8');
  });
});
