// What `kubectl lepton why` says about one object, in plain words: its phase and since when, why
// (the condition that goes with the phase, the admission verdict, the failure record), what a
// person can do about the usual reasons, then the evidence: conditions, pods with their
// termination messages, and recent Events. A pure function of what was read, tested without a
// cluster.
import type { Condition } from '../core/conditions.ts';
import { VARIANT_LABEL } from '../controllers/inferenceservice/builders.ts';
import { REPLICA_INDEX_LABEL, ROLE_LABEL } from '../engine/labels.ts';
import { phaseCondition } from '../engine/status.ts';
import { age, metric } from './format.ts';
import type { Kind } from './kinds.ts';
import {
  type FederatedRound,
  type InferenceService,
  type LeptonObject,
  type TrainingJob,
  conditionOf,
  jobMode,
  modelLabel,
} from './objects.ts';
import type { ContainerState, Pod } from './pods.ts';
import { sparkline } from './progress.ts';
import { jobProgress, trafficSplit } from './rows.ts';
import { renderTable } from './table.ts';

/** A core/v1 Event (the operator writes events.k8s.io/v1; the API server serves both views). */
export interface CoreEvent {
  metadata: { creationTimestamp?: string };
  type?: string;
  reason?: string;
  message?: string;
  count?: number;
  eventTime?: string;
  lastTimestamp?: string;
  series?: { lastObservedTime?: string; count?: number };
  involvedObject: { kind?: string; name?: string; uid?: string };
}

export interface Evidence {
  kind: Kind;
  obj: LeptonObject;
  pods: Pod[];
  events: CoreEvent[];
  now: number;
}

/** What to do about a reason the operator or Kubernetes gives, where there is something to do. */
const ADVICE: Record<string, string> = {
  InsufficientGPU:
    'The GPUs it needs exist but are in use. It is admitted by itself once enough are free for all its pods at once (gang admission). To start sooner: fewer workers or GPUs per worker, another spec.resources.gpu.product, or a higher spec.priorityClassName.',
  InsufficientResources:
    'The CPU, memory or pod slots it needs exist but are in use. It is admitted by itself once enough are free for all its pods at once.',
  ExceedsClusterCapacity:
    'It cannot fit on this cluster even when every node is idle. Lower spec.workers or the GPUs, CPU or memory per pod, ask for a GPU product the cluster has, or add nodes: it waits until they join.',
  WaitingForEarlierJobs:
    'Workloads ahead of it (higher priority, or older) need the same nodes first; it is admitted after them.',
  Suspended:
    'spec.suspend is true. Resume it with: kubectl patch KIND NAME --type=merge -p \'{"spec":{"suspend":false}}\'',
  OOMKilled:
    'A container used more memory than its limit: raise spec.resources.memory or lower hyperparameters.batchSize.',
  ImagePullBackOff:
    'The image cannot be pulled: check spec.image, the registry and its pull secret.',
  ErrImagePull: 'The image cannot be pulled: check spec.image, the registry and its pull secret.',
  Unschedulable:
    'No node accepts the pod: check spec.podTemplate (nodeSelector, tolerations, affinity) and the GPU product asked for.',
  BackoffLimitExceeded:
    'The workers failed more often than spec.backoffLimit allows; the last failure is below.',
  DeadlineExceeded: 'It ran longer than spec.activeDeadlineSeconds.',
  StartupTimeout: 'Its pods did not all start within spec.startupDeadlineSeconds.',
  SpecInvalid: 'Fix the spec (kubectl edit); the operator checks it again on every change.',
};

const adviceFor = (reason: string | undefined, kind: Kind, name: string): string | undefined =>
  reason ? ADVICE[reason]?.replace('KIND NAME', `${kind.singular} ${name}`) : undefined;

const quote = (text: string) =>
  text
    .trim()
    .split('\n')
    .map((l) => `    ${l}`)
    .join('\n');

