// What a round's pods tell the operator in their termination messages, read strictly: pods run
// user code, so nothing they say reaches the status unless it fits the status schema, a model is
// believed only inside the round's own output, and the aggregator may not claim participants
// the operator did not accept.
import type { AggregatorResult, ClientReport, RejectedUpdate } from '../../contract/federated.ts';
import { sanitizeMessage } from '../../engine/messages.ts';
import { withinOutput } from '../spec-checks.ts';

const DIGEST = /^sha256:[a-f0-9]{64}$/;
const REASON = /^[A-Z][A-Za-z0-9]{0,63}$/;
const MAX_SAMPLES = Number.MAX_SAFE_INTEGER;

const isObject = (v: unknown): v is Record<string, unknown> =>
  typeof v === 'object' && v !== null && !Array.isArray(v);
const finite = (v: unknown): v is number => typeof v === 'number' && Number.isFinite(v);
const optionalFinite = (v: unknown) => v === undefined || finite(v);

function parse(message: string | undefined): unknown {
  if (!message?.trim()) return undefined;
  try {
    return JSON.parse(message);
  } catch {
    return undefined;
  }
}

export type ReportVerdict = { ok: true; report: ClientReport } | { ok: false; message: string };

export function parseClientReport(
  message: string | undefined,
  participant: string,
  _outputUri: string,
): ReportVerdict {
  const bad = (why: string): ReportVerdict => ({ ok: false, message: `its report ${why}` });
  const raw = parse(message);
  if (!isObject(raw)) return bad('is missing or not JSON (is the image our runtime?)');
  if (raw.participant !== participant)
    return bad(
      `names participant ${sanitizeMessage(String(raw.participant), 64)}, not ${participant}`,
    );
  const samples = raw.samples;
  if (!Number.isInteger(samples) || (samples as number) < 0 || (samples as number) > MAX_SAMPLES)
    return bad('has no valid sample count');
  if (!optionalFinite(raw.loss) || !optionalFinite(raw.accuracy))
    return bad('has a loss or accuracy that is not a number');
  if (raw.updateNorm !== undefined && !(finite(raw.updateNorm) && raw.updateNorm >= 0))
    return bad('has an invalid updateNorm');
  const update = raw.update;
  if (!isObject(update) || typeof update.digest !== 'string' || !DIGEST.test(update.digest))
    return bad('has no sha256 digest of its update');
  if (!Number.isInteger(update.bytes) || (update.bytes as number) < 0)
    return bad('has no update size');
  return {
    ok: true,
    report: {
      participant,
      samples: samples as number,
      ...(raw.loss !== undefined ? { loss: raw.loss as number } : {}),
      ...(raw.accuracy !== undefined ? { accuracy: raw.accuracy as number } : {}),
      ...(raw.updateNorm !== undefined ? { updateNorm: raw.updateNorm as number } : {}),
      update: { digest: update.digest, bytes: update.bytes as number },
    },
  };
}

export type AggregatorVerdict =
  | { ok: true; result: AggregatorResult }
  | { ok: false; reason: 'InvalidResult' | 'UntrustedModelURI'; message: string };

const METRICS = [
  'loss',
  'accuracy',
  'trainLoss',
  'trainAccuracy',
  'clippedFraction',
  'aggregationSeconds',
] as const;

export function parseAggregatorResult(
  message: string | undefined,
  outputUri: string,
  accepted: string[],
): AggregatorVerdict {
  const bad = (why: string): AggregatorVerdict => ({
    ok: false,
    reason: 'InvalidResult',
    message: `the aggregator's result (its termination message) ${why}`,
  });
  const raw = parse(message);
  if (!isObject(raw)) return bad('is missing or not JSON');
  const model = raw.model;
  if (!isObject(model) || typeof model.uri !== 'string' || typeof model.digest !== 'string')
    return bad('names no model');
  if (!DIGEST.test(model.digest)) return bad('has no sha256 digest of the model');
  if (!withinOutput(model.uri, outputUri))
    return {
      ok: false,
      reason: 'UntrustedModelURI',
      message: `the aggregator names a model outside spec.output.uri (${sanitizeMessage(model.uri, 256)})`,
    };
  const metrics: AggregatorResult['metrics'] = {};
  if (raw.metrics !== undefined && !isObject(raw.metrics))
    return bad('has metrics that are not an object');
  for (const k of METRICS) {
    const v = (raw.metrics as Record<string, unknown> | undefined)?.[k];
    if (v === undefined) continue;
    if (!finite(v)) return bad(`has a ${k} that is not a number`);
    metrics[k] = v;
  }
  if (
    metrics.clippedFraction !== undefined &&
    (metrics.clippedFraction < 0 || metrics.clippedFraction > 1)
  )
    return bad('has a clippedFraction outside [0, 1]');
  const allowed = new Set(accepted);
  if (
    !Array.isArray(raw.accepted) ||
    !raw.accepted.every((n) => typeof n === 'string' && allowed.has(n))
  )
    return bad('lists participants the operator did not accept');
  const rejected: RejectedUpdate[] = [];
  for (const x of Array.isArray(raw.rejected) ? raw.rejected : []) {
    if (!isObject(x) || typeof x.name !== 'string' || !allowed.has(x.name))
      return bad('rejects an unknown participant');
    const reason = typeof x.reason === 'string' && REASON.test(x.reason) ? x.reason : 'Rejected';
    rejected.push({
      name: x.name,
      reason,
      message: sanitizeMessage(String(x.message ?? ''), 1024),
    });
  }
  if (raw.accepted.length === 0) return bad('aggregated no update');
  return {
    ok: true,
    result: {
      model: { uri: model.uri, digest: model.digest },
      metrics,
      accepted: raw.accepted as string[],
      rejected,
      bytes: Number.isInteger(raw.bytes) ? (raw.bytes as number) : 0,
    },
  };
}
