// How much memory one dataset may take. The runtime holds a dataset whole, as float32, until
// streaming large datasets lands (issue 9, the data lake); past this limit loading fails as a
// permanent error that says so, rather than running the pod out of memory or into a V8 limit,
// which ended as a transient failure the operator retried for ever.
import { totalmem } from 'node:os';
import { ENV } from '../../contract/runtime.ts';
import { PermanentError } from '../errors.ts';

/** Overrides the limit, in bytes of float32 data (set in the pod's environment). */
export const DATASET_MAX_BYTES_ENV = 'LEPTON_DATASET_MAX_BYTES';

/**
 * The share of the pod's memory a dataset may take: reading peaks at about twice the data (the
 * rows as read, then the dataset in its final layout), and training adds the validation set as a
 * tensor, the model and the backend's heap; a quarter keeps the peak near half the memory.
 */
const MEMORY_FRACTION = 4;

export interface DatasetLimit {
  bytes: number;
  /** Where the figure comes from, for the error message. */
  reason: string;
}

export function datasetLimit(env: NodeJS.ProcessEnv = process.env): DatasetLimit {
  const set = env[DATASET_MAX_BYTES_ENV];
  if (set !== undefined && set.trim() !== '') {
    const bytes = Number(set);
    if (!Number.isSafeInteger(bytes) || bytes <= 0)
      throw new PermanentError(`${DATASET_MAX_BYTES_ENV}=${set} is not a number of bytes`);
    return { bytes, reason: `set by ${DATASET_MAX_BYTES_ENV}` };
  }
  const memory = podMemory(env) ?? totalmem();
  return {
    bytes: Math.floor(memory / MEMORY_FRACTION),
    reason: `a quarter of the pod's ${formatBytes(memory)} of memory; ${DATASET_MAX_BYTES_ENV} sets another`,
  };
}

/**
 * The pod's memory limit in bytes: LEPTON_MEMORY_LIMIT (the operator sets it from the downward
 * API when the spec gives one), else the cgroup's limit; undefined without either (then the
 * machine's memory is the only bound: Node reports 2^64, or 0, without a cgroup limit).
 */
export function podMemory(env: NodeJS.ProcessEnv = process.env): number | undefined {
  const set = Number(env[ENV.memoryLimit]);
  if (Number.isSafeInteger(set) && set > 0) return set;
  const constrained = process.constrainedMemory();
  return constrained > 0 && constrained < totalmem() ? constrained : undefined;
}

/** Thrown while reading when the values read so far pass the limit. */
export class DatasetTooLargeError extends PermanentError {
  readonly source: string;
  readonly line: number;
  readonly rows: number;
  readonly columns: number;
  readonly maxBytes: number;

  constructor(
    at: { source: string; line: number },
    rows: number,
    columns: number,
    maxBytes: number,
  ) {
    super(
      `${at.source} line ${at.line}: ${rows} rows of ${columns} values and a label need more than ${formatBytes(maxBytes)} as float32`,
    );
    this.source = at.source;
    this.line = at.line;
    this.rows = rows;
    this.columns = columns;
    this.maxBytes = maxBytes;
  }
}

/** What the limit is, for messages: "62.5 KiB of float32 data a dataset may take (why)". */
export function limitText(limit: DatasetLimit): string {
  return `${formatBytes(limit.bytes)} of float32 data a dataset may take (${limit.reason})`;
}

/** What to do about a dataset over the limit, ending every such message. */
export const STREAMING_HINT =
  'The runtime holds a CSV, JSONL or IDX dataset whole in memory, while Parquet datasets stream (spec.dataset.format: parquet): convert the data to Parquet, use a smaller dataset or give the pod more memory';

export function formatBytes(bytes: number): string {
  if (bytes >= 2 ** 30) return `${(bytes / 2 ** 30).toFixed(1)} GiB`;
  if (bytes >= 2 ** 20) return `${(bytes / 2 ** 20).toFixed(1)} MiB`;
  if (bytes >= 2 ** 10) return `${(bytes / 2 ** 10).toFixed(1)} KiB`;
  return `${bytes} bytes`;
}
