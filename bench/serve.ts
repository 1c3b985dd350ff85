// The serving mode's cost on loopback, for three models of the runtime's presets on 784-value
// rows (Fashion-MNIST sized): the mlp at 784-128-10, a wider mlp at 784-1024-1024-10, and the cnn
// preset on 28x28x1 (two convolutions, where a row's prediction costs more than its HTTP), each
// saved and served in this process by the same code as a pod (loadPredictor +
// startServingServer) on the default backend (wasm here: tfjs-node is not installed; --model
// picks some of mlp, mlp-wide, cnn). Measured in one run, per model:
// (a) serving overhead: for each of --requests sequential single-row requests (a third of them
//     for the cnn), the latency the client sees minus the time the same row takes through
//     predictor.predict in this process (measured right before it), p50 and p99 of those
//     differences, for V1 and V2 (JSON) and V2 binary. The client runs on the server's thread
//     here, so its own work is counted in the overhead: an upper bound of what the server adds;
// (b) throughput of the same V2 JSON requests (the same rows, the same bodies): concurrency 1
//     without batcher, concurrency 32 without batcher, and concurrency 32 with the batcher
//     (maxBatchSize 32, maxLatencyMs --latency-ms). Each run lasts --seconds (after a quarter of
//     that to warm up) and the three take turns for --rounds rounds, so that a change of the
//     shared machine's load falls on all three; the figures are medians over the rounds and the
//     gain is the batcher's median over the median at concurrency 1. The client runs in a worker
//     thread (as clients run elsewhere), so that its work does not take the server's thread.
// Clients are undici Pools (keep-alive, one connection per concurrent request).
//
//   node bench/serve.ts [--requests 3000] [--seconds 3] [--rounds 3] [--latency-ms 2]
//                       [--model mlp --model mlp-wide --model cnn]
import { mkdtemp, rm } from 'node:fs/promises';
import { cpus, loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { Worker, isMainThread, parentPort, workerData } from 'node:worker_threads';
import { Pool } from 'undici';
import type { BatcherSpec, ServingSpec } from '../src/contract/serving.ts';
import { initBackend } from '../src/runtime/backend.ts';
import { saveModel } from '../src/runtime/model/model-store.ts';
import { buildPreset } from '../src/runtime/model/models.ts';
import type { ModelSpec } from '../src/runtime/spec.ts';
import { type ServingServer, startServingServer } from '../src/runtime/serving/http.ts';
import { loadPredictor } from '../src/runtime/serving/model.ts';
import type { Predictor } from '../src/runtime/serving/predictor.ts';

const FEATURES = 784;
const WARMUP = 300;

interface BenchModel {
  label: string;
  spec: ModelSpec;
  inputShape: number[];
  /** Share of --requests for the overhead: a slow model's p99 needs fewer. */
  overheadShare: number;
}

const MODELS: Record<string, BenchModel> = {
  mlp: {
    label: 'mlp 784-128-10',
    spec: { preset: 'mlp', hiddenUnits: [128] },
    inputShape: [FEATURES],
    overheadShare: 1,
  },
  'mlp-wide': {
    label: 'mlp 784-1024-1024-10',
    spec: { preset: 'mlp', hiddenUnits: [1024, 1024] },
    inputShape: [FEATURES],
    overheadShare: 1,
  },
  cnn: {
    label: 'cnn 28x28x1',
    spec: { preset: 'cnn' },
    inputShape: [28, 28, 1],
    overheadShare: 1 / 3,
  },
};

/** One request of the load: where, what, and the header a binary body needs. */
interface Request {
  path: string;
  body: string | Uint8Array;
  headers: Record<string, string>;
}

/** A throughput run, done by the worker. */
interface Load {
  port: number;
  requests: Request[];
  concurrency: number;
  seconds: number;
}

async function send(pool: Pool, r: Request): Promise<string> {
  const res = await pool.request({
    path: r.path,
    method: 'POST',
    headers: r.headers,
    body: r.body,
  });
  const text = await res.body.text();
  if (res.statusCode !== 200) throw new Error(`${r.path} answered ${res.statusCode}: ${text}`);
  return text;
}

/**
 * `concurrency` clients, each sending one request after another until `seconds` have passed
 * (after a quarter of that to warm up); requests/s until the last answer.
 */
async function load(pool: Pool, l: Omit<Load, 'port'>): Promise<number> {
  const run = async (seconds: number): Promise<number> => {
    const t0 = performance.now();
    const until = t0 + seconds * 1000;
    let done = 0;
    await Promise.all(
      Array.from({ length: l.concurrency }, async (_, c) => {
        for (let i = 0; performance.now() < until; i++) {
          await send(pool, l.requests[(c + i) % l.requests.length]!);
          done++;
        }
      }),
    );
    return done / ((performance.now() - t0) / 1000);
  };
  await run(l.seconds / 4);
  return run(l.seconds);
}

function inWorker(l: Load): Promise<number> {
  return new Promise((resolve, reject) => {
    const worker = new Worker(new URL(import.meta.url), { workerData: l });
    worker.once('message', resolve);
    worker.once('error', reject);
  });
}

const quantile = (xs: number[], q: number): number => {
  const sorted = [...xs].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))]!;
};
const ms = (x: number): string => x.toFixed(3);
const median = (xs: number[]): number => quantile(xs, 0.5);

