// Dynamic batching: requests wait in a queue until it holds maxBatchSize rows or its oldest
// request has waited maxLatencyMs, then run as one batch; one batch at a time, since the model is
// one. Requests are never split: a request larger than maxBatchSize runs as a batch of its own.
// Rows are independent (see Predictor), so each request gets back exactly its unbatched result.
import type { BatcherSpec } from '../../contract/serving.ts';
import type { Batch, Prediction } from './predictor.ts';
import { RequestError } from './request.ts';
import type { TypedArray } from './tensors.ts';

export interface BatchRunner {
  run(batch: Batch): Promise<Prediction>;
  /** Rows waiting for a batch (not those running). */
  depth(): number;
}

export type Predict = (batch: Batch) => Promise<Prediction>;

/**
 * With a BatcherSpec, a queue; without, each request predicts on its own as it arrives.
 * `onBatch` sees the rows of every batch run (for the batch size histogram).
 */
export function createRunner(
  spec: BatcherSpec | undefined,
  predict: Predict,
  onBatch: (rows: number) => void,
  now: () => number = () => performance.now(),
): BatchRunner {
  if (spec === undefined)
    return {
      run(batch) {
        onBatch(batch.rows);
        return predict(batch);
      },
      depth: () => 0,
    };
  return new Batcher(spec, predict, onBatch, now);
}

interface Waiting {
  batch: Batch;
  since: number;
  resolve(prediction: Prediction): void;
  reject(err: unknown): void;
}

export class Batcher implements BatchRunner {
  private readonly queue: Waiting[] = [];
  private rows = 0;
  private running = false;
  private timer: NodeJS.Timeout | undefined;
  private readonly spec: BatcherSpec;
  private readonly predict: Predict;
  private readonly onBatch: (rows: number) => void;
  private readonly now: () => number;

  constructor(
    spec: BatcherSpec,
    predict: Predict,
    onBatch: (rows: number) => void,
    now: () => number = () => performance.now(),
  ) {
    this.spec = spec;
    this.predict = predict;
    this.onBatch = onBatch;
    this.now = now;
  }

  depth(): number {
    return this.rows;
  }

  run(batch: Batch): Promise<Prediction> {
    // An empty queue takes any request, so one larger than the queue is still answered.
    if (this.rows > 0 && this.rows + batch.rows > this.spec.maxQueueSize)
      return Promise.reject(
        new RequestError(
          503,
          `the batch queue is full (${this.rows} rows waiting, maxQueueSize ${this.spec.maxQueueSize}): retry later`,
          { 'retry-after': '1' },
        ),
      );
    return new Promise<Prediction>((resolve, reject) => {
      this.queue.push({ batch, since: this.now(), resolve, reject });
      this.rows += batch.rows;
      this.schedule();
    });
  }

  private schedule(): void {
    const oldest = this.queue[0];
    if (this.running || oldest === undefined) return;
    const wait = oldest.since + this.spec.maxLatencyMs - this.now();
    if (this.rows >= this.spec.maxBatchSize || wait <= 0) {
      clearTimeout(this.timer);
      this.timer = undefined;
      void this.runBatch();
    } else if (this.timer === undefined) {
      // Set for the oldest request; if that one leaves in a full batch first, the timer fires
      // early and schedule() sets it again for the new oldest.
      this.timer = setTimeout(() => {
        this.timer = undefined;
        this.schedule();
      }, wait);
    }
  }

  private async runBatch(): Promise<void> {
    this.running = true;
    const taken: Waiting[] = [this.queue.shift()!];
    let rows = taken[0]!.batch.rows;
    while (this.queue.length > 0 && rows + this.queue[0]!.batch.rows <= this.spec.maxBatchSize) {
      const next = this.queue.shift()!;
      rows += next.batch.rows;
      taken.push(next);
    }
    this.rows -= rows;
    this.onBatch(rows);
    try {
      const prediction = await this.predict(
        concatBatches(
          taken.map((w) => w.batch),
          rows,
        ),
      );
      let offset = 0;
      for (const w of taken) {
        w.resolve(sliceRows(prediction, offset, w.batch.rows, rows));
        offset += w.batch.rows;
      }
    } catch (err) {
      for (const w of taken) w.reject(err);
    } finally {
      this.running = false;
      this.schedule();
    }
  }
}

function concatBatches(batches: Batch[], rows: number): Batch {
  if (batches.length === 1) return batches[0]!;
  const inputs = batches[0]!.inputs.map((first, k) => {
    const perRow = first.length / batches[0]!.rows;
    const joined = emptyLike(first, rows * perRow);
    let offset = 0;
    for (const b of batches) {
      const part = b.inputs[k]!;
      joined.set(part, offset);
      offset += part.length;
    }
    return joined;
  });
  return { rows, inputs };
}

function emptyLike(array: TypedArray, length: number): TypedArray {
  if (array instanceof Float32Array) return new Float32Array(length);
  if (array instanceof Int32Array) return new Int32Array(length);
  return new Uint8Array(length);
}

/** Rows [offset, offset + count) of a prediction over `total` rows: views, no copies. */
function sliceRows(
  prediction: Prediction,
  offset: number,
  count: number,
  total: number,
): Prediction {
  if (offset === 0 && count === total) return prediction;
  return {
    outputs: prediction.outputs.map((values) => {
      const perRow = values.length / total;
      return values.subarray(offset * perRow, (offset + count) * perRow);
    }),
  };
}
