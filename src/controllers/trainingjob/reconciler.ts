// The TrainingJob reconcile, as a short list of steps:
//   1. load the job; wait while the cache has not caught up with our own last write; check
//      what the CRD cannot (Accepted), and keep a refusal of the API server for this generation
//   2. a finished job: clean up pods (cleanPodPolicy), delete the job after its TTL
//   3. suspended: delete the pods, keep progress; resume goes through admission again
//   4. gang admission: no pod until every worker fits the free GPUs (Queued until then)
//   5. the workers' fate: success (a result read strictly), permanent failure, retry of the
//      gang (backoffLimit; a worker deleted by someone else counts as one failure), not running
//      by startupDeadlineSeconds, too long (activeDeadlineSeconds)
//   6. create what is missing (Service, worker pods): a refusal of the API server or an object
//      of that name that is not ours becomes a condition and an Event, never a silent retry
//   7. write the status if it changed; an Event on every phase change (a final one is recorded
//      before the status that ends the job, so a leader that dies in between loses nothing)
import type { Cache } from '../../core/informer.ts';
import type { Clock } from '../../core/clock.ts';
import { ApiError, type KubeClient } from '../../core/client.ts';
import { type Condition, findCondition, metaTime, setCondition } from '../../core/conditions.ts';
import type { ReconcileRequest, ReconcileResult, Reconciler } from '../../core/controller.ts';
import type { EventRecorder, EventType } from '../../core/events.ts';
import {
  type KubeObject,
  type ResourceType,
  Resources,
  ownerReference,
} from '../../core/resources.ts';
import { applyStatus } from '../../core/status.ts';
import { DEFAULT_PORT, ENDPOINTS } from '../../contract/runtime.ts';
import { type Progress } from '../../contract/training.ts';
import { ACCEPTED, acceptanceStatus, recordAcceptance } from '../acceptance.ts';
import { MANAGED_BY_LABEL, MANAGED_BY_VALUE } from '../labels.ts';
import {
  type BuildOptions,
  type TrainingJob,
  gpuRequest,
  rendezvousService,
  workerCount,
  workerPod,
} from './builders.ts';
import { type GangDemand, type NodeGpus, describe, fits, gpuView, reserve } from './capacity.ts';
import { checkTrainingJob } from './checks.ts';
import { HORIZON_YEARS, lastFiring, nextFiring, runName } from './schedule.ts';
import type { TrainingJobMetrics } from './metrics.ts';
import { type Pod, attemptOf, summarize } from './pods.ts';
import { parseProgress, parseResult, sanitizeMessage } from './result.ts';

type Status = NonNullable<TrainingJob['status']>;
type Phase = NonNullable<Status['phase']>;

export const COND = {
  admitted: 'Admitted',
  running: 'Running',
  succeeded: 'Succeeded',
  failed: 'Failed',
  suspended: 'Suspended',
  scheduled: 'Scheduled',
} as const;

export const SCHEDULED_BY_LABEL = 'lepton.ai/scheduled-by';
export const SCHEDULED_AT_ANNOTATION = 'lepton.ai/scheduled-at';

const QUEUED_RECHECK_MS = 15_000;
/** How often a refusal that something else can lift (a missing PriorityClass, a name taken) is retried. */
const REFUSED_RECHECK_MS = 10_000;
/** How soon to look again when the cache has not caught up with our own status write. */
const CACHE_BEHIND_MS = 1000;
/** How long an admission counts before the caches must show it (pods or status). */
const ASSUME_MS = 60_000;
const PROGRESS_POLL_MS = 10_000;
const PROGRESS_RETRY_MS = 60_000;

export interface TrainingJobReconcilerOptions {
  jobs: Cache<TrainingJob>;
  /** Pods and Services the operator created (its own label). */
  ownedPods: Cache<Pod>;
  ownedServices: Cache<KubeObject>;
  /** Every pod that has not ended and every node: the GPU capacity view. */
  allPods: Cache<Pod>;
  nodes: Cache<KubeObject>;
  /** PriorityClasses, for the admission order; creation order alone without them. */
  priorityClasses?: Cache<KubeObject>;
  client: KubeClient;
  events: EventRecorder;
  clock: Clock;
  build: BuildOptions;
  metrics?: TrainingJobMetrics;
  /** Called when this job gives back GPUs it was admitted with (queued jobs may fit now). */
  onRelease?: () => void;
  /** Reads the chief's /progress; injectable so tests need no pod network. */
  fetchProgress?: (ip: string) => Promise<Progress | undefined>;
}

async function defaultFetchProgress(ip: string): Promise<Progress | undefined> {
  try {
    const res = await fetch(`http://${ip}:${DEFAULT_PORT}${ENDPOINTS.progress}`, {
      signal: AbortSignal.timeout(1000),
    });
    return res.ok ? parseProgress(await res.json()) : undefined;
  } catch {
    return undefined;
  }
}

/**
 * Reasons of Accepted=False set when the API server refused an object built from the spec.
 * Invalid ones (422, 400, 413) wait for a new generation of the spec; the others are retried
 * (REFUSED_RECHECK_MS, and at once when a PriorityClass appears).
 */
