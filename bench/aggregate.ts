// Throughput of FedAvg (src/runtime/aggregation/aggregate.ts) against the memory bound and
// against NumPy. Averaging K lists of P float32 values reads 4·K·P bytes and writes 4·P, so its
// effective rate is 4·P·(K+1)/t. Measured in the same run:
// - the bound: a plain TypedArray.set of those same 4·P·(K+1) bytes (the K inputs and the output
//   copied into one buffer). A copy reads and writes each byte, so the bandwidth is twice the
//   bytes over the copy's time; "of bound" is fedAvg's rate over it (50 % = as fast as the copy);
// - NumPy: Flower's legacy aggregate_inplace (flwr/server/strategy/aggregate.py), in a python3
//   child: each update scaled in place by n_k/n (np.multiply(x, s, out=x)), then added into the
//   first (np.add(params, x, out=params)), on float32 arrays. NumPy comes from Debian's
//   python3-numpy; when `import numpy` fails the bench installs it with apt-get and says so.
//
// Times are medians over --reps runs, taken by wall clock and by the thread's CPU time
// (process.threadCpuUsage, time.thread_time in Python): on a machine shared with other work the
// CPU time is the steadier of the two, since time spent descheduled is not counted.
//
//   node bench/aggregate.ts [--reps 7] [--strategies] [--no-numpy]
//
// --strategies adds the cost of the other strategies (robust ones, server optimisers, DP-FedAvg)
// at P = 1M, through aggregateRound and dpFedAvg, against FedAvg in the same run.
import { spawnSync } from 'node:child_process';
import { cpus, loadavg } from 'node:os';
import { parseArgs } from 'node:util';
import { type Contribution, fedAvg } from '../src/runtime/aggregation/aggregate.ts';
import { cryptoGaussianNoise, dpFedAvg } from '../src/runtime/aggregation/privacy.ts';
import { type StrategyName, aggregateRound } from '../src/runtime/aggregation/strategies.ts';

const { values } = parseArgs({
  options: {
    reps: { type: 'string', default: '7' },
    strategies: { type: 'boolean', default: false },
    'no-numpy': { type: 'boolean', default: false },
  },
});
const reps = Number(values.reps);
const SIZES = [1_000_000, 10_000_000];
const WORKERS = [2, 8, 32];

/** Fills with pseudo-random values in [-1, 1) (xorshift32: fast, and no page stays untouched). */
function random(n: number, seed: number): Float32Array {
  const a = new Float32Array(n);
  let x = seed | 1;
  for (let i = 0; i < n; i++) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    a[i] = (x | 0) / 2 ** 31;
  }
  return a;
}

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

/**
 * What a pure-JS average could at best reach: a loop that only reads the K inputs, grouped four,
 * then two, then one at a time as fedAvg's are, and writes nothing (it returns the sum so that
 * the loads are not optimised away).
 */
function readOnly(inputs: readonly Float32Array[]): number {
  let sum = 0;
  let i = 0;
  for (; i + 4 <= inputs.length; i += 4) {
    const [a0, a1, a2, a3] = [inputs[i]!, inputs[i + 1]!, inputs[i + 2]!, inputs[i + 3]!];
    for (let j = 0; j < a0.length; j++) sum += a0[j]! + a1[j]! + a2[j]! + a3[j]!;
  }
  for (; i + 2 <= inputs.length; i += 2) {
    const [a0, a1] = [inputs[i]!, inputs[i + 1]!];
    for (let j = 0; j < a0.length; j++) sum += a0[j]! + a1[j]!;
  }
  for (; i < inputs.length; i++) {
    const a0 = inputs[i]!;
    for (let j = 0; j < a0.length; j++) sum += a0[j]!;
  }
  return sum;
}

const contributionsOf = (k: number, p: number): Contribution[] =>
  Array.from({ length: k }, (_, i) => ({ weights: [random(p, i + 1)], samples: 100 + i }));

// Compile every grouping of the kernel (1, 2, 3, 4, 5, 8, 9 and 32 inputs) before timing, so that
// no size is timed while its branch is seen for the first time and deoptimises.
for (const k of [1, 2, 3, 4, 5, 8, 9, 32]) {
  const warm = contributionsOf(k, 50_000);
  for (let r = 0; r < 20; r++) {
    fedAvg(warm);
    readOnly(warm.map((c) => c.weights[0]!));
  }
}