function conditionsTable(conditions: readonly Condition[] | undefined, now: number): string {
  if (!conditions?.length) return '';
  return renderTable(
    [
      { header: 'type' },
      { header: 'status' },
      { header: 'reason' },
      { header: 'age' },
      { header: 'message' },
    ],
    conditions.map((c) => [c.type, c.status, c.reason, age(c.lastTransitionTime, now), c.message]),
  );
}

/** A container's state in a few words: Running, Waiting: Reason, Terminated: Reason (exit N). */
function stateWords(st: ContainerState | undefined): string {
  if (st?.running) return 'Running';
  if (st?.waiting) return `Waiting: ${st.waiting.reason ?? ''}`.trim();
  if (st?.terminated)
    return `Terminated: ${st.terminated.reason ?? ''} (exit ${st.terminated.exitCode ?? '?'})`;
  return '-';
}

function podsTable(pods: readonly Pod[], now: number): string {
  if (!pods.length) return '';
  const sorted = [...pods].sort((a, b) =>
    (a.metadata.name ?? '').localeCompare(b.metadata.name ?? ''),
  );
  return renderTable(
    [
      { header: 'name' },
      { header: 'role' },
      { header: 'phase' },
      { header: 'ready' },
      { header: 'restarts' },
      { header: 'node' },
      { header: 'state', maxWidth: 40 },
      { header: 'age' },
    ],
    sorted.map((p) => {
      const cs = p.status?.containerStatuses ?? [];
      return [
        p.metadata.name ?? '',
        p.metadata.labels?.[ROLE_LABEL] ?? p.metadata.labels?.[VARIANT_LABEL] ?? '-',
        p.status?.phase ?? 'Pending',
        `${cs.filter((c) => c.ready).length}/${p.spec.containers.length}`,
        String(cs.reduce((n, c) => n + (c.restartCount ?? 0), 0)),
        p.spec.nodeName ?? '-',
        cs.length ? cs.map((c) => stateWords(c.state)).join(', ') : (p.status?.reason ?? '-'),
        age(p.metadata.creationTimestamp, now),
      ];
    }),
  );
}

/** What pods themselves say about why they do not run or why they ended. */
function podNotes(pods: readonly Pod[]): string[] {
  const notes: string[] = [];
  for (const p of pods) {
    const name = p.metadata.name;
    const scheduled = p.status?.conditions?.find((c) => c.type === 'PodScheduled');
    if (scheduled?.status === 'False' && scheduled.message)
      notes.push(
        `Pod ${name} is not scheduled (${scheduled.reason ?? 'Pending'}): ${scheduled.message}`,
      );
    for (const c of p.status?.containerStatuses ?? []) {
      const w = c.state?.waiting;
      if (w?.reason && w.reason !== 'ContainerCreating' && w.reason !== 'PodInitializing')
        notes.push(
          `Container ${c.name} of pod ${name} waits: ${w.reason}${w.message ? `: ${w.message}` : ''}`,
        );
      const t = c.state?.terminated ?? c.lastState?.terminated;
      if (t && (t.exitCode ?? 0) !== 0) {
        const head = `Container ${c.name} of pod ${name} ${c.state?.terminated ? 'ended' : 'last ended'}: ${t.reason ?? 'Error'}, exit code ${t.exitCode ?? '?'}`;
        notes.push(t.message ? `${head}; its termination message:\n${quote(t.message)}` : head);
      }
    }
  }
  return notes;
}

const eventTime = (e: CoreEvent) =>
  e.series?.lastObservedTime ?? e.lastTimestamp ?? e.eventTime ?? e.metadata.creationTimestamp;

function eventsTable(events: readonly CoreEvent[], now: number, limit = 12): string {
  if (!events.length) return '';
  const recent = [...events]
    .sort((a, b) => (eventTime(a) ?? '').localeCompare(eventTime(b) ?? ''))
    .slice(-limit);
  return renderTable(
    [
      { header: 'last seen' },
      { header: 'type' },
      { header: 'reason' },
      { header: 'object' },
      { header: 'message' },
    ],
    recent.map((e) => [
      age(eventTime(e), now),
      e.type ?? '',
      e.reason ?? '',
      `${(e.involvedObject.kind ?? '').toLowerCase()}/${e.involvedObject.name ?? ''}`,
      e.message ?? '',
    ]),
  );
}

