// The serving mode's cost on loopback, for the runtime's mlp preset at 784-128-10 (Fashion-MNIST
// sized), and a wider 784-1024-1024-10 whose prediction costs more than its HTTP (each --hidden
// is one model; the default is both), served in this process by the same code as a pod
// (loadPredictor + startServingServer) on the default backend (wasm here: tfjs-node is not
// installed). Measured in one run:
// (a) serving overhead: for each of --requests sequential single-row requests, the latency the
//     client sees minus the time the same row takes through predictor.predict in this process
//     (measured right before it), p50 and p99 of those differences, for V1 and V2 (JSON). The
//     client runs on the server's thread here, so its own work (sending, reading the answer) is
//     counted in the overhead: an upper bound of what the server adds;
// (b) throughput: requests/s at concurrency 1 without batcher, and at concurrency 32 with the
//     batcher (maxBatchSize 32, maxLatencyMs --latency-ms), and the gain of the second over the
//     first; concurrency 32 without batcher too, to tell what batching adds over concurrency
//     alone. The client runs in a worker thread (as clients run elsewhere), so that its work
//     does not take the server's thread; V2 with JSON data, and V2 with binary data.
// Clients are undici Pools (keep-alive, one connection per concurrent request).
//
//   node bench/serve.ts [--requests 3000] [--throughput-requests 6000] [--latency-ms 2]
//                       [--hidden 128 --hidden 1024,1024]
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
import { type ServingServer, startServingServer } from '../src/runtime/serving/http.ts';
import { loadPredictor } from '../src/runtime/serving/model.ts';
import type { Predictor } from '../src/runtime/serving/predictor.ts';

const FEATURES = 784;
const WARMUP = 300;

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
  total: number;
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

/** `concurrency` clients, each sending its share one after another; requests/s. */
async function load(pool: Pool, l: Omit<Load, 'port'>): Promise<number> {
  const run = (count: number) =>
    Promise.all(
      Array.from({ length: l.concurrency }, async (_, c) => {
        for (let i = 0; i < count; i++) await send(pool, l.requests[(c + i) % l.requests.length]!);
      }),
    );
  await run(Math.ceil(WARMUP / l.concurrency));
  const each = Math.ceil(l.total / l.concurrency);
  const t0 = performance.now();
  await run(each);
  return (each * l.concurrency) / ((performance.now() - t0) / 1000);
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

function v1(row: Float32Array): Request {
  return {
    path: '/v1/models/mlp:predict',
    body: JSON.stringify({ instances: [Array.from(row)] }),
    headers: { 'content-type': 'application/json' },
  };
}

function v2(row: Float32Array): Request {
  const input = { name: 'hidden_1_input', shape: [1, FEATURES], datatype: 'FP32' };
  return {
    path: '/v2/models/mlp/infer',
    body: JSON.stringify({ inputs: [{ ...input, data: Array.from(row) }] }),
    headers: { 'content-type': 'application/json' },
  };
}

/** V2 with the binary tensor extension: the row as raw float32 after the JSON header. */
function v2Binary(row: Float32Array): Request {
  const input = { name: 'hidden_1_input', shape: [1, FEATURES], datatype: 'FP32' };
  const header = Buffer.from(
    JSON.stringify({ inputs: [{ ...input, parameters: { binary_data_size: row.byteLength } }] }),
  );
  return {
    path: '/v2/models/mlp/infer',
    body: Buffer.concat([header, Buffer.from(row.buffer, row.byteOffset, row.byteLength)]),
    headers: {
      'content-type': 'application/octet-stream',
      'inference-header-content-length': String(header.length),
    },
  };
}

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
  make: (row: Float32Array) => Request,
  count: number,
) {
  const requests = rows.map(make);
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
  total: number;
  batcher: BatcherSpec;
  rows: Float32Array[];
  backend: string;
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      requests: { type: 'string', default: '3000' },
      'throughput-requests': { type: 'string', default: '6000' },
      'latency-ms': { type: 'string', default: '2' },
      hidden: { type: 'string', multiple: true, default: ['128', '1024,1024'] },
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
    total: Number(values['throughput-requests']),
    batcher: { maxBatchSize: 32, maxLatencyMs: Number(values['latency-ms']), maxQueueSize: 1024 },
    rows,
    backend: await initBackend(),
  };
  for (const hidden of values.hidden) await benchModel(hidden.split(',').map(Number), options);
}

