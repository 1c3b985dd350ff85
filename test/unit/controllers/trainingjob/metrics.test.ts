import { MemoryCache } from '../../memory-cache.ts';
import { OperatorMetrics } from '../../../../src/core/metrics.ts';
import { Resources } from '../../../../src/core/resources.ts';
import type { TrainingJob } from '../../../../src/controllers/trainingjob/builders.ts';
import {
  SeenJobs,
  TrainingJobMetrics,
  pendingReason,
  transition,
} from '../../../../src/controllers/trainingjob/metrics.ts';

type Status = NonNullable<TrainingJob['status']>;
type Condition = NonNullable<Status['conditions']>[number];

const CREATED = Date.parse('2026-01-01T00:00:00Z');

/** A TrainingJob fixture: `trainingJob('a').workers(2).gpus(1, 'H100').admitted().build()`. */
function trainingJob(name: string) {
  const job: TrainingJob = {
    apiVersion: 'lepton.ai/v1alpha1',
    kind: 'TrainingJob',
    metadata: {
      name,
      namespace: 'ns',
      uid: `uid-${name}`,
      creationTimestamp: new Date(CREATED).toISOString(),
    },
    spec: { model: { preset: 'mlp' } },
  };
  const condition = (type: string, status: Condition['status']) => {
    const conditions = (job.status ??= {}).conditions ?? [];
    conditions.push({
      type,
      status,
      reason: type,
      message: '',
      lastTransitionTime: new Date(CREATED).toISOString(),
    });
    job.status.conditions = conditions;
  };
  const b = {
    workers(n: number) {
      job.spec.workers = n;
      return b;
    },
    gpus(count: number, product?: string) {
      job.spec.resources = { gpu: { count, ...(product ? { product } : {}) } };
      return b;
    },
    phase(phase: Status['phase']) {
      (job.status ??= {}).phase = phase;
      return b;
    },
    admitted() {
      condition('Admitted', 'True');
      return b;
    },
    refused() {
      condition('Accepted', 'False');
      return b;
    },
    suspended() {
      job.spec.suspend = true;
      return b;
    },
    scheduled() {
      job.spec.schedule = { cron: '0 * * * *' };
      return b;
    },
    searching(counts: Record<string, number>) {
      job.spec.tuning = {
        objectives: [{ metric: 'accuracy', direction: 'Maximize' }],
        parameters: [
          {
            name: 'hyperparameters.learningRate',
            searchSpace: { logUniform: { min: 1e-4, max: 1 } },
          },
        ],
        numTrials: 10,
      };
      (job.status ??= {}).tuning = { counts };
      return b;
    },
    build: () => job,
  };
  return b;
}

function setup(jobs: TrainingJob[] = []) {
  const operator = new OperatorMetrics({ processMetrics: false });
  const cache = new MemoryCache<TrainingJob>(jobs, Resources.TrainingJob);
  const metrics = new TrainingJobMetrics(operator, cache);
  return { cache, metrics, text: () => operator.registry.metrics() };
}

/** The sample lines of one metric in the exposition text, in order. */
function samples(text: string, name: string): string[] {
  return text
    .split('\n')
    .filter((l) => l.startsWith(`${name}{`) || l.startsWith(`${name} `))
    .sort();
}

describe('lepton_tuning_trials', () => {
  it('§tuning-metrics sums the trials of the searches by namespace and state; other jobs add nothing', async () => {
    const other = trainingJob('c').searching({ running: 1, pruned: 2 }).build();
    other.metadata.namespace = 'other';
    const { text } = setup([
      trainingJob('a').searching({ created: 5, running: 2, succeeded: 2, failed: 1 }).build(),
      trainingJob('b').searching({ created: 1, pending: 1 }).build(),
      other,
      trainingJob('plain').phase('Running').build(),
    ]);
    expect(samples(await text(), 'lepton_tuning_trials')).toEqual(
      [
        'lepton_tuning_trials{namespace="ns",state="failed"} 1',
        'lepton_tuning_trials{namespace="ns",state="pending"} 1',
        'lepton_tuning_trials{namespace="ns",state="pruned"} 0',
        'lepton_tuning_trials{namespace="ns",state="running"} 2',
        'lepton_tuning_trials{namespace="ns",state="succeeded"} 2',
        'lepton_tuning_trials{namespace="other",state="failed"} 0',
        'lepton_tuning_trials{namespace="other",state="pending"} 0',
        'lepton_tuning_trials{namespace="other",state="pruned"} 2',
        'lepton_tuning_trials{namespace="other",state="running"} 1',
        'lepton_tuning_trials{namespace="other",state="succeeded"} 0',
      ].sort(),
    );
  });

  it('§tuning-metrics no search, no series', async () => {
    const { text } = setup([trainingJob('plain').build()]);
    expect(samples(await text(), 'lepton_tuning_trials')).toEqual([]);
  });
});