/** The phase and for how long, from the condition that goes with it. */
function headline(kind: Kind, obj: LeptonObject, phaseCond: string, now: number): string {
  const phase = obj.status?.phase ?? 'Pending';
  const since = conditionOf(obj, phaseCond)?.lastTransitionTime ?? obj.metadata.creationTimestamp;
  return `${kind.kind} ${obj.metadata.namespace}/${obj.metadata.name} is ${phase} (for ${age(since, now)}).`;
}

/** The admission verdict of a queued workload, and the refusal of a refused spec. */
function admissionWords(obj: TrainingJob | FederatedRound): string[] {
  const out: string[] = [];
  const accepted = conditionOf(obj, 'Accepted');
  if (accepted?.status === 'False')
    out.push(`Its spec was refused (${accepted.reason}): ${accepted.message}`);
  const admitted = conditionOf(obj, 'Admitted');
  if (obj.status?.phase === 'Queued' && admitted && admitted.status !== 'True')
    out.push(`It is queued, not admitted (${admitted.reason}): ${admitted.message}`);
  return out;
}

function failureWords(obj: TrainingJob | FederatedRound): string[] {
  const f = obj.status?.failure;
  if (!f) return [];
  const where = [
    'worker' in f && f.worker !== undefined ? `worker ${f.worker}` : '',
    'participant' in f && f.participant ? `participant ${f.participant}` : '',
    'node' in f && f.node ? `node ${f.node}` : '',
    'exitCode' in f && f.exitCode !== undefined ? `exit code ${f.exitCode}` : '',
  ].filter(Boolean);
  return [
    `It failed (${f.reason ?? 'Failed'})${where.length ? ` at ${where.join(', ')}` : ''}: ${f.message ?? ''}`.trim(),
  ];
}

function trainingJobWords(j: TrainingJob, pods: readonly Pod[]): string[] {
  const s = j.status;
  const phase = s?.phase ?? 'Pending';
  const out = [...admissionWords(j), ...failureWords(j)];
  const mode = jobMode(j);
  if (mode === 'federated') {
    const f = s?.federated;
    out.push(`It is a federated campaign: ${jobProgress(j)}.`);
    if (f?.currentRound)
      out.push(`Current round: kubectl lepton why federatedround/${f.currentRound}`);
  } else if (mode === 'tuning') {
    const c = s?.tuning?.counts ?? {};
    out.push(
      `It is a hyperparameter search: ${jobProgress(j)} (${c.running ?? 0} running, ${c.pending ?? 0} pending, ${c.succeeded ?? 0} succeeded, ${c.failed ?? 0} failed, ${c.pruned ?? 0} pruned).`,
    );
    if (s?.tuning?.summary) out.push(s.tuning.summary);
    const best = s?.tuning?.bestTrial;
    if (best) {
      const objectives = j.spec.tuning?.objectives.map((o) => o.metric) ?? [];
      const metrics = objectives
        .filter((m) => best.metrics?.[m] !== undefined)
        .map((m) => `${m} ${metric(best.metrics?.[m])}`);
      const params = Object.entries(best.parameters ?? {}).map(([k, v]) => `${k}=${v}`);
      out.push(
        `Best trial: ${best.name}${params.length ? ` (${params.join(', ')})` : ''}${metrics.length ? `: ${metrics.join(', ')}` : ''}.`,
      );
    }
  } else if (mode === 'scheduled') {
    out.push(
      `It is a schedule (${j.spec.schedule?.cron}); last run ${s?.lastScheduleTime ?? 'never'}, ${s?.active?.length ?? 0} active: ${(s?.active ?? []).map((a) => a.name).join(', ') || 'none'}.`,
    );
  } else if (!s?.progress && phase === 'Running') {
    out.push(
      `Training: no progress reported yet; ${s?.workers?.ready ?? 0} of ${j.spec.workers ?? 1} workers ready.`,
    );
  } else if (s?.progress) {
    const p = s.progress;
    const trend = sparkline(p.history?.loss);
    out.push(
      `Training: ${jobProgress(j)}, loss ${metric(p.loss)}${trend ? ` ${trend}` : ''}, accuracy ${metric(p.accuracy)}, ${metric(p.samplesPerSecond)} samples/s${p.backend ? ` on ${p.backend}` : ''}; ${s.workers?.ready ?? 0} of ${j.spec.workers ?? 1} workers ready.`,
    );
  }
  if (phase === 'Succeeded' && s?.model?.uri)
    out.push(`Its model is at ${s.model.uri}${s.model.digest ? ` (${s.model.digest})` : ''}.`);
  if (phase === 'Failed' && pods.length === 0)
    out.push(
      'Its pods are gone (spec.cleanPodPolicy), so their termination messages are only in the failure above and the Events below.',
    );
  return out;
}

