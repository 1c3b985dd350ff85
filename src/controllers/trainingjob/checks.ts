// What the TrainingJob CRD cannot check: URIs the runtime must read or write, the cron schedule.
import type { ITrainingJob } from '../../api/generated/lepton.ai/v1alpha1/TrainingJob.ts';
import {
  READ_SCHEMES,
  type SpecProblem,
  WRITE_SCHEMES,
  checkCron,
  checkTimeZone,
  checkUri,
} from '../spec-checks.ts';

type Dataset = { uri?: string } | undefined;

export function checkTrainingJob({ spec }: ITrainingJob): SpecProblem[] {
  return [
    ...checkUri('spec.model.uri', spec.model?.uri, READ_SCHEMES),
    ...checkUri('spec.dataset.uri', (spec.dataset as Dataset)?.uri, READ_SCHEMES),
    ...checkUri('spec.output.uri', spec.output?.uri, WRITE_SCHEMES),
    ...checkUri('spec.checkpoint.uri', spec.checkpoint?.uri, WRITE_SCHEMES),
    ...checkCron('spec.schedule.cron', spec.schedule?.cron),
    ...checkTimeZone('spec.schedule.timeZone', spec.schedule?.timeZone),
    ...(spec.federated?.participants ?? []).flatMap((p, i) =>
      checkUri(
        `spec.federated.participants[${i}].dataset.uri`,
        (p.dataset as Dataset)?.uri,
        READ_SCHEMES,
      ),
    ),
  ];
}
