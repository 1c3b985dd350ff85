// What a TrainingJob's chief tells the operator (its termination message on success, its
// /progress answer while it trains), read strictly: the pods run user code, so nothing they say
// reaches the status unless it fits the status schema, and a model is believed only inside the
// job's own spec.output.uri. A message that does not fit is refused with a reason, so the job
// ends with that reason instead of every status write failing with 422.
import {
  type DatasetSummary,
  HISTORY_MAX_EPOCHS,
  HISTORY_METRICS as METRICS,
  type Progress,
  type ProgressHistory,
  type ResultHistory,
  type TrainingResult,
} from '../../contract/training.ts';
import { sanitizeMessage } from '../../engine/messages.ts';
import { withinOutput } from '../spec-checks.ts';

/**
 * The status schema's limits (crds/lepton.ai_trainingjobs.yaml, status.model, progress and
 * evaluation).
 */
const MAX_URI = 2048;
const MAX_BACKEND = 64;
const DIGEST = /^sha256:[a-f0-9]{64}$/;
const INT32 = 2 ** 31 - 1;

export type ResultVerdict =
  | { ok: true; result: TrainingResult | undefined }
  | { ok: false; reason: 'InvalidResult' | 'UntrustedModelURI'; message: string };

const isObject = (v: unknown): v is Record<string, unknown> =>
  typeof v === 'object' && v !== null && !Array.isArray(v);
const finite = (v: unknown): v is number => typeof v === 'number' && Number.isFinite(v);
const count = (v: unknown): v is number =>
  Number.isInteger(v) && (v as number) >= 0 && (v as number) <= INT32;
/** An int64 of the status that a JavaScript number holds exactly. */
const size = (v: unknown): v is number => Number.isSafeInteger(v) && (v as number) >= 0;

/**
 * The chief's result (undefined when it left none), or why it cannot be believed. `outputUri` is
 * the job's spec.output.uri; a job without one saves no model, so its result must name none.
 */
export function parseResult(
  message: string | undefined,
  outputUri: string | undefined,
  datasetUri?: string,
): ResultVerdict {
  const bad = (why: string): ResultVerdict => ({
    ok: false,
    reason: 'InvalidResult',
    message: `the chief's result (its termination message) ${why}`,
  });
  // No message at all is no result (a chief that is not our runtime): success without a model.
  if (!message?.trim()) return { ok: true, result: undefined };
  let raw: unknown;
  try {
    raw = JSON.parse(message);
  } catch {
    return bad('is not JSON');
  }
  if (!isObject(raw) || !isObject(raw.model) || !isObject(raw.metrics ?? {}))
    return bad('is not an object with model and metrics');
  const { uri, digest } = raw.model;
  if (typeof uri !== 'string' || uri.length > MAX_URI)
    return bad(`has a model.uri that is not a string of at most ${MAX_URI} characters`);
  if (!count(raw.epochs)) return bad('has epochs that are not a non-negative integer');
  if (typeof raw.backend !== 'string' || raw.backend.length > MAX_BACKEND)
    return bad(`has a backend that is not a string of at most ${MAX_BACKEND} characters`);
  const metrics: TrainingResult['metrics'] = {};
  for (const name of METRICS) {
    const v = (raw.metrics as Record<string, unknown> | undefined)?.[name];
    if (v === undefined) continue;
    if (!finite(v)) return bad(`has metrics.${name} that is not a finite number`);
    metrics[name] = v;
  }
  let evaluation: TrainingResult['evaluation'];
  if (raw.evaluation !== undefined) {
    const e = raw.evaluation;
    if (!isObject(e) || !count(e.samples) || e.samples === 0)
      return bad('has an evaluation that is not an object with samples a positive integer');
    evaluation = { samples: e.samples };
    if (e.loss !== undefined) {
      if (!finite(e.loss)) return bad('has evaluation.loss that is not a finite number');
      evaluation.loss = e.loss;
    }
    if (e.accuracy !== undefined) {
      if (!finite(e.accuracy) || e.accuracy < 0 || e.accuracy > 1)
        return bad('has evaluation.accuracy that is not a number in [0, 1]');
      evaluation.accuracy = e.accuracy;
    }
  }
  // The model's cost metrics, which tuning may take as objectives: refused like any other field
  // that does not fit, so a trial is never judged on a figure the status could not hold.
  const cost: Pick<TrainingResult['model'], 'parameters' | 'bytes' | 'latencySeconds'> = {};
  for (const name of ['parameters', 'bytes'] as const) {
    const v = raw.model[name];
    if (v === undefined) continue;
    if (!size(v)) return bad(`has a model.${name} that is not a non-negative integer`);
    cost[name] = v;
  }
  const latency = raw.model.latencySeconds;
  if (latency !== undefined) {
    if (!finite(latency) || latency < 0)
      return bad('has a model.latencySeconds that is not a finite number of at least 0');
    cost.latencySeconds = latency;
  }
  let dataset: DatasetSummary | undefined;
  if (raw.dataset !== undefined) {
    dataset = parseDataset(raw.dataset, datasetUri);
    if (dataset === undefined)
      return bad(
        'has a dataset that is not spec.dataset.uri with a sha256 digest and counts of rows, files and bytes',
      );
  }
  // A history that does not fit is ignored, not the result: it is what the job's progress
  // polls had already stored, and the model and final metrics are no less true without it.
  const history = raw.history === undefined ? undefined : parseResultHistory(raw.history);
  if (outputUri === undefined) {
    if (uri !== '') return untrusted(uri, 'the job has no spec.output');
  } else {
    if (!withinOutput(uri, outputUri))
      return untrusted(uri, `it is not under spec.output.uri (${outputUri})`);
    if (typeof digest !== 'string' || !DIGEST.test(digest))
      return bad('has a model.digest that is not sha256: and 64 hexadecimal digits');
  }
  return {
    ok: true,
    result: {
      model: { uri, digest: typeof digest === 'string' ? digest : '', ...cost },
      metrics,
      ...(evaluation ? { evaluation } : {}),
      epochs: raw.epochs,
      backend: sanitizeMessage(raw.backend, MAX_BACKEND),
      ...(dataset ? { dataset } : {}),
      ...(history ? { history } : {}),
    },
  };
}

