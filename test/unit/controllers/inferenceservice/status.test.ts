// The InferenceService status as a pure function of what a reconcile saw: conditions that tell
// the truth (Ready never True while no replica answers), the model served, the rejected model,
// the last failure, the canary, the autoscaler and the phase, with their Events once each.
import type { InferenceService } from '../../../../src/controllers/inferenceservice/builders.ts';
import type {
  Resolution,
  ServableModel,
} from '../../../../src/controllers/inferenceservice/model-source.ts';
import {
  CONDITIONS,
  type StatusInput,
  serviceStatus,
} from '../../../../src/controllers/inferenceservice/status.ts';
import { findCondition } from '../../../../src/core/conditions.ts';
import { DIGEST_A, DIGEST_B, T0, at, failure, model, service, variant } from './fixtures.ts';

const NOW = T0 + 100_000;
const URL = 'http://s.ns.svc.cluster.local';
const M1 = model('pvc://models/v1', DIGEST_A, { kind: 'TrainingJob', name: 'train' });
const M2 = model('pvc://models/v2', DIGEST_B, { kind: 'TrainingJob', name: 'train' });
const found = (m: ServableModel): Resolution => ({ kind: 'model', model: m });
const NO_MODEL_YET: Resolution = {
  kind: 'pending',
  reason: 'NoModelYet',
  message: 'TrainingJob train has not succeeded with a model yet (phase Running)',
};
const MISSING: Resolution = {
  kind: 'missing',
  reason: 'TrainingJobNotFound',
  message: 'spec.model.trainingJobRef names TrainingJob train, which does not exist',
};
const rejected = (m: ServableModel): Resolution => ({
  kind: 'pending',
  reason: 'GateNotMet',
  message: `model ${m.uri} is held back: accuracy 0.5 < minMetric 0.9`,
  rejected: { model: m, message: 'accuracy 0.5 < minMetric 0.9' },
});

/** A reconcile's view; by default one replica serves M1, which the spec calls for. */
function input(over: Partial<StatusInput> = {}): StatusInput {
  const s = over.s ?? service('s').fromJob('train').obj();
  return {
    s,
    // What acceptanceStatus hands over: the stored status, with Accepted set.
    status: structuredClone(s.status ?? {}),
    now: NOW,
    want: { predictor: M1 },
    resolutions: { predictor: found(M1) },
    predictor: variant({ replicas: 1, ready: 1, updated: 1 }),
    servedPredictor: M1,
    digests: [],
    canaryDigests: [],
    url: URL,
    admission: { desired: 1, admitted: 1 },
    strategy: 'Surge',
    ...over,
  };
}

const cond = (i: StatusInput, type: string) =>
  findCondition(serviceStatus(i).status.conditions, type);
const reasons = (i: StatusInput) => serviceStatus(i).events.map((e) => e.reason);

