// Throughput of FedAvg (src/runtime/aggregation/aggregate.ts) against the memory bound and
// against NumPy. Averaging K lists of P float32 values reads 4·K·P bytes and writes 4·P, so its
// effective rate is 4·P·(K+1)/t. Measured in the same run:
// - the bound: a plain TypedArray.set of those same 4·P·(K+1) bytes (the K inputs and the output
//   copied into one buffer). A copy reads and writes each byte, so the bandwidth is twice the
//   bytes over the copy's time; "of bound" is a rate over it (50 % = as fast as the copy);
// - the kernels: the JS loop (jsWeightedSum, fedAvg's kernel before the SIMD one); fedAvg over
//   plain Float32Arrays (the SIMD kernel over staged chunks); fedAvg over updates decoded into
//   one WasmKernel's memory, output there too (read in place); UpdateAccumulator, update by
//   update, with batches of 4 and of 1 (its slots hold the last decoded updates; decoding is
//   outside the time, as the copy that stands for it is in the NumPy run);
// - NumPy: Flower's legacy aggregate_inplace (flwr/server/strategy/aggregate.py), in a python3
//   child: each update scaled in place by n_k/n (np.multiply(x, s, out=x)), then added into the
//   first (np.add(params, x, out=params)), on float32 arrays. NumPy comes from Debian's
//   python3-numpy; when `import numpy` fails the bench installs it with apt-get and says so.
//
// Times are medians over --reps runs, taken by wall clock and by the thread's CPU time
// (process.threadCpuUsage, time.thread_time in Python): on a machine shared with other work the
// CPU time is the steadier of the two, since time spent descheduled is not counted.
//
//   node bench/aggregate.ts [--reps 7] [--strategies] [--memory] [--no-numpy]
//
// --memory adds each way's peak memory at P = 10M, from the peak RSS of a child process per way
// and K (--peak, below), in model sizes (4·P bytes) over the RSS before the updates arrive.
// --strategies adds the cost of the other strategies (robust ones, server optimisers, DP-FedAvg)
// at P = 1M, through aggregateRound and dpFedAvg, against FedAvg in the same run.
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { cpus, loadavg } from 'node:os';
import { parseArgs } from 'node:util';
import { UpdateAccumulator } from '../src/runtime/aggregation/accumulator.ts';
import { type Contribution, fedAvg } from '../src/runtime/aggregation/aggregate.ts';
import { cryptoGaussianNoise, dpFedAvg } from '../src/runtime/aggregation/privacy.ts';
import { WasmKernel } from '../src/runtime/aggregation/simd-kernel.ts';
import { type StrategyName, aggregateRound } from '../src/runtime/aggregation/strategies.ts';
import { jsWeightedSum } from '../src/runtime/aggregation/weighted-sum.ts';
import { randomFloats } from '../src/runtime/random.ts';

const { values } = parseArgs({
  options: {
    reps: { type: 'string', default: '7' },
    strategies: { type: 'boolean', default: false },
    memory: { type: 'boolean', default: false },
    peak: { type: 'string' },
    k: { type: 'string' },
    p: { type: 'string' },
    'no-numpy': { type: 'boolean', default: false },
  },
});
const reps = Number(values.reps);
const SIZES = [1_000_000, 10_000_000];
const WORKERS = [2, 8, 32];

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[xs.length >> 1]!;

interface Timing {
  wall: number;
  cpu: number;
}

/**
 * Wall and thread CPU time of one call of fn, averaged over `batch` back-to-back calls: the
 * thread's CPU time advances in scheduler ticks here (4 ms steps were seen), so a sample must
 * last much longer than a tick.
 */
function time(fn: () => void, batch = 1): Timing {
  const cpu = process.threadCpuUsage();
  const started = performance.now();
  for (let i = 0; i < batch; i++) fn();
  const used = process.threadCpuUsage(cpu);
  return {
    wall: (performance.now() - started) / 1000 / batch,
    cpu: (used.user + used.system) / 1e6 / batch,
  };
}