export const REFUSAL = {
  invalid: 'PodRejected',
  forbidden: 'PodForbidden',
  conflict: 'NameConflict',
} as const;
/** Whether a job waits on a refusal that a new object elsewhere may lift (see register.ts). */
export function waitsOnRefusal(job: TrainingJob): boolean {
  const c = findCondition(job.status?.conditions, ACCEPTED);
  return c?.status === 'False' && (c.reason === REFUSAL.forbidden || c.reason === REFUSAL.conflict);
}

/** A refusal of a create by the API server, or undefined when retrying may help (5xx, 429). */
function classifyRefusal(err: unknown): 'invalid' | 'forbidden' | undefined {
  if (!(err instanceof ApiError)) return undefined;
  if (err.code === 400 || err.code === 422 || err.code === 413) return 'invalid';
  // etcd's own limit answers 500 with this message: retrying cannot make the object smaller.
  if (/request is too large/i.test(err.message)) return 'invalid';
  if (err.code === 403) return 'forbidden';
  return undefined;
}

/** The API server's words without our request line ("POST /api/v1/...: ... (422)"). */
function apiMessage(err: ApiError): string {
  return sanitizeMessage(err.message.replace(/^[A-Z]+ \S+: /, '').replace(/ \(\d{3}\)$/, ''), 2048);
}

/** Whether `obj` has a controller reference to `job`. */
function controlledBy(obj: KubeObject, job: TrainingJob): boolean {
  return (obj.metadata.ownerReferences ?? []).some(
    (r) => r.controller && r.uid === job.metadata.uid,
  );
}

type CreateOutcome =
  | { kind: 'created' }
  | { kind: 'ours' }
  | { kind: 'conflict' }
  | { kind: 'invalid'; message: string }
  | { kind: 'forbidden'; message: string };

/**
 * Creates a child and says what came of it: created; already there and `ours` (a create the
 * cache has not seen, or one going away); there and not ours (a conflict); or refused by the API
 * server, as invalid (400, 422, 413: waits for a new spec) or forbidden (403: something else may
 * lift it). Other errors (5xx, 429, timeouts) are thrown, so the reconcile is retried.
 */
async function createOwned(
  client: KubeClient,
  rt: ResourceType,
  obj: KubeObject,
  ours: (existing: KubeObject) => boolean,
): Promise<CreateOutcome> {
  try {
    const r = await client.createIfAbsent(rt, obj);
    if (r.created) return { kind: 'created' };
    return { kind: !r.existing || ours(r.existing) ? 'ours' : 'conflict' };
  } catch (err) {
    const kind = classifyRefusal(err);
    if (!kind) throw err;
    return { kind, message: apiMessage(err as ApiError) };
  }
}

/** What this replica last wrote to a job's status, until the cache shows it. */
interface Expectation {
  restarts: number;
  finished: boolean;
}

const isFinished = (phase: Status['phase']) => phase === 'Succeeded' || phase === 'Failed';

export class TrainingJobReconciler implements Reconciler {
  private readonly o: TrainingJobReconcilerOptions;
  /**
   * Jobs this replica admitted whose admission the caches may not show yet (no pod seen, status
   * not written): their GPUs count as taken, as kube-scheduler "assumes" a pod it just bound.
   * admit() runs without awaiting, so two reconciles never decide on the same free GPUs.
   */
  private readonly assumed = new Map<string, number>();
  /**
   * Status writes of this replica the cache may not show yet (a restart, an end): until it does,
   * a reconcile would act on the attempt before, e.g. create a pod of an attempt that is over.
   * The same guard kube-controller-manager's Job controller keeps as "expectations".
   */
  private readonly expected = new Map<string, Expectation>();
  /**
   * Jobs this replica just took the admission from (a refused gang), until the cache shows their
   * Admitted=False: others may use their GPUs at once.
   */
  private readonly released = new Map<string, number>();

  /**
   * The GPU view by resource name, computed from every running pod of the cluster: kept until a
   * pod or node changes, so a burst of admissions does not walk thousands of pods each.
   */
  private readonly views = new Map<string, NodeGpus[]>();

  constructor(opts: TrainingJobReconcilerOptions) {
    this.o = opts;
    const stale = () => this.views.clear();
    for (const cache of [opts.allPods, opts.nodes] as Cache<KubeObject>[])
      cache.addHandler({ add: stale, update: stale, delete: stale });
  }

  /** A copy of the current GPU view (admission reserves in it). */
  private gpuView(resource: string): NodeGpus[] {
    let view = this.views.get(resource);
    if (!view) {
      view = gpuView(this.o.nodes.list() as never[], this.o.allPods.list(), resource);
      this.views.set(resource, view);
    }
    return view.map((n) => ({ ...n }));
  }