/** How a request addresses the model's one input. */
interface Input {
  name: string;
  rowShape: number[];
}
type MakeRequest = (row: Float32Array, input: Input) => Request;

/** A V1 instance is nested as the row's shape: that nesting is the only shape V1 has. */
function nested(values: number[], dims: number[]): unknown {
  if (dims.length <= 1) return values;
  const stride = values.length / dims[0]!;
  return Array.from({ length: dims[0]! }, (_, i) =>
    nested(values.slice(i * stride, (i + 1) * stride), dims.slice(1)),
  );
}

const v1: MakeRequest = (row, input) => ({
  path: '/v1/models/model:predict',
  body: JSON.stringify({ instances: [nested(Array.from(row), input.rowShape)] }),
  headers: { 'content-type': 'application/json' },
});

const v2: MakeRequest = (row, input) => ({
  path: '/v2/models/model/infer',
  body: JSON.stringify({
    inputs: [
      { name: input.name, shape: [1, ...input.rowShape], datatype: 'FP32', data: Array.from(row) },
    ],
  }),
  headers: { 'content-type': 'application/json' },
});

/** V2 with the binary tensor extension: the row as raw float32 after the JSON header. */
const v2Binary: MakeRequest = (row, input) => {
  const tensor = { name: input.name, shape: [1, ...input.rowShape], datatype: 'FP32' };
  const header = Buffer.from(
    JSON.stringify({ inputs: [{ ...tensor, parameters: { binary_data_size: row.byteLength } }] }),
  );
  return {
    path: '/v2/models/model/infer',
    body: Buffer.concat([header, Buffer.from(row.buffer, row.byteOffset, row.byteLength)]),
    headers: {
      'content-type': 'application/octet-stream',
      'inference-header-content-length': String(header.length),
    },
  };
};

async function serve(
  predictor: Predictor,
  spec: ServingSpec,
  batcher?: BatcherSpec,
): Promise<ServingServer> {
  const server = await startServingServer({
    spec: { ...spec, ...(batcher ? { batcher } : {}) },
    predictor: () => predictor,
    port: 0,
    host: '127.0.0.1',
  });
  server.markLoaded({ uri: spec.modelUri, digest: 'bench', format: spec.format, loadSeconds: 0 });
  return server;
}

/** Rows and batches the server's batch size histogram has seen. */
async function batchTotals(server: ServingServer): Promise<{ sum: number; count: number }> {
  const text = await server.registry.getSingleMetricAsString('lepton_serving_batch_size');
  const read = (what: string) => Number(new RegExp(`_${what} (\\S+)`).exec(text)?.[1] ?? NaN);
  return { sum: read('sum'), count: read('count') };
}

/** (a): client latency minus in-process predict time, request by request. */
async function overhead(
  pool: Pool,
  predictor: Predictor,
  rows: Float32Array[],
  requests: Request[],
  count: number,
) {
  for (let i = 0; i < WARMUP; i++) await send(pool, requests[i % requests.length]!);
  const client: number[] = [];
  const inProcess: number[] = [];
  const diff: number[] = [];
  for (let i = 0; i < count; i++) {
    const t0 = performance.now();
    await predictor.predict({ rows: 1, inputs: [rows[i % rows.length]!] });
    const t1 = performance.now();
    await send(pool, requests[i % requests.length]!);
    const t2 = performance.now();
    inProcess.push(t1 - t0);
    client.push(t2 - t1);
    diff.push(t2 - t1 - (t1 - t0));
  }
  return { client, inProcess, diff };
}