describe('Ready: True exactly when a predictor replica is ready', () => {
  it.each<[string, Partial<StatusInput>, string]>([
    [
      '§status no model yet (the TrainingJob runs)',
      {
        want: {},
        resolutions: { predictor: NO_MODEL_YET },
        predictor: variant(),
        servedPredictor: undefined,
      },
      'NoModelYet',
    ],
    [
      '§status the referenced TrainingJob does not exist',
      {
        want: {},
        resolutions: { predictor: MISSING },
        predictor: variant(),
        servedPredictor: undefined,
      },
      'TrainingJobNotFound',
    ],
    [
      '§status the only model misses the gate',
      {
        want: {},
        resolutions: { predictor: rejected(M1) },
        predictor: variant(),
        servedPredictor: undefined,
      },
      'GateNotMet',
    ],
    [
      '§status the first replicas load their model',
      { predictor: variant({ replicas: 2, updated: 2 }) },
      'Loading',
    ],
    [
      '§status the Deployment is not in the cache yet',
      { predictor: variant(), servedPredictor: undefined },
      'Loading',
    ],
    [
      '§status the model failed to load on every replica',
      { predictor: variant({ replicas: 1, updated: 1, failure: failure('ModelLoadFailed') }) },
      'ModelLoadFailed',
    ],
    [
      '§status the replicas crash-loop',
      { predictor: variant({ replicas: 1, updated: 1, failure: failure('RuntimeUnhealthy') }) },
      'RuntimeUnhealthy',
    ],
    [
      '§status no GPU could be admitted for a replica',
      {
        predictor: variant(),
        admission: { desired: 1, admitted: 0, message: 'InsufficientGPU: free now: g0 0/8' },
      },
      'InsufficientGPU',
    ],
    [
      '§status an in-place rollout replaced the last ready replica',
      {
        predictor: variant({ replicas: 1, updated: 1, rollingOut: true }),
        servedPredictor: M2,
        want: { predictor: M2 },
      },
      'Loading',
    ],
    [
      '§status one replica of three is ready',
      { predictor: variant({ replicas: 3, ready: 1, updated: 3 }) },
      'Serving',
    ],
    [
      '§status old replicas serve while the new model rolls out',
      {
        want: { predictor: M2 },
        resolutions: { predictor: found(M2) },
        predictor: variant({ replicas: 3, ready: 2, updated: 1, rollingOut: true }),
        servedPredictor: M2,
      },
      'Serving',
    ],
    [
      '§status old replicas serve while the new model fails to load on the surge replica',
      {
        want: { predictor: M2 },
        resolutions: { predictor: found(M2) },
        predictor: variant({
          replicas: 3,
          ready: 2,
          updated: 1,
          rollingOut: true,
          failure: failure('ModelLoadFailed'),
        }),
        servedPredictor: M2,
      },
      'Serving',
    ],
    [
      '§status the source disappeared but the replicas still serve',
      { resolutions: { predictor: MISSING } },
      'Serving',
    ],
  ])('%s', (_name, over, reason) => {
    const i = input(over);
    const c = cond(i, CONDITIONS.ready);
    expect(c).toMatchObject({ status: i.predictor.ready > 0 ? 'True' : 'False', reason });
    expect(c?.observedGeneration).toBe(1);
  });

  it.each<[string, number, number, string[]]>([
    ['§status becoming ready is an Event', 0, 1, ['Ready']],
    ['§status staying ready is none', 1, 2, []],
    ['§status losing the last ready replica is a Warning', 1, 0, ['NotReady']],
  ])('%s', (_name, before, now, events) => {
    const s = service('s')
      .fromJob('train')
      .condition('Ready', before > 0, before > 0 ? 'Serving' : 'Loading')
      .status({
        model: { uri: M1.uri, digest: DIGEST_A, source: M1.source, loadedTime: at(1) },
      })
      .obj();
    const i = input({ s, predictor: variant({ replicas: 2, ready: now, updated: 2 }) });
    const got = reasons(i).filter((r) => r === 'Ready' || r === 'NotReady');
    expect(got).toEqual(events);
  });

  it('§status the transition time of Ready moves only when it flips', () => {
    const s = service('s').fromJob('train').condition('Ready', true, 'Serving').obj();
    expect(cond(input({ s }), CONDITIONS.ready)?.lastTransitionTime).toBe(at(0));
    expect(cond(input({ s, predictor: variant() }), CONDITIONS.ready)?.lastTransitionTime).toBe(
      at(100),
    );
  });
});

