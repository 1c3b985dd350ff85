// Throughput of FedAvg (src/runtime/aggregation/aggregate.ts) against the memory bound. Averaging
// K lists of P float32 values reads 4·K·P bytes and writes 4·P, so its effective rate is
// 4·P·(K+1)/t. The bound is the machine's memory bandwidth, measured in the same run as a plain
// TypedArray.set of those same 4·P·(K+1) bytes: a copy reads and writes each byte, so the
// bandwidth is twice the bytes over the copy's time, and that is the best averaging could do.
//
//   node bench/aggregate.ts [--reps 7]
import { cpus } from 'node:os';
import { parseArgs } from 'node:util';
import { type Contribution, fedAvg } from '../src/runtime/aggregation/aggregate.ts';

const { values } = parseArgs({ options: { reps: { type: 'string', default: '7' } } });
const reps = Number(values.reps);

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

function time(fn: () => void): number {
  const started = performance.now();
  fn();
  return (performance.now() - started) / 1000;
}

// Compile the kernels before timing anything.
fedAvg(Array.from({ length: 8 }, (_, k) => ({ weights: [random(50_000, k + 1)], samples: k })));

const rows: string[][] = [];
for (const p of [1_000_000, 10_000_000]) {
  for (const k of [2, 8]) {
    const contributions: Contribution[] = Array.from({ length: k }, (_, i) => ({
      weights: [random(p, i + 1)],
      samples: 100 + i,
    }));
    const out = [new Float32Array(p)];
    const source = random(p * (k + 1), 99);
    const target = new Float32Array(p * (k + 1));
    const bytes = 4 * p * (k + 1);
    const reused: number[] = [];
    const fresh: number[] = [];
    const copy: number[] = [];
    fedAvg(contributions, out);
    target.set(source);
    // Interleaved, so that all three see the same machine load.
    for (let r = 0; r < reps; r++) {
      reused.push(time(() => fedAvg(contributions, out)));
      fresh.push(time(() => fedAvg(contributions)));
      copy.push(time(() => target.set(source)));
    }
    const bandwidth = (2 * bytes) / median(copy);
    const rate = bytes / median(reused);
    rows.push([
      String(k),
      `${p / 1e6}M`,
      `${(median(reused) * 1e3).toFixed(1)} ms`,
      (rate / 1e9).toFixed(2),
      (bytes / median(fresh) / 1e9).toFixed(2),
      `${(median(copy) * 1e3).toFixed(1)} ms`,
      (bandwidth / 1e9).toFixed(2),
      `${Math.round((100 * rate) / bandwidth)} %`,
    ]);
  }
}

const header = [
  'K',
  'P',
  'fedAvg t',
  'fedAvg GB/s',
  'new output GB/s',
  'memcpy t',
  'bound GB/s',
  'of bound',
];
const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
const line = (cells: string[]) => `| ${cells.map((c, i) => c.padStart(widths[i]!)).join(' | ')} |`;
process.stdout.write(
  `FedAvg, effective GB/s = 4·P·(K+1)/t, median of ${reps}; bound = memory bandwidth from a ` +
    `TypedArray.set of the same bytes (read + write); Node ${process.version}, ` +
    `${cpus().length} CPUs\n` +
    `${line(header)}\n|${widths.map((w) => '-'.repeat(w + 2)).join('|')}|\n` +
    `${rows.map(line).join('\n')}\n` +
    '"new output": into freshly allocated arrays instead of reused ones (first touch included); ' +
    'the chief averages into the update it received from rank 1, so the fedAvg column is its ' +
    'cost per round.\n',
);