  async reconcile(req: ReconcileRequest): Promise<ReconcileResult> {
    // 1. Load and check.
    const job = this.o.jobs.get(req.namespace, req.name);
    if (!job || job.metadata.deletionTimestamp) {
      this.forget();
      return {};
    }
    const uid = job.metadata.uid ?? '';
    const want = this.expected.get(uid);
    if (want) {
      const restarts = job.status?.restarts ?? 0;
      const behind = restarts < want.restarts || (want.finished && !isFinished(job.status?.phase));
      if (behind) return { requeueAfterMs: CACHE_BEHIND_MS };
      this.expected.delete(uid);
    }
    const now = this.o.clock.now();
    const problems = checkTrainingJob(job, now);
    const status: Status = acceptanceStatus(job, problems, now);
    const pods = this.o.ownedPods.listOwnedBy(uid);
    const step = new Step(job, status, now);
    // An object the API server refused as invalid stays refused until the spec changes.
    const refused = findCondition(job.status?.conditions, ACCEPTED);
    const stillRefused =
      problems.length === 0 &&
      refused?.status === 'False' &&
      refused.reason === REFUSAL.invalid &&
      refused.observedGeneration === job.metadata.generation;
    if (stillRefused) step.set(ACCEPTED, false, refused.reason, refused.message);

    let result: ReconcileResult = {};
    if (problems.length > 0 || stillRefused) {
      // Nothing runs until the spec is fixed; Accepted=False says why.
      status.phase ??= 'Pending';
    } else if (isFinished(status.phase)) {
      result = await this.finished(job, status, pods, now);
    } else if (job.spec.federated) {
      step.set(
        COND.admitted,
        false,
        'NotImplemented',
        'spec.federated (federated campaigns) is not implemented yet by this operator version',
      );
      step.phase('Pending');
    } else if (job.spec.schedule) {
      result = await this.scheduled(job, status, step, req);
    } else if (job.spec.suspend) {
      this.assumed.delete(uid);
      await this.deletePods(pods);
      step.set(
        COND.suspended,
        true,
        'Suspended',
        'spec.suspend is true: pods deleted; progress and checkpoints kept',
      );
      step.set(COND.admitted, false, 'Suspended', 'admission waits for the job to resume');
      step.set(COND.running, false, 'Suspended', 'suspended');
      step.phase('Suspended');
      status.workers = { active: 0, ready: 0, succeeded: 0, failed: 0 };
    } else {
      if (findCondition(status.conditions, COND.suspended)?.status === 'True') {
        step.set(COND.suspended, false, 'Resumed', 'spec.suspend is false');
      }
      result = await this.run(job, status, step, pods, req);
    }

    // 7. Write the status; an Event when the phase changes.
    if (step.deferStatus) return result;
    const before = job.status?.phase;
    const changed =
      status.phase !== before &&
      status.phase &&
      // A new job's first Pending is not news (nothing happened yet).
      !(before === undefined && status.phase === 'Pending');
    const finishing = changed && isFinished(status.phase);
    // The final Event goes first: a leader that dies after it re-records it at worst (the next
    // leader computes the same end), where after the status it could be lost for good.
    if (finishing) await this.phaseEvent(job, status);
    await applyStatus(this.o.client, Resources.TrainingJob, job, status);
    if (step.expect) this.expected.set(uid, step.expect);
    await recordAcceptance(this.o.events, job, status);
    if (changed && !finishing) await this.phaseEvent(job, status);
    for (const e of step.events) await this.o.events.record(job, e.type, e.reason, e.message);
    if (step.released) this.o.onRelease?.();
    if (changed) {
      req.log.info('Changed phase', { from: before ?? 'none', to: status.phase });
      if (finishing) this.o.metrics?.finished(job, status);
    }
    return result;
  }

  private async phaseEvent(job: TrainingJob, status: Status): Promise<void> {
    const phase = status.phase as Phase;
    const note =
      status.failure?.message ??
      findCondition(status.conditions, phaseCondition(phase))?.message ??
      findCondition(status.conditions, COND.admitted)?.message ??
      '';
    await this.o.events.record(
      job,
      phase === 'Failed' ? 'Warning' : 'Normal',
      phase,
      `${phase}: ${note}`.trim(),
    );
  }

  /** Drops what this replica expects of jobs that are gone (assumed admissions expire alone). */
  private forget(): void {
    if (this.expected.size === 0) return;
    const live = new Set(this.o.jobs.list().map((j) => j.metadata.uid));
    for (const uid of this.expected.keys()) if (!live.has(uid)) this.expected.delete(uid);
  }

