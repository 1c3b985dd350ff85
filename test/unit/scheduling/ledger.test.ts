// The shared admission ledger: two kinds admit against the same capacity, nothing is booked
// twice, order is priority then age across kinds, and released capacity wakes every kind.
import { FakeClock } from '../../../src/core/clock.ts';
import type { KubeObject } from '../../../src/core/resources.ts';
import {
  type FederatedRound,
  clientPod,
} from '../../../src/controllers/federatedround/builders.ts';
import { federatedRoundWorkload } from '../../../src/controllers/federatedround/workload.ts';
import { trainingJobWorkload } from '../../../src/controllers/trainingjob/workload.ts';
import { admittable } from '../../../src/engine/admission.ts';
import type { PodObject, PodSet } from '../../../src/scheduling/capacity.ts';
import { type Admittable, AdmissionLedger } from '../../../src/scheduling/ledger.ts';
import { round } from '../controllers/federatedround/builders.ts';
import { trainingJob } from '../engine/builders.ts';
import { MemoryCache } from '../memory-cache.ts';
import { bound, node, pod } from './fixtures.ts';

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

// Partial admission: a FederatedRound (through its real adapter) is one pod set per participant
// and may be admitted with its quorum (minPodSets); a TrainingJob is one gang, all or nothing.
const SITE = 'lepton.ai/site';
const build = { runtimeImage: 'cpu', runtimeGpuImage: 'gpu' };
const rounds = federatedRoundWorkload({ build });
const jobs = trainingJobWorkload({ build });

const siteNode = (name: string, site: string, cpu = '4') =>
  node(name, { cpu, memory: '16Gi', pods: '110' }, { labels: { [SITE]: site } });

function sites(nodes: KubeObject[]) {
  const nodeCache = new MemoryCache<KubeObject>(nodes);
  const pods = new MemoryCache<PodObject>([]);
  const classes = new MemoryCache<KubeObject>([
    { metadata: { name: 'high' }, value: 1000 } as KubeObject,
  ]);
  const clock = new FakeClock(Date.parse('2026-12-01T00:00:00Z'));
  const ledger = new AdmissionLedger({ nodes: nodeCache, pods, priorityClasses: classes, clock });
  const kinds = {
    TrainingJob: new Map<string, Admittable>(),
    FederatedRound: new Map<string, Admittable>(),
  };
  for (const kind of ['TrainingJob', 'FederatedRound'] as const)
    ledger.register({ kind, list: () => [...kinds[kind].values()], wake: () => undefined });
  let n = 0;
  const stamp = () => `2026-12-01T00:00:${String(n++).padStart(2, '0')}Z`;
  /** A round with one participant per site (named after it), 2 CPUs each. */
  const fround = (name: string, at: string[], quorum?: number) => {
    let b = round(name).participants(...at.map((s) => `site-${s}`));
    for (const s of at) b = b.site(`site-${s}`, { nodeSelector: { [SITE]: s } });
    if (quorum !== undefined) b = b.quorum(quorum);
    const obj = b.obj();
    obj.metadata.creationTimestamp = stamp();
    obj.spec.resources = { cpu: '2', memory: '1Gi' } as FederatedRound['spec']['resources'];
    const a = admittable(rounds, obj);
    kinds.FederatedRound.set(name, a);
    return { obj, a };
  };
  /** Another workload: `count` pods of `cpu` CPUs at one site. */
  const job = (name: string, site: string, cpu: number, extra: Partial<Admittable> = {}) => {
    const a: Admittable = {
      uid: `job-${name}`,
      namespace: 'ns',
      name,
      kind: 'TrainingJob',
      creationTimestamp: stamp(),
      podSets: [
        { name: 'worker', count: 1, requests: { cpu: cpu * 1000 }, nodeSelector: { [SITE]: site } },
      ],
      state: 'waiting',
      ...extra,
    };
    kinds.TrainingJob.set(name, a);
    return a;
  };
  const set = (a: Admittable, state: Admittable['state']) =>
    kinds[a.kind as keyof typeof kinds].set(a.name, { ...a, state });
  /** The pod the round creates for a participant, bound to a node as the scheduler did. */
  const bind = (r: FederatedRound, participant: string, nodeName: string) => {
    const p = r.spec.participants.find((x) => x.name === participant);
    if (!p) throw new Error(`no participant ${participant}`);
    pods.put(bound(clientPod(r, p, {}, build, 0) as PodObject, nodeName));
  };
  /** Something else that fills a node. */
  const filler = (nodeName: string, cpu: string) => {
    const f = { ...pod(nodeName, { requests: { cpu } }), metadata: { name: `fill-${nodeName}` } };
    pods.put(f as PodObject);
    return f as PodObject;
  };
  return { ledger, pods, clock, fround, job, set, bind, filler };
}