describe('lepton_trainingjob_gpus', () => {
  it.each([
    ['a scheduled job (a template that runs no pods itself)', trainingJob('t').scheduled()],
    ['a suspended job', trainingJob('s').suspended().phase('Suspended')],
    ['a job whose spec was refused (Accepted=False)', trainingJob('r').refused()],
    ['a finished job', trainingJob('f').admitted().phase('Succeeded')],
  ])('§4 %s requests no GPUs', async (_case, fixture) => {
    const { text } = setup([fixture.workers(2).gpus(4, 'H100').build()]);
    expect(samples(await text(), 'lepton_trainingjob_gpus')).toEqual([]);
  });

  it('§4 a product requested by no admitted job reads allocated 0 instead of having no series', async () => {
    const { text } = setup([trainingJob('q').workers(2).gpus(4, 'H100').phase('Queued').build()]);
    expect(samples(await text(), 'lepton_trainingjob_gpus')).toEqual([
      'lepton_trainingjob_gpus{namespace="ns",product="H100",state="allocated"} 0',
      'lepton_trainingjob_gpus{namespace="ns",product="H100",state="requested"} 8',
    ]);
  });

  it('§4 requested counts every job that may run, allocated the admitted gangs, per product', async () => {
    const { text } = setup([
      trainingJob('running').workers(2).gpus(4, 'H100').admitted().phase('Running').build(),
      // Admitted, pods not running yet: its GPUs are already reserved for the gang.
      trainingJob('starting').gpus(1, 'H100').admitted().phase('Pending').build(),
      trainingJob('queued').workers(3).gpus(2, 'H100').phase('Queued').build(),
      trainingJob('new').gpus(1).build(),
      trainingJob('template').gpus(8, 'H100').scheduled().build(),
      trainingJob('cpu').workers(4).build(),
    ]);
    expect(samples(await text(), 'lepton_trainingjob_gpus')).toEqual([
      'lepton_trainingjob_gpus{namespace="ns",product="H100",state="allocated"} 9',
      'lepton_trainingjob_gpus{namespace="ns",product="H100",state="requested"} 15',
      'lepton_trainingjob_gpus{namespace="ns",product="any",state="allocated"} 0',
      'lepton_trainingjob_gpus{namespace="ns",product="any",state="requested"} 1',
    ]);
  });

  it('§4 the series of a product go away with its last job, and come back with the next', async () => {
    const job = trainingJob('a').gpus(2, 'A100').admitted().phase('Running').build();
    const { cache, text } = setup([job]);
    expect(samples(await text(), 'lepton_trainingjob_gpus')).toHaveLength(2);
    cache.remove(job);
    expect(samples(await text(), 'lepton_trainingjob_gpus')).toEqual([]);
    cache.put(trainingJob('b').gpus(1, 'A100').build());
    expect(samples(await text(), 'lepton_trainingjob_gpus')).toEqual([
      'lepton_trainingjob_gpus{namespace="ns",product="A100",state="allocated"} 0',
      'lepton_trainingjob_gpus{namespace="ns",product="A100",state="requested"} 1',
    ]);
  });
});