interface Options {
  count: number;
  seconds: number;
  rounds: number;
  batcher: BatcherSpec;
  rows: Float32Array[];
  backend: string;
}

/** One model's figures for the summary at the end. */
interface Summary {
  label: string;
  overheadP50: number;
  overheadP99: number;
  c1: number;
  c32b: number;
  gain: number;
  gains: number[];
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      requests: { type: 'string', default: '3000' },
      seconds: { type: 'string', default: '3' },
      rounds: { type: 'string', default: '3' },
      'latency-ms': { type: 'string', default: '2' },
      model: { type: 'string', multiple: true, default: Object.keys(MODELS) },
    },
  });
  // Rows in [0, 1) from a fixed LCG, so that every run sends the same requests.
  let seed = 1;
  const rows = Array.from({ length: 64 }, () =>
    Float32Array.from({ length: FEATURES }, () => {
      seed = (seed * 1103515245 + 12345) % 2 ** 31;
      return seed / 2 ** 31;
    }),
  );
  const options: Options = {
    count: Number(values.requests),
    seconds: Number(values.seconds),
    rounds: Number(values.rounds),
    batcher: { maxBatchSize: 32, maxLatencyMs: Number(values['latency-ms']), maxQueueSize: 1024 },
    rows,
    backend: await initBackend(),
  };
  const summaries: Summary[] = [];
  for (const name of values.model) {
    const model = MODELS[name];
    if (model === undefined)
      throw new Error(`Unknown --model ${name} (known: ${Object.keys(MODELS).join(', ')})`);
    summaries.push(await benchModel(model, options));
  }
  console.log(
    `\n## summary (V2 JSON; overhead targets p50 <= 1 ms, p99 <= 5 ms; batching gain target >= 3x), load average ${loadavg()
      .map((l) => l.toFixed(1))
      .join(' ')}`,
  );
  console.log(
    '| model | overhead p50 / p99 (ms) | concurrency 1, no batcher (req/s) | concurrency 32, batcher (req/s) | gain (median) | gain per round |',
  );
  console.log('|---|---|---|---|---|---|');
  for (const s of summaries)
    console.log(
      `| ${s.label} | ${ms(s.overheadP50)} / ${ms(s.overheadP99)} | ${s.c1.toFixed(0)} | ${s.c32b.toFixed(0)} | **${s.gain.toFixed(2)}x** (${s.gain >= 3 ? 'met' : 'missed'}) | ${s.gains.map((g) => g.toFixed(2)).join(', ')} |`,
    );
}