/** Calls per sample so that one sample lasts about 100 ms. */
function batchFor(fn: () => void): number {
  return Math.max(1, Math.ceil(0.1 / time(fn).wall));
}

const medians = (ts: Timing[]): Timing => ({
  wall: median(ts.map((t) => t.wall)),
  cpu: median(ts.map((t) => t.cpu)),
});

const ms = (s: number) => `${(s * 1e3).toFixed(1)}`;
const gbs = (bytes: number, s: number) => (bytes / s / 1e9).toFixed(2);

function table(header: string[], rows: string[][]): string {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
  const line = (cells: string[]) =>
    `| ${cells.map((c, i) => c.padStart(widths[i]!)).join(' | ')} |`;
  return [
    line(header),
    `|${widths.map((w) => '-'.repeat(w + 2)).join('|')}|`,
    ...rows.map(line),
  ].join('\n');
}

// Flower's aggregate_inplace, on synthetic updates; prints "<wall s> <cpu s>" per repetition.
const NUMPY_SCRIPT = `
import sys, time
from functools import partial, reduce
import numpy as np
k, p, reps = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
rng = np.random.default_rng(1)
samples = [100 + i for i in range(k)]
fresh = [rng.uniform(-1, 1, p).astype(np.float32) for _ in range(k)]
def _try_inplace(x, y, np_binary_op):
    return (np_binary_op(x, y, out=x) if np.can_cast(y, x.dtype, casting="same_kind")
            else np_binary_op(x, np.array(y, x.dtype), out=x))
def aggregate_inplace(results):
    total = sum(n for (_, n) in results)
    scaling = np.asarray([n / total for (_, n) in results])
    params = [_try_inplace(x, scaling[0], np_binary_op=np.multiply) for x in results[0][0]]
    for i, (arrays, _) in enumerate(results[1:], start=1):
        res = (_try_inplace(x, scaling[i], np_binary_op=np.multiply) for x in arrays)
        params = [reduce(partial(_try_inplace, np_binary_op=np.add), layer) for layer in zip(params, res)]
    return params
for r in range(reps + 1):
    # Flower decodes fresh arrays from the messages each round (parameters_to_ndarrays); a copy
    # outside the timed part stands in for that, since aggregate_inplace overwrites its inputs.
    results = [([x.copy()], n) for x, n in zip(fresh, samples)]
    w, c = time.perf_counter(), time.thread_time()
    aggregate_inplace(results)
    w, c = time.perf_counter() - w, time.thread_time() - c
    if r > 0:
        print(w, c, flush=True)
`;

/**
 * A python3 that imports NumPy: Debian's /usr/bin/python3 first (python3-numpy is installed for
 * it, while the `python3` on PATH may be another interpreter, e.g. pyenv's), installing
 * python3-numpy with apt-get when neither has it; undefined if that fails too.
 */
function findNumpy(): { python: string; version: string } | undefined {
  const probe = () => {
    for (const python of ['/usr/bin/python3', 'python3']) {
      const run = spawnSync(python, ['-c', 'import numpy; print(numpy.__version__)'], {
        encoding: 'utf8',
      });
      if (run.status === 0) return { python, version: run.stdout.trim() };
    }
    return undefined;
  };
  const found = probe();
  if (found) return found;
  process.stdout.write('NumPy is missing: installing python3-numpy with apt-get\n');
  const install = () =>
    spawnSync('apt-get', ['install', '-y', 'python3-numpy'], {
      stdio: ['ignore', 'ignore', 'inherit'],
      env: { ...process.env, DEBIAN_FRONTEND: 'noninteractive' },
    }).status === 0;
  if (!install()) {
    spawnSync('apt-get', ['update'], { stdio: ['ignore', 'ignore', 'inherit'] });
    install();
  }
  const installed = probe();
  if (!installed) process.stdout.write('NumPy could not be installed: its columns are left out\n');
  return installed;
}