describe('ModelLoaded: every replica runs the model the spec calls for', () => {
  it.each<[string, Partial<StatusInput>, 'True' | 'False', string]>([
    [
      '§status no model yet is NoModelYet',
      {
        want: {},
        resolutions: { predictor: NO_MODEL_YET },
        predictor: variant(),
        servedPredictor: undefined,
      },
      'False',
      'NoModelYet',
    ],
    [
      '§status a model that misses the gate and nothing served is GateNotMet (False)',
      {
        want: {},
        resolutions: { predictor: rejected(M1) },
        predictor: variant(),
        servedPredictor: undefined,
      },
      'False',
      'GateNotMet',
    ],
    [
      '§status a new model that misses the gate while the old one serves is GateNotMet (True)',
      { resolutions: { predictor: rejected(M2) } },
      'True',
      'GateNotMet',
    ],
    [
      '§status a new model the Deployment does not run yet is RollingOut',
      { want: { predictor: M2 }, resolutions: { predictor: found(M2) } },
      'False',
      'RollingOut',
    ],
    [
      '§status a new model the Deployment rolls out is RollingOut',
      {
        want: { predictor: M2 },
        resolutions: { predictor: found(M2) },
        servedPredictor: M2,
        predictor: variant({ replicas: 2, ready: 1, updated: 1, rollingOut: true }),
      },
      'False',
      'RollingOut',
    ],
    [
      '§status the first Deployment not in the cache yet is Loading',
      { servedPredictor: undefined, predictor: variant() },
      'False',
      'Loading',
    ],
    [
      '§status a model that fails to load is ModelLoadFailed',
      { predictor: variant({ replicas: 1, updated: 1, failure: failure('ModelLoadFailed') }) },
      'False',
      'ModelLoadFailed',
    ],
    [
      '§status a new model that fails to load while old replicas serve is ModelLoadFailed',
      {
        want: { predictor: M2 },
        resolutions: { predictor: found(M2) },
        servedPredictor: M2,
        predictor: variant({
          replicas: 2,
          ready: 1,
          updated: 1,
          rollingOut: true,
          failure: failure('ModelLoadFailed'),
        }),
      },
      'False',
      'ModelLoadFailed',
    ],
    [
      '§status a model whose digest does not match is ModelDigestMismatch',
      { predictor: variant({ replicas: 1, updated: 1, failure: failure('ModelDigestMismatch') }) },
      'False',
      'ModelDigestMismatch',
    ],
    ['§status every replica runs the model: ModelLoaded', {}, 'True', 'ModelLoaded'],
  ])('%s', (_name, over, status, reason) => {
    expect(cond(input(over), CONDITIONS.modelLoaded)).toMatchObject({ status, reason });
  });

  it('§status ModelLoaded is False while no replica of the deployed model is ready', () => {
    const i = input({
      predictor: variant({ replicas: 1, updated: 1, failure: failure('RuntimeUnhealthy') }),
    });
    expect(cond(i, CONDITIONS.modelLoaded)?.status).toBe('False');
  });
});

describe('the model served', () => {
  const servedBefore = (m: ServableModel, loadedTime = at(1)) =>
    service('s')
      .fromJob('train')
      .status({ model: { uri: m.uri, digest: m.digest, source: m.source, loadedTime } })
      .obj();

  it('§status the first rollout done: the model with digest, source and load time, and an Event', () => {
    const { status, events } = serviceStatus(input());
    expect(status.model).toEqual({
      uri: M1.uri,
      digest: DIGEST_A,
      source: { kind: 'TrainingJob', name: 'train' },
      loadedTime: new Date(NOW).toISOString(),
    });
    expect(events.map((e) => e.reason)).toContain('ModelRolledOut');
  });

  it('§status the same model keeps its load time and makes no Event', () => {
    const { status, events } = serviceStatus(input({ s: servedBefore(M1) }));
    expect(status.model?.loadedTime).toBe(at(1));
    expect(events.map((e) => e.reason)).not.toContain('ModelRolledOut');
  });

  it.each<[string, Partial<StatusInput>]>([
    [
      '§status the spec calls for a new model the Deployment does not run yet',
      { want: { predictor: M2 }, resolutions: { predictor: found(M2) } },
    ],
    [
      '§status the Deployment rolls the new model out',
      {
        want: { predictor: M2 },
        resolutions: { predictor: found(M2) },
        servedPredictor: M2,
        predictor: variant({ replicas: 2, ready: 2, updated: 1, rollingOut: true }),
      },
    ],
    [
      '§status the new model is rolled out but no replica is ready',
      {
        want: { predictor: M2 },
        resolutions: { predictor: found(M2) },
        servedPredictor: M2,
        predictor: variant({ replicas: 1, updated: 1 }),
      },
    ],
  ])('%s: the model stays the old one', (_name, over) => {
    const { status, events } = serviceStatus(input({ s: servedBefore(M1), ...over }));
    expect(status.model).toMatchObject({ uri: M1.uri, digest: DIGEST_A, loadedTime: at(1) });
    expect(events.map((e) => e.reason)).not.toContain('ModelRolledOut');
  });

  it('§status the model moves to the new one once the rollout is done', () => {
    const { status, events } = serviceStatus(
      input({
        s: servedBefore(M1),
        want: { predictor: M2 },
        resolutions: { predictor: found(M2) },
        servedPredictor: M2,
        predictor: variant({ replicas: 2, ready: 2, updated: 2 }),
      }),
    );
    expect(status.model).toMatchObject({
      uri: M2.uri,
      digest: DIGEST_B,
      loadedTime: new Date(NOW).toISOString(),
    });
    expect(events.find((e) => e.reason === 'ModelRolledOut')?.message).toContain(M2.uri);
  });

  it.each<[string, string[], string | undefined]>([
    ['§status a URI model takes the digest its replicas report', [DIGEST_A], DIGEST_A],
    [
      '§status a URI model whose replicas report two digests gets none of them',
      [DIGEST_A, DIGEST_B],
      undefined,
    ],
  ])('%s', (_name, digests, want) => {
    const byUri = model('https://h/m/model.json');
    const s = service('s').uri(byUri.uri).obj();
    const { status } = serviceStatus(
      input({
        s,
        want: { predictor: byUri },
        resolutions: { predictor: found(byUri) },
        servedPredictor: byUri,
        digests,
      }),
    );
    expect(status.model?.uri).toBe(byUri.uri);
    expect(status.model?.digest).toBe(want);
  });

  it('§status a URI model keeps the digest learnt before when the replicas are not asked again', () => {
    const byUri = model('https://h/m/model.json');
    const s = service('s')
      .uri(byUri.uri)
      .status({ model: { uri: byUri.uri, digest: DIGEST_A, loadedTime: at(1) } })
      .obj();
    const { status } = serviceStatus(
      input({
        s,
        want: { predictor: byUri },
        resolutions: { predictor: found(byUri) },
        servedPredictor: byUri,
      }),
    );
    expect(status.model).toMatchObject({ digest: DIGEST_A, loadedTime: at(1) });
  });

  it('§status a new URI model does not carry the digest of the model before it', () => {
    const v2 = model('https://h/m/v2/model.json');
    const s = service('s')
      .uri(v2.uri)
      .status({ model: { uri: 'https://h/m/v1/model.json', digest: DIGEST_A, loadedTime: at(1) } })
      .obj();
    const { status } = serviceStatus(
      input({
        s,
        want: { predictor: v2 },
        resolutions: { predictor: found(v2) },
        servedPredictor: v2,
      }),
    );
    expect(status.model?.uri).toBe(v2.uri);
    expect(status.model?.digest).toBeUndefined();
  });
});

