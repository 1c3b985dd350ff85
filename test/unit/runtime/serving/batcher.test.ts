import { jest } from '@jest/globals';
import * as tf from '@tensorflow/tfjs';
import { initBackend } from '../../../../src/runtime/backend.ts';
import { Batcher, createRunner } from '../../../../src/runtime/serving/batcher.ts';
import type { Batch, Prediction, Predictor } from '../../../../src/runtime/serving/predictor.ts';
import { RequestError } from '../../../../src/runtime/serving/request.ts';
import { LinearPredictor } from './fixtures.ts';

const rows = (...values: number[][]): Batch => ({
  rows: values.length,
  inputs: [new Float32Array(values.flat())],
});
const single = (v: number) => rows([v, v + 1, v + 2]);

function batcher(
  predictor: Predictor,
  spec: Partial<{ maxBatchSize: number; maxLatencyMs: number; maxQueueSize: number }>,
  sizes: number[] = [],
) {
  return new Batcher(
    { maxBatchSize: 4, maxLatencyMs: 0, maxQueueSize: 100, ...spec },
    (b) => predictor.predict(b),
    (n) => sizes.push(n),
    () => Date.now(),
  );
}

describe('dynamic batching', () => {
  afterEach(() => jest.useRealTimers());

  it('§batching runs a batch at once when it holds maxBatchSize rows', async () => {
    jest.useFakeTimers();
    const predictor = new LinearPredictor();
    const sizes: number[] = [];
    const b = batcher(predictor, { maxBatchSize: 4, maxLatencyMs: 60_000 }, sizes);
    const answers = [b.run(single(0)), b.run(rows([1, 1, 1], [2, 2, 2])), b.run(single(5))];
    // Four rows: no timer needs to fire (none does: the clock is fake and stands still).
    expect(predictor.batches).toEqual([4]);
    expect(sizes).toEqual([4]);
    expect(b.depth()).toBe(0);
    const [a, pair, c] = await Promise.all(answers);
    expect(a!.outputs[0]).toEqual(new Float32Array([3, 0]));
    expect(pair!.outputs[0]).toEqual(new Float32Array([3, 2, 6, 4]));
    expect(c!.outputs[0]).toEqual(new Float32Array([18, 10]));
  });

  it('§batching runs what waits once the oldest request has waited maxLatencyMs', async () => {
    jest.useFakeTimers();
    const predictor = new LinearPredictor();
    const b = batcher(predictor, { maxBatchSize: 10, maxLatencyMs: 50 });
    const first = [b.run(single(0)), b.run(single(1))];
    jest.advanceTimersByTime(49);
    expect(predictor.batches).toEqual([]);
    const late = b.run(single(2));
    jest.advanceTimersByTime(1);
    expect(predictor.batches).toEqual([3]);
    await Promise.all([...first, late]);
  });

  it('§batching gives each request exactly its unbatched result', async () => {
    const predictor = new LinearPredictor();
    const b = batcher(predictor, { maxBatchSize: 8, maxLatencyMs: 1 });
    const requests = Array.from({ length: 30 }, (_, i) =>
      rows(...Array.from({ length: 1 + (i % 3) }, (_, r) => [i * 0.1, r * 0.37, -i / 7])),
    );
    const batched = await Promise.all(requests.map((r) => b.run(r)));
    const alone = await Promise.all(requests.map((r) => predictor.predict(r)));
    expect(predictor.batches.slice(0, -30).some((n) => n > 1)).toBe(true);
    expect(batched.map((p) => Array.from(p.outputs[0]!))).toEqual(
      alone.map((p) => Array.from(p.outputs[0]!)),
    );
  });

  it('§batching runs a request larger than maxBatchSize as a batch of its own, unsplit', async () => {
    const predictor = new LinearPredictor();
    const b = batcher(predictor, { maxBatchSize: 4 });
    const big = rows(...Array.from({ length: 10 }, (_, r) => [r, r, r]));
    const answer = await b.run(big);
    expect(predictor.batches).toEqual([10]);
    expect(answer.outputs[0]).toEqual((await predictor.predict(big)).outputs[0]);
  });

  it('§batching runs one batch at a time and fills the next while one runs', async () => {
    const predictor = new LinearPredictor();
    const release = predictor.hold();
    const b = batcher(predictor, { maxBatchSize: 2, maxLatencyMs: 0 });
    const answers = Array.from({ length: 6 }, (_, i) => b.run(single(i)));
    expect(predictor.batches).toEqual([1]);
    expect(b.depth()).toBe(5);
    release();
    await Promise.all(answers);
    expect(predictor.maxRunning).toBe(1);
    expect(predictor.batches).toEqual([1, 2, 2, 1]);
  });

  it('§batching refuses at once with 503 and Retry-After when maxQueueSize rows wait', async () => {
    const predictor = new LinearPredictor();
    const release = predictor.hold();
    const b = batcher(predictor, { maxBatchSize: 2, maxQueueSize: 3 });
    const running = b.run(single(0));
    const waiting = [b.run(single(1)), b.run(rows([1, 1, 1], [2, 2, 2]))];
    expect(b.depth()).toBe(3);
    const refused = await b.run(single(3)).catch((err: unknown) => err);
    expect(refused).toBeInstanceOf(RequestError);
    expect(refused).toMatchObject({
      status: 503,
      headers: { 'retry-after': '1' },
      message: 'the batch queue is full (3 rows waiting, maxQueueSize 3): retry later',
    });
    release();
    await Promise.all([running, ...waiting]);
  });

  it('§batching takes a request larger than maxQueueSize when nothing waits', async () => {
    const b = batcher(new LinearPredictor(), { maxQueueSize: 2, maxLatencyMs: 5 });
    await expect(b.run(rows([1, 1, 1], [2, 2, 2], [3, 3, 3]))).resolves.toBeDefined();
  });

  it('§batching fails every request of a failed batch, and only those', async () => {
    let calls = 0;
    const predictor = new LinearPredictor();
    const b = new Batcher(
      { maxBatchSize: 2, maxLatencyMs: 0, maxQueueSize: 10 },
      (batch) =>
        calls++ === 0 ? Promise.reject(new Error('out of memory')) : predictor.predict(batch),
      () => {},
    );
    const first = b.run(single(0));
    const next = [b.run(single(1)), b.run(single(2))];
    await expect(first).rejects.toThrow('out of memory');
    await expect(Promise.all(next)).resolves.toHaveLength(2);
  });

  it('§batching without a batcher predicts each request on its own, as it arrives', async () => {
    const predictor = new LinearPredictor();
    const release = predictor.hold();
    const sizes: number[] = [];
    const runner = createRunner(
      undefined,
      (b) => predictor.predict(b),
      (n) => sizes.push(n),
    );
    const answers = [
      runner.run(single(0)),
      runner.run(single(1)),
      runner.run(rows([1, 1, 1], [2, 2, 2])),
    ];
    expect(predictor.batches).toEqual([1, 1, 2]);
    expect(runner.depth()).toBe(0);
    release();
    await Promise.all(answers);
    expect(sizes).toEqual([1, 1, 2]);
  });

  it('§batching batched results of a real tfjs model (wasm) equal unbatched ones', async () => {
    expect(await initBackend('wasm')).toBe('wasm');
    const model = tf.sequential({
      layers: [
        tf.layers.dense({
          inputShape: [4],
          units: 16,
          activation: 'relu',
          kernelInitializer: tf.initializers.glorotUniform({ seed: 1 }),
        }),
        tf.layers.dense({
          units: 3,
          activation: 'softmax',
          kernelInitializer: tf.initializers.glorotUniform({ seed: 2 }),
        }),
      ],
    });
    const predict = (batch: Batch): Promise<Prediction> => {
      const out = tf.tidy(
        () => model.predict(tf.tensor2d(batch.inputs[0]!, [batch.rows, 4])) as tf.Tensor,
      );
      return out.data().then((data) => {
        out.dispose();
        return { outputs: [data as Float32Array] };
      });
    };
    const sizes: number[] = [];
    const b = new Batcher({ maxBatchSize: 16, maxLatencyMs: 2, maxQueueSize: 1000 }, predict, (n) =>
      sizes.push(n),
    );
    const requests = Array.from({ length: 40 }, (_, i) => ({
      rows: 1,
      inputs: [new Float32Array([i / 10, Math.sin(i), Math.cos(i), -i / 40])],
    }));
    const batched = await Promise.all(requests.map((r) => b.run(r)));
    const alone: Prediction[] = [];
    for (const r of requests) alone.push(await predict(r));
    expect(Math.max(...sizes)).toBeGreaterThan(1);
    expect(batched.map((p) => Array.from(p.outputs[0]!))).toEqual(
      alone.map((p) => Array.from(p.outputs[0]!)),
    );
    model.dispose();
  });
});