function numpyTiming(python: string, k: number, p: number): Timing | undefined {
  const run = spawnSync(python, ['-c', NUMPY_SCRIPT, String(k), String(p), String(reps)], {
    encoding: 'utf8',
    maxBuffer: 1 << 20,
  });
  if (run.status !== 0) {
    process.stdout.write(`NumPy run K=${k} P=${p} failed: ${run.stderr.trim()}\n`);
    return undefined;
  }
  const ts = run.stdout
    .trim()
    .split('\n')
    .map((line) => {
      const [wall, cpu] = line.split(' ').map(Number);
      return { wall: wall!, cpu: cpu! };
    });
  return medians(ts);
}

const contributionsOf = (k: number, p: number): Contribution[] =>
  Array.from({ length: k }, (_, i) => ({ weights: [randomFloats(p, i + 1)], samples: 100 + i }));

/** The same updates decoded into one kernel's memory, with an output place there. */
function inKernel(contributions: readonly Contribution[], p: number) {
  const kernel = new WasmKernel((contributions.length + 1) * p);
  const decoded = contributions.map((c) => ({
    ...c,
    weights: c.weights.map((w) => {
      const view = kernel.alloc(w.length);
      view.set(w);
      return view;
    }),
  }));
  return { decoded, out: [kernel.alloc(p)] };
}

/** Accumulates K updates from the accumulator's own slots: its slots hold the last decoded. */
function streamed(accumulator: UpdateAccumulator, coefficients: readonly number[]): void {
  for (const c of coefficients) accumulator.add(accumulator.next(), c);
  accumulator.result();
}

type Way = 'plain arrays' | 'one kernel' | 'stream, batch 4' | 'stream, batch 1';
const WAYS: Way[] = ['plain arrays', 'one kernel', 'stream, batch 4', 'stream, batch 1'];

/**
 * One aggregation of K updates of P values, as a child process (--peak): the updates arrive one
 * by one, each made by the stand-in decoder `random` straight into where that way keeps it, and
 * are averaged; prints the peak RSS over the RSS before, in bytes. The peak is the kernel's
 * VmHWM of this process's memory map, which an exec resets (getrusage's maxRSS would carry the
 * forked parent's).
 */
function peak(way: Way, k: number, p: number): void {
  const before = process.memoryUsage().rss;
  const samples = Array.from({ length: k }, (_, i) => 100 + i);
  const total = samples.reduce((a, b) => a + b, 0);
  if (way === 'plain arrays') {
    fedAvg(samples.map((n, i) => ({ weights: [randomFloats(p, i + 1)], samples: n })));
  } else if (way === 'one kernel') {
    const kernel = new WasmKernel((k + 1) * p);
    const updates = samples.map((n, i) => ({
      weights: [randomFloats(p, i + 1, kernel.alloc(p))],
      samples: n,
    }));
    fedAvg(updates, [kernel.alloc(p)]);
  } else {
    const accumulator = new UpdateAccumulator([p], { batch: way === 'stream, batch 4' ? 4 : 1 });
    samples.forEach((n, i) => {
      const [slot] = accumulator.next();
      accumulator.add([randomFloats(p, i + 1, slot)], n / total);
    });
    accumulator.result();
  }
  const hwm = /^VmHWM:\s+(\d+) kB$/m.exec(readFileSync('/proc/self/status', 'utf8'));
  if (!hwm) throw new Error('No VmHWM in /proc/self/status: peak memory needs Linux');
  process.stdout.write(`${Number(hwm[1]) * 1024 - before}\n`);
}

if (values.peak) {
  peak(values.peak as Way, Number(values.k), Number(values.p));
  process.exit(0);
}

