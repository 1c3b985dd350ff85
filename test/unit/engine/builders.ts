// Fluent builders of the objects the planner reads, in the style of Kueue's test wrappers:
//   trainingJob('a').workers(2).gpus(1).admitted().obj()
//   workerPod('a', 0).running().obj()
import type { Condition } from '../../../src/core/conditions.ts';
import type { TrainingJob } from '../../../src/controllers/trainingjob/builders.ts';
import { ATTEMPT_LABEL, POD_SHAPE_LABEL, REPLICA_INDEX_LABEL } from '../../../src/engine/labels.ts';
import type { Pod } from '../../../src/engine/pods.ts';

export const T0 = Date.parse('2026-12-01T10:00:00Z');
export const at = (secondsAfterT0: number): string =>
  new Date(T0 + secondsAfterT0 * 1000).toISOString().replace(/\.\d{3}Z$/, 'Z');

type Status = NonNullable<TrainingJob['status']>;

class TrainingJobBuilder {
  private readonly job: TrainingJob;

  constructor(name: string) {
    this.job = {
      apiVersion: 'lepton.ai/v1alpha1',
      kind: 'TrainingJob',
      metadata: {
        name,
        namespace: 'ns',
        uid: `uid-${name}`,
        generation: 1,
        creationTimestamp: at(0),
      },
      spec: { model: { uri: 'builtin://mlp' } } as TrainingJob['spec'],
    };
  }

  private spec(patch: Partial<TrainingJob['spec']>): this {
    Object.assign(this.job.spec, patch);
    return this;
  }

  private status(patch: Partial<Status>): this {
    this.job.status = { ...this.job.status, ...patch };
    return this;
  }

  workers(n: number): this {
    return this.spec({ workers: n });
  }

  gpus(count: number, product?: string): this {
    return this.spec({ resources: { gpu: { count, ...(product ? { product } : {}) } } });
  }

  backoffLimit(n: number): this {
    return this.spec({ backoffLimit: n });
  }

  suspend(): this {
    return this.spec({ suspend: true });
  }

  activeDeadline(seconds: number): this {
    return this.spec({ activeDeadlineSeconds: seconds });
  }

  startupDeadline(seconds: number): this {
    return this.spec({ startupDeadlineSeconds: seconds });
  }

  ttl(seconds: number): this {
    return this.spec({ ttlSecondsAfterFinished: seconds });
  }

  cleanPodPolicy(policy: 'Running' | 'All' | 'None'): this {
    return this.spec({ cleanPodPolicy: policy });
  }

  output(uri: string): this {
    return this.spec({ output: { uri } } as Partial<TrainingJob['spec']>);
  }

  phase(phase: Status['phase']): this {
    return this.status({ phase });
  }

  condition(type: string, ok: boolean, reason = 'Test'): this {
    const c: Condition = {
      type,
      status: ok ? 'True' : 'False',
      reason,
      message: '',
      lastTransitionTime: at(0),
      observedGeneration: 1,
    };
    const rest = (this.job.status?.conditions ?? []).filter((x) => x.type !== type);
    return this.status({ conditions: [...rest, c] as Status['conditions'] });
  }

  /** Admitted, running since `since` seconds after T0, with `workers` counted in the status. */
  admitted(since = 0): this {
    return this.condition('Admitted', true, 'GangAdmitted').status({
      phase: 'Running',
      startTime: at(since),
    });
  }

  counted(active: number): this {
    return this.status({ workers: { active, ready: active, succeeded: 0, failed: 0 } });
  }

  restarts(n: number): this {
    return this.status({ restarts: n });
  }

  finished(phase: 'Succeeded' | 'Failed', secondsAfterT0: number): this {
    return this.status({ phase, completionTime: at(secondsAfterT0) });
  }

  obj(): TrainingJob {
    return structuredClone(this.job);
  }
}

export const trainingJob = (name: string): TrainingJobBuilder => new TrainingJobBuilder(name);

class PodBuilder {
  private readonly pod: Pod;

  constructor(job: string, index: number) {
    this.pod = {
      apiVersion: 'v1',
      kind: 'Pod',
      metadata: {
        name: `${job}-worker-${index}`,
        namespace: 'ns',
        uid: `pod-${job}-${index}-${Math.random()}`,
        creationTimestamp: at(1),
        labels: { [REPLICA_INDEX_LABEL]: String(index), [ATTEMPT_LABEL]: '0' },
        ownerReferences: [
          {
            apiVersion: 'lepton.ai/v1alpha1',
            kind: 'TrainingJob',
            name: job,
            uid: `uid-${job}`,
            controller: true,
          },
        ],
      },
      spec: { nodeName: 'n0' },
      status: { phase: 'Pending' },
    };
  }

  shape(hash: string): this {
    (this.pod.metadata.labels as Record<string, string>)[POD_SHAPE_LABEL] = hash;
    return this;
  }

  attempt(n: number): this {
    (this.pod.metadata.labels as Record<string, string>)[ATTEMPT_LABEL] = String(n);
    return this;
  }

  createdAt(secondsAfterT0: number): this {
    this.pod.metadata.creationTimestamp = at(secondsAfterT0);
    return this;
  }

  unscheduled(message = '0/4 nodes are available'): this {
    this.pod.spec = {};
    this.pod.status = {
      phase: 'Pending',
      conditions: [{ type: 'PodScheduled', status: 'False', reason: 'Unschedulable', message }],
    };
    return this;
  }

  running(ip = '10.0.0.1'): this {
    this.pod.status = {
      phase: 'Running',
      podIP: ip,
      conditions: [{ type: 'Ready', status: 'True' }],
      containerStatuses: [{ ready: true, state: { running: { startedAt: at(2) } } }],
    };
    return this;
  }

  succeeded(message?: string): this {
    this.pod.status = {
      phase: 'Succeeded',
      containerStatuses: [{ state: { terminated: { exitCode: 0, message } } }],
    };
    return this;
  }

  exited(exitCode: number, reason = 'Error'): this {
    this.pod.status = {
      phase: 'Failed',
      containerStatuses: [{ state: { terminated: { exitCode, reason } } }],
    };
    return this;
  }

  deleting(): this {
    this.pod.metadata.deletionTimestamp = at(5);
    return this;
  }

  obj(): Pod {
    return structuredClone(this.pod);
  }
}

export const workerPod = (job: string, index: number): PodBuilder => new PodBuilder(job, index);