function federatedRoundWords(r: FederatedRound): string[] {
  const s = r.status;
  const out = [...admissionWords(r), ...failureWords(r)];
  const total = r.spec.participants.length;
  const quorum = s?.quorum ?? r.spec.minParticipants ?? total;
  const reported = (s?.participants ?? []).filter(
    (p) => p.state === 'Reported' || p.state === 'Accepted',
  ).length;
  if (s?.phase === 'Training' || s?.phase === 'Aggregating') {
    const deadline =
      s.startTime && r.spec.timeoutSeconds
        ? `; the deadline is ${r.spec.timeoutSeconds} s after ${s.startTime}`
        : '';
    out.push(
      `${reported} of ${total} participants reported; ${quorum} are needed to aggregate${deadline}.`,
    );
  }
  if (s?.phase === 'Succeeded')
    out.push(
      `Aggregated ${s.accepted ?? 0} updates (${s.dropped ?? 0} dropped) into ${s.model?.uri ?? '?'}; loss ${metric(s.metrics?.loss)}, accuracy ${metric(s.metrics?.accuracy)}${s.epsilonSpent !== undefined ? `, ε ${metric(s.epsilonSpent)}` : ''}.`,
    );
  return out;
}

function participantsTable(r: FederatedRound): string {
  const ps = r.status?.participants ?? [];
  if (!ps.length) return '';
  return renderTable(
    [
      { header: 'participant' },
      { header: 'state' },
      { header: 'samples' },
      { header: 'loss' },
      { header: 'reason' },
      { header: 'message' },
    ],
    ps.map((p) => [
      p.name,
      p.state ?? 'Pending',
      String(p.samples ?? '-'),
      metric(p.loss),
      p.reason ?? '',
      p.message ?? '',
    ]),
  );
}

function inferenceServiceWords(svc: InferenceService): string[] {
  const s = svc.status;
  const out: string[] = [];
  const ready = conditionOf(svc, 'Ready');
  const loaded = conditionOf(svc, 'ModelLoaded');
  if (ready?.status === 'True')
    out.push(
      `It answers at ${s?.url ?? '?'}: ${s?.readyReplicas ?? 0} of ${s?.replicas ?? '?'} replicas ready, serving ${s?.model?.uri ?? modelLabel(svc.spec.model)}.`,
    );
  else if (ready) out.push(`It does not answer (${ready.reason}): ${ready.message}`);
  if (loaded && loaded.status !== 'True') out.push(`Model (${loaded.reason}): ${loaded.message}`);
  const f = s?.lastFailureInfo;
  if (f)
    out.push(
      `Last failure (${f.reason ?? 'Failed'})${f.pod ? ` of pod ${f.pod}` : ''}${f.exitCode !== undefined ? `, exit code ${f.exitCode}` : ''}: ${f.message ?? ''}`,
    );
  if (s?.rejectedModel)
    out.push(`Rejected model ${s.rejectedModel.uri ?? ''}: ${s.rejectedModel.message ?? ''}`);
  if (s?.rollout?.inProgress) out.push(`Rolling out: ${s.rollout.message ?? ''}`);
  if (s?.autoscaler?.message) out.push(`Autoscaler: ${s.autoscaler.message}`);
  if (svc.spec.canary) {
    const cr = conditionOf(svc, 'CanaryReady');
    out.push(
      `Canary ${modelLabel(svc.spec.canary.model)}: traffic ${trafficSplit(svc)}, ${s?.canary?.readyReplicas ?? 0} ready${cr ? ` (CanaryReady=${cr.status}, ${cr.reason})` : ''}; kubectl lepton promote or rollback ${svc.metadata.name}.`,
    );
  }
  return out;
}