// Compile every grouping of the kernels (1, 2, 3, 4, 5, 8, 9 and 32 inputs) before timing, so that
// no size is timed while its branch is seen for the first time and deoptimises, and the wasm
// kernel has tiered up from its baseline compile.
for (const k of [1, 2, 3, 4, 5, 8, 9, 32]) {
  const warm = contributionsOf(k, 50_000);
  const { decoded, out } = inKernel(warm, 50_000);
  const coefficients = Float64Array.from(warm, () => 1 / k);
  const accumulator = new UpdateAccumulator([50_000]);
  for (let r = 0; r < 20; r++) {
    fedAvg(warm);
    fedAvg(decoded, out);
    jsWeightedSum(
      out[0]!,
      decoded.map((c) => c.weights[0]!),
      coefficients,
    );
    streamed(accumulator, Array.from(coefficients));
  }
}

const numpy = values['no-numpy'] ? undefined : findNumpy();
const loadBefore = loadavg();
const cpuRows: string[][] = [];
const wallRows: string[][] = [];
for (const p of SIZES) {
  for (const k of WORKERS) {
    const contributions = contributionsOf(k, p);
    const total = contributions.reduce((sum, c) => sum + c.samples, 0);
    const coefficients = Float64Array.from(contributions, (c) => c.samples / total);
    const plainOut = [new Float32Array(p)];
    const { decoded, out } = inKernel(contributions, p);
    const batch4 = new UpdateAccumulator([p]);
    const batch1 = new UpdateAccumulator([p], { batch: 1 });
    const inputs = contributions.map((c) => c.weights[0]!);
    const bytes = 4 * p * (k + 1);
    const target = new Float32Array(p * (k + 1));
    const cases = {
      copy: () => {
        inputs.forEach((x, i) => target.set(x, i * p));
        target.set(plainOut[0]!, k * p);
      },
      js: () => jsWeightedSum(plainOut[0]!, inputs, coefficients),
      staged: () => fedAvg(contributions, plainOut),
      inPlace: () => fedAvg(decoded, out),
      batch4: () => streamed(batch4, Array.from(coefficients)),
      batch1: () => streamed(batch1, Array.from(coefficients)),
    };
    const batches = Object.fromEntries(
      Object.entries(cases).map(([name, fn]) => [name, batchFor(fn)]),
    );
    const samples = Object.fromEntries(Object.keys(cases).map((name) => [name, [] as Timing[]]));
    // Interleaved, so that all of them see the same machine load.
    for (let r = 0; r < reps; r++) {
      for (const [name, fn] of Object.entries(cases)) samples[name]!.push(time(fn, batches[name]));
    }
    const t = (name: keyof typeof cases) => medians(samples[name]!);
    const cp = t('copy');
    const np = numpy ? numpyTiming(numpy.python, k, p) : undefined;
    for (const [rows, clock] of [
      [cpuRows, 'cpu'],
      [wallRows, 'wall'],
    ] as const) {
      // Share of the bound: rate / (2·bytes / copy time) = copy time / (2 · time).
      const rate = (s: number) => `${gbs(bytes, s)} (${Math.round((100 * cp[clock]) / (2 * s))} %)`;
      const fast = t('inPlace')[clock];
      rows.push([
        String(k),
        `${p / 1e6}M`,
        ms(cp[clock]),
        gbs(2 * bytes, cp[clock]),
        rate(t('js')[clock]),
        rate(t('staged')[clock]),
        `${ms(fast)} ms, ${rate(fast)}`,
        rate(t('batch4')[clock]),
        rate(t('batch1')[clock]),
        np ? `${ms(np[clock])} ms, ${rate(np[clock])}` : '-',
        np ? `${(np[clock] / fast).toFixed(1)}x` : '-',
      ]);
    }
    process.stdout.write(`.`);
  }
}
const loadAfter = loadavg();
const load = (l: number[]) => l.map((x) => x.toFixed(2)).join(' ');
const header = [
  'K',
  'P',
  'copy ms',
  'bound GB/s',
  'JS kernel',
  'fedAvg, plain arrays',
  'fedAvg, in wasm memory',
  'stream, batch 4',
  'stream, batch 1',
  'NumPy',
  'in wasm memory vs NumPy',
];
process.stdout.write(
  `\nFedAvg, effective GB/s = 4·P·(K+1)/t and its share of the bound, median of ${reps}; ` +
    `bound = memory bandwidth from a TypedArray.set of the same bytes (read + write); ` +
    `Node ${process.version}, ${cpus().length} CPUs, load average ${load(loadBefore)} before, ` +
    `${load(loadAfter)} after\nBy thread CPU time:\n${table(header, cpuRows)}\n` +
    `By wall time:\n${table(header, wallRows)}\n` +
    '"in wasm memory vs NumPy": NumPy time over fedAvg time with the updates in wasm memory.\n',
);

