// How the engine shows a kind's objects to the shared ledger: state from the status, pod sets
// from the adapter, and only objects this controller runs.
import { trainingJobWorkload } from '../../../src/controllers/trainingjob/workload.ts';
import { admittable, workloadSource } from '../../../src/engine/admission.ts';
import { MemoryCache } from '../memory-cache.ts';
import type { TrainingJob } from '../../../src/controllers/trainingjob/builders.ts';
import { trainingJob } from './builders.ts';

const w = trainingJobWorkload({ build: { runtimeImage: 'cpu', runtimeGpuImage: 'gpu' } });

describe('admittable', () => {
  it.each([
    ['a new job is waiting', trainingJob('a'), 'waiting'],
    ['Queued is queued', trainingJob('a').phase('Queued'), 'queued'],
    ['Admitted=True is admitted', trainingJob('a').admitted(), 'admitted'],
    ['a suspended job holds nothing', trainingJob('a').admitted().suspend(), 'inactive'],
    ['a finished job holds nothing', trainingJob('a').admitted().finished('Failed', 5), 'inactive'],
  ])('%s', (_case, b, state) => {
    expect(admittable(w, b.obj()).state).toBe(state);
  });

  it('asks what the pods ask: GPUs of the product with their toleration, CPU and memory', () => {
    const job = trainingJob('a').workers(3).gpus(2, 'H100').obj();
    job.spec.resources = { ...job.spec.resources, cpu: '500m', memory: '1Gi' };
    expect(admittable(w, job).podSets).toEqual([
      {
        name: 'worker',
        count: 3,
        requests: { 'nvidia.com/gpu': 2, cpu: 500, memory: 2 ** 30 },
        nodeSelector: { 'nvidia.com/gpu.product': 'H100' },
        tolerations: [{ key: 'nvidia.com/gpu', operator: 'Exists', effect: 'NoSchedule' }],
      },
    ]);
  });
});

describe('workloadSource', () => {
  it('lists only what this controller runs, and wakes by key', () => {
    const cache = new MemoryCache<TrainingJob>([
      trainingJob('run').obj(),
      {
        ...trainingJob('cron').obj(),
        spec: { ...trainingJob('cron').obj().spec, schedule: { cron: '* * * * *' } },
      },
    ]);
    const woken: string[] = [];
    const source = workloadSource(
      w,
      cache,
      (k) => woken.push(k),
      (j) => Boolean(j.spec.schedule),
    );
    expect(source.list().map((a) => a.name)).toEqual(['run']);
    source.wake('ns', 'run');
    expect(woken).toEqual(['ns/run']);
  });
});
