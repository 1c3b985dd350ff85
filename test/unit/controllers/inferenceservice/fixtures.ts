// Fluent builders of what the InferenceService controller's pure parts read, in the style of
// test/unit/engine/builders.ts:
//   service('s').fromJob('train').minMetric('accuracy', 0.9).gpus(1).obj()
//   job('train').output('pvc://models/a').succeeded(at(60)).model('pvc://models/a', DIGEST).obj()
//   deploymentOf('s').replicas(2).rolledOut().ready(2).obj()
//   servingPod('s-0').ready().obj()
import type { Condition } from '../../../../src/core/conditions.ts';
import type { FederatedRound } from '../../../../src/controllers/federatedround/builders.ts';
import type { TrainingJob } from '../../../../src/controllers/trainingjob/builders.ts';
import type { InferenceService } from '../../../../src/controllers/inferenceservice/builders.ts';
import type {
  ModelSourceRef,
  ServableModel,
} from '../../../../src/controllers/inferenceservice/model-source.ts';
import type {
  DeploymentObject,
  ReplicaFailure,
  ServingPod,
  VariantState,
} from '../../../../src/controllers/inferenceservice/replicas.ts';

export const T0 = Date.parse('2026-12-01T10:00:00Z');
export const at = (secondsAfterT0: number): string =>
  new Date(T0 + secondsAfterT0 * 1000).toISOString().replace(/\.\d{3}Z$/, 'Z');

export const DIGEST_A = `sha256:${'a'.repeat(64)}`;
export const DIGEST_B = `sha256:${'b'.repeat(64)}`;

export const model = (uri: string, digest?: string, source?: ModelSourceRef): ServableModel => ({
  uri,
  format: 'tfjs-layers',
  ...(digest ? { digest } : {}),
  ...(source ? { source } : {}),
});

type Spec = InferenceService['spec'];
type ServiceStatus = NonNullable<InferenceService['status']>;
type MetricName = 'loss' | 'accuracy' | 'valLoss' | 'valAccuracy';

class ServiceBuilder {
  private readonly s: InferenceService;

  constructor(name: string) {
    this.s = {
      apiVersion: 'lepton.ai/v1alpha1',
      kind: 'InferenceService',
      metadata: {
        name,
        namespace: 'ns',
        uid: `uid-${name}`,
        generation: 1,
        creationTimestamp: at(0),
      },
      spec: { model: { uri: 'pvc://models/a' } },
    };
  }

  private spec(patch: Partial<Spec>): this {
    Object.assign(this.s.spec, patch);
    return this;
  }

  uri(uri: string, format?: 'tfjs-layers' | 'tfjs-graph'): this {
    return this.spec({ model: { uri, ...(format ? { format } : {}) } });
  }

  fromJob(name: string): this {
    return this.spec({ model: { trainingJobRef: { name } } });
  }

  fromRound(name: string): this {
    return this.spec({ model: { federatedRoundRef: { name } } });
  }

  minMetric(name: 'accuracy' | 'valAccuracy', value: number): this {
    this.s.spec.model.minMetric = { name, value };
    return this;
  }

  maxMetric(name: 'loss' | 'valLoss', value: number): this {
    this.s.spec.model.maxMetric = { name, value };
    return this;
  }

  scale(min: number, max: number, metric?: Spec['scaleMetric']): this {
    return this.spec({
      minReplicas: min,
      maxReplicas: max,
      ...(metric ? { scaleMetric: metric } : {}),
    });
  }

  gpus(count: number, product?: string): this {
    return this.spec({
      resources: { ...this.s.spec.resources, gpu: { count, ...(product ? { product } : {}) } },
    });
  }

  cpu(cpu: string): this {
    return this.spec({ resources: { ...this.s.spec.resources, cpu } });
  }

  canary(uri: string, trafficPercent?: number): this {
    return this.spec({
      canary: { model: { uri }, ...(trafficPercent !== undefined ? { trafficPercent } : {}) },
    });
  }

  batcher(b: NonNullable<Spec['batcher']>): this {
    return this.spec({ batcher: b });
  }

  podTemplate(t: unknown): this {
    return this.spec({ podTemplate: t as Spec['podTemplate'] });
  }