/** Site c has no room: no node of it at all, or its node is full. */
const noRoomAtC = {
  'no node': (s: ReturnType<typeof sites>) => s,
  'its node full': (s: ReturnType<typeof sites>) => {
    s.filler('c0', '4');
    return s;
  },
};
const threeSites = (variant: keyof typeof noRoomAtC) =>
  noRoomAtC[variant](
    sites([
      siteNode('a0', 'a'),
      siteNode('b0', 'b'),
      ...(variant === 'its node full' ? [siteNode('c0', 'c')] : []),
    ]),
  );

describe('partial admission (minPodSets)', () => {
  it('§admission the round adapter asks for its quorum of per-participant pod sets', () => {
    const { a } = threeSites('no node').fround('r', ['a', 'b', 'c'], 2);
    expect(a.minPodSets).toBe(2);
    expect(a.podSets.map((s) => [s.name, s.count, s.nodeSelector?.[SITE]])).toEqual([
      ['site-a', 1, 'a'],
      ['site-b', 1, 'b'],
      ['site-c', 1, 'c'],
    ]);
    // Without minParticipants every participant is the quorum.
    expect(threeSites('no node').fround('all', ['a', 'b', 'c']).a.minPodSets).toBe(3);
  });

  it.each([
    ['no node', 'no node qualifies'],
    ['its node full', 'c0 cpu 0/4'],
  ] as const)(
    '§admission a round with 3 sites, one of which has %s, is admitted with the other 2 when minParticipants is 2',
    (variant, why) => {
      const { ledger, fround } = threeSites(variant);
      const v = ledger.admit(fround('r', ['a', 'b', 'c'], 2).a);
      expect(v).toMatchObject({ admitted: true, reason: 'GangAdmitted' });
      expect(v.message).toContain('2 of 3 pod sets fit (at least 2 needed): site-a, site-b (');
      expect(v.message).toContain(
        `left out: site-c (1 pod x (cpu 2, memory 1Gi); free now: ${why}`,
      );
    },
  );

  it.each([
    ['no node', 'ExceedsClusterCapacity', 'never fit: site-c'],
    ['its node full', 'InsufficientResources', 'no room now for: site-c'],
  ] as const)(
    '§admission a round with 3 sites, one of which has %s, is queued when minParticipants is 3',
    (variant, reason, names) => {
      const { ledger, fround, job } = threeSites(variant);
      const v = ledger.admit(fround('r', ['a', 'b', 'c'], 3).a);
      expect(v).toMatchObject({ admitted: false, reason });
      expect(v.message).toContain(names);
      // Nothing was reserved: sites a and b are whole for the next one.
      expect(ledger.admit(job('next', 'a', 4)).admitted).toBe(true);
      expect(ledger.admit(job('other', 'b', 4)).admitted).toBe(true);
    },
  );

  it('§admission the verdict message names the left-out participants, and only them, with why', () => {
    const s = sites([siteNode('a0', 'a'), siteNode('b0', 'b'), siteNode('d0', 'd')]);
    s.filler('d0', '3');
    const v = s.ledger.admit(s.fround('r', ['a', 'b', 'c', 'd'], 2).a);
    expect(v.admitted).toBe(true);
    const left = v.message.slice(v.message.indexOf('left out: '));
    expect(left).toContain(
      'site-c (1 pod x (cpu 2, memory 1Gi); free now: no node qualifies (node selector, taints, resources))',
    );
    expect(left).toContain('site-d (1 pod x (cpu 2, memory 1Gi); free now: d0 cpu 1/4');
    expect(left.split('free before')[0]).not.toMatch(/site-a|site-b/);
  });

  it('§admission a partial admission holds only the sets it took, also once its status says so', () => {
    const s = threeSites('its node full');
    const { a } = s.fround('r', ['a', 'b', 'c'], 2);
    expect(s.ledger.admit(a).admitted).toBe(true);
    s.set(a, 'admitted');
    s.clock.advance(61_000);
    // Its participants at a and b hold 2 CPUs each, not yet bound.
    expect(s.ledger.admit(s.job('at-a', 'a', 3))).toMatchObject({ admitted: false });
    // Site c frees: the round reserved nothing there.
    s.pods.remove(s.pods.list()[0] as PodObject);
    expect(s.ledger.admit(s.job('at-c', 'c', 4)).admitted).toBe(true);
  });

  it('§admission a pod of a left-out participant is not counted twice, and counts once bound', () => {
    const s = threeSites('its node full');
    const { obj, a } = s.fround('r', ['a', 'b', 'c'], 2);
    expect(s.ledger.admit(a).admitted).toBe(true);
    s.set(a, 'admitted');
    // Site c frees and the scheduler binds the left-out participant's waiting pod there; site b's
    // pod is bound too; site a's is not yet.
    s.pods.remove(s.pods.list()[0] as PodObject);
    s.bind(obj, 'site-c', 'c0');
    s.bind(obj, 'site-b', 'b0');
    // a: 2 of 4 still held for the round; b: its bound pod takes 2, held no more; c: the bound
    // pod takes 2 (the capacity view), and nothing else.
    expect(s.ledger.admit(s.job('a3', 'a', 3)).admitted).toBe(false);
    expect(s.ledger.admit(s.job('c3', 'c', 3)).admitted).toBe(false);
    expect(s.ledger.admit(s.job('b2', 'b', 2)).admitted).toBe(true);
    expect(s.ledger.admit(s.job('c2', 'c', 2)).admitted).toBe(true);
    expect(s.ledger.admit(s.job('a2', 'a', 2)).admitted).toBe(true);
  });

  it('§admission two rounds competing for the same nodes do not over-admit', () => {
    // Site a has room for 2 participants' pods, site b for 1, site c has no node.
    const s = sites([siteNode('a0', 'a'), siteNode('b0', 'b', '2')]);
    const first = s.fround('first', ['a', 'b', 'c'], 2).a;
    expect(s.ledger.admit(first).admitted).toBe(true);
    const second = s.ledger.admit(s.fround('second', ['a', 'b', 'c'], 2).a);
    expect(second).toMatchObject({ admitted: false, reason: 'InsufficientResources' });
    expect(second.message).toContain('no room now for: site-b');
    // A round content with one site gets what is left at a, and then a is full too.
    expect(s.ledger.admit(s.fround('third', ['a', 'b', 'c'], 1).a).admitted).toBe(true);
    expect(s.ledger.admit(s.fround('fourth', ['a', 'b', 'c'], 1).a).admitted).toBe(false);
    expect(s.ledger.admit(s.job('any-a', 'a', 1)).admitted).toBe(false);
    expect(s.ledger.admit(s.job('any-b', 'b', 1)).admitted).toBe(false);
  });

  it('§admission a queued round keeps its place: those behind wait on its nodes, priority goes first', () => {
    const s = sites([siteNode('a0', 'a'), siteNode('b0', 'b'), siteNode('z0', 'z')]);
    const holder = s.job('holder', 'a', 4);
    expect(s.ledger.admit(holder).admitted).toBe(true);
    s.set(holder, 'admitted');
    // Only b fits of a and b (c has no node): the round waits for a, ahead of younger ones.
    const { a } = s.fround('r', ['a', 'b', 'c'], 2);
    expect(s.ledger.admit(a)).toMatchObject({ admitted: false, reason: 'InsufficientResources' });
    s.set(a, 'queued');
    const behind = s.ledger.admit(s.job('behind', 'b', 1));
    expect(behind).toMatchObject({ admitted: false, reason: 'WaitingForEarlierJobs' });
    expect(behind.message).toContain('waiting behind FederatedRound r');
    // Elsewhere, or of higher priority, goes on.
    expect(s.ledger.admit(s.job('elsewhere', 'z', 4)).admitted).toBe(true);
    expect(s.ledger.admit(s.job('urgent', 'b', 1, { priorityClassName: 'high' })).admitted).toBe(
      true,
    );
  });

  it("§admission a TrainingJob's gang admission is unchanged: all of its workers or none", () => {
    const s = sites([
      node('g0', { [GPU]: '8', cpu: '96', pods: '110' }),
      node('g1', { [GPU]: '8', cpu: '96', pods: '110' }),
    ]);
    const held = s.job('held', 'x', 0);
    held.podSets = [{ name: 'worker', count: 1, requests: { [GPU]: 8 } }];
    expect(s.ledger.admit(held).admitted).toBe(true);
    const tj = admittable(jobs, trainingJob('tj').workers(2).gpus(8).obj());
    expect(tj.minPodSets).toBeUndefined();
    // One of its two workers would fit: it is not admitted with one, and reserves nothing.
    expect(s.ledger.admit(tj)).toMatchObject({ admitted: false, reason: 'InsufficientGPU' });
    const one = s.job('one', 'x', 0);
    one.podSets = [{ name: 'worker', count: 1, requests: { [GPU]: 8 } }];
    expect(s.ledger.admit(one).admitted).toBe(true);
  });
});