  private async run(
    job: TrainingJob,
    status: Status,
    step: Step,
    allPods: Pod[],
    req: ReconcileRequest,
  ): Promise<ReconcileResult> {
    const now = step.now;
    const uid = job.metadata.uid ?? '';
    const attempt = status.restarts ?? 0;
    const current = allPods.filter((p) => attemptOf(p) === attempt);
    const live = current.filter((p) => !p.metadata.deletionTimestamp);
    // Pods of an earlier attempt of the gang go away before the next one starts (a restart is
    // written to the status first, so a leader that dies here leaves nothing to redo).
    await this.deletePods(allPods.filter((p) => attemptOf(p) !== attempt));

    // 4. Gang admission. Live pods of this attempt mean it was admitted (the status saying so
    // may not be written yet: see step 6).
    if (findCondition(status.conditions, COND.admitted)?.status !== 'True') {
      if (live.length === 0) {
        const verdict = this.admit(job);
        if (!verdict.admitted) {
          step.set(COND.admitted, false, verdict.reason, verdict.message);
          step.phase('Queued');
          return { requeueAfterMs: QUEUED_RECHECK_MS };
        }
        step.set(COND.admitted, true, 'GangAdmitted', verdict.message);
        this.assumed.set(uid, now + ASSUME_MS);
        this.released.delete(uid);
      } else {
        step.set(
          COND.admitted,
          true,
          'GangAdmitted',
          `${workerCount(job)} workers admitted together`,
        );
      }
      const created = live
        .map((p) => p.metadata.creationTimestamp ?? '')
        .filter(Boolean)
        .sort()[0];
      status.startTime ??= created ?? metaTime(now);
    }

    // 5. The workers' fate.
    const s = summarize(current);
    status.workers = { active: s.active, ready: s.ready, succeeded: s.succeeded, failed: s.failed };
    status.gpus = gpuRequest(job).count * workerCount(job);
    const backoffLimit = job.spec.backoffLimit ?? 3;
    if (s.chiefSucceeded) {
      const verdict = parseResult(s.resultMessage, job.spec.output?.uri);
      if (!verdict.ok) {
        status.failure = { reason: verdict.reason, message: verdict.message, worker: 0 };
        step.finish('Failed', COND.failed, verdict.reason, verdict.message);
        await this.cleanup(job, current);
        return this.ttl(job, status, now);
      }
      const r = verdict.result;
      if (r?.model.uri) status.model = { uri: r.model.uri, digest: r.model.digest };
      // The final figures, also when the job ended between two progress polls.
      if (r) {
        status.progress = {
          ...status.progress,
          epoch: r.epochs,
          epochs: r.epochs,
          ...r.metrics,
          backend: r.backend,
        };
      }
      step.finish(
        'Succeeded',
        COND.succeeded,
        'Completed',
        r ? 'the chief finished training' : 'the chief finished (it left no result)',
      );
      await this.cleanup(job, current);
      return this.ttl(job, status, now);
    }
    // A worker the job had and lost (deleted by someone else, evicted) fails the attempt once:
    // the stored status counted it, so its absence is news, not a pod still to be created. Pods
    // still going away after a suspend or a refused gang were not counted (workers were set to 0).
    const stored = (job.status?.restarts ?? 0) === attempt ? job.status?.workers : undefined;
    const had = (stored?.active ?? 0) + (stored?.succeeded ?? 0) + (stored?.failed ?? 0);
    const lost =
      had === 0
        ? undefined
        : s.deleted !== undefined
          ? `worker ${s.deleted} was deleted before it finished`
          : live.length < had
            ? `${had - live.length} of the job's worker pods disappeared before they finished`
            : undefined;
    const failure = lost
      ? {
          reason: 'WorkerDeleted',
          message: lost,
          worker: s.deleted ?? 0,
          permanent: false,
          exitCode: undefined,
        }
      : s.failure;
    if (failure) {
      const exhausted = attempt >= backoffLimit;
      if (failure.permanent || exhausted) {
        const reason = failure.permanent ? failure.reason : 'BackoffLimitExceeded';
        const message = failure.permanent
          ? failure.message
          : `${backoffLimit} restarts used (backoffLimit); last failure of worker ${failure.worker}: ${failure.message}`;
        status.failure = {
          reason,
          message,
          worker: failure.worker,
          ...(failure.exitCode !== undefined ? { exitCode: failure.exitCode } : {}),
        };
        step.finish('Failed', COND.failed, reason, message);
        await this.cleanup(job, current);
        return this.ttl(job, status, now);
      }
      // A retryable failure restarts the whole gang: data-parallel workers cannot rejoin a round.
      // Only the status changes now; the next reconcile, reading restarts + 1, deletes the pods of
      // this attempt and creates the next. Deleting first would let a leader that dies in between
      // rerun this attempt.
      status.restarts = attempt + 1;
      status.workers = { active: 0, ready: 0, succeeded: 0, failed: 0 };
      step.expect = { restarts: status.restarts, finished: false };
      this.o.metrics?.restarted(job);
      step.set(
        COND.running,
        false,
        'Restarting',
        `worker ${failure.worker} failed (${failure.message}); restarting the gang, attempt ${status.restarts} of ${backoffLimit}`,
      );
      step.phase('Pending');
      req.log.info('Restarting the gang', {
        worker: failure.worker,
        exitCode: failure.exitCode,
        restarts: status.restarts,
      });
      step.event('Warning', 'Restarting', `worker ${failure.worker} failed: ${failure.message}`);
      return { requeueAfterMs: 1000 };
    }
    const started = Date.parse(status.startTime ?? metaTime(now));
    // The startup deadline counts from this attempt's first pod: a restarted gang gets it anew.
    const firstPod = live
      .map((p) => Date.parse(p.metadata.creationTimestamp ?? ''))
      .filter((t) => !Number.isNaN(t))
      .sort((x, y) => x - y)[0];
    const attemptStart = firstPod ?? now;
    const startup = job.spec.startupDeadlineSeconds;
    const allRunning =
      live.length === workerCount(job) && live.every((p) => p.status?.phase === 'Running');
    if (
      startup !== undefined &&
      !allRunning &&
      s.notRunning &&
      now - attemptStart >= startup * 1000
    ) {
      const why = s.stuck ?? {
        reason: 'StartupTimeout',
        worker: s.notRunning.worker,
        message: s.notRunning.message,
      };
      const message = `worker ${why.worker} did not start within startupDeadlineSeconds (${startup}): ${why.reason}: ${why.message}`;
      status.failure = { reason: why.reason, message, worker: why.worker };
      step.finish('Failed', COND.failed, why.reason, message);
      await this.cleanup(job, current);
      return this.ttl(job, status, now);
    }
    const active = job.spec.activeDeadlineSeconds;
    if (active !== undefined && now - started >= active * 1000) {
      const message = `the job ran longer than activeDeadlineSeconds (${active})`;
      status.failure = { reason: 'DeadlineExceeded', message };
      step.finish('Failed', COND.failed, 'DeadlineExceeded', message);
      await this.cleanup(job, current);
      return this.ttl(job, status, now);
    }

    // 6. Create what is missing.
    const blocked =
      (await this.ensureService(job, step)) ?? (await this.ensurePods(job, attempt, allPods, step));
    if (blocked) {
      // No pod of a gang that cannot be whole: those created give their GPUs back at once.
      this.assumed.delete(uid);
      this.released.set(uid, now + ASSUME_MS);
      step.released = true;
      await this.deletePods(live);
      status.workers = { active: 0, ready: 0, succeeded: 0, failed: 0 };
      step.set(
        COND.admitted,
        false,
        'CreateRefused',
        'admission released: the gang could not be created',
      );
      step.set(COND.running, false, blocked.reason, blocked.message);
      step.phase('Pending');
      return blocked.recheck ? { requeueAfterMs: REFUSED_RECHECK_MS } : {};
    }
    if (step.created > 0) {
      this.o.metrics?.admitted(job, now);
      // The new pods' events bring this job back within moments, with more to say; writing the
      // transitional status now would spend the API rate on it while other jobs wait for pods.
      step.deferStatus = true;
      return {};
    }
    const running = s.active > 0 && allRunning;
    if (s.stuck && !running) {
      // Say why at once, not only when startupDeadlineSeconds runs out.
      step.set(
        COND.running,
        false,
        s.stuck.reason,
        `worker ${s.stuck.worker} cannot start: ${s.stuck.message}`,
      );
    } else {
      step.set(
        COND.running,
        running,
        running ? 'WorkersRunning' : 'WorkersStarting',
        `${s.active} of ${workerCount(job)} workers active, ${s.ready} ready`,
      );
    }
    step.phase(running ? 'Running' : 'Pending');
    let answered = false;
    if (running && s.chiefIP) {
      const p = await (this.o.fetchProgress ?? defaultFetchProgress)(s.chiefIP);
      answered = p !== undefined;
      if (p) {
        status.progress = {
          epoch: p.epoch,
          epochs: p.epochs,
          loss: p.loss,
          accuracy: p.accuracy,
          valLoss: p.valLoss,
          valAccuracy: p.valAccuracy,
          samplesPerSecond: p.samplesPerSecond,
          backend: p.backend,
        };
      }
    }
    // A chief that does not answer (not our runtime, or an address this replica cannot reach)
    // is asked rarely, so that unanswered polls do not hold the workers.
    const waits = [running ? (answered ? PROGRESS_POLL_MS : PROGRESS_RETRY_MS) : undefined];
    if (startup !== undefined && !running) waits.push(attemptStart + startup * 1000 - now);
    if (active !== undefined) waits.push(started + active * 1000 - now);
    const next = waits.filter((w): w is number => w !== undefined && w > 0);
    return next.length ? { requeueAfterMs: Math.min(...next) + 50 } : {};
  }