describe('the model the gate held back', () => {
  const heldBack = (prev?: NonNullable<InferenceService['status']>['rejectedModel']) =>
    input({
      s: service('s')
        .fromJob('train')
        .minMetric('accuracy', 0.9)
        .status(prev ? { rejectedModel: prev } : {})
        .obj(),
      resolutions: { predictor: rejected(M2) },
    });

  it('§status a rejected model is recorded with its digest, source and why, with one Warning', () => {
    const { status, events } = serviceStatus(heldBack());
    expect(status.rejectedModel).toEqual({
      uri: M2.uri,
      digest: DIGEST_B,
      source: { kind: 'TrainingJob', name: 'train' },
      message: 'accuracy 0.5 < minMetric 0.9',
      time: new Date(NOW).toISOString(),
    });
    expect(events.filter((e) => e.reason === 'GateNotMet')).toEqual([
      expect.objectContaining({ type: 'Warning', message: expect.stringContaining(M2.uri) }),
    ]);
  });

  it('§status the same rejected model again keeps its time and makes no second Event', () => {
    const prev = { uri: M2.uri, digest: DIGEST_B, message: 'm', time: at(5) };
    const { status, events } = serviceStatus(heldBack(prev));
    expect(status.rejectedModel?.time).toBe(at(5));
    expect(events.map((e) => e.reason)).not.toContain('GateNotMet');
  });

  it('§status another rejected model (new digest) is recorded anew with an Event', () => {
    const prev = { uri: M2.uri, digest: DIGEST_A, message: 'm', time: at(5) };
    const { status, events } = serviceStatus(heldBack(prev));
    expect(status.rejectedModel).toMatchObject({
      digest: DIGEST_B,
      time: new Date(NOW).toISOString(),
    });
    expect(events.map((e) => e.reason)).toContain('GateNotMet');
  });

  it('§status the rejected model is not served', () => {
    const { status } = serviceStatus(heldBack());
    expect(status.model?.uri).toBe(M1.uri);
  });
});