const numpy = values['no-numpy'] ? undefined : findNumpy();
const loadBefore = loadavg();
const rows: string[][] = [];
for (const p of SIZES) {
  for (const k of WORKERS) {
    const contributions = contributionsOf(k, p);
    const out = [new Float32Array(p)];
    const bytes = 4 * p * (k + 1);
    const target = new Float32Array(p * (k + 1));
    const copy = () => {
      contributions.forEach((c, i) => target.set(c.weights[0]!, i * p));
      target.set(out[0]!, k * p);
    };
    const inputs = contributions.map((c) => c.weights[0]!);
    const cases = {
      reused: () => fedAvg(contributions, out),
      fresh: () => fedAvg(contributions),
      copy,
      read: () => readOnly(inputs),
    };
    const batches = Object.fromEntries(
      Object.entries(cases).map(([name, fn]) => [name, batchFor(fn)]),
    );
    const samples = Object.fromEntries(Object.keys(cases).map((name) => [name, [] as Timing[]]));
    // Interleaved, so that all of them see the same machine load.
    for (let r = 0; r < reps; r++) {
      for (const [name, fn] of Object.entries(cases)) samples[name]!.push(time(fn, batches[name]));
    }
    const avg = medians(samples.reused!);
    const cp = medians(samples.copy!);
    const rd = medians(samples.read!);
    const np = numpy ? numpyTiming(numpy.python, k, p) : undefined;
    // Share of the bound: rate / (2·bytes / copy time) = copy time / (2 · fedAvg time).
    const share = (a: number, c: number) => `${Math.round((100 * c) / (2 * a))} %`;
    rows.push([
      String(k),
      `${p / 1e6}M`,
      `${ms(avg.wall)} / ${ms(avg.cpu)}`,
      `${gbs(bytes, avg.wall)} / ${gbs(bytes, avg.cpu)}`,
      gbs(bytes, medians(samples.fresh!).wall),
      `${ms(cp.wall)} / ${ms(cp.cpu)}`,
      `${gbs(2 * bytes, cp.wall)} / ${gbs(2 * bytes, cp.cpu)}`,
      `${share(avg.wall, cp.wall)} / ${share(avg.cpu, cp.cpu)}`,
      `${share(rd.wall, cp.wall)} / ${share(rd.cpu, cp.cpu)}`,
      np ? `${ms(np.wall)} / ${ms(np.cpu)}` : '-',
      np ? `${gbs(bytes, np.wall)} / ${gbs(bytes, np.cpu)}` : '-',
      np ? `${(np.wall / avg.wall).toFixed(1)}x / ${(np.cpu / avg.cpu).toFixed(1)}x` : '-',
    ]);
    process.stdout.write(`.`);
  }
}
const loadAfter = loadavg();
const load = (l: number[]) => l.map((x) => x.toFixed(2)).join(' ');
process.stdout.write(
  `\nFedAvg, effective GB/s = 4·P·(K+1)/t, median of ${reps}, each cell wall / CPU time; ` +
    `bound = memory bandwidth from a TypedArray.set of the same bytes (read + write); ` +
    `Node ${process.version}, ${cpus().length} CPUs, load average ${load(loadBefore)} before, ` +
    `${load(loadAfter)} after\n` +
    table(
      [
        'K',
        'P',
        'fedAvg ms',
        'fedAvg GB/s',
        'new output GB/s',
        'copy ms',
        'bound GB/s',
        'of bound',
        'read-only loop, of bound',
        'NumPy ms',
        'NumPy GB/s',
        'fedAvg vs NumPy',
      ],
      rows,
    ) +
    '\n"new output": into freshly allocated arrays (first touch included; wall time); the ' +
    'other columns average into a reused output, as the aggregator does round after round. ' +
    '"read-only loop": a JS loop that only reads the K inputs, about the ceiling of a ' +
    'pure-JS average. "fedAvg vs NumPy": NumPy time over fedAvg time.\n',
);

if (values.strategies) {
  const p = 1_000_000;
  const strategyRows: string[][] = [];
  for (const k of [8, 32]) {
    const contributions = contributionsOf(k, p).map((c, i) => ({ ...c, worker: `p${i}` }));
    const global = [random(p, 999)];
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
