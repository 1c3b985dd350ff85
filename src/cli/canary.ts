// `kubectl lepton promote NAME` and `rollback NAME`: an InferenceService's canary (spec.canary,
// one candidate model with trafficPercent of the requests) becomes the model, or goes away. One
// JSON patch each, guarded by the resourceVersion read, so a concurrent edit makes it fail
// instead of being overwritten.
import { ApiError } from '../core/client.ts';
import { resourcePath } from '../core/resources.ts';
import type { FlagSpecs, Parsed } from './args.ts';
import { CliError, type Session } from './connect.ts';
import { KINDS } from './kinds.ts';
import { type InferenceService, conditionOf, modelLabel } from './objects.ts';
import { resolve } from './resolve.ts';

export const PROMOTE_FLAGS: FlagSpecs = {
  force: { type: 'boolean', help: 'promote a canary that is not Ready (CanaryReady is not True)' },
  'dry-run': { type: 'boolean', help: 'let the API server check the change without making it' },
};

export const ROLLBACK_FLAGS: FlagSpecs = {
  'keep-canary': {
    type: 'boolean',
    help: 'keep the canary Deployment running with 0% of the traffic instead of removing it',
  },
  'dry-run': PROMOTE_FLAGS['dry-run']!,
};

export const PROMOTE_HELP = `Promote an InferenceService's canary: its model becomes spec.model (the predictor
rolls it out and takes all the traffic) and spec.canary is removed.

Usage:
  kubectl lepton promote [inferenceservice/]NAME [--force] [--dry-run]
`;

export const ROLLBACK_HELP = `Roll back an InferenceService's canary: spec.canary is removed, so all the traffic
goes to spec.model again (with --keep-canary its traffic is set to 0% instead).

Usage:
  kubectl lepton rollback [inferenceservice/]NAME [--keep-canary] [--dry-run]
`;

export type JsonPatch = {
  op: 'test' | 'replace' | 'remove' | 'add';
  path: string;
  value?: unknown;
}[];

export interface CanaryChange {
  patch: JsonPatch;
  /** What changes, in lines a person reads. */
  summary: string[];
}

const guard = (s: InferenceService): JsonPatch => [
  { op: 'test', path: '/metadata/resourceVersion', value: s.metadata.resourceVersion },
];

function canaryOf(s: InferenceService, verb: string) {
  const canary = s.spec.canary;
  if (!canary) {
    throw new CliError(
      `InferenceService ${s.metadata.name} has no canary (spec.canary): nothing to ${verb}`,
    );
  }
  return canary;
}

const percent = (s: InferenceService) =>
  s.status?.canary?.trafficPercent ?? s.spec.canary?.trafficPercent ?? 0;

export function promotion(s: InferenceService, force: boolean): CanaryChange {
  const canary = canaryOf(s, 'promote');
  const ready = conditionOf(s, 'CanaryReady');
  if (ready?.status !== 'True' && !force) {
    const why = ready
      ? `CanaryReady=${ready.status} (${ready.reason}: ${ready.message})`
      : 'no CanaryReady condition yet';
    throw new CliError(
      `The canary of InferenceService ${s.metadata.name} is not ready: ${why}; promote it anyway with --force`,
    );
  }
  return {
    patch: [
      ...guard(s),
      { op: 'replace', path: '/spec/model', value: canary.model },
      { op: 'remove', path: '/spec/canary' },
    ],
    summary: [
      `model: ${modelLabel(s.spec.model)} -> ${modelLabel(canary.model)}`,
      `canary: removed (it had ${percent(s)}% of the traffic); the predictor rolls out the promoted model and then takes 100%`,
    ],
  };
}

export function rollback(s: InferenceService, keepCanary: boolean): CanaryChange {
  const canary = canaryOf(s, 'roll back');
  const from = percent(s);
  if (keepCanary) {
    return {
      patch: [
        ...guard(s),
        {
          op: canary.trafficPercent === undefined ? 'add' : 'replace',
          path: '/spec/canary/trafficPercent',
          value: 0,
        },
      ],
      summary: [
        `canary traffic: ${from}% -> 0% (its Deployment keeps running ${modelLabel(canary.model)})`,
        `model: ${modelLabel(s.spec.model)} takes 100% of the traffic`,
      ],
    };
  }
  return {
    patch: [...guard(s), { op: 'remove', path: '/spec/canary' }],
    summary: [
      `canary: ${modelLabel(canary.model)} removed (it had ${from}% of the traffic)`,
      `model: ${modelLabel(s.spec.model)} takes 100% of the traffic`,
    ],
  };
}

const GENERIC_422 = /rejected our request due to an error in our request/;

const ISVC = KINDS.find((k) => k.kind === 'InferenceService')!;

async function apply(
  s: Session,
  p: Parsed,
  verb: string,
  change: (isvc: InferenceService) => CanaryChange,
): Promise<string> {
  const { obj } = await resolve(s, p.words, verb, [ISVC]);
  const isvc = obj as InferenceService;
  const { patch, summary } = change(isvc);
  const dryRun = p.flags['dry-run'] === true;
  try {
    await s.client.request(
      'PATCH',
      ISVC.rt,
      resourcePath(ISVC.rt, s.namespace, isvc.metadata.name),
      { fieldManager: 'kubectl-lepton', ...(dryRun ? { dryRun: 'All' } : {}) },
      patch,
      'application/json-patch+json',
    );
  } catch (err) {
    // A failed `test` operation is the API server's generic 422: the object changed since it
    // was read (a validation failure names its field instead).
    if (err instanceof ApiError && err.code === 422 && GENERIC_422.test(err.message)) {
      throw new CliError(
        `InferenceService ${isvc.metadata.name} changed while ${verb} read it (resourceVersion ${isvc.metadata.resourceVersion} is no longer current): run it again`,
      );
    }
    throw err;
  }
  const head = `inferenceservice/${isvc.metadata.name} ${verb === 'promote' ? 'promoted' : 'rolled back'}${dryRun ? ' (server dry run)' : ''}`;
  return [head, ...summary.map((l) => `  ${l}`)].join('\n') + '\n';
}

export const promoteCommand = (s: Session, p: Parsed) =>
  apply(s, p, 'promote', (isvc) => promotion(isvc, p.flags.force === true));

export const rollbackCommand = (s: Session, p: Parsed) =>
  apply(s, p, 'rollback', (isvc) => rollback(isvc, p.flags['keep-canary'] === true));