describe('lastFailureInfo', () => {
  const failing = (pod = 's-predictor-0', reason = 'ModelLoadFailed', time?: string) =>
    input({
      s: service('s')
        .fromJob('train')
        .status(time ? { lastFailureInfo: { reason, pod, message: 'old', time } } : {})
        .obj(),
      predictor: variant({
        replicas: 1,
        updated: 1,
        failure: {
          reason: 'ModelLoadFailed',
          message: 'ModelLoadFailed: no such file',
          pod: 's-predictor-0',
          exitCode: 3,
        },
      }),
    });

  it("§status a failure is recorded in the pod's own words, with a Warning", () => {
    const { status, events } = serviceStatus(failing());
    expect(status.lastFailureInfo).toEqual({
      reason: 'ModelLoadFailed',
      message: 'ModelLoadFailed: no such file',
      pod: 's-predictor-0',
      exitCode: 3,
      time: new Date(NOW).toISOString(),
    });
    expect(events).toContainEqual({
      type: 'Warning',
      reason: 'ModelLoadFailed',
      message: 's-predictor-0: ModelLoadFailed: no such file',
    });
  });

  it.each<[string, string, string, boolean]>([
    [
      '§status the same failure of the same pod keeps its time and makes no second Event',
      's-predictor-0',
      'ModelLoadFailed',
      false,
    ],
    [
      '§status the same failure of another pod is a new one',
      's-predictor-1',
      'ModelLoadFailed',
      true,
    ],
    ['§status another failure of the same pod is a new one', 's-predictor-0', 'OOMKilled', true],
  ])('%s', (_name, pod, reason, anew) => {
    const { status, events } = serviceStatus(failing(pod, reason, at(7)));
    expect(status.lastFailureInfo?.time).toBe(anew ? new Date(NOW).toISOString() : at(7));
    expect(events.some((e) => e.reason === 'ModelLoadFailed')).toBe(anew);
  });

  it('§status the last failure stays recorded after the replicas recover', () => {
    const s = service('s')
      .fromJob('train')
      .status({ lastFailureInfo: { reason: 'OOMKilled', pod: 'p', message: 'm', time: at(7) } })
      .obj();
    expect(serviceStatus(input({ s })).status.lastFailureInfo).toMatchObject({
      reason: 'OOMKilled',
    });
  });
});

describe('the canary', () => {
  const C = model('pvc://models/canary', DIGEST_B);
  const withCanary = (over: Partial<StatusInput> = {}, percent?: number) =>
    input({
      s: service('s').fromJob('train').canary(C.uri, percent).obj(),
      want: { predictor: M1, canary: C },
      resolutions: { predictor: found(M1), canary: found(C) },
      canary: variant({ replicas: 1, ready: 1, updated: 1 }),
      servedCanary: C,
      ...over,
    });

  it('§status a ready canary: its model, share and replicas, CanaryReady True', () => {
    const i = withCanary({}, 20);
    expect(serviceStatus(i).status.canary).toEqual({
      model: { uri: C.uri, digest: DIGEST_B },
      trafficPercent: 20,
      readyReplicas: 1,
    });
    expect(cond(i, CONDITIONS.canaryReady)).toMatchObject({ status: 'True', reason: 'Serving' });
  });

  it('§status the canary share defaults to 10 percent', () => {
    expect(serviceStatus(withCanary()).status.canary?.trafficPercent).toBe(10);
  });

  it('§status a canary by URI takes the digest its replicas report', () => {
    const byUri = model('pvc://models/canary');
    const i = withCanary({
      servedCanary: byUri,
      want: { predictor: M1, canary: byUri },
      canaryDigests: [DIGEST_A],
    });
    expect(serviceStatus(i).status.canary?.model).toEqual({ uri: byUri.uri, digest: DIGEST_A });
  });

  it.each<[string, Partial<StatusInput>, string]>([
    [
      '§status a canary still loading gets no share and CanaryReady Loading',
      { canary: variant({ replicas: 1, updated: 1 }) },
      'Loading',
    ],
    [
      '§status a canary whose model fails to load says so in CanaryReady',
      {
        canary: variant({
          replicas: 1,
          updated: 1,
          failure: failure('ModelLoadFailed', 's-canary-0'),
        }),
      },
      'ModelLoadFailed',
    ],
    [
      '§status a canary whose source does not exist says so in CanaryReady',
      {
        want: { predictor: M1 },
        resolutions: { predictor: found(M1), canary: MISSING },
        canary: variant(),
        servedCanary: undefined,
      },
      'TrainingJobNotFound',
    ],
  ])('%s', (_name, over, reason) => {
    const i = withCanary(over, 30);
    expect(serviceStatus(i).status.canary?.trafficPercent).toBe(0);
    expect(cond(i, CONDITIONS.canaryReady)).toMatchObject({ status: 'False', reason });
  });

  it('§status the predictor stays Ready when only the canary fails', () => {
    const i = withCanary({
      canary: variant({
        replicas: 1,
        updated: 1,
        failure: failure('ModelLoadFailed', 's-canary-0'),
      }),
    });
    expect(cond(i, CONDITIONS.ready)?.status).toBe('True');
  });

  it('§status a canary dropped from the spec leaves no canary status and no CanaryReady', () => {
    const s = service('s')
      .fromJob('train')
      .condition('CanaryReady', true, 'Serving')
      .status({ canary: { model: { uri: C.uri }, trafficPercent: 10, readyReplicas: 1 } })
      .obj();
    const { status } = serviceStatus(input({ s }));
    expect(status.canary).toBeUndefined();
    expect(findCondition(status.conditions, CONDITIONS.canaryReady)).toBeUndefined();
  });
});