describe('lepton_trainingjob_queue_wait_seconds', () => {
  it('§4 a job admitted again (stale cache, failed create, second reconcile) is observed once', async () => {
    const job = trainingJob('a').gpus(1).build();
    const { metrics, text } = setup([job]);
    // The reconciler admits again on every reconcile whose cache does not show the admission.
    for (let i = 0; i < 3; i++) metrics.admitted(job, CREATED + 30_000 + i * 1000);
    const t = await text();
    expect(t).toContain('lepton_trainingjob_queue_wait_seconds_count{namespace="ns"} 1\n');
    expect(t).toContain('lepton_trainingjob_queue_wait_seconds_sum{namespace="ns"} 30\n');
    expect(t).toContain('lepton_trainingjob_queue_wait_seconds_bucket{le="30",namespace="ns"} 1\n');
    expect(t).toContain('lepton_trainingjob_queue_wait_seconds_bucket{le="15",namespace="ns"} 0\n');
  });

  it('§4 every job is observed once: two jobs admitted twice each count 2', async () => {
    const a = trainingJob('a').build();
    const b = trainingJob('b').build();
    const { metrics, text } = setup([a, b]);
    for (const j of [a, b, a, b]) metrics.admitted(j, CREATED + 5000);
    expect(await text()).toContain(
      'lepton_trainingjob_queue_wait_seconds_count{namespace="ns"} 2\n',
    );
  });

  it('§4 a job admitted again after a resume is not observed again (its wait is its first)', async () => {
    const job = trainingJob('a').build();
    const { metrics, text } = setup([job]);
    metrics.admitted(job, CREATED + 1000);
    // An hour later, after a suspend and a resume: the wait since creation would include the run.
    metrics.admitted(job, CREATED + 3_600_000);
    const t = await text();
    expect(t).toContain('lepton_trainingjob_queue_wait_seconds_count{namespace="ns"} 1\n');
    expect(t).toContain('lepton_trainingjob_queue_wait_seconds_sum{namespace="ns"} 1\n');
  });
});

describe('lepton_trainingjob_duration_seconds', () => {
  it('§4 a job whose final phase change is seen twice is observed once', async () => {
    const job = trainingJob('a').build();
    const { metrics, text } = setup([job]);
    const status: Status = {
      phase: 'Succeeded',
      startTime: new Date(CREATED).toISOString(),
      completionTime: new Date(CREATED + 120_000).toISOString(),
    };
    metrics.finished(job, status);
    metrics.finished(job, status);
    const t = await text();
    expect(t).toContain(
      'lepton_trainingjob_duration_seconds_count{namespace="ns",phase="Succeeded"} 1\n',
    );
    expect(t).toContain(
      'lepton_trainingjob_duration_seconds_sum{namespace="ns",phase="Succeeded"} 120\n',
    );
  });
});

describe('SeenJobs', () => {
  it('§4 stays bounded: past its limit it forgets the jobs that were deleted', () => {
    const cache = new MemoryCache<TrainingJob>([], Resources.TrainingJob);
    const seen = new SeenJobs(cache);
    const live = trainingJob('live').build();
    cache.put(live);
    expect(seen.add(live)).toBe(true);
    // Jobs that came and went, as in a long-running operator.
    for (let i = 0; i < 5000; i++) {
      const j = trainingJob(`gone-${i}`).build();
      cache.put(j);
      expect(seen.add(j)).toBe(true);
      cache.remove(j);
    }
    expect(seen.size).toBeLessThanOrEqual(1024);
    // A job that is still there is never forgotten.
    expect(seen.add(live)).toBe(false);
  });
});