  generation(n: number): this {
    this.s.metadata.generation = n;
    return this;
  }

  status(patch: Partial<ServiceStatus>): this {
    this.s.status = { ...this.s.status, ...patch };
    return this;
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
    const rest = (this.s.status?.conditions ?? []).filter((x) => x.type !== type);
    return this.status({ conditions: [...rest, c] });
  }

  obj(): InferenceService {
    return structuredClone(this.s);
  }
}

export const service = (name: string): ServiceBuilder => new ServiceBuilder(name);

type JobStatus = NonNullable<TrainingJob['status']>;

class JobBuilder {
  private readonly j: TrainingJob;

  constructor(name: string) {
    this.j = {
      apiVersion: 'lepton.ai/v1alpha1',
      kind: 'TrainingJob',
      metadata: { name, namespace: 'ns', uid: `uid-${name}`, creationTimestamp: at(0) },
      spec: { model: { uri: 'builtin://mlp' } } as TrainingJob['spec'],
    };
  }

  private status(patch: Partial<JobStatus>): this {
    this.j.status = { ...this.j.status, ...patch };
    return this;
  }

  output(uri: string): this {
    this.j.spec.output = { uri } as TrainingJob['spec']['output'];
    return this;
  }

  schedule(cron = '@daily'): this {
    this.j.spec.schedule = { cron };
    return this;
  }

  federated(): this {
    this.j.spec.federated = {
      rounds: 3,
      participants: [{ name: 'a' }],
    } as unknown as TrainingJob['spec']['federated'];
    return this;
  }

  /** A run of `parent` (a scheduled job): controlled by it. */
  runOf(parent: string, controller = true): this {
    this.j.metadata.ownerReferences = [
      {
        apiVersion: 'lepton.ai/v1alpha1',
        kind: 'TrainingJob',
        name: parent,
        uid: `uid-${parent}`,
        controller,
      },
    ];
    return this;
  }

  phase(phase: JobStatus['phase']): this {
    return this.status({ phase });
  }

  succeeded(completionTime: string): this {
    return this.status({ phase: 'Succeeded', completionTime });
  }

  model(uri: string, digest?: string): this {
    return this.status({ model: { uri, ...(digest ? { digest } : {}) } });
  }

  metrics(m: Partial<Record<MetricName, number>>): this {
    return this.status({ progress: { ...this.j.status?.progress, ...m } });
  }

  /** A search (spec.tuning) whose best trial so far is `best`. */
  tuning(best?: string): this {
    this.j.spec.tuning = {
      objectives: [{ metric: 'accuracy', direction: 'Maximize' }],
      parameters: [
        {
          name: 'hyperparameters.learningRate',
          searchSpace: { logUniform: { min: 1e-4, max: 1 } },
        },
      ],
      numTrials: 4,
    };
    return this.status({
      tuning: { summary: '2/4 trials', ...(best ? { bestTrial: { name: best } } : {}) },
    });
  }

  committed(roundName: string): this {
    return this.status({ federated: { lastCommittedRound: roundName } });
  }

  obj(): TrainingJob {
    return structuredClone(this.j);
  }
}

export const job = (name: string): JobBuilder => new JobBuilder(name);

type RoundStatus = NonNullable<FederatedRound['status']>;

class RoundBuilder {
  private readonly r: FederatedRound;

  constructor(name: string) {
    this.r = {
      apiVersion: 'lepton.ai/v1alpha1',
      kind: 'FederatedRound',
      metadata: { name, namespace: 'ns', uid: `uid-${name}`, creationTimestamp: at(0) },
      spec: {} as FederatedRound['spec'],
    };
  }

  private status(patch: Partial<RoundStatus>): this {
    this.r.status = { ...this.r.status, ...patch };
    return this;
  }

  phase(phase: RoundStatus['phase']): this {
    return this.status({ phase });
  }

  model(uri: string, digest?: string): this {
    return this.status({ model: { uri, ...(digest ? { digest } : {}) } });
  }

  metrics(m: NonNullable<RoundStatus['metrics']>): this {
    return this.status({ metrics: m });
  }

  obj(): FederatedRound {
    return structuredClone(this.r);
  }
}

