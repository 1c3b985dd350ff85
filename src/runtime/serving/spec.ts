// LEPTON_SERVING_SPEC, read strictly: the operator writes it, so a missing or mistyped field is
// a bug between the two, reported as InvalidServingSpec (permanent) rather than a default that
// would hide it.
import {
  type BatcherSpec,
  type ServingSpec,
  SERVING_ENV,
  SERVING_FAILURES,
} from '../../contract/serving.ts';
import { PermanentError } from '../errors.ts';

type Fields = Record<string, unknown>;

const FIELDS: readonly (keyof ServingSpec)[] = [
  'modelName',
  'variant',
  'modelUri',
  'format',
  'digest',
  'quantization',
  'batcher',
  'maxRequestBytes',
  'drainSeconds',
  'canary',
];

export function parseServingSpec(json: string | undefined): ServingSpec {
  if (json === undefined || json.trim() === '') throw invalid(`${SERVING_ENV.spec} is not set`);
  let raw: unknown;
  try {
    raw = JSON.parse(json);
  } catch (err) {
    throw invalid(`${SERVING_ENV.spec} is not JSON: ${(err as Error).message}`);
  }
  const o = object(raw, 'the spec');
  unknownFields(o, FIELDS, '');
  const spec: ServingSpec = {
    // A name is one path segment of /v1/models/NAME:predict, so it cannot hold / or :.
    modelName: string(o, 'modelName', /^[A-Za-z0-9][A-Za-z0-9._-]*$/),
    variant: oneOf(o, 'variant', ['predictor', 'canary'] as const),
    modelUri: string(o, 'modelUri', /^(file|pvc|https?|s3):\/\/\S+$/),
    format: oneOf(o, 'format', ['tfjs-layers', 'tfjs-graph'] as const),
    quantization: oneOf(o, 'quantization', ['none', 'float16', 'uint8'] as const),
    maxRequestBytes: number(o, 'maxRequestBytes', { min: 1, integer: true }),
    drainSeconds: number(o, 'drainSeconds', { min: 0 }),
  };
  if (o.digest !== undefined) spec.digest = string(o, 'digest', /^sha256:[0-9a-f]{64}$/);
  if (o.batcher !== undefined) spec.batcher = batcher(object(o.batcher, 'batcher'));
  if (o.canary !== undefined) {
    const c = object(o.canary, 'canary');
    unknownFields(c, ['host', 'port', 'trafficPercent'], 'canary.');
    spec.canary = {
      host: string(c, 'host', /^\S+$/, 'canary.'),
      port: number(c, 'port', { min: 1, max: 65535, integer: true }, 'canary.'),
      trafficPercent: number(c, 'trafficPercent', { min: 0, max: 100 }, 'canary.'),
    };
  }
  return spec;
}

function batcher(o: Fields): BatcherSpec {
  unknownFields(o, ['maxBatchSize', 'maxLatencyMs', 'maxQueueSize'], 'batcher.');
  return {
    maxBatchSize: number(o, 'maxBatchSize', { min: 1, integer: true }, 'batcher.'),
    maxLatencyMs: number(o, 'maxLatencyMs', { min: 0 }, 'batcher.'),
    maxQueueSize: number(o, 'maxQueueSize', { min: 1, integer: true }, 'batcher.'),
  };
}

function invalid(reason: string): PermanentError {
  return new PermanentError(`${SERVING_FAILURES.invalidSpec}: ${reason}`);
}

function object(value: unknown, what: string): Fields {
  if (value === null || typeof value !== 'object' || Array.isArray(value))
    throw invalid(`${what} must be a JSON object`);
  return value as Fields;
}

function unknownFields(o: Fields, known: readonly string[], prefix: string): void {
  const unknown = Object.keys(o).filter((k) => !known.includes(k));
  if (unknown.length > 0)
    throw invalid(`unknown field ${unknown.map((k) => prefix + k).join(', ')}`);
}

function string(o: Fields, field: string, pattern: RegExp, prefix = ''): string {
  const v = o[field];
  if (typeof v !== 'string') throw invalid(`${prefix}${field} must be a string, got ${show(v)}`);
  if (!pattern.test(v)) throw invalid(`${prefix}${field} "${v}" does not match ${pattern}`);
  return v;
}

function oneOf<T extends string>(o: Fields, field: string, values: readonly T[]): T {
  const v = o[field];
  if (!values.includes(v as T))
    throw invalid(`${field} must be one of ${values.join(', ')}, got ${show(v)}`);
  return v as T;
}

function number(
  o: Fields,
  field: string,
  range: { min: number; max?: number; integer?: boolean },
  prefix = '',
): number {
  const v = o[field];
  const ok =
    typeof v === 'number' &&
    Number.isFinite(v) &&
    v >= range.min &&
    (range.max === undefined || v <= range.max) &&
    (!range.integer || Number.isInteger(v));
  if (!ok)
    throw invalid(
      `${prefix}${field} must be ${range.integer ? 'an integer' : 'a number'} ≥ ${range.min}${range.max === undefined ? '' : ` and ≤ ${range.max}`}, got ${show(v)}`,
    );
  return v as number;
}

function show(v: unknown): string {
  return v === undefined ? 'nothing' : JSON.stringify(v);
}