describe('counters of what the operator writes (created, succeeded, failed, restarts)', () => {
  type S = NonNullable<TrainingJob['status']>;
  it.each<[string, S | undefined, S, ReturnType<typeof transition>]>([
    ['the first status: created', undefined, { phase: 'Pending' }, { created: true, restarts: 0 }],
    ['no phase written yet: not created', undefined, {}, { created: false, restarts: 0 }],
    [
      'Running to Succeeded: finished once',
      { phase: 'Running' },
      { phase: 'Succeeded' },
      { created: false, finished: 'Succeeded', restarts: 0 },
    ],
    [
      'Succeeded written again (a later write of a finished job): nothing',
      { phase: 'Succeeded' },
      { phase: 'Succeeded' },
      { created: false, restarts: 0 },
    ],
    [
      'a restart: status.restarts 1 to 2',
      { phase: 'Running', restarts: 1 },
      { phase: 'Pending', restarts: 2 },
      { created: false, restarts: 1 },
    ],
    [
      'created and failed at once (a spec refused in the first write)',
      undefined,
      { phase: 'Failed' },
      { created: true, finished: 'Failed', restarts: 0 },
    ],
  ])('§obs %s', (_name, before, after, want) => {
    expect(transition(before, after)).toEqual(want);
  });

  it('§obs each job counts once however many replicas or restarts follow: a new operator sees the status already written', async () => {
    const job = trainingJob('a').build();
    const { metrics, text } = setup([job]);
    metrics.written(job, { phase: 'Pending' });
    const running = { ...job, status: { phase: 'Running' } } as TrainingJob;
    metrics.written(running, { phase: 'Running', restarts: 1 });
    metrics.written({ ...job, status: { phase: 'Running', restarts: 1 } } as TrainingJob, {
      phase: 'Failed',
      restarts: 1,
      failure: { reason: 'BackoffLimitExceeded' },
    });
    // A new leader (a fresh TrainingJobMetrics) only writes over the finished status.
    const after = setup([job]);
    const done = {
      ...job,
      status: { phase: 'Failed', restarts: 1, failure: { reason: 'BackoffLimitExceeded' } },
    } as TrainingJob;
    after.metrics.written(done, { ...done.status, observedGeneration: 2 });
    const t = await text();
    expect(samples(t, 'lepton_trainingjob_created_total')).toEqual([
      'lepton_trainingjob_created_total{namespace="ns"} 1',
    ]);
    expect(samples(t, 'lepton_trainingjob_restarts_total')).toEqual([
      'lepton_trainingjob_restarts_total{namespace="ns"} 1',
    ]);
    expect(samples(t, 'lepton_trainingjob_failed_total')).toEqual([
      'lepton_trainingjob_failed_total{namespace="ns",reason="BackoffLimitExceeded"} 1',
    ]);
    // Started at 0 with the namespace's first job, so that increase() sees the first event.
    expect(samples(t, 'lepton_trainingjob_succeeded_total')).toEqual([
      'lepton_trainingjob_succeeded_total{namespace="ns"} 0',
    ]);
    const t2 = await after.text();
    for (const name of ['created', 'failed', 'restarts'])
      expect(samples(t2, `lepton_trainingjob_${name}_total`)).toEqual([]);
  });
});

describe('lepton_trainingjobs_pending', () => {
  it.each<[string, TrainingJob, string | undefined]>([
    ['no status yet', trainingJob('a').build(), 'Pending'],
    ['refused spec', trainingJob('a').refused().build(), 'Accepted'],
    ['suspended', trainingJob('a').suspended().build(), 'Suspended'],
    ['admitted', trainingJob('a').admitted().phase('Running').build(), undefined],
    ['finished', trainingJob('a').phase('Failed').build(), undefined],
  ])('§obs %s: %s', (_name, job, want) => {
    expect(pendingReason(job)).toBe(want);
  });

  it("§obs counts by namespace and the reason of Admitted=False; a schedule's template is no workload", async () => {
    const waiting = (name: string, reason: string, namespace = 'ns') => {
      const j = trainingJob(name).build();
      j.metadata.namespace = namespace;
      j.status = {
        phase: 'Queued',
        conditions: [
          { type: 'Admitted', status: 'False', reason, message: '', lastTransitionTime: '' },
        ],
      };
      return j;
    };
    const { text } = setup([
      waiting('a', 'InsufficientGPU'),
      waiting('b', 'InsufficientGPU'),
      waiting('c', 'WaitingForEarlierJobs', 'other'),
      trainingJob('t').scheduled().build(),
      trainingJob('r').admitted().phase('Running').build(),
    ]);
    expect(samples(await text(), 'lepton_trainingjobs_pending')).toEqual([
      'lepton_trainingjobs_pending{namespace="ns",reason="InsufficientGPU"} 2',
      'lepton_trainingjobs_pending{namespace="other",reason="WaitingForEarlierJobs"} 1',
    ]);
  });
});

describe('training progress', () => {
  it('§obs epochs completed and planned, and the train and validation loss, per job that reported progress', async () => {
    const job = trainingJob('a').phase('Running').build();
    (job.status as NonNullable<TrainingJob['status']>).progress = {
      epoch: 3,
      epochs: 10,
      loss: 0.5,
      valLoss: 0.75,
    };
    const { text } = setup([job, trainingJob('b').build()]);
    const t = await text();
    expect(samples(t, 'lepton_trainingjob_epochs')).toEqual([
      'lepton_trainingjob_epochs{namespace="ns",name="a",state="completed"} 3',
      'lepton_trainingjob_epochs{namespace="ns",name="a",state="planned"} 10',
    ]);
    expect(samples(t, 'lepton_trainingjob_loss')).toEqual([
      'lepton_trainingjob_loss{namespace="ns",name="a",split="train"} 0.5',
      'lepton_trainingjob_loss{namespace="ns",name="a",split="validation"} 0.75',
    ]);
  });
});
