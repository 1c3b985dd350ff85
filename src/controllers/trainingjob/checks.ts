// What the TrainingJob CRD cannot check, or what an object stored before the CRD was tightened
// may still carry: URIs the runtime must read or write (and that carry no credentials), the cron
// schedule, a pod template that would loosen the pods' lock-down, and a per-pod configuration
// too large to copy into every pod.
import type { ITrainingJob } from '../../api/generated/lepton.ai/v1alpha1/TrainingJob.ts';
import {
  RUNTIME_SPEC_FIELDS,
  RUNTIME_SPEC_MAX_BYTES,
  runtimeSpecOf,
} from '../../contract/training.ts';
import type { SpecProblem } from '../../engine/workload.ts';
import { checkPodTemplate } from '../../engine/pod-template.ts';
import { checkCronFires } from './schedule.ts';
import { checkTuning } from './tuning.ts';
import { checkStorage } from '../../engine/storage.ts';
import {
  READ_SCHEMES,
  STORAGE_READ_SCHEMES,
  STORAGE_WRITE_SCHEMES,
  checkCron,
  checkTimeZone,
  checkUri,
} from '../spec-checks.ts';

type Dataset = { uri?: string } | undefined;

/** `now` places the schedule's horizon: a schedule that never fires within it is refused. */
export function checkTrainingJob(job: ITrainingJob, now = Date.now()): SpecProblem[] {
  const { spec } = job;
  const cron = [
    ...checkCron('spec.schedule.cron', spec.schedule?.cron),
    ...checkTimeZone('spec.schedule.timeZone', spec.schedule?.timeZone),
  ];
  if (cron.length === 0)
    cron.push(
      ...checkCronFires('spec.schedule.cron', spec.schedule?.cron, spec.schedule?.timeZone, now),
    );
  return [
    ...checkUri('spec.model.uri', spec.model?.uri, STORAGE_READ_SCHEMES),
    ...checkUri('spec.dataset.uri', (spec.dataset as Dataset)?.uri, STORAGE_READ_SCHEMES),
    ...checkUri(
      'spec.evaluationDataset.uri',
      (spec.evaluationDataset as Dataset)?.uri,
      STORAGE_READ_SCHEMES,
    ),
    ...checkUri('spec.output.uri', spec.output?.uri, STORAGE_WRITE_SCHEMES),
    ...checkUri('spec.checkpoint.uri', spec.checkpoint?.uri, STORAGE_WRITE_SCHEMES),
    ...checkStorage(spec.storage),
    ...cron,
    ...(spec.federated?.participants ?? []).flatMap((p, i) =>
      checkUri(
        `spec.federated.participants[${i}].dataset.uri`,
        (p.dataset as Dataset)?.uri,
        READ_SCHEMES,
      ),
    ),
    ...checkPodTemplate('spec.podTemplate', spec.podTemplate),
    ...checkRuntimeSpecSize(spec),
    ...checkTuning(job),
  ];
}

/** LEPTON_JOB_SPEC is copied into every pod: it must stay within RUNTIME_SPEC_MAX_BYTES. */
function checkRuntimeSpecSize(spec: ITrainingJob['spec']): SpecProblem[] {
  const bytes = Buffer.byteLength(JSON.stringify(runtimeSpecOf(spec)));
  if (bytes <= RUNTIME_SPEC_MAX_BYTES) return [];
  return [
    {
      field: 'spec',
      reason: 'SpecTooLarge',
      message: `spec: what every pod receives of it (${RUNTIME_SPEC_FIELDS.join(', ')}) is ${bytes} bytes as JSON, more than the ${RUNTIME_SPEC_MAX_BYTES} allowed; shorten dataset.featureColumns (or omit it to use every numeric column) or the URIs`,
    },
  ];
}
