// How long a 20-trial hyperparameter search takes on this machine, end to end: a TrainingJob
// with spec.tuning (TPE over learning rate and hidden units, 2 trials at a time: the machine's 2
// cores) whose trials train for real on the local node, once without early stopping and once
// with ASHA. Beside each, in the same run, the bound the trials themselves set: the sum of the
// trials' own running times (pod start to end) divided by parallelTrials, so the difference is
// what the search adds (creating, admitting and scheduling trials, and waiting for the
// operator to see them end).
//
//   npm run cluster -- up
//   node bench/tuning-search.ts [--trials 20] [--parallel 2] [--epochs 30] [--samples 1000]
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { readState, repoRoot } from '../test/cluster/cluster.ts';

const { values: args } = parseArgs({
  options: {
    trials: { type: 'string', default: '20' },
    parallel: { type: 'string', default: '2' },
    epochs: { type: 'string', default: '30' },
    samples: { type: 'string', default: '1000' },
  },
});
const kubeconfig = process.env.KUBECONFIG ?? readState(join(repoRoot, '.cluster'))?.kubeconfig;
if (!kubeconfig) {
  console.error('No local cluster: start one with `npm run cluster -- up`');
  process.exit(1);
}
// The harness reads the kubeconfig from the environment the test runner sets.
process.env.LEPTON_TEST_KUBECONFIG = kubeconfig;
const { Resources } = await import('../src/core/resources.ts');
const harness = await import('../test/integration/harness.ts');
const { createNamespace, installCrds, kubeClient, kubectl, onLocalNode, startOperator, waitFor } =
  harness;

interface Trial {
  metadata: { name: string; creationTimestamp?: string };
  status?: {
    phase?: string;
    startTime?: string;
    completionTime?: string;
    progress?: { epoch?: number; valAccuracy?: number };
    conditions?: { type: string; status: string; reason: string }[];
  };
}
interface Search extends Trial {
  status?: Trial['status'] & { tuning?: { summary?: string; bestTrial?: { name: string } } };
}

const trials = Number(args.trials);
const parallel = Number(args.parallel);
const epochs = Number(args.epochs);
const samples = Number(args.samples);
const client = kubeClient();
installCrds();
const ns = createNamespace('bench-tuning');
const op = await startOperator([`--namespaces=${ns}`, '--leader-elect=false']);
await op.ready();

const seconds = (from?: string, to?: string) =>
  (Date.parse(to ?? '') - Date.parse(from ?? '')) / 1000;

async function run(name: string, earlyStopping?: object) {
  const t0 = Date.now();
  await client.create(Resources.TrainingJob, {
    apiVersion: 'lepton.ai/v1alpha1',
    kind: 'TrainingJob',
    metadata: { name, namespace: ns },
    spec: {
      model: { preset: 'mlp' },
      dataset: {
        synthetic: { generator: 'moons', samples: 1000, noise: 0.25 },
        validationSplit: 0.25,
      },
      hyperparameters: { epochs, batchSize: 32, seed: 1 },
      podTemplate: onLocalNode,
      tuning: {
        objectives: [{ metric: 'valAccuracy', direction: 'Maximize' }],
        parameters: [
          {
            name: 'hyperparameters.learningRate',
            searchSpace: { logUniform: { min: 1e-4, max: 0.3 } },
          },
          {
            name: 'model.hiddenUnits',
            searchSpace: { categorical: { choices: ['4', '16', '64', '32,32'] } },
          },
        ],
        searchAlgorithm: { tpe: { startupTrials: 5 } },
        numTrials: trials,
        parallelTrials: parallel,
        maxFailedTrials: 0,
        seed: 7,
        ...(earlyStopping ? { earlyStopping } : {}),
      },
    },
  });
  let search: Search | undefined;
  await waitFor(
    `search ${name} to end`,
    async () => {
      search = await client.get<Search & { metadata: object }>(Resources.TrainingJob, ns, name);
      return ['Succeeded', 'Failed'].includes(search.status?.phase ?? '');
    },
    3_600_000,
  );
  const wall = (Date.now() - t0) / 1000;
  const list = (
    await client.list<Trial & { metadata: object }>(Resources.TrainingJob, {
      namespace: ns,
      labelSelector: `lepton.ai/tuning=${name}`,
    })
  ).items;
  const running = list.map((t) => seconds(t.status?.startTime, t.status?.completionTime));
  const waiting = list.map((t) => seconds(t.metadata.creationTimestamp, t.status?.startTime));
  const epochsRun = list.reduce((a, t) => a + (t.status?.progress?.epoch ?? 0), 0);
  const pruned = list.filter((t) =>
    t.status?.conditions?.some((c) => c.type === 'Succeeded' && c.reason === 'Pruned'),
  ).length;
  const best = list.find((t) => t.metadata.name === search?.status?.tuning?.bestTrial?.name);
  const sum = running.reduce((a, b) => a + b, 0);
  return {
    name,
    phase: search?.status?.phase,
    summary: search?.status?.tuning?.summary,
    wall,
    bound: sum / parallel,
    meanTrial: sum / list.length,
    meanWait: waiting.reduce((a, b) => a + b, 0) / list.length,
    epochsRun,
    pruned,
    bestAccuracy: best?.status?.progress?.valAccuracy,
  };
}

try {
  const results = [await run('full'), await run('asha', { asha: {} })];
  console.log(
    `${trials} trials, ${parallel} at a time, ${epochs} epochs each, moons (${samples} rows), MLP, on the local node`,
  );
  console.log(
    'search | phase     | wall s | bound s | mean trial s | mean wait s | epochs run | pruned | best valAccuracy',
  );
  for (const r of results)
    console.log(
      [
        r.name.padEnd(6),
        String(r.phase).padEnd(9),
        r.wall.toFixed(1).padStart(6),
        r.bound.toFixed(1).padStart(7),
        r.meanTrial.toFixed(2).padStart(12),
        r.meanWait.toFixed(2).padStart(11),
        `${r.epochsRun}/${trials * epochs}`.padStart(10),
        String(r.pruned).padStart(6),
        String(r.bestAccuracy),
      ].join(' | '),
    );
  console.log(results.map((r) => `${r.name}: ${r.summary}`).join('\n'));
} finally {
  await op.stop();
  kubectl(['delete', 'namespace', ns, '--wait=false']);
}
