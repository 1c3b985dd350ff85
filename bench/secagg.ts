// What secure aggregation (src/runtime/secagg/) costs over plain FedAvg
// (src/runtime/aggregation/aggregate.ts) for the same K updates of P float32 values, by role:
//
//   key exchange   per client: rounds 0 and 1 (X25519 keys, Shamir shares, share encryption)
//   mask           per client: quantise [n, n·x] and add K masks of P uint32 (AES-256-CTR PRG)
//   aggregate      the aggregator: verify and add K masked vectors, rebuild the seeds from the
//                  survivors' shares, remove the self-masks (and a dropout's pairwise masks),
//                  dequantise to Σ n and Σ n·x
//   fedAvg         the plain weighted mean of the same K Float32Arrays, into a reused output
//
// Clients mask in parallel, each in its own pod, so a round's critical path is one client's
// mask plus the aggregate; the overhead figure is that against fedAvg alone. Medians of --reps
// runs, each with fresh keys (every round has its own).
//
//   node bench/secagg.ts [--reps 5] [--k 8] [--p 1000000]
import { cpus } from 'node:os';
import { parseArgs } from 'node:util';
import { type Contribution, fedAvg } from '../src/runtime/aggregation/aggregate.ts';
import {
  type Envelope,
  type RoundConfig,
  SecAggAggregator,
  SecAggClient,
  generateIdentity,
} from '../src/runtime/secagg/index.ts';
import { randomFloats } from '../src/runtime/random.ts';

const { values } = parseArgs({
  options: {
    reps: { type: 'string', default: '5' },
    k: { type: 'string', default: '8' },
    p: { type: 'string', default: '1000000' },
  },
});
const reps = Number(values.reps);
const k = Number(values.k);
const p = Number(values.p);

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[xs.length >> 1]!;

function timed<T>(into: number[], fn: () => T): T {
  const started = performance.now();
  const result = fn();
  into.push((performance.now() - started) / 1000);
  return result;
}

const ids = Array.from({ length: k }, (_, i) => `site-${i}`);
const inputs = ids.map((_, i) => randomFloats(p, i + 1));
const weights = ids.map((_, i) => 100 + 10 * i);
const contributions: Contribution[] = inputs.map((x, i) => ({
  weights: [x],
  samples: weights[i]!,
}));

interface Times {
  keyExchange: number[];
  mask: number[];
  receive: number[];
  unmask: number[];
}

/** One round; `drop` participants share keys but never send their masked input. */
function round(times: Times, drop: number): Float32Array {
  const identities = ids.map(() => generateIdentity());
  const aggregatorIdentity = generateIdentity();
  const config: RoundConfig = {
    roundId: `bench/${Math.random()}`,
    aggregator: { id: '@aggregator', publicKey: aggregatorIdentity.publicKey },
    participants: ids.map((id, i) => ({ id, publicKey: identities[i]!.publicKey })),
    threshold: Math.ceil((2 * k) / 3),
    shape: [p],
    quantization: { maxWeight: Math.max(...weights) },
  };
  const clients = ids.map(
    (id, i) => new SecAggClient({ config, id, privateKey: identities[i]!.privateKey }),
  );
  const aggregator = new SecAggAggregator({ config, privateKey: aggregatorIdentity.privateKey });
  const exchange: number[] = [];
  const adverts = clients.map((c) => timed(exchange, () => c.advertiseKeys()));
  const roster = aggregator.buildKeyRoster(adverts).message;
  aggregator.acceptKeyRoster(roster);
  const shareKeys = clients.map((c, i) => {
    const started = performance.now();
    const message = c.shareKeys(roster);
    exchange[i]! += (performance.now() - started) / 1000;
    return message;
  });
  const shareSet = aggregator.buildShareSet(shareKeys).message;
  aggregator.acceptShareSet(shareSet);
  times.keyExchange.push(median(exchange));

  const survivors = clients.slice(0, k - drop);
  const mask: number[] = [];
  const masked = survivors.map((c, i) =>
    timed(mask, () => c.maskInput(shareSet, inputs[i]!, weights[i]!)),
  );
  times.mask.push(median(mask));

  const started = performance.now();
  for (const m of masked) aggregator.receiveMaskedInput(m.message);
  times.receive.push((performance.now() - started) / 1000);
  const request = aggregator.unmaskRequest();
  // The survivors' answers are their own work, in their own pods: not the aggregator's time.
  const responses: Envelope[] = survivors.map((c) => c.unmask(request));
  const result = timed(times.unmask, () => {
    for (const r of responses) aggregator.receiveUnmaskResponse(r);
    return aggregator.unmask();
  });
  const mean = result.weightedSum[0]!;
  for (let j = 0; j < mean.length; j++) mean[j] = mean[j]! / result.weight;
  return mean;
}

// Compile the kernels before timing anything.
fedAvg(contributions);
round({ keyExchange: [], mask: [], receive: [], unmask: [] }, 0);

const rows: string[][] = [];
const out = [new Float32Array(p)];
for (const drop of [0, 1]) {
  const times: Times = { keyExchange: [], mask: [], receive: [], unmask: [] };
  const plain: number[] = [];
  let maxError = 0;
  for (let r = 0; r < reps; r++) {
    timed(plain, () => fedAvg(drop === 0 ? contributions : contributions.slice(0, k - drop), out));
    const mean = round(times, drop);
    for (let j = 0; j < p; j++) maxError = Math.max(maxError, Math.abs(mean[j]! - out[0]![j]!));
  }
  const aggregate = median(times.receive) + median(times.unmask);
  const ms = (s: number) => `${(s * 1e3).toFixed(1)} ms`;
  rows.push([
    String(k),
    String(drop),
    `${p / 1e6}M`,
    ms(median(plain)),
    ms(median(times.keyExchange)),
    ms(median(times.mask)),
    ms(median(times.receive)),
    ms(median(times.unmask)),
    `${(aggregate / median(plain)).toFixed(1)}x`,
    `${((aggregate + median(times.mask)) / median(plain)).toFixed(1)}x`,
    maxError.toExponential(1),
  ]);
}

const header = [
  'K',
  'dropped',
  'P',
  'fedAvg',
  'key exchange / client',
  'mask / client',
  'aggregator: receive K',
  'aggregator: unmask',
  'aggregate / fedAvg',
  '(mask + aggregate) / fedAvg',
  'max |mean - fedAvg|',
];
const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
const line = (cells: string[]) => `| ${cells.map((c, i) => c.padStart(widths[i]!)).join(' | ')} |`;
process.stdout.write(
  `Secure aggregation against plain FedAvg, median of ${reps}; Node ${process.version}, ` +
    `${cpus().length} CPUs\n` +
    `${line(header)}\n|${widths.map((w) => '-'.repeat(w + 2)).join('|')}|\n` +
    `${rows.map(line).join('\n')}\n` +
    '"receive K": verify each masked vector against its signed digest and add it to the sum; ' +
    '"unmask": rebuild the secrets, remove the masks, dequantise. Clients mask in parallel, so ' +
    'a round adds one "mask" to its critical path.\n',
);
