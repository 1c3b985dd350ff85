// kubectl lepton on the real cluster, run the way people run it: the project's kubectl finds
// bin/kubectl-lepton on PATH (kubectl's plugin discovery) and hands it the words after "lepton".
// Objects are read from the API server with the statuses an operator wrote (a namespace the
// operator watches) or, where a test needs exact numbers, with statuses written here through
// the status subresource of a namespace no operator watches.
import { spawnSync } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { parse, stringify } from 'yaml';
import { sparkline } from '../../src/cli/progress.ts';
import { Resources } from '../../src/core/resources.ts';
import { binDir } from '../cluster/cluster.ts';
import {
  createClaim,
  createNamespace,
  kubeClient,
  kubeconfigPath,
  kubectl,
  type OperatorProcess,
  onLocalNode,
  repoRoot,
  startNamespacedOperator,
  stopNamespacedOperator,
  waitFor,
} from './harness.ts';
import { A100, H100, type Job, cond, trainingJobs } from './trainingjobs.ts';

const client = kubeClient();
let ns: string;
let quiet: string;
let op: OperatorProcess;
let jobs: ReturnType<typeof trainingJobs>;

interface Run {
  code: number;
  stdout: string;
  stderr: string;
}

/**
 * `kubectl lepton ARGS` through the project's kubectl, with bin/ (and this Node) first on PATH,
 * given --kubeconfig (the test cluster's by default) or, with `kubeconfigEnv`, KUBECONFIG.
 */
function lepton(args: string[], kubeconfig = kubeconfigPath(), kubeconfigEnv?: string): Run {
  const r = spawnSync(
    join(binDir(), 'kubectl'),
    ['lepton', ...args, ...(kubeconfigEnv ? [] : [`--kubeconfig=${kubeconfig}`])],
    {
      encoding: 'utf8',
      env: {
        ...process.env,
        PATH: [join(repoRoot, 'bin'), dirname(process.execPath), process.env.PATH].join(':'),
        KUBECONFIG: kubeconfigEnv ?? '',
      },
      timeout: 60_000,
    },
  );
  return { code: r.status ?? -1, stdout: r.stdout, stderr: r.stderr };
}

function leptonOk(args: string[], kubeconfig?: string, kubeconfigEnv?: string): string {
  const r = lepton(args, kubeconfig, kubeconfigEnv);
  if (r.code !== 0)
    throw new Error(`kubectl lepton ${args.join(' ')} exited ${r.code}: ${r.stderr}${r.stdout}`);
  return r.stdout;
}

/** The line of a table whose first column is `name`. */
const lineOf = (out: string, name: string) =>
  out.split('\n').find((l) => l.split(/\s+/)[0] === name) ?? `(no line for ${name} in:\n${out})`;

const lepObj = (kind: string, namespace: string, name: string, spec: object) => ({
  apiVersion: 'lepton.ai/v1alpha1',
  kind,
  metadata: { name, namespace },
  spec,
});

async function writeStatus(
  rt: (typeof Resources)['TrainingJob'],
  namespace: string,
  name: string,
  status: object,
): Promise<void> {
  await client.patch(rt, namespace, name, { status }, 'merge', { subresource: 'status' });
}

beforeAll(async () => {
  ({ ns, op } = await startNamespacedOperator('kplugin'));
  quiet = createNamespace('kplugin-quiet');
  jobs = trainingJobs(ns);
});

afterAll(async () => {
  await stopNamespacedOperator(ns, op);
  if (quiet) kubectl(['delete', 'namespace', quiet, '--wait=false']);
});