  /**
   * Creates the worker pods of this attempt that do not exist. A pod of that name that is still
   * going away (an earlier attempt) is waited for; one that is not ours, or a refusal of the API
   * server, is returned as the reason the gang cannot be created.
   */
  private async ensurePods(
    job: TrainingJob,
    attempt: number,
    pods: Pod[],
    step: Step,
  ): Promise<Blocked | undefined> {
    const names = new Set(pods.map((p) => p.metadata.name));
    for (let i = 0; i < workerCount(job); i++) {
      const pod = workerPod(job, i, attempt, this.o.build);
      if (names.has(pod.metadata.name)) continue;
      const blocked = await this.create(job, Resources.Pod, pod, step);
      if (blocked) return blocked;
    }
    return undefined;
  }

  private async ensureService(job: TrainingJob, step: Step): Promise<Blocked | undefined> {
    if (this.o.ownedServices.listOwnedBy(job.metadata.uid ?? '').length > 0) return undefined;
    return this.create(job, Resources.Service, rendezvousService(job), step);
  }

  /** Creates one pod or Service of the job; says why when it is refused or the name is taken. */
  private async create(
    job: TrainingJob,
    rt: ResourceType,
    obj: KubeObject,
    step: Step,
  ): Promise<Blocked | undefined> {
    const what = `${rt.kind} ${obj.metadata.name}`;
    // Ours: our label and a controller reference to this job (the admission policy keeps others
    // from forging the label). Ours but not cached yet, or going away: its events bring the job back.
    const outcome = await createOwned(
      this.o.client,
      rt,
      obj,
      (o) => o.metadata.labels?.[MANAGED_BY_LABEL] === MANAGED_BY_VALUE && controlledBy(o, job),
    );
    if (outcome.kind === 'created') step.created++;
    if (outcome.kind === 'created' || outcome.kind === 'ours') return undefined;
    let reason: string;
    let message: string;
    if (outcome.kind === 'conflict') {
      reason = REFUSAL.conflict;
      message = `${what} exists and does not belong to this job (no controller reference to it from the operator); delete or rename it`;
    } else {
      reason = outcome.kind === 'invalid' ? REFUSAL.invalid : REFUSAL.forbidden;
      const then =
        outcome.kind === 'invalid'
          ? 'fix the spec: nothing is retried until its generation changes'
          : `retried every ${REFUSED_RECHECK_MS / 1000} s and when a PriorityClass appears`;
      message = `the API server refused ${what}: ${outcome.message} (${then})`;
    }
    // recordAcceptance records the Warning Event when this verdict is new.
    step.set(ACCEPTED, false, reason, message);
    return { reason, message, recheck: outcome.kind !== 'invalid' };
  }