/**
 * The epochs a result carries, when they can be joined to status.progress.history: `start` a
 * non-negative integer, lists of finite numbers all of the same length, at least one entry, and
 * start + length within the first HISTORY_MAX_EPOCHS epochs; else undefined. Unknown keys are
 * dropped.
 */
export function parseResultHistory(raw: unknown): ResultHistory | undefined {
  if (!isObject(raw) || !count(raw.start)) return undefined;
  const history: ResultHistory = { start: raw.start };
  let length: number | undefined;
  for (const name of METRICS) {
    const list = raw[name];
    if (list === undefined) continue;
    if (!Array.isArray(list) || !list.every(finite) || (length ?? list.length) !== list.length)
      return undefined;
    length = list.length;
    history[name] = list;
  }
  if (length === undefined || length === 0 || raw.start + length > HISTORY_MAX_EPOCHS)
    return undefined;
  return history;
}

/**
 * The history a finished job keeps: per metric, the polled entries before the result's `start`,
 * then the result's, so that the epochs after the last poll are not lost. Where the polls saw
 * fewer than `start` epochs the lists cannot be joined (the epochs between are unknown, and
 * history[e - 1] must be epoch e), so the polled list stays, the one of the two that begins at
 * epoch 1 (a result from start 0 always joins). A metric the result does not carry keeps its
 * polled list.
 */
export function joinHistory(
  polled: ProgressHistory | undefined,
  result: ResultHistory | undefined,
): ProgressHistory | undefined {
  if (result === undefined) return polled;
  const joined: ProgressHistory = {};
  for (const name of METRICS) {
    const before = polled?.[name];
    const tail = result[name];
    if (tail !== undefined && (before?.length ?? 0) >= result.start)
      joined[name] = [...(before ?? []).slice(0, result.start), ...tail];
    else if (before !== undefined) joined[name] = before;
  }
  return Object.keys(joined).length > 0 ? joined : undefined;
}

/**
 * The data a chief says it read, when it fits status.dataset and names the job's own
 * spec.dataset.uri (a chief cannot attribute its model to other data); else undefined.
 */
export function parseDataset(
  raw: unknown,
  datasetUri: string | undefined,
): DatasetSummary | undefined {
  if (!isObject(raw) || datasetUri === undefined || raw.uri !== datasetUri) return undefined;
  const { digest, rows, files, bytes } = raw;
  if (typeof digest !== 'string' || !DIGEST.test(digest)) return undefined;
  for (const n of [rows, files, bytes])
    if (!Number.isSafeInteger(n) || (n as number) < 0) return undefined;
  return {
    uri: datasetUri,
    digest,
    rows: rows as number,
    files: files as number,
    bytes: bytes as number,
  };
}

function untrusted(uri: string, why: string): ResultVerdict {
  return {
    ok: false,
    reason: 'UntrustedModelURI',
    message: `the chief's result names the model ${JSON.stringify(sanitizeMessage(uri, 256))}, which is ignored: ${why}`,
  };
}

/** The chief's /progress answer as the status may hold it, or undefined when it does not fit. */
export function parseProgress(raw: unknown, datasetUri?: string): Progress | undefined {
  if (!isObject(raw) || !count(raw.epoch) || !count(raw.epochs)) return undefined;
  const p: Progress = {
    phase: 'Training',
    epoch: raw.epoch,
    epochs: raw.epochs,
    backend: typeof raw.backend === 'string' ? sanitizeMessage(raw.backend, MAX_BACKEND) : '',
  };
  for (const name of [...METRICS, 'samplesPerSecond'] as const) {
    const v = raw[name];
    if (v === undefined) continue;
    if (!finite(v) || (name === 'samplesPerSecond' && v < 0)) return undefined;
    p[name] = v;
  }
  // A summary or a history that does not fit is left out; the metrics still count.
  const dataset = raw.dataset === undefined ? undefined : parseDataset(raw.dataset, datasetUri);
  if (dataset) p.dataset = dataset;
  const history = raw.history === undefined ? undefined : parseHistory(raw.history);
  if (history) p.history = history;
  return p;
}

/**
 * Per-epoch metrics that fit status.progress.history: lists of at most HISTORY_MAX_EPOCHS finite
 * numbers; else undefined, all of it, since a list with one value removed would shift the epochs
 * of the rest. Unknown keys are dropped.
 */
export function parseHistory(raw: unknown): ProgressHistory | undefined {
  if (!isObject(raw)) return undefined;
  const history: ProgressHistory = {};
  for (const name of METRICS) {
    const list = raw[name];
    if (list === undefined) continue;
    if (!Array.isArray(list) || list.length > HISTORY_MAX_EPOCHS || !list.every(finite))
      return undefined;
    history[name] = list;
  }
  return history;
}
