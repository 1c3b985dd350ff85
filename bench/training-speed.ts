// Training speed of the runtime against PyTorch on CPU (issue 14): the same data (Fashion-MNIST
// from Debian's dataset-fashion-mnist, read as IDX), the same models (the runtime's mlp preset
// with hiddenUnits [128], i.e. 784-128-10, and its cnn preset), batch size 64, the runtime's
// default optimizer (adam, learning rate 0.001, epsilon 1e-7 as tfjs's), Glorot-uniform kernels
// and zero biases, a shuffled order per epoch, the same epochs; test accuracy on all 10,000 test
// images.
//
//   node bench/training-speed.ts                      # MLP 10k images 2 epochs, CNN 2k 1 epoch
//   node bench/training-speed.ts --full               # 60k images: MLP 10 epochs, CNN 5 epochs
//   node bench/training-speed.ts --profile            # then a CPU profile of one MLP run on wasm
//   node bench/training-speed.ts --mlp-images 60000 --mlp-epochs 10 --no-cnn
//
// The runtime runs as pods run it: `node src/runtime/main.ts train` in a child process with the
// job in LEPTON_JOB_SPEC, spec.runtime.backend wasm (--backend for another), training in its
// worker thread. Its training time is the sum of the "Finished epoch" seconds it logs (batches
// only: data loading and the final evaluation are outside), its test accuracy the termination
// message's evaluation (spec.evaluationDataset). PyTorch 1.13 (Debian's python3-torch) runs in a
// python3 child with OpenBLAS (libopenblas0-pthread) first on LD_LIBRARY_PATH, since the
// reference BLAS it is installed with is about 15x slower at matrix multiply; 1 thread, and 2 for
// the CNN, at nice +10 as the runtime's training thread runs (its HTTP thread stays at 0), so
// that other load on the machine slows both alike; its time covers the epochs' loops only (the
// data are tensors before). Peak RSS of each
// child is its maximum resident set from /usr/bin/time -v. Missing Debian packages are installed
// with apt-get (scripts/bench-debian-packages.sh).
//
// --profile runs the MLP once more with --cpu-prof (the training thread writes its own
// profile) and splits its samples into what a batch is made of: wasm kernels, tfjs-core's
// engine, tfjs-layers, batch assembly (toTensors), disposal, GC, the rest; then, in this
// process, times the dense layer's products with and without transposed operands, and
// trainOnBatch, with the wasm backend's own BatchMatMul and with the runtime's. Set
// LEPTON_WASM_STOCK_MATMUL=1 to run the runtime's children on the backend's own (the 'before');
// LEPTON_STOCK_OPTIMIZER=1 to train with tf.train.adam instead of the runtime's fused Adam
// (src/runtime/train/fused-optimizers.ts), in the children and in the probe.
import { spawn, spawnSync } from 'node:child_process';
import { mkdirSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { cpus, loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { parseArgs } from 'node:util';
import { gunzipSync } from 'node:zlib';
import * as tf from '@tensorflow/tfjs';
import { initBackend } from '../src/runtime/backend.ts';
import {
  STOCK_MATMUL_ENV,
  registerWasmMatMulKernels,
  unregisterWasmMatMulKernels,
} from '../src/runtime/kernels/batch-matmul.ts';
import { buildPreset, compileModel } from '../src/runtime/model/models.ts';
import { STOCK_OPTIMIZER_ENV } from '../src/runtime/train/fused-optimizers.ts';
import { LAYERS_STEP_ENV, trainStepFor } from '../src/runtime/train/step.ts';
import { TRAINING_THREAD_NICE_STEPS } from '../src/runtime/train/thread.ts';
import { AVERAGING_PORT } from '../src/contract/runtime.ts';
import type { BackendWasm } from '@tensorflow/tfjs-backend-wasm';
import { gemmFor } from '../src/runtime/kernels/gemm.ts';

const { values } = parseArgs({
  options: {
    full: { type: 'boolean', default: false },
    'mlp-images': { type: 'string' },
    'mlp-epochs': { type: 'string' },
    'cnn-images': { type: 'string' },
    'cnn-epochs': { type: 'string' },
    'no-mlp': { type: 'boolean', default: false },
    'no-cnn': { type: 'boolean', default: false },
    'no-torch': { type: 'boolean', default: false },
    /** Skip the run of two data-parallel workers (one per core). */
    'no-two-workers': { type: 'boolean', default: false },
    backend: { type: 'string', default: 'wasm' },
    profile: { type: 'boolean', default: false },
    /** Minutes a child may run before it is killed and its cell reads "timed out". */
    timeout: { type: 'string', default: '30' },
  },
});

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const FASHION = '/usr/share/datasets/fashion-mnist';
const OPENBLAS_DIR = '/usr/lib/x86_64-linux-gnu/openblas-pthread';
const BATCH_SIZE = 64;
const LEARNING_RATE = 0.001;
const SEED = 1;
const MiB = 2 ** 20;
const TIMEOUT_MS = Number(values.timeout) * 60_000;

type ModelName = 'mlp' | 'cnn';

interface Config {
  model: ModelName;
  images: number;
  epochs: number;
}

/** One framework's run of one config. */
interface Measure {
  samplesPerSecond: number;
  trainSeconds: number;
  wallSeconds: number;
  testAccuracy: number;
  peakRssBytes: number;
  /** Mean training loss of each epoch. */
  epochLosses: number[];
  /** Backend (runtime) or BLAS library (PyTorch) the run actually used. */
  engine: string;
}

type Cell = Measure | { failed: string };

const configs: Config[] = [];
if (!values['no-mlp'])
  configs.push({
    model: 'mlp',
    images: Number(values['mlp-images'] ?? (values.full ? 60000 : 10000)),
    epochs: Number(values['mlp-epochs'] ?? (values.full ? 10 : 2)),
  });
if (!values['no-cnn'])
  configs.push({
    model: 'cnn',
    images: Number(values['cnn-images'] ?? (values.full ? 60000 : 2000)),
    epochs: Number(values['cnn-epochs'] ?? (values.full ? 5 : 1)),
  });

/** The runtime's spec.model for each preset: mlp with one hidden layer of 128 as in issue 14. */
const MODEL_SPECS: Record<ModelName, Record<string, unknown>> = {
  mlp: { preset: 'mlp', hiddenUnits: [128] },
  cnn: { preset: 'cnn', inputShape: [28, 28] },
};

// The runtime's presets (src/runtime/model/models.ts buildPreset) written in PyTorch. tfjs's
// maxPooling2d with padding 'same' on 28 and 14 (even) is PyTorch's MaxPool2d(2) without padding.
const TORCH_SCRIPT = String.raw`
import gzip, json, os, sys, time
import numpy as np
import torch
from torch import nn

args = json.loads(sys.argv[1])
torch.set_num_threads(args['threads'])
torch.manual_seed(args['seed'])

def idx(path, n=None):
    with gzip.open(path, 'rb') if path.endswith('.gz') else open(path, 'rb') as f:
        data = f.read()
    rank = data[3]
    dims = [int.from_bytes(data[4 + 4 * d:8 + 4 * d], 'big') for d in range(rank)]
    values = np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * rank).reshape(dims)
    return values if n is None else values[:n]

def images(path, n=None):
    return torch.from_numpy(idx(path, n).astype(np.float32) / 255.0).reshape(-1, 1, 28, 28)

def labels(path, n=None):
    return torch.from_numpy(idx(path, n).astype(np.int64))

x, y = images(args['trainImages'], args['images']), labels(args['trainLabels'], args['images'])
xt, yt = images(args['testImages']), labels(args['testLabels'])

if args['model'] == 'mlp':
    model = nn.Sequential(nn.Flatten(), nn.Linear(784, 128), nn.ReLU(), nn.Linear(128, 10))
else:
    model = nn.Sequential(
        nn.Conv2d(1, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(32, 64, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Flatten(), nn.Linear(7 * 7 * 64, 128), nn.ReLU(), nn.Linear(128, 10))
for m in model.modules():
    if isinstance(m, (nn.Linear, nn.Conv2d)):
        nn.init.xavier_uniform_(m.weight)
        nn.init.zeros_(m.bias)
optimizer = torch.optim.Adam(model.parameters(), lr=args['learningRate'], eps=1e-7)
loss_fn = nn.CrossEntropyLoss()
batch = args['batchSize']

seconds, losses = 0.0, []
for epoch in range(args['epochs']):
    order = torch.randperm(len(x))
    started = time.perf_counter()
    total = 0.0
    model.train()
    for i in range(0, len(x), batch):
        idx_b = order[i:i + batch]
        optimizer.zero_grad()
        loss = loss_fn(model(x[idx_b]), y[idx_b])
        loss.backward()
        optimizer.step()
        total += loss.item() * len(idx_b)
    seconds += time.perf_counter() - started
    losses.append(total / len(x))

model.eval()
correct = 0
with torch.no_grad():
    for i in range(0, len(xt), 1000):
        correct += (model(xt[i:i + 1000]).argmax(1) == yt[i:i + 1000]).sum().item()

with open('/proc/self/maps') as f:
    blas = sorted({line.split()[-1] for line in f if 'blas' in line})
print(json.dumps({
    'trainSeconds': seconds,
    'samples': len(x) * args['epochs'],
    'testAccuracy': correct / len(xt),
    'epochLosses': losses,
    'blas': blas,
    'torch': torch.__version__,
}))
`;

async function main(): Promise<void> {
  ensureDebianPackages();
  const dir = await mkdtemp(join(tmpdir(), 'lepton-training-speed-'));
  try {
    process.stdout.write(
      `Training speed, ${new Date().toISOString()}: ${cpus().length} × ${cpus()[0]?.model ?? 'CPU'}, ` +
        `load ${loadavg()
          .map((l) => l.toFixed(2))
          .join(' ')}, Node ${process.version}, wasm BatchMatMul: ` +
        `${process.env[STOCK_MATMUL_ENV] === '1' ? `the backend's (${STOCK_MATMUL_ENV}=1)` : "the runtime's"}, ` +
        `optimizer on wasm: ${process.env[STOCK_OPTIMIZER_ENV] === '1' ? `tf.train's (${STOCK_OPTIMIZER_ENV}=1)` : "the runtime's fused"}, ` +
        `step: ${process.env[LAYERS_STEP_ENV] === '1' ? `trainOnBatch (${LAYERS_STEP_ENV}=1)` : "the runtime's (src/runtime/train/step.ts)"}\n`,
    );
    const rows: { config: Config; cells: Record<string, Cell> }[] = [];
    for (const config of configs) {
      const data = writeSubset(dir, config.images);
      const cells: Record<string, Cell> = {};
      cells[`runtime (${values.backend})`] = await runRuntime(config, data, dir);
      report(config, `runtime (${values.backend})`, cells[`runtime (${values.backend})`]!);
      if (!values['no-two-workers']) {
        // What the second core adds: a pod trains on one (tfjs's wasm threads are off in Node).
        const name = `runtime (${values.backend}), 2 workers`;
        cells[name] = await runRuntime(config, data, dir, [], 2);
        report(config, name, cells[name]);
      }
      if (!values['no-torch']) {
        for (const threads of config.model === 'cnn' ? [1, 2] : [1]) {
          const name = `PyTorch+OpenBLAS ${threads} thread${threads > 1 ? 's' : ''}`;
          cells[name] = await runTorch(config, data, threads);
          report(config, name, cells[name]);
        }
      }
      rows.push({ config, cells });
    }
    printTable(rows);
    if (values.profile && !values['no-mlp']) await profileMlp(dir);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

/** Debian packages the bench needs; scripts/bench-debian-packages.sh installs the missing ones. */
function ensureDebianPackages(): void {
  const run = spawnSync('bash', [join(ROOT, 'scripts/bench-debian-packages.sh')], {
    stdio: ['ignore', 'inherit', 'inherit'],
  });
  if (run.status !== 0)
    throw new Error(
      `scripts/bench-debian-packages.sh failed (exit ${run.status}): the bench needs python3-torch, python3-numpy, libopenblas0-pthread and dataset-fashion-mnist`,
    );
}

interface Files {
  trainImages: string;
  trainLabels: string;
  testImages: string;
  testLabels: string;
}

/**
 * The first `n` training images and labels as IDX files (the runtime's format idx), uncompressed,
 * so that both frameworks read the same examples; the test set is Debian's file as it is.
 */
function writeSubset(dir: string, n: number): Files {
  const sub = join(dir, `train-${n}`);
  mkdirSync(sub, { recursive: true });
  const cut = (file: string, itemBytes: number, out: string): string => {
    const bytes = gunzipSync(readFileSync(join(FASHION, file)));
    const rank = bytes[3]!;
    const header = Buffer.from(bytes.subarray(0, 4 + 4 * rank));
    const total = header.readUInt32BE(4);
    if (n > total) throw new Error(`${file} holds ${total} examples, ${n} asked`);
    header.writeUInt32BE(n, 4);
    const path = join(sub, out);
    writeFileSync(
      path,
      Buffer.concat([header, bytes.subarray(header.length, header.length + n * itemBytes)]),
    );
    return path;
  };
  return {
    trainImages: cut('train-images-idx3-ubyte.gz', 784, 'train-images-idx3-ubyte'),
    trainLabels: cut('train-labels-idx1-ubyte.gz', 1, 'train-labels-idx1-ubyte'),
    testImages: join(FASHION, 't10k-images-idx3-ubyte.gz'),
    testLabels: join(FASHION, 't10k-labels-idx1-ubyte.gz'),
  };
}

interface ChildRun {
  code: number | null;
  stdout: string;
  stderr: string;
  wallSeconds: number;
  peakRssBytes: number;
  timedOut: boolean;
}

/** Runs a child under /usr/bin/time -v, for its maximum resident set. */
async function timed(
  argv: string[],
  env: NodeJS.ProcessEnv,
  cwd: string = ROOT,
): Promise<ChildRun> {
  const timeFile = join(tmpdir(), `lepton-time-${process.pid}-${Date.now()}`);
  const started = performance.now();
  const child = spawn('/usr/bin/time', ['-v', '-o', timeFile, ...argv], {
    env,
    cwd,
    stdio: ['ignore', 'pipe', 'pipe'],
    // Its own process group, so that a timeout kills the measured child, not only time(1).
    detached: true,
  });
  let stdout = '';
  let stderr = '';
  child.stdout.setEncoding('utf8').on('data', (s: string) => (stdout += s));
  child.stderr.setEncoding('utf8').on('data', (s: string) => (stderr += s));
  let timedOut = false;
  const timer = setTimeout(() => {
    timedOut = true;
    if (child.pid !== undefined) process.kill(-child.pid, 'SIGKILL');
  }, TIMEOUT_MS);
  const code = await new Promise<number | null>((resolve) => child.once('close', resolve));
  clearTimeout(timer);
  const wallSeconds = (performance.now() - started) / 1000;
  let peakRssBytes = NaN;
  try {
    const kb = /Maximum resident set size \(kbytes\): (\d+)/.exec(readFileSync(timeFile, 'utf8'));
    if (kb) peakRssBytes = Number(kb[1]) * 1024;
    await rm(timeFile, { force: true });
  } catch {
    // Killed before /usr/bin/time wrote its report: the peak stays unknown.
  }
  return { code, stdout, stderr, wallSeconds, peakRssBytes, timedOut };
}

function failure(what: string, run: ChildRun): { failed: string } {
  if (run.timedOut) return { failed: `timed out after ${values.timeout} min` };
  const lines = run.stderr.trim().split('\n');
  return { failed: `${what} exited ${run.code}: ${lines.slice(-3).join(' | ').slice(0, 300)}` };
}

function runtimeSpec(config: Config, data: Files): Record<string, unknown> {
  return {
    model: MODEL_SPECS[config.model],
    dataset: {
      uri: pathToFileURL(data.trainImages).href,
      format: 'idx',
      validationSplit: 0,
      shuffle: true,
    },
    evaluationDataset: { uri: pathToFileURL(data.testImages).href, format: 'idx' },
    hyperparameters: {
      epochs: config.epochs,
      batchSize: BATCH_SIZE,
      optimizer: 'adam',
      learningRate: LEARNING_RATE,
      seed: SEED,
    },
    runtime: { backend: values.backend },
  };
}

/** Steps between two averagings of the two-worker run (spec.averagingEverySteps). */
const TWO_WORKER_AVERAGING_STEPS = 8;

/**
 * The runtime as a pod runs it; extra node flags (--cpu-prof) go before the entry point. With
 * `workers` 2, two processes (one per core) train data-parallel as two pods of one job do: each
 * its half of the images, averaging weights through the chief (rank 0) every
 * TWO_WORKER_AVERAGING_STEPS steps, at 127.0.0.1 on the runtime's averaging port; the figures
 * are the chief's (its epochs end at the averaging that closes them, so they cover both).
 */
async function runRuntime(
  config: Config,
  data: Files,
  dir: string,
  nodeFlags: string[] = [],
  workers: 1 | 2 = 1,
): Promise<Cell> {
  const spec = {
    ...runtimeSpec(config, data),
    ...(workers > 1 && { averagingEverySteps: TWO_WORKER_AVERAGING_STEPS }),
  };
  const terminationLog = join(dir, `termination-${config.model}-${Date.now()}`);
  const worker = (rank: number) =>
    timed([process.execPath, ...nodeFlags, join(ROOT, 'src/runtime/main.ts'), 'train'], {
      ...process.env,
      LEPTON_JOB_SPEC: JSON.stringify(spec),
      LEPTON_JOB_NAME: `bench-${config.model}`,
      LEPTON_RANK: String(rank),
      LEPTON_WORLD_SIZE: String(workers),
      LEPTON_CHIEF_ADDRESS: `127.0.0.1:${AVERAGING_PORT}`,
      LEPTON_PORT: '0',
      LEPTON_TERMINATION_LOG: rank === 0 ? terminationLog : `${terminationLog}-${rank}`,
    });
  const [run, ...others] = await Promise.all(
    Array.from({ length: workers }, (_, rank) => worker(rank)),
  );
  if (run!.code !== 0) return failure('the runtime', run!);
  const other = others.find((o) => o.code !== 0);
  if (other) return failure('the runtime (worker 1)', other);
  const result = JSON.parse(readFileSync(terminationLog, 'utf8')) as {
    evaluation?: { accuracy?: number };
    backend: string;
  };
  const epochs = logLines(run!.stderr).filter((l) => l.message === 'Finished epoch');
  const trainSeconds = epochs.reduce((s, l) => s + Number(l.seconds), 0);
  return {
    samplesPerSecond: (config.images * config.epochs) / trainSeconds,
    trainSeconds,
    wallSeconds: run!.wallSeconds,
    testAccuracy: result.evaluation?.accuracy ?? NaN,
    peakRssBytes: Math.max(run!.peakRssBytes, ...others.map((o) => o.peakRssBytes)),
    epochLosses: epochs.map((l) => Number(l.loss)),
    engine: result.backend,
  };
}

function logLines(stderr: string): Record<string, unknown>[] {
  return stderr
    .split('\n')
    .filter((l) => l.startsWith('{'))
    .map((l) => JSON.parse(l) as Record<string, unknown>);
}

async function runTorch(config: Config, data: Files, threads: number): Promise<Cell> {
  const args = {
    ...data,
    model: config.model,
    images: config.images,
    epochs: config.epochs,
    threads,
    seed: SEED,
    batchSize: BATCH_SIZE,
    learningRate: LEARNING_RATE,
  };
  const ld = [OPENBLAS_DIR, process.env.LD_LIBRARY_PATH].filter(Boolean).join(':');
  // At the niceness of the runtime's training thread (train/worker-main.ts: +10), so that
  // whatever else runs on the machine takes the same share from both.
  const python = ['/usr/bin/python3', '-c', TORCH_SCRIPT, JSON.stringify(args)];
  const run = await timed(['/usr/bin/nice', '-n', String(TRAINING_THREAD_NICE_STEPS), ...python], {
    ...process.env,
    LD_LIBRARY_PATH: ld,
    OMP_NUM_THREADS: String(threads),
    OPENBLAS_NUM_THREADS: String(threads),
  });
  if (run.code !== 0) return failure('PyTorch', run);
  const out = JSON.parse(run.stdout.trim().split('\n').at(-1)!) as {
    trainSeconds: number;
    samples: number;
    testAccuracy: number;
    epochLosses: number[];
    blas: string[];
    torch: string;
  };
  const blas = out.blas.map((p) => p.split('/').at(-1)).join(', ');
  return {
    samplesPerSecond: out.samples / out.trainSeconds,
    trainSeconds: out.trainSeconds,
    wallSeconds: run.wallSeconds,
    testAccuracy: out.testAccuracy,
    peakRssBytes: run.peakRssBytes,
    epochLosses: out.epochLosses,
    engine: `torch ${out.torch}, ${blas}`,
  };
}

function report(config: Config, name: string, cell: Cell): void {
  const what = `${config.model} ${config.images} images × ${config.epochs} epochs, ${name}`;
  if ('failed' in cell) {
    process.stdout.write(`  ${what}: ${cell.failed}\n`);
    return;
  }
  process.stdout.write(
    `  ${what}: ${fmt(cell.samplesPerSecond)} samples/s (${cell.trainSeconds.toFixed(1)} s training), ` +
      `test acc ${cell.testAccuracy.toFixed(4)}, wall ${cell.wallSeconds.toFixed(1)} s, ` +
      `peak RSS ${(cell.peakRssBytes / MiB).toFixed(0)} MiB, epoch losses ` +
      `${cell.epochLosses.map((l) => l.toFixed(4)).join(' ')} [${cell.engine}]\n`,
  );
}

/** Issue 14's targets: the runtime's samples/s over PyTorch+OpenBLAS on one thread. */
const TARGETS: Record<ModelName, number> = { mlp: 0.5, cnn: 0.25 };

function printTable(rows: { config: Config; cells: Record<string, Cell> }[]): void {
  const names = [...new Set(rows.flatMap((r) => Object.keys(r.cells)))];
  process.stdout.write(
    `\n| model | ${names.join(' | ')} | runtime / PyTorch 1 thread (target) |\n|---|${names.map(() => '---|').join('')}---|\n`,
  );
  for (const { config, cells } of rows) {
    const cellText = names.map((n) => {
      const c = cells[n];
      if (c === undefined) return '';
      if ('failed' in c) return c.failed;
      return (
        `${fmt(c.samplesPerSecond)} samples/s, acc ${c.testAccuracy.toFixed(3)}, ` +
        `wall ${c.wallSeconds.toFixed(1)} s, ${(c.peakRssBytes / MiB).toFixed(0)} MiB`
      );
    });
    const runtime = cells[names[0]!];
    const torch = cells['PyTorch+OpenBLAS 1 thread'];
    const ratio =
      runtime && torch && !('failed' in runtime) && !('failed' in torch)
        ? runtime.samplesPerSecond / torch.samplesPerSecond
        : NaN;
    const target = TARGETS[config.model];
    const two = cells[names.find((n) => n.endsWith('2 workers')) ?? ''];
    const second =
      runtime && two && !('failed' in runtime) && !('failed' in two)
        ? `; 2 workers ${(two.samplesPerSecond / runtime.samplesPerSecond).toFixed(2)}× 1`
        : '';
    const verdict = Number.isNaN(ratio)
      ? '—'
      : `${ratio.toFixed(2)}× (≥ ${target}×: ${ratio >= target ? 'met' : 'not met'})${second}`;
    process.stdout.write(
      `| ${config.model.toUpperCase()}, ${config.images} images, ${config.epochs} epoch${config.epochs > 1 ? 's' : ''} | ${cellText.join(' | ')} | ${verdict} |\n`,
    );
  }
}

function fmt(samplesPerSecond: number): string {
  return samplesPerSecond >= 1000
    ? `${(samplesPerSecond / 1000).toFixed(1)}k`
    : samplesPerSecond.toFixed(1);
}

/** A node of a V8 .cpuprofile. */
interface ProfileNode {
  id: number;
  callFrame: { functionName: string; url: string };
  children?: number[];
}

interface Profile {
  nodes: ProfileNode[];
  samples: number[];
  timeDeltas: number[];
}

/**
 * One more MLP run on the runtime with --cpu-prof; the profile of the training thread (the one
 * with trainEpoch in it) is split into buckets by each sample's stack.
 */
async function profileMlp(dir: string): Promise<void> {
  const config = configs.find((c) => c.model === 'mlp')!;
  const profDir = join(dir, 'profile');
  mkdirSync(profDir, { recursive: true });
  const cell = await runRuntime(config, writeSubset(dir, config.images), dir, [
    '--cpu-prof',
    `--cpu-prof-dir=${profDir}`,
  ]);
  process.stdout.write(`\nProfile of the MLP on ${values.backend}:\n`);
  report(config, 'runtime with --cpu-prof', cell);
  const profiles = readdirSync(profDir)
    .filter((f) => f.endsWith('.cpuprofile'))
    .map((f) => JSON.parse(readFileSync(join(profDir, f), 'utf8')) as Profile);
  const training = profiles.find((p) =>
    p.nodes.some((n) => n.callFrame.functionName === 'trainEpoch'),
  );
  if (!training) {
    process.stdout.write(`  No profile of the training thread among ${profiles.length}\n`);
    return;
  }
  analyse(training);
  await probeTransposedMatMul();
}

/** Milliseconds per call of `f` (whose result is disposed), after a warm-up. */
function msPerCall(f: () => { dispose(): void }, n: number): number {
  for (let i = 0; i < 10; i++) f().dispose();
  const started = performance.now();
  for (let i = 0; i < n; i++) f().dispose();
  return (performance.now() - started) / n;
}

/**
 * In this process, on wasm: the dense layer's three products at the MLP's shapes (forward,
 * and the two its gradient takes: dW = xᵀ·dy with transposeA, dX = dy·Wᵀ with transposeB), and
 * trainOnBatch of the mlp preset, with the backend's own BatchMatMul and with the runtime's
 * (src/runtime/kernels/batch-matmul.ts, which transposes first).
 */
async function probeTransposedMatMul(): Promise<void> {
  await initBackend('wasm');
  process.stdout.write(
    `\n  In-process probe on wasm (SIMD ${tf.env().getBool('WASM_HAS_SIMD_SUPPORT')}, ` +
      `threads ${tf.env().getBool('WASM_HAS_MULTITHREAD_SUPPORT')}):\n`,
  );
  const x = tf.randomNormal([BATCH_SIZE, 784], 0, 1, 'float32', 1);
  const w = tf.randomNormal([784, 128], 0, 1, 'float32', 2);
  const dy = tf.randomNormal([BATCH_SIZE, 128], 0, 1, 'float32', 3);
  const products: [string, () => tf.Tensor][] = [
    ['x·W (forward)', () => tf.matMul(x, w)],
    ['xᵀ·dy (dW, transposeA)', () => tf.matMul(x, dy, true, false)],
    ['dy·Wᵀ (dX, transposeB)', () => tf.matMul(dy, w, false, true)],
  ];
  const steps = 150;
  const labels = tf.tensor2d(
    Float32Array.from({ length: BATCH_SIZE }, (_, i) => i % 10),
    [BATCH_SIZE, 1],
  );
  /** The mlp preset of the runs above (784-128-10), compiled with their optimizer. */
  const compiledMlp = () => {
    const model = buildPreset(
      MODEL_SPECS.mlp as Parameters<typeof buildPreset>[0],
      { inputShape: [784], numClasses: 10, task: 'classification' },
      { seed: SEED },
    );
    const hp = {
      epochs: 1,
      batchSize: BATCH_SIZE,
      optimizer: 'adam' as const,
      learningRate: LEARNING_RATE,
      seed: SEED,
    };
    return { model, loss: compileModel(model, hp, 'classification') };
  };
  const trainSteps = async (): Promise<number> => {
    const { model } = compiledMlp();
    for (let i = 0; i < 10; i++) await model.trainOnBatch(x, labels);
    const started = performance.now();
    for (let i = 0; i < steps; i++) await model.trainOnBatch(x, labels);
    const seconds = (performance.now() - started) / 1000;
    model.dispose();
    return (steps * BATCH_SIZE) / seconds;
  };
  const measure = async (kernels: string): Promise<number> => {
    for (const [name, f] of products)
      process.stdout.write(
        `    ${kernels.padEnd(6)} ${name.padEnd(26)} ${msPerCall(f, 200).toFixed(3)} ms\n`,
      );
    return trainSteps();
  };
  unregisterWasmMatMulKernels();
  const before = await measure('stock');
  registerWasmMatMulKernels({});
  const after = await measure('ours');
  process.stdout.write(
    `    mlp trainOnBatch, ${steps} batches of ${BATCH_SIZE} (no data pipeline): ` +
      `${fmt(before)} samples/s with the backend's BatchMatMul, ${fmt(after)} samples/s with ` +
      `the runtime's (${(after / before).toFixed(2)}×)\n`,
  );
  // The dense layer's forward as training meets it: weights that are new after every step (the
  // optimizer writes a new buffer), so XNNPACK packs them again at each call, against gemm.ts,
  // which reads them as they are.
  const bias = tf.zeros([128]);
  const wasm = tf.backend() as BackendWasm;
  const gemm = gemmFor(wasm.wasm);
  const freshWeights = (): tf.Tensor2D => tf.add(w, 0) as tf.Tensor2D;
  let weights = freshWeights();
  const forward = (ours: boolean) => (): { dispose(): void } => {
    const next = freshWeights();
    weights.dispose();
    weights = next;
    if (!ours || gemm === undefined)
      return tf.fused.matMul({ a: x, b: weights, bias, activation: 'relu' });
    const out = wasm.makeOutput([BATCH_SIZE, 128], 'float32');
    const at = (t: tf.TensorInfo): number => wasm.getMemoryOffset(t.dataId);
    gemm({
      ...{ a: at(x), b: at(weights), c: at(out), m: BATCH_SIZE, k: 784, n: 128 },
      ...{ aRowStride: 4 * 784, aColumnStride: 4, bias: at(bias), relu: true },
    });
    return tf.engine().makeTensorFromTensorInfo(out, wasm);
  };
  const copyOnly = msPerCall(() => {
    const next = freshWeights();
    weights.dispose();
    weights = next;
    return { dispose() {} };
  }, 200);
  process.stdout.write(
    `    x·W + bias, ReLU, new weights each call (their copy, ${copyOnly.toFixed(3)} ms, included): ` +
      `XNNPACK ${msPerCall(forward(false), 200).toFixed(3)} ms, gemm.ts ` +
      `${gemm ? msPerCall(forward(true), 200).toFixed(3) : 'unavailable'} ms\n`,
  );
  tf.dispose([bias, weights]);
  // trainOnBatch against the runtime's step (step.ts), both with the runtime's kernels and
  // optimizer, on the same batch, alternating so that a change of load hits both.
  const block = {
    features: x.dataSync() as Float32Array,
    labels: labels.dataSync() as Float32Array,
    rows: BATCH_SIZE,
  };
  const perStep = async (
    env: NodeJS.ProcessEnv,
  ): Promise<{ kind: string; wall: number; cpu: number }> => {
    const { model, loss } = compiledMlp();
    const step = trainStepFor(model, { loss, exampleShape: [784], targets: {}, env });
    for (let i = 0; i < 10; i++) await step.run(block);
    const cpu0 = process.cpuUsage();
    const wall0 = performance.now();
    for (let i = 0; i < steps; i++) await step.run(block);
    const wall = (performance.now() - wall0) / steps;
    const used = process.cpuUsage(cpu0);
    model.dispose();
    return { kind: step.kind, wall, cpu: (used.user + used.system) / 1000 / steps };
  };
  const runs = {
    layers: [] as number[],
    ours: [] as number[],
    layersCpu: [] as number[],
    oursCpu: [] as number[],
  };
  let kind = '';
  for (let round = 0; round < 3; round++) {
    const l = await perStep({ [LAYERS_STEP_ENV]: '1' });
    const o = await perStep({});
    kind = o.kind;
    runs.layers.push(l.wall);
    runs.layersCpu.push(l.cpu);
    runs.ours.push(o.wall);
    runs.oursCpu.push(o.cpu);
  }
  const best = (v: number[]): number => Math.min(...v);
  process.stdout.write(
    `    mlp step, ${steps} batches of ${BATCH_SIZE}, best of 3: trainOnBatch ${best(runs.layers).toFixed(3)} ms ` +
      `(CPU ${best(runs.layersCpu).toFixed(3)} ms), the runtime's '${kind}' step ${best(runs.ours).toFixed(3)} ms ` +
      `(CPU ${best(runs.oursCpu).toFixed(3)} ms): ${(best(runs.layers) / best(runs.ours)).toFixed(2)}× ` +
      `(${fmt((BATCH_SIZE * 1000) / best(runs.ours))} samples/s)\n`,
  );
  tf.dispose([x, w, dy, labels]);
}

/** A frame's name: V8 names methods by class (LayersModel.trainOnBatch, Engine.disposeTensor). */
function named(node: ProfileNode, name: string): boolean {
  const f = node.callFrame.functionName;
  return f === name || f.endsWith(`.${name}`);
}

const DISPOSAL = ['dispose', 'disposeTensor', 'disposeVariables', 'endScope', 'decRef'];

/**
 * What a sample of the training window belongs to. Async frames lose their callers after an
 * await (trainOnBatch's continuations have no trainOnBatch above them), so a sample is told by
 * its own frames: batch assembly and disposal by a synchronous caller, the rest by the module of
 * its leaf; a wasm leaf is named by the backend's JS kernel that called it.
 */
function bucketOf(stack: ProfileNode[]): string {
  const leaf = stack[stack.length - 1]!.callFrame;
  const has = (name: string): boolean => stack.some((n) => named(n, name));
  if (leaf.functionName === '(garbage collector)') return 'garbage collector';
  if (leaf.functionName === '(idle)') return 'idle';
  if (leaf.functionName === '(program)') return 'V8/Node outside JS ((program))';
  if (has('toTensors')) return 'batch assembly (toTensors: gather, tf.tensor, oneHot)';
  if (DISPOSAL.some(has)) return 'tensor disposal (dispose, endScope)';
  if (leaf.url.startsWith('wasm://')) {
    // The kernel, not Emscripten's ccall or the Module._X export it goes through.
    const caller = [...stack]
      .reverse()
      .find(
        (n) =>
          n.callFrame.url.includes('tfjs-backend-wasm') &&
          !/^(|ccall|cwrap|Module\..*|wasm-.*)$/.test(n.callFrame.functionName),
      );
    const kernel = caller?.callFrame.functionName ?? '(unknown caller)';
    // The backend's element-wise kernels share one factory, whose function is kernelFunc.
    return `wasm kernel ${kernel === 'kernelFunc' ? 'element-wise (add, mul, relu, …)' : kernel}`;
  }
  if (leaf.url.includes('tfjs-backend-wasm')) return 'wasm backend JS glue';
  if (leaf.url.includes('tfjs-layers')) return 'tfjs-layers JS (trainOnBatch, metrics)';
  if (leaf.url.includes('tfjs-core')) return 'tfjs-core engine JS (tape, gradients, kernels)';
  if (leaf.url.includes('/src/runtime/'))
    return `runtime ${leaf.url.split('/').slice(-2).join('/')}`;
  return `other (${leaf.url.split('/').slice(-2).join('/') || leaf.functionName})`;
}

/**
 * The training window is from the first to the last sample with trainEpoch on its stack (it
 * resumes at every step, so every step starts under it); outside it are start, data loading,
 * the final evaluation and the save.
 */
function analyse(profile: Profile): void {
  const byId = new Map(profile.nodes.map((n) => [n.id, n]));
  const parent = new Map<number, number>();
  for (const n of profile.nodes) for (const c of n.children ?? []) parent.set(c, n.id);
  const stackOf = (id: number): ProfileNode[] => {
    const stack: ProfileNode[] = [];
    for (let at: number | undefined = id; at !== undefined; at = parent.get(at))
      stack.unshift(byId.get(at)!);
    return stack;
  };
  const stacks = profile.samples.map(stackOf);
  const inEpoch = stacks.map((s) => s.some((n) => named(n, 'trainEpoch')));
  const first = inEpoch.indexOf(true);
  const last = inEpoch.lastIndexOf(true);
  const buckets = new Map<string, number>();
  const selfTime = new Map<string, number>();
  let total = 0;
  let outside = 0;
  stacks.forEach((stack, i) => {
    const dt = profile.timeDeltas[i] ?? 0;
    if (i < first || i > last) {
      outside += dt;
      return;
    }
    const bucket = bucketOf(stack);
    total += dt;
    buckets.set(bucket, (buckets.get(bucket) ?? 0) + dt);
    const leaf = stack[stack.length - 1]!.callFrame;
    const key = `${leaf.functionName || '(anonymous)'} ${leaf.url.split('/').slice(-2).join('/')}`;
    selfTime.set(key, (selfTime.get(key) ?? 0) + dt);
  });
  process.stdout.write(
    `  Training window ${(total / 1e6).toFixed(1)} s of the thread's ${((total + outside) / 1e6).toFixed(1)} s profiled\n`,
  );
  const print = (title: string, map: Map<string, number>, top: number): void => {
    process.stdout.write(`  ${title}, share of the training window:\n`);
    [...map.entries()]
      .sort((a, b) => b[1] - a[1])
      .slice(0, top)
      .forEach(([k, v]) =>
        process.stdout.write(
          `    ${((100 * v) / total).toFixed(1).padStart(5)} %  ${(v / 1e6).toFixed(2).padStart(6)} s  ${k}\n`,
        ),
      );
  };
  print('By part', buckets, 20);
  print('Top self time', selfTime, 15);
}

await main();