  /**
   * A scheduled job runs no pods: at each firing it creates a run (a TrainingJob named after the
   * firing time, so a repeated start creates nothing twice), with CronJob's concurrency policy,
   * starting deadline and history limits; the next firing comes back as requeueAfter.
   */
  private async scheduled(
    job: TrainingJob,
    status: Status,
    step: Step,
    req: ReconcileRequest,
  ): Promise<ReconcileResult> {
    const sched = job.spec.schedule as NonNullable<TrainingJob['spec']['schedule']>;
    const now = step.now;
    const runs = this.o.jobs.listOwnedBy(job.metadata.uid ?? '');
    const active = runs.filter((r) => !isFinished(r.status?.phase));
    const byEnd = (a: TrainingJob, b: TrainingJob) =>
      (a.status?.completionTime ?? '').localeCompare(b.status?.completionTime ?? '');
    const succeeded = runs.filter((r) => r.status?.phase === 'Succeeded').sort(byEnd);
    const failed = runs.filter((r) => r.status?.phase === 'Failed').sort(byEnd);
    const last = succeeded.at(-1)?.status?.completionTime;
    if (last) status.lastSuccessfulTime = last;
    // History: the oldest finished runs beyond the limits go.
    const excess = [
      ...succeeded.slice(
        0,
        Math.max(0, succeeded.length - (sched.successfulJobsHistoryLimit ?? 3)),
      ),
      ...failed.slice(0, Math.max(0, failed.length - (sched.failedJobsHistoryLimit ?? 1))),
    ];
    for (const r of excess) await this.deleteRun(r);
    step.phase('Scheduled');
    status.active = active.map((r) => ({ name: r.metadata.name ?? '', uid: r.metadata.uid }));

    // Either suspend stops new runs (runs already started go on, as under a suspended CronJob);
    // runs never inherit spec.suspend, so resuming the schedule resumes everything.
    if (sched.suspend || job.spec.suspend) {
      const which = sched.suspend ? 'spec.schedule.suspend' : 'spec.suspend';
      step.set(COND.scheduled, false, 'Suspended', `${which} is true: no new runs`);
      return {};
    }
    const since = Date.parse(
      status.lastScheduleTime ?? job.metadata.creationTimestamp ?? new Date(now).toISOString(),
    );
    const due = lastFiring(sched.cron, sched.timeZone, since, now);
    let retry: number | undefined;
    if (due !== undefined) {
      const deadline = sched.startingDeadlineSeconds;
      const policy = sched.concurrencyPolicy ?? 'Forbid';
      if (deadline !== undefined && now - due > deadline * 1000) {
        await this.o.events.record(
          job,
          'Warning',
          'MissedSchedule',
          `missed the run due at ${metaTime(due)} by more than startingDeadlineSeconds (${deadline})`,
        );
      } else if (active.length > 0 && policy === 'Forbid') {
        step.set(
          COND.scheduled,
          true,
          'Waiting',
          `run due at ${metaTime(due)} waits: ${active.map((r) => r.metadata.name).join(', ')} still active (concurrencyPolicy Forbid)`,
        );
        retry = 10_000;
      } else {
        if (policy === 'Replace') for (const r of active) await this.deleteRun(r);
        const refused = await this.startRun(job, due);
        if (refused) {
          step.set(COND.scheduled, false, refused.reason, refused.message);
          step.event('Warning', refused.reason, refused.message);
          retry = REFUSED_RECHECK_MS;
        } else {
          status.lastScheduleTime = metaTime(due);
          req.log.info('Started a scheduled run', { run: runName(job.metadata.name ?? '', due) });
        }
      }
    }
    const next = nextFiring(sched.cron, sched.timeZone, now);
    if (retry === undefined) {
      step.set(
        COND.scheduled,
        next !== undefined,
        next !== undefined ? 'Scheduled' : 'NeverFires',
        next !== undefined
          ? `next run at ${metaTime(next)}`
          : `${sched.cron} does not fire within ${HORIZON_YEARS} years`,
      );
    }
    const wait = Math.min(retry ?? Infinity, next !== undefined ? next - now + 50 : Infinity);
    return Number.isFinite(wait) ? { requeueAfterMs: Math.max(1000, wait) } : {};
  }

