// The serving cost the chief reports for a trained model (result model.latencySeconds, a cost
// metric tuning can minimise): how long predicting one example takes on the backend it trained
// on. Rows are real ones, so a model whose cost depends on its input is measured as it is used.
import * as tf from '@tensorflow/tfjs';
import type { EvaluationData } from '../data/training-data.ts';

/**
 * Calls not timed first: the first predict() of a model builds its kernels (and on tfjs-node-gpu
 * uploads its weights), which a server pays once, not per request.
 */
export const LATENCY_WARMUP_CALLS = 3;
/** Timed calls; their median is the figure, so one stall of the event loop or GC does not count. */
export const LATENCY_TIMED_CALLS = 15;

/**
 * Median seconds of a single-example predict() of `model`, from making the input tensor to
 * reading the output, over up to LATENCY_TIMED_CALLS rows of `data` (its first rows, cycled when
 * it has fewer), after LATENCY_WARMUP_CALLS untimed calls. Undefined when `data` has no rows.
 */
export async function predictLatency(
  model: tf.LayersModel,
  data: EvaluationData,
  exampleShape: number[],
  signal?: AbortSignal,
): Promise<number | undefined> {
  const rows = await firstRows(data, exampleShape, LATENCY_TIMED_CALLS, signal);
  if (rows.length === 0) return undefined;
  const seconds: number[] = [];
  for (let i = 0; i < LATENCY_WARMUP_CALLS + LATENCY_TIMED_CALLS; i++) {
    signal?.throwIfAborted();
    const started = performance.now();
    const x = tf.tensor(rows[i % rows.length]!, [1, ...exampleShape]);
    const y = model.predict(x);
    const outputs = Array.isArray(y) ? y : [y];
    await Promise.all(outputs.map((t) => t.data()));
    const elapsed = (performance.now() - started) / 1000;
    x.dispose();
    outputs.forEach((t) => t.dispose());
    if (i >= LATENCY_WARMUP_CALLS) seconds.push(elapsed);
  }
  seconds.sort((a, b) => a - b);
  const mid = seconds.length >> 1;
  return seconds.length % 2 === 1 ? seconds[mid]! : (seconds[mid - 1]! + seconds[mid]!) / 2;
}

/**
 * Copies of the features of up to `n` rows from the first block of `data` (a block is valid only
 * until the next is asked for; leaving the loop closes a streamed one).
 */
async function firstRows(
  data: EvaluationData,
  exampleShape: number[],
  n: number,
  signal?: AbortSignal,
): Promise<Float32Array[]> {
  const size = exampleShape.reduce((a, b) => a * b, 1);
  for await (const block of data.blocks(signal)) {
    const count = Math.min(n, block.rows);
    return Array.from({ length: count }, (_, i) => block.features.slice(i * size, (i + 1) * size));
  }
  return [];
}