async function benchModel(hidden: number[], options: Options): Promise<void> {
  const { count, total, batcher, rows, backend } = options;
  const dir = await mkdtemp(join(tmpdir(), 'lepton-bench-serve-'));
  try {
    const model = buildPreset(
      { preset: 'mlp', hiddenUnits: hidden },
      { inputShape: [FEATURES], numClasses: 10, task: 'classification' },
      { seed: 1 },
    );
    await saveModel(model, dir);
    const spec: ServingSpec = {
      modelName: 'mlp',
      variant: 'predictor',
      modelUri: `file://${dir}`,
      format: 'tfjs-layers',
      quantization: 'none',
      maxRequestBytes: 1 << 20,
      drainSeconds: 0,
    };
    const { predictor } = await loadPredictor({ ...spec, batcher });
    const name = `mlp ${[FEATURES, ...hidden, 10].join('-')}`;
    console.log(
      `\n## serving bench: ${name} on ${backend}, Node ${process.version}, ${cpus().length} cores, load average ${loadavg()[0]!.toFixed(1)}`,
    );
    const plain = await serve(predictor, spec);
    const batched = await serve(predictor, spec, batcher);
    const pool = new Pool(`http://127.0.0.1:${plain.port}`, { connections: 1 });
    const batchedPool = new Pool(`http://127.0.0.1:${batched.port}`, { connections: 8 });

    // Batched answers must be the unbatched ones, or the throughput compares different work.
    const one = v2(rows[0]!);
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
      const r = await overhead(pool, predictor, rows, make, count);
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

    console.log(
      `\n(b) throughput, ${total} requests per run, client in a worker thread (requests/s)`,
    );
    console.log(
      `| protocol | concurrency 1, no batcher | concurrency 32, no batcher | concurrency 32, batcher (32 rows, ${batcher.maxLatencyMs} ms) | gain over concurrency 1 | over concurrency 32 without | mean batch (rows) |`,
    );
    console.log('|---|---|---|---|---|---|---|');
    let gain = 0;
    for (const [label, make] of [
      ['V2 JSON', v2],
      ['V2 binary', v2Binary],
    ] as const) {
      const requests = rows.map(make);
      const c1 = await inWorker({ port: plain.port, requests, concurrency: 1, total });
      const c32 = await inWorker({ port: plain.port, requests, concurrency: 32, total });
      const before = await batchTotals(batched);
      const c32b = await inWorker({ port: batched.port, requests, concurrency: 32, total });
      const after = await batchTotals(batched);
      const meanBatch = (after.sum - before.sum) / (after.count - before.count);
      if (label === 'V2 JSON') gain = c32b / c1;
      console.log(
        `| ${label} | ${c1.toFixed(0)} | ${c32.toFixed(0)} | ${c32b.toFixed(0)} | **${(c32b / c1).toFixed(2)}x** | ${(c32b / c32).toFixed(2)}x | ${meanBatch.toFixed(1)} |`,
      );
    }
    console.log(
      `\ntargets (JSON): overhead p50 ${ms(worst.p50)} ms (${worst.p50 <= 1 ? 'met' : 'missed'}), p99 ${ms(worst.p99)} ms (${worst.p99 <= 5 ? 'met' : 'missed'}), batching gain ${gain.toFixed(2)}x (${gain >= 3 ? 'met' : 'missed'})`,
    );
    await plain.close();
    await batched.close();
    predictor.dispose();
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