describe('kubectl lepton', () => {
  it('is found by kubectl plugin discovery and explains itself', () => {
    const r = spawnSync(join(binDir(), 'kubectl'), ['plugin', 'list'], {
      encoding: 'utf8',
      env: { ...process.env, PATH: `${join(repoRoot, 'bin')}:${process.env.PATH}` },
    });
    expect(r.stdout).toContain(join(repoRoot, 'bin', 'kubectl-lepton'));
    const help = leptonOk(['--help']);
    for (const command of ['list', 'why', 'logs', 'promote', 'rollback'])
      expect(help).toContain(command);
    expect(leptonOk(['logs', '--help'])).toContain('--follow');
  });

  it('lists all three kinds with progress bars, the loss sparkline, rounds and the traffic split', async () => {
    await client.create(
      Resources.TrainingJob,
      lepObj('TrainingJob', quiet, 'mnist', {
        model: { preset: 'mlp' },
        dataset: { synthetic: { generator: 'blobs' } },
        hyperparameters: { epochs: 10 },
        workers: 2,
        resources: { gpu: { count: 2, product: H100 } },
        output: { uri: 'file:///var/lib/lepton/mnist' },
      }),
    );
    await writeStatus(Resources.TrainingJob, quiet, 'mnist', {
      phase: 'Running',
      gpus: 4,
      workers: { active: 2, ready: 2 },
      progress: { epoch: 4, epochs: 10, loss: 0.125, history: { loss: [1, 0.5, 0.25, 0.125] } },
    });
    await client.create(
      Resources.FederatedRound,
      lepObj('FederatedRound', quiet, 'campaign-round-2', {
        round: 2,
        model: { preset: 'mlp', hiddenUnits: [8] },
        participants: ['a', 'b', 'c', 'd'].map((p) => ({
          name: p,
          dataset: { synthetic: { generator: 'blobs' } },
        })),
        minParticipants: 3,
        output: { uri: 'file:///var/lib/lepton/campaign' },
      }),
    );
    await writeStatus(Resources.FederatedRound, quiet, 'campaign-round-2', {
      phase: 'Training',
      quorum: 3,
      accepted: 0,
      participants: [
        { name: 'a', state: 'Reported' },
        { name: 'b', state: 'Reported' },
        { name: 'c', state: 'Training' },
        { name: 'd', state: 'Training' },
      ],
    });
    await client.create(
      Resources.InferenceService,
      lepObj('InferenceService', quiet, 'fraud', {
        model: { uri: 'file:///models/fraud-v1' },
        canary: { model: { uri: 'file:///models/fraud-v2' }, trafficPercent: 25 },
      }),
    );
    await writeStatus(Resources.InferenceService, quiet, 'fraud', {
      phase: 'Ready',
      url: `http://fraud-predictor.${quiet}.svc.cluster.local`,
      replicas: 2,
      readyReplicas: 2,
      model: { uri: 'file:///models/fraud-v1' },
    });

    const out = leptonOk(['list', 'all', '-n', quiet]);
    const tj = lineOf(out, 'trainingjob/mnist');
    expect(tj).toMatch(/^trainingjob\/mnist +Running +/);
    expect(tj).toContain('████░░░░░░ 4/10 epochs');
    expect(tj).toContain('0.125');
    expect(tj).toContain('█▄▂▁');
    expect(tj).toMatch(/ 2\/2 +4 +\d+s$/);
    const fr = lineOf(out, 'federatedround/campaign-round-2');
    expect(fr).toMatch(/Training +2 +█████░░░░░ 2\/4 +0\/3/);
    const isvc = lineOf(out, 'inferenceservice/fraud');
    expect(isvc).toContain('2/2');
    expect(isvc).toContain('75% / 25% canary');
    expect(isvc).toContain('file:///models/fraud-v1');
    expect(isvc).toContain(`http://fraud-predictor.${quiet}.svc.cluster.local`);
    // One header per kind, aligned with its rows.
    const header =
      out.split('\n').find((l) => l.startsWith('NAME') && l.includes('PROGRESS')) ?? '';
    expect(header.indexOf('PROGRESS')).toBe(tj.indexOf('████'));

    // -o json is the objects themselves; a single kind by its short name.
    const list = JSON.parse(leptonOk(['get', 'tj', '-n', quiet, '-o', 'json'])) as {
      items: Job[];
    };
    expect(list.items.map((j) => j.metadata.name)).toEqual(['mnist']);
  });

  it("uses kubectl's contexts: the namespace of --context, and -A across namespaces", () => {
    const config = parse(readFileSync(kubeconfigPath(), 'utf8')) as {
      contexts: { name: string; context: Record<string, string> }[];
      'current-context': string;
    };
    const current = config.contexts.find((c) => c.name === config['current-context']);
    config.contexts.push({ name: 'quiet', context: { ...current?.context, namespace: quiet } });
    const path = join(dirname(kubeconfigPath()), 'kplugin-contexts.kubeconfig');
    writeFileSync(path, stringify(config), { mode: 0o600 });
    expect(leptonOk(['list', 'trainingjobs', '--context', 'quiet'], path)).toContain('mnist');
    expect(leptonOk(['list', 'trainingjobs'], path)).not.toContain('mnist');
    // KUBECONFIG with several files merges as kubectl merges them: the first current-context
    // wins, a missing file is skipped.
    const quietFirst = { ...config, 'current-context': 'quiet' };
    const first = join(dirname(kubeconfigPath()), 'kplugin-quiet-first.kubeconfig');
    writeFileSync(first, stringify(quietFirst), { mode: 0o600 });
    const merged = [join(dirname(first), 'no-such-file'), first, kubeconfigPath()].join(':');
    expect(leptonOk(['list', 'tj'], undefined, merged)).toContain('mnist');
    const missing = lepton(['list', 'all', '--context', 'nowhere'], path);
    expect(missing.code).toBe(1);
    expect(missing.stderr).toContain('No context named "nowhere"');
    const all = leptonOk(['list', 'tj', '-A']);
    expect(all.split('\n')[0]).toMatch(/^NAMESPACE +NAME +PHASE/);
    expect(all).toMatch(new RegExp(`${quiet} +mnist +Running`));
  });

  it('fails clearly, with a non-zero exit, on what does not exist and on bad usage', () => {
    const none = lepton(['why', 'nope', '-n', quiet]);
    expect(none.code).toBe(1);
    expect(none.stderr).toContain(
      `No TrainingJob or FederatedRound or InferenceService named "nope" in namespace ${quiet}`,
    );
    const one = lepton(['list', 'tj', 'nope', '-n', quiet]);
    expect(one.code).toBe(1);
    expect(one.stderr).toContain(`TrainingJob "nope" not found in ${quiet} namespace`);
    const usage = lepton(['list', 'pods']);
    expect(usage.code).toBe(2);
    expect(usage.stderr).toContain('Unknown kind "pods"');
    expect(lepton(['frobnicate']).code).toBe(2);
  });

  it('why: a job that can never be admitted, and one waiting for busy GPUs, say so and what to do', async () => {
    await jobs.create(jobs.job('too-big', { workers: 3, gpus: 8, product: H100 }));
    const big = await jobs.waitForJob(
      'too-big',
      'to be queued',
      (j) => j.status?.phase === 'Queued',
    );
    const verdict = cond(big, 'Admitted');
    expect(verdict?.reason).toBe('ExceedsClusterCapacity');
    const out = leptonOk(['why', 'too-big', '-n', ns]);
    expect(out).toMatch(new RegExp(`^TrainingJob ${ns}/too-big is Queued \\(for \\d+s\\)\\.`));
    expect(out).toContain(
      `It is queued, not admitted (ExceedsClusterCapacity): ${verdict?.message}`,
    );
    expect(out).toContain('It cannot fit on this cluster even when every node is idle');
    expect(lineOf(leptonOk(['list', 'tj', '-n', ns]), 'too-big')).toMatch(
      /Queued +ExceedsClusterCapacity +░░░░░░░░░░ 0\/\d+ epochs .* 24 +\d+s$/,
    );

    // All of the A100s held by one job; the next waits for them.
    await jobs.gpusIdle(A100);
    await jobs.create(jobs.job('holder', { workers: 2, gpus: 4, product: A100 }));
    await jobs.waitForJob('holder', 'to run', (j) => j.status?.phase === 'Running');
    await jobs.create(jobs.job('waiter', { workers: 1, gpus: 4, product: A100 }));
    const waiter = await jobs.waitForJob(
      'waiter',
      'to be queued',
      (j) => j.status?.phase === 'Queued',
    );
    expect(cond(waiter, 'Admitted')?.reason).toBe('InsufficientGPU');
    const why = leptonOk(['describe', 'trainingjob/waiter', '-n', ns]);
    expect(why).toContain('It is queued, not admitted (InsufficientGPU): waiting for');
    expect(why).toContain('The GPUs it needs exist but are in use');
    expect(why).toMatch(/Admitted +False +InsufficientGPU/);
    await jobs.remove('holder');
    await jobs.remove('waiter');
  });

  it("why: a failed job shows the failure and the chief pod's termination message", async () => {
    const message = 'RuntimeError: CUDA out of memory while allocating 2.0 GiB';
    await jobs.create(
      jobs.job('crashes', {
        annotations: {
          'kwok.lepton.ai/run-duration': '1s',
          'kwok.lepton.ai/exit-code': '3',
          'kwok.lepton.ai/message': message,
        },
        extra: { backoffLimit: 0 },
      }),
    );
    await jobs.waitForJob('crashes', 'to fail', (j) => j.status?.phase === 'Failed');
    const out = leptonOk(['why', 'tj/crashes', '-n', ns]);
    expect(out).toContain('is Failed');
    expect(out).toContain('It failed (BackoffLimitExceeded) at worker 0, exit code 3');
    expect(out).toContain(
      `Container trainer of pod crashes-worker-0 ended: Error, exit code 3; its termination message:\n    ${message}`,
    );
    expect(out).toMatch(/Events:\n.*\n.*Failed +trainingjob\/crashes/s);
  });

  it('logs: finds the chief (or worker N) by its labels and says why a node serves no log', async () => {
    await jobs.create(jobs.job('runs', { workers: 2 }));
    await jobs.waitForJob('runs', 'to run', (j) => j.status?.phase === 'Running');
    const chief = lepton(['logs', 'runs', '-n', ns]);
    expect(chief.code).toBe(1);
    expect(chief.stderr).toMatch(
      /container trainer of pod \S+\/runs-worker-0 from the kubelet of node kwok-\S+ \(404\).*is a kwok node, which simulates its pods and keeps no logs/,
    );
    expect(lepton(['logs', 'runs', '--worker', '1', '-f', '-n', ns]).stderr).toContain(
      'runs-worker-1',
    );
    const none = lepton(['logs', 'runs', '--worker', '7', '-n', ns]);
    expect(none.code).toBe(1);
    expect(none.stderr).toContain('has no worker 7 pod (its pods: runs-worker-0, runs-worker-1)');
    await jobs.remove('runs');
  });

  it('a real training on the local node: full bar, its loss history, and where its log is', async () => {
    createClaim(ns, 'models');
    await jobs.create({
      metadata: { name: 'real', namespace: ns },
      spec: {
        model: { preset: 'mlp', hiddenUnits: [8] },
        dataset: { synthetic: { generator: 'moons', samples: 300, seed: 3 }, validationSplit: 0.2 },
        hyperparameters: { epochs: 5, learningRate: 0.05, seed: 3 },
        output: { uri: 'pvc://models/real' },
        podTemplate: onLocalNode,
      },
    });
    const done = await jobs.waitForJob(
      'real',
      'to succeed',
      (j) => j.status?.phase === 'Succeeded' || j.status?.phase === 'Failed',
      120_000,
    );
    expect(done.status?.phase).toBe('Succeeded');
    const history = (done.status?.progress as { history?: { loss?: number[] } }).history?.loss;
    expect(history).toHaveLength(5);
    const line = lineOf(leptonOk(['list', 'tj', 'real', '-n', ns]), 'real');
    expect(line).toContain('██████████ 5/5 epochs');
    expect(line).toContain(` ${sparkline(history)} `);
    const logs = lepton(['logs', 'real', '-n', ns]);
    expect(logs.code).toBe(1);
    expect(logs.stderr).toContain(
      `is the local test cluster's node, which runs pods as processes and serves no kubelet log API: read the log with npm run cluster -- logs [--state DIR] -n ${ns} real-worker-0`,
    );
  });

  it('promote: the canary model becomes the model and the canary goes', async () => {
    await client.create(
      Resources.InferenceService,
      lepObj('InferenceService', ns, 'split', {
        model: { uri: 'file:///models/a' },
        canary: { model: { uri: 'file:///models/b' }, trafficPercent: 20 },
        podTemplate: { spec: { nodeSelector: { type: 'kwok' } } },
      }),
    );
    type Isvc = { spec: { model: { uri?: string }; canary?: { trafficPercent?: number } } } & Job;
    const get = () => client.get<Isvc>(Resources.InferenceService, ns, 'split');
    await waitFor(
      'the canary to be ready',
      async () => cond(await get(), 'CanaryReady')?.status === 'True',
      60_000,
    );
    const dry = leptonOk(['promote', 'split', '-n', ns, '--dry-run']);
    expect(dry).toContain('(server dry run)');
    expect((await get()).spec.canary).toBeDefined();
    const out = leptonOk(['promote', 'inferenceservice/split', '-n', ns]);
    expect(out).toContain('inferenceservice/split promoted');
    expect(out).toContain('model: file:///models/a -> file:///models/b');
    expect(out).toContain('it had 20% of the traffic');
    const promoted = await get();
    expect(promoted.spec.model).toEqual({ uri: 'file:///models/b' });
    expect(promoted.spec.canary).toBeUndefined();
    const again = lepton(['promote', 'split', '-n', ns]);
    expect(again.code).toBe(1);
    expect(again.stderr).toContain('has no canary (spec.canary): nothing to promote');
    const notIsvc = lepton(['promote', 'tj/crashes', '-n', ns]);
    expect(notIsvc.code).toBe(2);
  });

  it('promote refuses a canary that is not ready unless forced; rollback sets its traffic to 0 or removes it', async () => {
    // No operator watches this namespace: the canary never becomes ready.
    const out = lepton(['promote', 'fraud', '-n', quiet]);
    expect(out.code).toBe(1);
    expect(out.stderr).toContain(
      'is not ready: no CanaryReady condition yet; promote it anyway with --force',
    );
    type Isvc = { spec: { model: { uri?: string }; canary?: { trafficPercent?: number } } };
    const get = () => client.get<Isvc & Job>(Resources.InferenceService, quiet, 'fraud');
    const keep = leptonOk(['rollback', 'fraud', '--keep-canary', '-n', quiet]);
    expect(keep).toContain('canary traffic: 25% -> 0%');
    expect((await get()).spec.canary?.trafficPercent).toBe(0);
    expect(lineOf(leptonOk(['list', 'infsvc', '-n', quiet]), 'fraud')).toContain(
      '100% / 0% canary',
    );
    const gone = leptonOk(['rollback', 'fraud', '-n', quiet]);
    expect(gone).toContain('canary: file:///models/fraud-v2 removed');
    const after = await get();
    expect(after.spec.canary).toBeUndefined();
    expect(after.spec.model).toEqual({ uri: 'file:///models/fraud-v1' });
  });
});
