// The objects the plugin reads, typed from the CRDs (the generated models) as they come over the
// wire, and the few facts about them that several commands need.
import type { IFederatedRound } from '../api/generated/lepton.ai/v1alpha1/FederatedRound.ts';
import type { IInferenceService } from '../api/generated/lepton.ai/v1alpha1/InferenceService.ts';
import type { ITrainingJob } from '../api/generated/lepton.ai/v1alpha1/TrainingJob.ts';
import type { Condition } from '../core/conditions.ts';
import type { KubeObject, ObjectMeta } from '../core/resources.ts';

type Wire<T> = Omit<T, 'metadata'> & KubeObject & { metadata: ObjectMeta };

export type TrainingJob = Wire<ITrainingJob>;
export type FederatedRound = Wire<IFederatedRound>;
export type InferenceService = Wire<IInferenceService>;
export type LeptonObject = TrainingJob | FederatedRound | InferenceService;

/** A condition of `obj`'s status by type. */
export function conditionOf(
  obj: { status?: { conditions?: readonly Condition[] } },
  type: string,
): Condition | undefined {
  return obj.status?.conditions?.find((c) => c.type === type);
}

/** What an InferenceService's model field names: its URI, or the object whose output it serves. */
export function modelLabel(m: InferenceService['spec']['model'] | undefined): string {
  if (!m) return '';
  if (m.uri) return m.uri;
  if (m.trainingJobRef) return `trainingjob/${m.trainingJobRef.name}`;
  if (m.federatedRoundRef) return `federatedround/${m.federatedRoundRef.name}`;
  return '';
}

/** What kind of TrainingJob it is: its pods train, or it creates other objects that do. */
export type JobMode = 'training' | 'tuning' | 'federated' | 'scheduled';

export function jobMode(j: TrainingJob): JobMode {
  if (j.spec.schedule) return 'scheduled';
  if (j.spec.tuning) return 'tuning';
  if (j.spec.federated) return 'federated';
  return 'training';
}