describe('the autoscaler status', () => {
  const scaled = (
    admission: StatusInput['admission'],
    before?: NonNullable<InferenceService['status']>['autoscaler'],
    metric?: 'rps',
  ) =>
    serviceStatus(
      input({
        s: service('s')
          .fromJob('train')
          .scale(1, 5, metric)
          .status(before ? { autoscaler: before, observedGeneration: 1 } : {})
          .obj(),
        admission,
      }),
    );

  it.each<[string, StatusInput['admission'], 'rps' | undefined, object]>([
    [
      '§autoscale desired and admitted replicas with the demand observed in flight',
      { desired: 3, admitted: 3, perReplica: 4.567 },
      undefined,
      {
        desiredReplicas: 3,
        admittedReplicas: 3,
        observed: '4.57 in flight per replica',
        message: '3 replicas',
      },
    ],
    [
      '§autoscale the demand observed in requests per second for rps',
      { desired: 2, admitted: 2, perReplica: 80 },
      'rps',
      { observed: '80 requests/s per replica' },
    ],
    [
      '§autoscale fewer replicas admitted than desired says why',
      { desired: 4, admitted: 2, perReplica: 9, message: 'InsufficientGPU: free now: g0 0/8' },
      undefined,
      {
        desiredReplicas: 4,
        admittedReplicas: 2,
        message: '2 of 4 replicas admitted: InsufficientGPU: free now: g0 0/8',
      },
    ],
    [
      '§autoscale without an autoscaling range there is no demand observed',
      { desired: 1, admitted: 1 },
      undefined,
      { desiredReplicas: 1, admittedReplicas: 1, message: '1 replicas' },
    ],
  ])('%s', (_name, admission, metric, want) => {
    expect(scaled(admission, undefined, metric).status.autoscaler).toMatchObject(want);
  });

  it('§autoscale a metric the autoscaler does not act on is said in its message', () => {
    const note =
      'scaleMetric cpu is not acted on yet (it needs a metrics-server); replicas stay at 1';
    const { status } = scaled({ desired: 1, admitted: 1, note });
    expect(status.autoscaler?.message).toBe(note);
  });

  it('§autoscale the observed demand stored is kept while the decision does not change', () => {
    const before = {
      desiredReplicas: 3,
      admittedReplicas: 3,
      observed: '4 in flight per replica',
      message: '3 replicas',
    };
    const { status, events } = scaled({ desired: 3, admitted: 3, perReplica: 4.4 }, before);
    expect(status.autoscaler).toEqual(before);
    expect(events.map((e) => e.reason).filter((r) => r.startsWith('Scaled'))).toEqual([]);
  });

  it('§autoscale the observed demand is rewritten when the admitted replicas change', () => {
    const before = {
      desiredReplicas: 3,
      admittedReplicas: 2,
      observed: '4 in flight per replica',
      message: 'x',
    };
    expect(
      scaled({ desired: 3, admitted: 3, perReplica: 4.4 }, before).status.autoscaler?.observed,
    ).toBe('4.4 in flight per replica');
  });

  it.each<[string, number, number, string | undefined]>([
    ['§autoscale more desired replicas is a ScaledUp Event', 2, 4, 'ScaledUp'],
    ['§autoscale fewer desired replicas is a ScaledDown Event', 4, 2, 'ScaledDown'],
    ['§autoscale the same desired replicas is no Event', 3, 3, undefined],
  ])('%s', (_name, from, to, reason) => {
    const { events } = scaled(
      { desired: to, admitted: to, perReplica: 7 },
      { desiredReplicas: from, admittedReplicas: from },
    );
    const scaling = events.filter((e) => e.reason.startsWith('Scaled'));
    if (!reason) expect(scaling).toEqual([]);
    else
      expect(scaling).toEqual([
        { type: 'Normal', reason, message: `${from} → ${to} replicas (7 in flight per replica)` },
      ]);
  });

  it('§autoscale the first decision is no scaling Event', () => {
    expect(
      scaled({ desired: 3, admitted: 3 }).events.filter((e) => e.reason.startsWith('Scaled')),
    ).toEqual([]);
  });
});