async function benchModel(bench: BenchModel, options: Options): Promise<Summary> {
  const { seconds, rounds, batcher, rows, backend } = options;
  const dir = await mkdtemp(join(tmpdir(), 'lepton-bench-serve-'));
  try {
    const model = buildPreset(
      bench.spec,
      { inputShape: bench.inputShape, numClasses: 10, task: 'classification' },
      { seed: 1 },
    );
    await saveModel(model, dir);
    model.dispose();
    const spec: ServingSpec = {
      modelName: 'model',
      variant: 'predictor',
      modelUri: `file://${dir}`,
      format: 'tfjs-layers',
      quantization: 'none',
      maxRequestBytes: 1 << 20,
      drainSeconds: 0,
    };
    const { predictor } = await loadPredictor({ ...spec, batcher });
    const tensor = predictor.inputs[0]!;
    const input: Input = { name: tensor.name, rowShape: tensor.shape.slice(1) };
    const count = Math.round(options.count * bench.overheadShare);
    console.log(
      `\n## serving bench: ${bench.label} on ${backend}, Node ${process.version}, ${cpus().length} cores, load average ${loadavg()[0]!.toFixed(1)}`,
    );
    const plain = await serve(predictor, spec);
    const batched = await serve(predictor, spec, batcher);
    const pool = new Pool(`http://127.0.0.1:${plain.port}`, { connections: 1 });
    const batchedPool = new Pool(`http://127.0.0.1:${batched.port}`, { connections: 8 });

    // Batched answers must be the unbatched ones, or the throughput compares different work.
    const one = v2(rows[0]!, input);
    const data = (text: string) => JSON.stringify(JSON.parse(text).outputs[0].data);
    const alone = data(await send(pool, one));
    const together = await Promise.all(Array.from({ length: 8 }, () => send(batchedPool, one)));
    if (together.some((t) => data(t) !== alone))
      throw new Error('A batched answer differs from the unbatched one');
    await batchedPool.close();

    console.log(
      `\n(a) serving overhead, ${count} sequential single-row requests per protocol (ms)`,
    );
    console.log(
      '| protocol | client p50 | client p99 | in-process predict p50 | p99 | overhead p50 | overhead p99 |',
    );
    console.log('|---|---|---|---|---|---|---|');
    const worst = { p50: 0, p99: 0 };
    for (const [label, make] of [
      ['V1 JSON', v1],
      ['V2 JSON', v2],
      ['V2 binary', v2Binary],
    ] as const) {
      const requests = rows.map((row) => make(row, input));
      const r = await overhead(pool, predictor, rows, requests, count);
      const o = { p50: quantile(r.diff, 0.5), p99: quantile(r.diff, 0.99) };
      if (label !== 'V2 binary') {
        worst.p50 = Math.max(worst.p50, o.p50);
        worst.p99 = Math.max(worst.p99, o.p99);
      }
      console.log(
        `| ${label} | ${ms(quantile(r.client, 0.5))} | ${ms(quantile(r.client, 0.99))} | ${ms(quantile(r.inProcess, 0.5))} | ${ms(quantile(r.inProcess, 0.99))} | **${ms(o.p50)}** | **${ms(o.p99)}** |`,
      );
    }
    await pool.close();
    console.log(
      'anchors: Triton server overhead ~0.04 ms plus queueing; KServe sidecars add 2-3 ms. Targets: p50 <= 1 ms, p99 <= 5 ms.',
    );

    // One model, one set of V2 JSON bodies for every configuration: only the concurrency and
    // the batcher change.
    const requests = rows.map((row) => v2(row, input));
    const runs = { c1: [] as number[], c32: [] as number[], c32b: [] as number[] };
    const gains: number[] = [];
    const before = await batchTotals(batched);
    for (let round = 0; round < rounds; round++) {
      const c1 = await inWorker({ port: plain.port, requests, concurrency: 1, seconds });
      const c32 = await inWorker({ port: plain.port, requests, concurrency: 32, seconds });
      const c32b = await inWorker({ port: batched.port, requests, concurrency: 32, seconds });
      runs.c1.push(c1);
      runs.c32.push(c32);
      runs.c32b.push(c32b);
      gains.push(c32b / c1);
    }
    const after = await batchTotals(batched);
    const meanBatch = (after.sum - before.sum) / (after.count - before.count);
    const c1 = median(runs.c1);
    const c32 = median(runs.c32);
    const c32b = median(runs.c32b);
    console.log(
      `\n(b) throughput, V2 JSON, the same requests in every configuration, ${rounds} rounds of ${seconds} s each, client in a worker thread (requests/s, median over rounds; each round's figures after it)`,
    );
    console.log(
      `| concurrency 1, no batcher | concurrency 32, no batcher | concurrency 32, batcher (32 rows, ${batcher.maxLatencyMs} ms) | gain over concurrency 1 | over concurrency 32 without | mean batch (rows) |`,
    );
    console.log('|---|---|---|---|---|---|');
    const each = (xs: number[]) => xs.map((x) => x.toFixed(0)).join(', ');
    console.log(
      `| ${c1.toFixed(0)} (${each(runs.c1)}) | ${c32.toFixed(0)} (${each(runs.c32)}) | ${c32b.toFixed(0)} (${each(runs.c32b)}) | **${(c32b / c1).toFixed(2)}x** (${gains.map((g) => g.toFixed(2)).join(', ')}) | ${(c32b / c32).toFixed(2)}x | ${meanBatch.toFixed(1)} |`,
    );
    await plain.close();
    await batched.close();
    predictor.dispose();
    return {
      label: bench.label,
      overheadP50: worst.p50,
      overheadP99: worst.p99,
      c1,
      c32b,
      gain: c32b / c1,
      gains,
    };
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

// The worker runs the load of one throughput run; the main thread everything else.
if (!isMainThread) {
  const l = workerData as Load;
  const pool = new Pool(`http://127.0.0.1:${l.port}`, {
    connections: l.concurrency,
    pipelining: 1,
  });
  parentPort!.postMessage(await load(pool, l));
  await pool.close();
} else {
  await main();
}