if (values.memory) {
  const p = 10_000_000;
  const memoryRows = WORKERS.map((k) => [
    String(k),
    ...WAYS.map((way) => {
      const run = spawnSync(
        process.execPath,
        [import.meta.filename, '--peak', way, '--k', String(k), '--p', String(p)],
        { encoding: 'utf8' },
      );
      if (run.status !== 0) return `failed: ${run.stderr.trim().split('\n')[0]}`;
      const grown = Number(run.stdout.trim());
      return `${(grown / 1e6).toFixed(0)} MB (${(grown / (4 * p)).toFixed(1)}x)`;
    }),
  ]);
  process.stdout.write(
    `\nPeak memory at P = 10M: peak RSS over the RSS before the updates arrive, MB and in ` +
      `model sizes (40 MB)\n${table(['K', ...WAYS], memoryRows)}\n`,
  );
}

if (values.strategies) {
  const p = 1_000_000;
  const strategyRows: string[][] = [];
  for (const k of [8, 32]) {
    const contributions = contributionsOf(k, p).map((c, i) => ({ ...c, worker: `p${i}` }));
    const global = [randomFloats(p, 999)];
    const cases: [string, () => void][] = [
      ['FedAvg (fedAvg)', () => fedAvg(contributions)],
      ...(['FedAdam', 'FedAvgM', 'FedMedian', 'FedTrimmedAvg', 'Krum'] as StrategyName[]).map(
        (strategy): [string, () => void] => [
          strategy,
          () => aggregateRound({ strategy, global, contributions }),
        ],
      ),
      [
        'DP-FedAvg (crypto noise)',
        () =>
          dpFedAvg({
            global,
            contributions,
            clippingNorm: 1,
            noiseMultiplier: 1,
            noise: cryptoGaussianNoise(),
          }),
      ],
    ];
    const timings = new Map<string, Timing[]>(cases.map(([name]) => [name, []]));
    const batches = new Map(cases.map(([name, fn]) => [name, batchFor(fn)]));
    for (let r = 0; r < Math.min(reps, 5); r++) {
      for (const [name, fn] of cases) timings.get(name)!.push(time(fn, batches.get(name)));
    }
    const base = medians(timings.get('FedAvg (fedAvg)')!);
    for (const [name] of cases) {
      const t = medians(timings.get(name)!);
      strategyRows.push([
        String(k),
        name,
        `${ms(t.wall)} / ${ms(t.cpu)}`,
        `${gbs(4 * p * (k + 1), t.cpu)}`,
        `${(t.cpu / base.cpu).toFixed(1)}x`,
      ]);
    }
  }
  process.stdout.write(
    `\nOther strategies at P = 1M, median of ${Math.min(reps, 5)}, load average ` +
      `${load(loadavg())}\n` +
      table(['K', 'strategy', 'ms (wall / CPU)', 'GB/s (CPU)', 'vs FedAvg (CPU)'], strategyRows) +
      '\n',
  );
}
