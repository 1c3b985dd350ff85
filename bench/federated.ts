// Issue 9, "What must be shown": a federated campaign on Fashion-MNIST (Debian's
// dataset-fashion-mnist) across 3 sites with a Dirichlet label skew (α = 0.5) against centralized
// training of the same model for the same total epochs, both evaluated on the 10,000 test images.
//
// The runtime's real modes (federated-client, aggregate, federated-unmask) run in this process,
// each with a pod's environment, against a temporary folder as the model store (claim "models"),
// as test/unit/runtime/federated/harness.ts runs them. Round r starts from round r − 1's committed
// model (model.uri = its output), as a campaign's FederatedRounds do. The centralized baseline is
// a round with one participant holding the whole training set and R × local epochs: FedAvg of
// one update is that participant's model, so it is exactly centralized training. The same seeds
// (the preset's initial weights, the split, the epochs' order) serve every run.
//
//   node bench/federated.ts [--rounds 10] [--local-epochs 1] [--subset N] [--no-secure]
//                           [--seed 1] [--hidden 128] 2>/tmp/federated-bench.log
//
// The pods' logs (JSON lines) go to stderr; the table to stdout. The three clients of a round run
// side by side in this one process (secure aggregation needs them to: they agree keys before
// training); each loads the whole training file before keeping its part, as a pod does, so a
// round holds about 3 × 240 MB of data at its peak, outside the V8 heap (typed arrays).
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { cpus, loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { gzipSync } from 'node:zlib';
import * as tf from '@tensorflow/tfjs';
import {
  AGGREGATOR,
  type AggregatorResult,
  type AggregatorSpec,
  type ClientReport,
  type ClientSpec,
  FEDERATED_ENV,
  IDENTITY_MOUNT,
} from '../src/contract/federated.ts';
import { ENV, EXIT } from '../src/contract/runtime.ts';
import { initBackend } from '../src/runtime/backend.ts';
import { readIdx } from '../src/runtime/data/idx.ts';
import { partitionIndices } from '../src/runtime/data/partition.ts';
import { runAggregate } from '../src/runtime/modes/aggregate.ts';
import { runFederatedClient } from '../src/runtime/modes/federated-client.ts';
import { runFederatedUnmask } from '../src/runtime/modes/federated-unmask.ts';
import {
  type Exit,
  type Keys,
  acceptedOf,
  newKeys,
  reportOf,
  resultOf,
} from '../test/unit/runtime/federated/harness.ts';

const { values } = parseArgs({
  options: {
    rounds: { type: 'string', default: '10' },
    'local-epochs': { type: 'string', default: '1' },
    subset: { type: 'string' },
    'no-secure': { type: 'boolean', default: false },
    seed: { type: 'string', default: '1' },
    hidden: { type: 'string', default: '128' },
  },
});
const ROUNDS = Number(values.rounds);
const LOCAL_EPOCHS = Number(values['local-epochs']);
const SEED = Number(values.seed);
const HIDDEN = values.hidden.split(',').map(Number);
const SUBSET = values.subset === undefined ? undefined : Number(values.subset);
const SITES = ['site-a', 'site-b', 'site-c'];
const ALPHA = 0.5;
/** Of 3: survivors needed to unmask (a majority, as Bonawitz et al. advise). */
const THRESHOLD = 2;
const TARGET = 0.95;
const TRAINING = { batchSize: 64, optimizer: 'adam', learningRate: 0.001, seed: SEED };
const DATA_DIR = '/usr/share/datasets/fashion-mnist';
const TRAIN_URI = `file://${DATA_DIR}/train-images-idx3-ubyte.gz`;
const TEST_URI = `file://${DATA_DIR}/t10k-images-idx3-ubyte.gz`;

for (const [flag, n] of [
  ['--rounds', ROUNDS],
  ['--local-epochs', LOCAL_EPOCHS],
  ['--seed', SEED + 1],
  ['--subset', SUBSET ?? 1],
  ...HIDDEN.map((h) => ['--hidden', h] as const),
] as const)
  if (!Number.isInteger(n) || n < 1) throw new Error(`${flag} must be a positive integer`);

/** The model store, the pods' keys and termination logs: one folder for the whole bench. */
const dir = await mkdtemp(join(tmpdir(), 'lepton-bench-federated-'));
const keys = new Map<string, Keys>();

async function podKeys(pod: string): Promise<void> {
  if (keys.has(pod)) return;
  const k = newKeys();
  keys.set(pod, k);
  await mkdir(join(dir, 'identity', pod), { recursive: true });
  await writeFile(join(dir, 'identity', pod, 'signing.pem'), k.pem);
}

/** A pod's environment, as harness.ts's Round.env builds it. */
function podEnv(round: string, pod: string, extra: NodeJS.ProcessEnv): NodeJS.ProcessEnv {
  return {
    [ENV.jobName]: round,
    [ENV.namespace]: 'default',
    [ENV.port]: '0',
    [ENV.terminationLog]: join(dir, `${round}.${pod}.termination-log`),
    [ENV.pathMap]: JSON.stringify({
      '/mnt/pvc/models': join(dir, 'models'),
      [IDENTITY_MOUNT]: join(dir, 'identity', pod),
      '/tmp/lepton-secagg': join(dir, 'pod-tmp', round, pod),
    }),
    [FEDERATED_ENV.peers]: JSON.stringify(
      Object.fromEntries([...keys].map(([name, k]) => [name, k.publicKey])),
    ),
    ...extra,
  };
}

async function exitOf(round: string, pod: string, code: number): Promise<Exit> {
  const message = await readFile(join(dir, `${round}.${pod}.termination-log`), 'utf8').catch(
    () => '',
  );
  if (code !== EXIT.ok) throw new Error(`${pod} of ${round} exited ${code}: ${message}`);
  return { code, message };
}

/** The --subset: the first N training images as an IDX pair of files in the bench folder. */
async function subsetUri(n: number): Promise<string> {
  const images = await readIdx(TRAIN_URI);
  const labels = await readIdx(TRAIN_URI.replace('images-idx3', 'labels-idx1'));
  const [count, ...rest] = images.dims;
  if (n > count!) throw new Error(`--subset ${n}: the training set has ${count} images`);
  const idx = (code: number, dims: number[], body: Uint8Array): Buffer => {
    const header = Buffer.alloc(4 + 4 * dims.length);
    header.writeUInt8(code, 2);
    header.writeUInt8(dims.length, 3);
    dims.forEach((d, i) => header.writeUInt32BE(d, 4 + 4 * i));
    return gzipSync(Buffer.concat([header, body]));
  };
  const pixels = rest.reduce((a, b) => a * b, 1);
  await mkdir(join(dir, 'subset'));
  const base = join(dir, 'subset');
  await writeFile(
    join(base, 'train-images-idx3-ubyte.gz'),
    idx(0x08, [n, ...rest], (images.values as Uint8Array).subarray(0, n * pixels)),
  );
  await writeFile(
    join(base, 'train-labels-idx1-ubyte.gz'),
    idx(0x08, [n], (labels.values as Uint8Array).subarray(0, n)),
  );
  return `file://${base}/train-images-idx3-ubyte.gz`;
}

interface RoundRun {
  name: string;
  number: number;
  participants: string[];
  /** Each participant's dataset. */
  dataset: (participant: string) => Record<string, unknown>;
  epochs: number;
  secure: boolean;
  /** The previous round's output, or undefined for the preset. */
  modelUri?: string;
}

interface RoundOutcome {
  reports: ClientReport[];
  result: AggregatorResult;
  seconds: number;
  clientSeconds: number;
  /** VmHWM over the round (reset before it), bytes. */
  peakRss: number;
}

function common(run: RoundRun) {
  return {
    round: { name: run.name, uid: `uid-${run.name}`, number: run.number },
    model: run.modelUri ? { uri: run.modelUri } : { preset: 'mlp', hiddenUnits: HIDDEN },
    localTraining: { epochs: run.epochs, ...TRAINING },
    aggregation: { strategy: 'FedAvg' },
    ...(run.secure ? { privacy: { secureAggregation: { threshold: THRESHOLD } } } : {}),
    participants: run.participants,
    output: { uri: `pvc://models/${run.name}` },
    quorum: run.participants.length,
    // Generous: the deadline only bounds waits for peers, and a round here takes minutes.
    deadline: new Date(Date.now() + 3 * 3600_000).toISOString(),
  };
}

/** One round: every client side by side, then the aggregator (and, secure, the unmask containers). */
async function runRound(run: RoundRun): Promise<RoundOutcome> {
  for (const pod of [...run.participants, AGGREGATOR]) await podKeys(pod);
  const clientEnv = (p: string) =>
    podEnv(run.name, p, {
      [FEDERATED_ENV.participant]: p,
      [FEDERATED_ENV.spec]: JSON.stringify({
        ...common(run),
        dataset: run.dataset(p),
      } satisfies ClientSpec),
    });
  await resetPeakRss();
  const started = performance.now();
  const exits = await Promise.all(
    run.participants.map(async (p) => exitOf(run.name, p, await runFederatedClient(clientEnv(p)))),
  );
  const clientSeconds = (performance.now() - started) / 1000;
  const reports = exits.map(reportOf);
  const aggregatorSpec: AggregatorSpec = {
    ...common(run),
    evaluationDataset: { uri: TEST_URI, format: 'idx' },
  };
  const aggregate = async () =>
    exitOf(
      run.name,
      AGGREGATOR,
      await runAggregate(
        podEnv(run.name, AGGREGATOR, {
          [FEDERATED_ENV.spec]: JSON.stringify(aggregatorSpec),
          [FEDERATED_ENV.accepted]: JSON.stringify(acceptedOf(reports)),
        }),
      ),
    );
  const [agg] = await Promise.all([
    aggregate(),
    ...(run.secure
      ? run.participants.map(async (p) =>
          exitOf(run.name, p, await runFederatedUnmask(clientEnv(p))),
        )
      : []),
  ]);
  const seconds = (performance.now() - started) / 1000;
  return { reports, result: resultOf(agg), seconds, clientSeconds, peakRss: await peakRss() };
}

/** Resets VmHWM to the current RSS (Linux clear_refs 5), so that each round has its own peak. */
async function resetPeakRss(): Promise<void> {
  await writeFile('/proc/self/clear_refs', '5').catch(() => undefined);
}

/** VmHWM, bytes; without /proc, the process's peak (never reset). */
async function peakRss(): Promise<number> {
  const status = await readFile('/proc/self/status', 'utf8').catch(() => '');
  const hwm = /VmHWM:\s+(\d+) kB/.exec(status);
  return hwm ? Number(hwm[1]) * 1024 : process.resourceUsage().maxRSS * 1024;
}

interface Campaign {
  label: string;
  rounds: (RoundOutcome & { accuracy: number })[];
}

async function campaign(label: string, secure: boolean, trainUri: string): Promise<Campaign> {
  const rounds: Campaign['rounds'] = [];
  let modelUri: string | undefined;
  for (let r = 1; r <= ROUNDS; r++) {
    const name = `${label}-r${r}`;
    const outcome = await runRound({
      name,
      number: r - 1,
      participants: SITES,
      dataset: (p) => ({
        uri: trainUri,
        format: 'idx',
        partition: { count: SITES.length, index: SITES.indexOf(p), alpha: ALPHA, seed: SEED },
      }),
      epochs: LOCAL_EPOCHS,
      secure,
      modelUri,
    });
    modelUri = outcome.result.model.uri;
    const accuracy = outcome.result.metrics.accuracy ?? NaN;
    rounds.push({ ...outcome, accuracy });
    console.error(`${label} round ${r}: test accuracy ${accuracy.toFixed(4)}`);
    process.stdout.write(
      `  ${label} round ${r}/${ROUNDS}: accuracy ${pct(accuracy)}, ${outcome.seconds.toFixed(1)} s, peak RSS ${mb(outcome.peakRss)}, tensors alive after it ${tf.memory().numTensors} (${mb(tf.memory().numBytes)})\n`,
    );
  }
  return { label, rounds };
}

const pct = (x: number) => `${(100 * x).toFixed(2)} %`;
const mb = (bytes: number) => `${Math.round(bytes / 2 ** 20)} MB`;

/** Class counts of each site's part, computed from the labels as every client does. */
async function splitSummary(trainUri: string): Promise<string[]> {
  const labels = await readIdx(trainUri.replace('images-idx3', 'labels-idx1'));
  const values = Float32Array.from(labels.values);
  const parts = partitionIndices(
    {
      labels: values,
      numExamples: values.length,
      numClasses: 10,
      task: 'classification',
    },
    { count: SITES.length, alpha: ALPHA, seed: SEED },
  );
  return parts.map((part, j) => {
    const counts = new Array<number>(10).fill(0);
    for (const i of part) counts[values[i]!]! += 1;
    return `  ${SITES[j]}: ${part.length} examples, per class ${counts.join(' ')}`;
  });
}

function roundsToTarget(c: Campaign, central: number): number | undefined {
  const hit = c.rounds.findIndex((r) => r.accuracy >= TARGET * central);
  return hit < 0 ? undefined : hit + 1;
}

try {
  const backend = await initBackend();
  const trainUri = SUBSET === undefined ? TRAIN_URI : await subsetUri(SUBSET);
  const load = () =>
    loadavg()
      .map((l) => l.toFixed(2))
      .join(' ');
  const loadAtStart = load();
  process.stdout.write(
    `Fashion-MNIST, ${SUBSET ?? 60000} training images, 10,000 test images; backend ${backend}, ` +
      `${cpus().length} CPUs, Node ${process.version}, load average ${loadAtStart}\n` +
      `mlp [${HIDDEN.join(', ')}], adam lr ${TRAINING.learningRate}, batch ${TRAINING.batchSize}, ` +
      `${ROUNDS} rounds × ${LOCAL_EPOCHS} local epoch(s); seed ${SEED}; Dirichlet α ${ALPHA}\n` +
      `${(await splitSummary(trainUri)).join('\n')}\n`,
  );

  const centralEpochs = ROUNDS * LOCAL_EPOCHS;
  const central = await runRound({
    name: 'central',
    number: 0,
    participants: ['central'],
    dataset: () => ({ uri: trainUri, format: 'idx' }),
    epochs: centralEpochs,
    secure: false,
  });
  const centralAccuracy = central.result.metrics.accuracy ?? NaN;
  process.stdout.write(
    `  centralized, ${centralEpochs} epochs: accuracy ${pct(centralAccuracy)}, ${central.seconds.toFixed(1)} s, peak RSS ${mb(central.peakRss)}\n`,
  );

  const campaigns = [await campaign('fedavg', false, trainUri)];
  if (!values['no-secure']) campaigns.push(await campaign('secagg', true, trainUri));

  const header = ['round', ...campaigns.flatMap((c) => [c.label, 'of central', 's', 'peak RSS'])];
  const rows = Array.from({ length: ROUNDS }, (_, i) => [
    String(i + 1),
    ...campaigns.flatMap((c) => {
      const r = c.rounds[i]!;
      return [
        pct(r.accuracy),
        pct(r.accuracy / centralAccuracy),
        r.seconds.toFixed(1),
        mb(r.peakRss),
      ];
    }),
  ]);
  process.stdout.write(
    `\n| ${header.join(' | ')} |\n|${header.map(() => '---').join('|')}|\n` +
      rows.map((row) => `| ${row.join(' | ')} |`).join('\n') +
      '\n\n',
  );
  process.stdout.write(
    `centralized (${centralEpochs} epochs, one participant with all ${central.reports[0]!.samples} images): ` +
      `${pct(centralAccuracy)} in ${central.seconds.toFixed(1)} s, peak RSS ${mb(central.peakRss)}\n`,
  );
  for (const c of campaigns) {
    const last = c.rounds[c.rounds.length - 1]!;
    const hit = roundsToTarget(c, centralAccuracy);
    const total = c.rounds.reduce((s, r) => s + r.seconds, 0);
    process.stdout.write(
      `${c.label}: final ${pct(last.accuracy)} = ${pct(last.accuracy / centralAccuracy)} of centralized; ` +
        `${TARGET * 100} % reached ${hit === undefined ? 'in no round' : `at round ${hit}`}; ` +
        `${total.toFixed(0)} s for ${ROUNDS} rounds (mean ${(total / ROUNDS).toFixed(1)} s), ` +
        `peak RSS ${mb(Math.max(...c.rounds.map((r) => r.peakRss)))}; ` +
        `sites' samples ${last.reports.map((x) => x.samples).join(', ')}\n`,
    );
  }
  process.stdout.write(`load average at start ${loadAtStart}, at end ${load()}\n`);
} finally {
  await rm(dir, { recursive: true, force: true });
}