  /** Creates the run of the firing at `time`; says why when it cannot be. */
  private async startRun(
    job: TrainingJob,
    time: number,
  ): Promise<{ reason: string; message: string } | undefined> {
    const name = runName(job.metadata.name ?? '', time);
    const { schedule, suspend, ...spec } = job.spec;
    const run = {
      apiVersion: 'lepton.ai/v1alpha1',
      kind: 'TrainingJob',
      metadata: {
        name,
        namespace: job.metadata.namespace,
        labels: { [SCHEDULED_BY_LABEL]: job.metadata.name ?? '' },
        annotations: { [SCHEDULED_AT_ANNOTATION]: metaTime(time) },
        ownerReferences: [ownerReference(job)],
      },
      spec: {
        ...spec,
        ...(spec.output
          ? { output: { ...spec.output, uri: `${spec.output.uri.replace(/\/$/, '')}/${name}` } }
          : {}),
      },
    };
    // A run is a TrainingJob this job controls; one of that name it does not control is not one.
    const outcome = await createOwned(
      this.o.client,
      Resources.TrainingJob,
      run as KubeObject,
      (o) => controlledBy(o, job),
    );
    if (outcome.kind === 'created' || outcome.kind === 'ours') return undefined;
    if (outcome.kind === 'conflict') {
      return {
        reason: 'RunNameConflict',
        message: `the run due at ${metaTime(time)} cannot start: TrainingJob ${name} exists and is not a run of this job; delete or rename it`,
      };
    }
    return {
      reason: 'RunRefused',
      message: `the API server refused the run ${name} due at ${metaTime(time)}: ${outcome.message}`,
    };
  }

  private async deleteRun(run: TrainingJob): Promise<void> {
    await this.o.client.deleteIfExists(Resources.TrainingJob, run, {
      propagationPolicy: 'Background',
    });
  }

  /** The value of the job's priority class (the global default class when it names none; else 0). */
  private priority(job: TrainingJob): number {
    const classes = (this.o.priorityClasses?.list() ?? []) as (KubeObject & {
      value?: number;
      globalDefault?: boolean;
    })[];
    const name = job.spec.priorityClassName;
    const cls = name
      ? classes.find((c) => c.metadata.name === name)
      : classes.find((c) => c.globalDefault);
    return cls?.value ?? 0;
  }

  /** Whether `a` comes before `b` in the admission queue: higher priority, then older. */
  private ahead(a: TrainingJob, b: TrainingJob, pb = this.priority(b)): boolean {
    const pa = this.priority(a);
    return pa !== pb ? pa > pb : earlier(a, b);
  }

  /**
   * Gang admission in priority, then creation order: jobs queued ahead that fit take their GPUs
   * first (a job ahead that does not fit does not block smaller ones behind it).
   */
  private admit(job: TrainingJob): { admitted: boolean; reason: string; message: string } {
    const now = this.o.clock.now();
    for (const map of [this.assumed, this.released])
      for (const [uid, until] of map) if (until < now) map.delete(uid);
    const gpu = gpuRequest(job);
    const demand: GangDemand = {
      workers: workerCount(job),
      perWorker: gpu.count,
      product: gpu.product,
    };
    if (gpu.count === 0)
      return { admitted: true, reason: 'GangAdmitted', message: 'no GPUs requested' };
    const view = this.gpuView(gpu.resource);
    const { need } = describe(view, demand, gpu.resource);
    if (!fits(view, demand, 'total')) {
      const { free } = describe(view, demand, gpu.resource);
      return {
        admitted: false,
        reason: 'ExceedsClusterCapacity',
        message: `needs ${need} at once, more than the cluster has even when idle (${free.replace(/ \d+\//g, ' capacity ')}); it will wait until such nodes join`,
      };
    }
    let blockedBy: string | undefined;
    const ownPriority = this.priority(job);
    // Pods of admitted jobs that are not bound yet hold their GPUs too.
    for (const other of this.o.jobs.list()) {
      if (other.metadata.uid === job.metadata.uid) continue;
      const g = gpuRequest(other);
      if (g.resource !== gpu.resource || g.count === 0) continue;
      // Admitted: said so, has pods, or we just admitted it (its status write may be pending).
      const uid = other.metadata.uid ?? '';
      const admitted =
        !isFinished(other.status?.phase) &&
        ((findCondition(other.status?.conditions, COND.admitted)?.status === 'True' &&
          !this.released.has(uid)) ||
          this.assumed.has(uid) ||
          this.o.ownedPods.listOwnedBy(uid).length > 0);
      const queuedAhead = other.status?.phase === 'Queued' && this.ahead(other, job, ownPriority);
      if (!admitted && !queuedAhead) continue;
      // Workers not yet counted in the view: read from the same cache as the view (a pod bound
      // there holds its GPUs already; one not bound or not seen yet does not).
      const bound = this.o.allPods
        .listOwnedBy(other.metadata.uid ?? '')
        .filter((p) => p.spec?.nodeName).length;
      const unbound = Math.max(0, workerCount(other) - bound);
      const d = { workers: unbound, perWorker: g.count, product: g.product };
      if (admitted || fits(view, d)) {
        reserve(view, d);
      } else if (fits(view, d, 'total') && competes(g.product, gpu.product)) {
        // Strict order: a job ahead that will fit once GPUs free up keeps them from being
        // taken by jobs behind it, so a big gang is not starved by a stream of small ones.
        blockedBy ??= other.metadata.name;
      }
    }
    const { free } = describe(view, demand, gpu.resource);
    if (blockedBy !== undefined) {
      return {
        admitted: false,
        reason: 'WaitingForEarlierJobs',
        message: `waiting behind ${blockedBy} (higher priority or older), which needs GPUs of the same kind first; free now: ${free}`,
      };
    }
    if (!fits(view, demand)) {
      return {
        admitted: false,
        reason: 'InsufficientGPU',
        message: `waiting for ${need} to be free at once; free now: ${free}`,
      };
    }
    return {
      admitted: true,
      reason: 'GangAdmitted',
      message: `${need} fit; free before admission: ${free}`,
    };
  }