describe('the rollout status', () => {
  it.each<[string, Partial<StatusInput>, boolean]>([
    [
      '§gpu an in-place rollout in progress',
      { predictor: variant({ replicas: 2, ready: 1, updated: 1, rollingOut: true }) },
      true,
    ],
    [
      '§gpu an in-place rollout of a model the Deployment does not run yet',
      { want: { predictor: M2 } },
      true,
    ],
    ['§gpu a rollout that is done', {}, false],
  ])('%s', (_name, over, inProgress) => {
    const s = service('s')
      .fromJob('train')
      .status({
        rollout: {
          strategy: 'InPlace',
          inProgress: true,
          message: 'no GPU is free for a surge replica',
        },
      })
      .obj();
    expect(serviceStatus(input({ s, strategy: 'InPlace', ...over })).status.rollout).toEqual({
      strategy: 'InPlace',
      inProgress,
      message: 'no GPU is free for a surge replica',
    });
  });
});

describe('the phase, url and replica counts', () => {
  it.each<[string, Partial<StatusInput>, string]>([
    ['§status serving is Ready', {}, 'Ready'],
    [
      '§status serving while a new model fails to load is Ready',
      {
        predictor: variant({
          replicas: 2,
          ready: 1,
          updated: 1,
          rollingOut: true,
          failure: failure('ModelLoadFailed'),
        }),
      },
      'Ready',
    ],
    [
      '§status no model yet is Pending',
      {
        want: {},
        resolutions: { predictor: NO_MODEL_YET },
        predictor: variant(),
        servedPredictor: undefined,
      },
      'Pending',
    ],
    [
      '§status replicas loading is Loading',
      { predictor: variant({ replicas: 1, updated: 1 }) },
      'Loading',
    ],
    [
      '§status replicas crash-looping is Loading (they may come up)',
      { predictor: variant({ replicas: 1, updated: 1, failure: failure('RuntimeUnhealthy') }) },
      'Loading',
    ],
    [
      '§status a model that cannot load and nothing ready is Failed',
      { predictor: variant({ replicas: 1, updated: 1, failure: failure('ModelLoadFailed') }) },
      'Failed',
    ],
    [
      '§status a digest mismatch and nothing ready is Failed',
      { predictor: variant({ replicas: 1, updated: 1, failure: failure('ModelDigestMismatch') }) },
      'Failed',
    ],
  ])('%s', (_name, over, phase) => {
    expect(serviceStatus(input(over)).status.phase).toBe(phase);
  });

  it('§status the url and replica counts come from the reconcile', () => {
    const { status } = serviceStatus(
      input({ predictor: variant({ replicas: 3, ready: 2, updated: 3 }) }),
    );
    expect(status).toMatchObject({ url: URL, replicas: 3, readyReplicas: 2 });
  });

  it("§status ready replicas behind a Service that is not this one's are not Ready", () => {
    const { url: _none, ...rest } = input();
    const { status } = serviceStatus(rest);
    const ready = status.conditions?.find((c) => c.type === 'Ready');
    expect(ready).toMatchObject({ status: 'False', reason: 'ServiceNotReady' });
    expect(status.phase).toBe('Loading');
  });

  it('§status no Service, no url', () => {
    const s = service('s').fromJob('train').status({ url: URL }).obj();
    const { url: _none, ...rest } = input({ s });
    expect(serviceStatus(rest).status.url).toBeUndefined();
  });

  it('§status conditions carry the generation they were computed from', () => {
    const s = service('s').fromJob('train').generation(4).obj();
    const { status } = serviceStatus(input({ s }));
    for (const t of [CONDITIONS.ready, CONDITIONS.modelLoaded])
      expect(findCondition(status.conditions, t)?.observedGeneration).toBe(4);
  });
});
