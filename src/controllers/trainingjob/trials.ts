// The trials of a tuning job (spec.tuning): TrainingJobs it controls, named NAME-trial-N, so that
// a restarted operator that creates trial N again creates nothing twice. A trial is an ordinary
// TrainingJob, run by the engine, with the parent's spec minus tuning and the trial's values set
// at the parameters' paths; what it was given is on it (an annotation), so the search can be
// rebuilt from the trials alone.
import { type KubeObject, ownerReference } from '../../core/resources.ts';
import { MANAGED_BY_LABEL, MANAGED_BY_VALUE } from '../../engine/labels.ts';
import { sanitizeMessage } from '../../engine/messages.ts';
import type { TrainingJob } from './builders.ts';

export const TUNING_LABEL = 'lepton.ai/tuning';
export const TRIAL_NUMBER_LABEL = 'lepton.ai/trial';
/** JSON of the trial's assignment, by parameter name. */
export const TRIAL_PARAMETERS_ANNOTATION = 'lepton.ai/trial-parameters';
/**
 * Set by the tuning job on a trial it prunes: its value says why. The trial then succeeds with
 * reason Pruned and its pods go at once (the engine's RunPolicy.stop).
 */
export const PRUNED_ANNOTATION = 'lepton.ai/pruned';
export const PRUNED_REASON = 'Pruned';

const MAX_PRUNE_MESSAGE = 1024;

/**
 * How often the engine reads a trial's progress (10 s for other jobs): pruning judges a trial by
 * the epochs it has reported, so a rule can only act on a trial that runs longer than this. A
 * status write per read at most, when an epoch ended in between.
 */
export const TRIAL_PROGRESS_MS = 2000;

/** A trial: a TrainingJob of a search, labelled so and controlled by a TrainingJob. */
export function isTrial(job: TrainingJob): boolean {
  return (
    job.metadata.labels?.[TUNING_LABEL] !== undefined &&
    (job.metadata.ownerReferences ?? []).some((r) => r.controller && r.kind === 'TrainingJob')
  );
}

export const trialName = (job: TrainingJob, n: number) => `${job.metadata.name}-trial-${n}`;

/** The stop a pruned trial carries, for the engine; undefined for any other job. */
export function pruneRequest(job: TrainingJob): { reason: string; message: string } | undefined {
  const why = job.metadata.annotations?.[PRUNED_ANNOTATION];
  if (why === undefined) return undefined;
  return {
    reason: PRUNED_REASON,
    message: sanitizeMessage(why || 'pruned by its tuning job', MAX_PRUNE_MESSAGE),
  };
}

/** Where trial n writes its model and checkpoints: below the parent's, in a folder of its own. */
function below(uri: string, name: string): string {
  return `${uri.replace(/\/+$/, '')}/trials/${name}`;
}

/**
 * Trial n of the job with the given spec fields set (`set` holds the parameters' paths and the
 * values they take, already converted to the fields' types).
 */
export function buildTrial(
  job: TrainingJob,
  n: number,
  set: Record<string, unknown>,
  assignment: Record<string, string | number>,
): KubeObject {
  const name = trialName(job, n);
  // A trial never starts suspended (the tuning job's suspend holds back new trials instead), and
  // has no TTL of its own: it goes with the tuning job, whose status needs the best trial's model.
  const { tuning: _t, suspend: _s, ttlSecondsAfterFinished: _l, ...rest } = job.spec;
  const spec = structuredClone(rest) as Record<string, unknown> & TrainingJob['spec'];
  for (const [path, value] of Object.entries(set)) {
    const [section, field] = path.split('.') as [string, string];
    const parent = (spec[section] ?? {}) as Record<string, unknown>;
    spec[section] = { ...parent, [field]: value };
  }
  if (spec.output) spec.output = { ...spec.output, uri: below(spec.output.uri, name) };
  if (spec.checkpoint?.uri)
    spec.checkpoint = { ...spec.checkpoint, uri: below(spec.checkpoint.uri, name) };
  return {
    apiVersion: 'lepton.ai/v1alpha1',
    kind: 'TrainingJob',
    metadata: {
      name,
      namespace: job.metadata.namespace,
      labels: {
        [MANAGED_BY_LABEL]: MANAGED_BY_VALUE,
        [TUNING_LABEL]: job.metadata.name ?? '',
        [TRIAL_NUMBER_LABEL]: String(n),
      },
      annotations: { [TRIAL_PARAMETERS_ANNOTATION]: JSON.stringify(assignment) },
      ownerReferences: [ownerReference(job)],
    },
    spec,
  } as KubeObject;
}