  private async finished(
    job: TrainingJob,
    status: Status,
    pods: Pod[],
    now: number,
  ): Promise<ReconcileResult> {
    await this.cleanup(job, pods);
    return this.ttl(job, status, now);
  }

  /** cleanPodPolicy: Running (default) deletes pods still running, All deletes all, None none. */
  private async cleanup(job: TrainingJob, pods: Pod[]): Promise<void> {
    const policy = job.spec.cleanPodPolicy ?? 'Running';
    if (policy === 'None') return;
    const victims =
      policy === 'All'
        ? pods
        : pods.filter((p) => p.status?.phase !== 'Succeeded' && p.status?.phase !== 'Failed');
    await this.deletePods(victims);
  }

  private async ttl(job: TrainingJob, status: Status, now: number): Promise<ReconcileResult> {
    const ttl = job.spec.ttlSecondsAfterFinished;
    if (ttl === undefined || !status.completionTime) return {};
    const left = Date.parse(status.completionTime) + ttl * 1000 - now;
    if (left > 0) return { requeueAfterMs: left + 50 };
    await this.o.client.deleteIfExists(Resources.TrainingJob, job, {
      propagationPolicy: 'Background',
    });
    return {};
  }

  private async deletePods(pods: Pod[]): Promise<void> {
    for (const p of pods) {
      if (!p.metadata.deletionTimestamp) await this.o.client.deleteIfExists(Resources.Pod, p);
    }
  }
}

/** Whether two GPU requests can land on the same nodes (an unnamed product matches any). */
function competes(a: string | undefined, b: string | undefined): boolean {
  return a === undefined || b === undefined || a === b;
}

function earlier(a: TrainingJob, b: TrainingJob): boolean {
  const ta = a.metadata.creationTimestamp ?? '';
  const tb = b.metadata.creationTimestamp ?? '';
  return (
    ta < tb ||
    (ta === tb &&
      `${a.metadata.namespace}/${a.metadata.name}` < `${b.metadata.namespace}/${b.metadata.name}`)
  );
}

/** Why the gang cannot be created now, and whether something else may lift it (a recheck). */
interface Blocked {
  reason: string;
  message: string;
  recheck: boolean;
}

/** The condition whose message tells what a phase is about, for the phase's Event. */
function phaseCondition(phase: Phase): string {
  switch (phase) {
    case 'Succeeded':
      return COND.succeeded;
    case 'Failed':
      return COND.failed;
    case 'Suspended':
      return COND.suspended;
    case 'Scheduled':
      return COND.scheduled;
    case 'Running':
    case 'Pending':
      return COND.running;
    default:
      return COND.admitted;
  }
}

/** Helpers that change the status being computed, and what to do once it is written. */
class Step {
  readonly now: number;
  /** Skip this reconcile's status write (see step 6). */
  deferStatus = false;
  /** Children created in this reconcile. */
  created = 0;
  /** What the cache must show before this job is reconciled again (a restart, an end). */
  expect: Expectation | undefined;
  /** This job gave back its admission: queued jobs are woken once the status is written. */
  released = false;
  /** Events recorded after the status is written. */
  readonly events: { type: EventType; reason: string; message: string }[] = [];
  private readonly job: TrainingJob;
  private readonly status: Status;

  constructor(job: TrainingJob, status: Status, now: number) {
    this.job = job;
    this.status = status;
    this.now = now;
  }

  set(type: string, ok: boolean, reason: string, message: string): void {
    const next = setCondition(
      this.status.conditions as Condition[] | undefined,
      {
        type,
        status: ok ? 'True' : 'False',
        reason,
        message,
        observedGeneration: this.job.metadata.generation,
      },
      this.now,
    );
    // A condition set twice in one reconcile (Accepted computed, then refused) keeps the time it
    // has in the stored status when its status there is the same: no flapping, no extra write.
    const stored = findCondition(this.job.status?.conditions, type);
    this.status.conditions = next.map((c) =>
      c.type === type && stored?.status === c.status
        ? { ...c, lastTransitionTime: stored.lastTransitionTime }
        : c,
    );
  }

  phase(p: Phase): void {
    this.status.phase = p;
  }

  event(type: EventType, reason: string, message: string): void {
    this.events.push({ type, reason, message });
  }

  finish(p: 'Succeeded' | 'Failed', type: string, reason: string, message: string): void {
    this.set(type, true, reason, message);
    this.set(COND.running, false, reason, message);
    this.phase(p);
    this.status.completionTime ??= metaTime(this.now);
    this.status.workers = { ...this.status.workers, active: 0, ready: 0 };
    this.expect = { restarts: this.status.restarts ?? 0, finished: true };
  }
}
