// Which pod `kubectl lepton logs` reads, from the labels the operator puts on its pods.
import { KINDS } from '../../../src/cli/kinds.ts';
import type { LeptonObject, TrainingJob } from '../../../src/cli/objects.ts';
import { type Pod, choosePod, podSelector } from '../../../src/cli/pods.ts';

const [TJ, FR, ISVC] = KINDS as [(typeof KINDS)[0], (typeof KINDS)[0], (typeof KINDS)[0]];

const pod = (name: string, labels: Record<string, string>, extra: Partial<Pod> = {}): Pod => ({
  metadata: {
    name,
    labels,
    creationTimestamp: extra.metadata?.creationTimestamp ?? '2026-01-01T00:00:00Z',
  },
  spec: { containers: [{ name: 'main' }] },
  ...extra,
});
const obj = (kind: string, spec: object = {}, status?: object) =>
  ({ kind, metadata: { name: 'x', namespace: 'ml' }, spec, status }) as unknown as LeptonObject;

describe('choosePod', () => {
  const w = (i: number, attempt: number) =>
    pod(`x-worker-${i}-a${attempt}`, {
      'lepton.ai/job-name': 'x',
      'lepton.ai/replica-index': String(i),
      'lepton.ai/role': i ? 'worker' : 'chief',
      'lepton.ai/attempt': String(attempt),
    });

  it("a TrainingJob's chief of the latest attempt, or the worker asked for", () => {
    const pods = [w(0, 0), w(1, 0), w(0, 1), w(1, 1)];
    expect(choosePod(TJ, obj('TrainingJob'), pods, {}).metadata.name).toBe('x-worker-0-a1');
    expect(choosePod(TJ, obj('TrainingJob'), pods, { worker: 1 }).metadata.name).toBe(
      'x-worker-1-a1',
    );
  });

  it('says what there is when the pod asked for does not exist', () => {
    expect(() =>
      choosePod(TJ, obj('TrainingJob', {}, { phase: 'Running' }), [w(0, 0)], { worker: 3 }),
    ).toThrow(
      'TrainingJob x has no worker 3 pod (its pods: x-worker-0-a0); it is Running: kubectl lepton why trainingjob/x tells more',
    );
  });

  it('sends a campaign, a search and a schedule to the objects that have the pods', () => {
    const campaign = obj(
      'TrainingJob',
      { federated: { rounds: 3 } },
      { federated: { currentRound: 'x-round-1' } },
    );
    expect(() => choosePod(TJ, campaign, [], {})).toThrow(
      'try kubectl lepton logs federatedround/x-round-1',
    );
    const search = obj(
      'TrainingJob',
      { tuning: { numTrials: 3 } },
      { tuning: { trials: [{ name: 'x-trial-0', state: 'Running' }] } },
    );
    expect(() => choosePod(TJ, search, [], {})).toThrow(
      'try kubectl lepton logs trainingjob/x-trial-0',
    );
    const schedule = obj('TrainingJob', { schedule: { cron: '@hourly' } }) as TrainingJob;
    expect(() => choosePod(TJ, schedule, [], {})).toThrow('(none active)');
  });

  it("a FederatedRound's aggregator, or one participant's client", () => {
    const pods = [
      pod('r-site-a', { 'lepton.ai/role': 'client', 'lepton.ai/participant': 'site-a' }),
      pod('r-site-b', { 'lepton.ai/role': 'client', 'lepton.ai/participant': 'site-b' }),
      pod('r-aggregator', { 'lepton.ai/role': 'aggregator' }),
    ];
    expect(choosePod(FR, obj('FederatedRound'), pods, {}).metadata.name).toBe('r-aggregator');
    expect(
      choosePod(FR, obj('FederatedRound'), pods, { participant: 'site-b' }).metadata.name,
    ).toBe('r-site-b');
    expect(() => choosePod(FR, obj('FederatedRound'), pods.slice(0, 2), {})).toThrow(
      'has no aggregator pod',
    );
  });

  it("an InferenceService's ready predictor replica first, or a canary one", () => {
    const ready = { status: { conditions: [{ type: 'Ready', status: 'True' }] } };
    const pods = [
      pod('p-starting', { 'lepton.ai/variant': 'predictor' }),
      pod('p-ready', { 'lepton.ai/variant': 'predictor' }, ready),
      pod('c-1', { 'lepton.ai/variant': 'canary' }),
    ];
    expect(choosePod(ISVC, obj('InferenceService'), pods, {}).metadata.name).toBe('p-ready');
    expect(choosePod(ISVC, obj('InferenceService'), pods, { canary: true }).metadata.name).toBe(
      'c-1',
    );
  });

  it('selects pods by the job-name label, or the inferenceservice label', () => {
    expect(podSelector(TJ, obj('TrainingJob'))).toBe('lepton.ai/job-name=x');
    expect(podSelector(FR, obj('FederatedRound'))).toBe('lepton.ai/job-name=x');
    expect(podSelector(ISVC, obj('InferenceService'))).toBe('lepton.ai/inferenceservice=x');
  });
});