export const fedRound = (name: string): RoundBuilder => new RoundBuilder(name);

type DeploymentStatus = NonNullable<DeploymentObject['status']>;

class DeploymentBuilder {
  private readonly d: DeploymentObject;

  constructor(name: string) {
    this.d = {
      metadata: { name, namespace: 'ns', generation: 1 },
      spec: { replicas: 1 },
      status: { observedGeneration: 1 },
    };
  }

  private status(patch: Partial<DeploymentStatus>): this {
    this.d.status = { ...this.d.status, ...patch };
    return this;
  }

  replicas(n: number): this {
    this.d.spec = { ...this.d.spec, replicas: n };
    return this;
  }

  generation(n: number): this {
    this.d.metadata.generation = n;
    return this;
  }

  observedGeneration(n: number): this {
    return this.status({ observedGeneration: n });
  }

  /** Pods in total and of the current template. */
  pods(total: number, updated: number): this {
    return this.status({ replicas: total, updatedReplicas: updated });
  }

  /** Every replica runs the current template. */
  rolledOut(): this {
    const n = this.d.spec?.replicas ?? 0;
    return this.pods(n, n);
  }

  ready(n: number): this {
    return this.status({ readyReplicas: n });
  }

  obj(): DeploymentObject {
    return structuredClone(this.d);
  }
}

export const deploymentOf = (name: string): DeploymentBuilder => new DeploymentBuilder(name);

type ContainerStatus = NonNullable<NonNullable<ServingPod['status']>['containerStatuses']>[number];
type Terminated = NonNullable<NonNullable<ContainerStatus['lastState']>['terminated']>;

class PodBuilder {
  private readonly p: ServingPod;

  constructor(name: string) {
    this.p = {
      metadata: { name, namespace: 'ns', uid: `uid-${name}` },
      spec: { nodeName: 'n0' },
      status: { phase: 'Pending', conditions: [], containerStatuses: [{ ready: false }] },
    };
  }

  private container(patch: Partial<ContainerStatus>): this {
    const status = this.p.status ?? {};
    const [c] = status.containerStatuses ?? [{}];
    status.containerStatuses = [{ ...c, ...patch }];
    this.p.status = status;
    return this;
  }

  private podCondition(type: string, ok: boolean, reason?: string, message?: string): this {
    const status = this.p.status ?? {};
    status.conditions = [
      ...(status.conditions ?? []).filter((c) => c.type !== type),
      {
        type,
        status: ok ? 'True' : 'False',
        ...(reason ? { reason } : {}),
        ...(message ? { message } : {}),
      },
    ];
    this.p.status = status;
    return this;
  }

  running(): this {
    this.p.status = { ...this.p.status, phase: 'Running', podIP: '10.0.0.1' };
    return this.container({ state: {} });
  }

  ready(): this {
    this.running();
    this.podCondition('Ready', true);
    return this.container({ ready: true });
  }

  /** The container ended now (state.terminated). */
  terminated(t: Terminated): this {
    return this.container({ state: { terminated: t } });
  }

  /** The container ended before (lastState.terminated), e.g. while in CrashLoopBackOff. */
  lastTerminated(t: Terminated): this {
    return this.container({ lastState: { terminated: t } });
  }

  waiting(reason: string, message?: string): this {
    return this.container({ state: { waiting: { reason, ...(message ? { message } : {}) } } });
  }

  unschedulable(message: string): this {
    this.p.spec = {};
    return this.podCondition('PodScheduled', false, 'Unschedulable', message);
  }

  deleting(): this {
    this.p.metadata.deletionTimestamp = at(30);
    return this;
  }

  obj(): ServingPod {
    return structuredClone(this.p);
  }
}

export const servingPod = (name: string): PodBuilder => new PodBuilder(name);

/** A variant's state as variantState returns it; defaults: nothing runs. */
export const variant = (over: Partial<VariantState> = {}): VariantState => ({
  replicas: 0,
  ready: 0,
  updated: 0,
  rollingOut: false,
  ...over,
});

export const failure = (
  reason: string,
  pod = 's-predictor-0',
  message = 'it broke',
): ReplicaFailure => ({
  reason,
  message,
  pod,
});