/** The reason whose advice applies: the failure's, the refusal's, the admission's, a pod's. */
function mainReason(e: Evidence): string | undefined {
  const o = e.obj;
  if (e.kind.kind === 'InferenceService') {
    const svc = o as InferenceService;
    return svc.status?.lastFailureInfo?.reason ?? conditionOf(svc, 'Ready')?.reason;
  }
  const w = o as TrainingJob | FederatedRound;
  if (w.status?.failure?.reason) return w.status.failure.reason;
  if (conditionOf(w, 'Accepted')?.status === 'False') return 'SpecInvalid';
  if (w.status?.phase === 'Queued' || w.status?.phase === 'Suspended')
    return conditionOf(w, 'Admitted')?.reason ?? w.status.phase;
  for (const p of e.pods) {
    const sched = p.status?.conditions?.find((c) => c.type === 'PodScheduled');
    if (sched?.status === 'False') return sched.reason;
    const waiting = p.status?.containerStatuses?.find((c) => c.state?.waiting?.reason)?.state
      ?.waiting?.reason;
    if (waiting && ADVICE[waiting]) return waiting;
  }
  return undefined;
}

/** The pods that matter first: those that failed, then the chief. */
const chiefFirst = (pods: readonly Pod[]) =>
  [...pods].sort(
    (a, b) =>
      Number(a.metadata.labels?.[REPLICA_INDEX_LABEL] ?? 0) -
      Number(b.metadata.labels?.[REPLICA_INDEX_LABEL] ?? 0),
  );

export function explain(e: Evidence): string {
  const { kind, obj, now } = e;
  const name = obj.metadata.name ?? '';
  const phaseCond =
    kind.kind === 'InferenceService' ? 'Ready' : phaseCondition(obj.status?.phase ?? 'Pending');
  const words =
    kind.kind === 'TrainingJob'
      ? trainingJobWords(obj as TrainingJob, e.pods)
      : kind.kind === 'FederatedRound'
        ? federatedRoundWords(obj as FederatedRound)
        : inferenceServiceWords(obj as InferenceService);
  const notes = podNotes(chiefFirst(e.pods));
  if (words.length === 0 && notes.length === 0) {
    const c = conditionOf(obj, phaseCond);
    if (c) words.push(`${c.type}=${c.status} (${c.reason}): ${c.message}`);
    else
      words.push(
        'The operator has not reported on it yet: is it running and watching this namespace?',
      );
  }
  const advice = adviceFor(mainReason(e), kind, name);
  const sections: string[] = [
    [headline(kind, obj, phaseCond, now), ...words.map((w) => `  ${w}`)].join('\n') + '\n',
  ];
  if (advice) sections.push(`What to do:\n  ${advice}\n`);
  if (notes.length) sections.push(`What the pods say:\n${notes.map((n) => `  ${n}`).join('\n')}\n`);
  const tables: [string, string][] = [
    ['Conditions', conditionsTable(obj.status?.conditions, now)],
    [
      'Participants',
      kind.kind === 'FederatedRound' ? participantsTable(obj as FederatedRound) : '',
    ],
    ['Pods', podsTable(e.pods, now)],
    ['Events', eventsTable(e.events, now)],
  ];
  for (const [title, text] of tables) if (text) sections.push(`${title}:\n${indent(text)}`);
  return sections.join('\n');
}

const indent = (text: string) =>
  text
    .split('\n')
    .map((l) => (l ? `  ${l}` : l))
    .join('\n');
