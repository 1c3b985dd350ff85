// The pods of an object, found by the labels the operator puts on them (src/engine/labels.ts and
// the kinds' builders), and the pod whose log a person wants: a TrainingJob's chief (or worker
// N) of its latest attempt, a FederatedRound's aggregator or one participant's client, an
// InferenceService's predictor or canary replica.
import type { KubeClient } from '../core/client.ts';
import { type KubeObject, Resources } from '../core/resources.ts';
import { ISVC_LABEL, VARIANT_LABEL } from '../controllers/inferenceservice/builders.ts';
import { PARTICIPANT_LABEL, ROLES } from '../controllers/federatedround/builders.ts';
import {
  ATTEMPT_LABEL,
  JOB_NAME_LABEL,
  REPLICA_INDEX_LABEL,
  ROLE_LABEL,
} from '../engine/labels.ts';
import { CliError } from './connect.ts';
import type { Kind } from './kinds.ts';
import { type LeptonObject, type TrainingJob, jobMode } from './objects.ts';

export interface ContainerState {
  waiting?: { reason?: string; message?: string };
  running?: { startedAt?: string };
  terminated?: { reason?: string; message?: string; exitCode?: number; finishedAt?: string };
}

export interface ContainerStatus {
  name: string;
  ready?: boolean;
  restartCount?: number;
  state?: ContainerState;
  lastState?: ContainerState;
}

export interface Pod extends KubeObject {
  spec: { nodeName?: string; containers: { name: string }[] };
  status?: {
    phase?: string;
    reason?: string;
    message?: string;
    conditions?: { type: string; status: string; reason?: string; message?: string }[];
    containerStatuses?: ContainerStatus[];
  };
}

/** The label selector of every pod the operator runs for `obj`. */
export function podSelector(kind: Kind, obj: LeptonObject): string {
  const name = obj.metadata.name ?? '';
  return kind.kind === 'InferenceService' ? `${ISVC_LABEL}=${name}` : `${JOB_NAME_LABEL}=${name}`;
}

export async function podsOf(client: KubeClient, kind: Kind, obj: LeptonObject): Promise<Pod[]> {
  const list = await client.list<Pod>(Resources.Pod, {
    namespace: obj.metadata.namespace,
    labelSelector: podSelector(kind, obj),
  });
  return list.items;
}

export interface PodChoice {
  /** TrainingJob: the replica index (0, the chief, by default). */
  worker?: number;
  /** FederatedRound: a participant's client instead of the aggregator. */
  participant?: string;
  /** InferenceService: a canary replica instead of a predictor one. */
  canary?: boolean;
}

const label = (p: Pod, key: string) => p.metadata.labels?.[key];
const isReady = (p: Pod) =>
  p.status?.conditions?.some((c) => c.type === 'Ready' && c.status === 'True') === true;

/** Newest first: the latest attempt, then the latest created (a replacement after a restart). */
function newest(pods: Pod[]): Pod[] {
  return [...pods].sort(
    (a, b) =>
      Number(label(b, ATTEMPT_LABEL) ?? 0) - Number(label(a, ATTEMPT_LABEL) ?? 0) ||
      (b.metadata.creationTimestamp ?? '').localeCompare(a.metadata.creationTimestamp ?? ''),
  );
}

/** Where the pods of a TrainingJob that runs none itself are. */
function noPodsOfItsOwn(j: TrainingJob): string | undefined {
  const name = j.metadata.name;
  switch (jobMode(j)) {
    case 'federated': {
      const round = j.status?.federated?.currentRound ?? j.status?.federated?.lastCommittedRound;
      return `TrainingJob ${name} is a federated campaign: its pods belong to its rounds${round ? `; try kubectl lepton logs federatedround/${round}` : ' (none yet)'}`;
    }
    case 'tuning': {
      const trial = j.status?.tuning?.trials?.find((t) => t.state === 'Running')?.name;
      return `TrainingJob ${name} is a hyperparameter search: its trials are TrainingJobs with pods of their own${trial ? `; try kubectl lepton logs trainingjob/${trial}` : ''}`;
    }
    case 'scheduled': {
      const run = j.status?.active?.[0]?.name;
      return `TrainingJob ${name} is a schedule: each run is a TrainingJob with pods of its own${run ? `; try kubectl lepton logs trainingjob/${run}` : ' (none active)'}`;
    }
    case 'training':
      return undefined;
  }
}

/**
 * The one pod whose log to show, among `pods` (the object's, by podSelector). Fails with what
 * there is instead when none matches the choice.
 */
export function choosePod(kind: Kind, obj: LeptonObject, pods: Pod[], choice: PodChoice): Pod {
  const name = obj.metadata.name;
  const what = `${kind.kind} ${name}`;
  let candidates: Pod[];
  let wanted: string;
  switch (kind.kind) {
    case 'TrainingJob': {
      const elsewhere = noPodsOfItsOwn(obj as TrainingJob);
      if (elsewhere) throw new CliError(elsewhere);
      const index = choice.worker ?? 0;
      wanted = index === 0 ? 'chief (worker 0)' : `worker ${index}`;
      candidates = pods.filter((p) => label(p, REPLICA_INDEX_LABEL) === String(index));
      break;
    }
    case 'FederatedRound':
      if (choice.participant) {
        wanted = `client of participant ${choice.participant}`;
        candidates = pods.filter(
          (p) =>
            label(p, ROLE_LABEL) === ROLES.client &&
            label(p, PARTICIPANT_LABEL) === choice.participant,
        );
      } else {
        wanted = 'aggregator';
        candidates = pods.filter((p) => label(p, ROLE_LABEL) === ROLES.aggregator);
      }
      break;
    case 'InferenceService': {
      const variant = choice.canary ? 'canary' : 'predictor';
      wanted = `${variant} replica`;
      const own = pods.filter((p) => label(p, VARIANT_LABEL) === variant);
      // A ready replica first: the one answering requests is the one whose log tells most.
      candidates = [...own.filter(isReady), ...own.filter((p) => !isReady(p))];
      break;
    }
  }
  const pick = kind.kind === 'InferenceService' ? candidates[0] : newest(candidates)[0];
  if (pick) return pick;
  const others = pods.map((p) => p.metadata.name).join(', ');
  throw new CliError(
    `${what} has no ${wanted} pod${pods.length ? ` (its pods: ${others})` : ' now'}${obj.status?.phase ? `; it is ${obj.status.phase}` : ''}: kubectl lepton why ${kind.singular}/${name} tells more`,
  );
}
