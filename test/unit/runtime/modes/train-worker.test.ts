// The training mode with training in a worker thread (issue 14): the endpoints answer during a
// batch that takes seconds, SIGTERM ends the pod within a second, and the backend is the one
// the spec asks for and the one reported. Each case runs `node src/runtime/main.ts train` as a
// process, as the pod does.
import { type ChildProcess, spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, readFile, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import * as tf from '@tensorflow/tfjs';
import { initBackend } from '../../../../src/runtime/backend.ts';
import { ENV, EXIT } from '../../../../src/contract/runtime.ts';
import type { Progress, TrainingResult } from '../../../../src/contract/training.ts';
import { modelArtifacts, writeArtifacts } from '../../../../src/runtime/model/model-store.ts';
import { TERMINATION_GRACE_ENV } from '../../../../src/runtime/modes/train.ts';
import { waitFor } from '../../../cluster/cluster.ts';
import { jobSpec } from '../fixtures.ts';
import type { JobSpec, RuntimeBackend } from '../../../../src/runtime/spec.ts';

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'lepton-train-worker-'));
});
afterAll(() => rm(dir, { recursive: true, force: true }));

/** Pods a failed case left running. */
const running: Pod[] = [];
afterEach(async () => {
  for (const pod of running.splice(0)) {
    if (pod.child.exitCode === null && pod.child.signalCode === null) pod.child.kill('SIGKILL');
    await pod.exit;
  }
});

function withBackend(spec: JobSpec, backend: RuntimeBackend): JobSpec {
  return { ...spec, runtime: { backend } };
}

/**
 * One CNN batch of 512 32×32 images: several seconds on wasm on this machine, a blocked event
 * loop for as long if training ran on the main thread. One batch per epoch. (128 images took
 * under a second once issue 14's kernels landed: no longer than the 800 ms the thread is given
 * after SIGTERM.)
 */
const longBatches = (epochs: number) =>
  jobSpec()
    .preset('cnn', { inputShape: [32, 32] })
    .synthetic({ generator: 'blobs', samples: 512, features: 1024, classes: 3, seed: 3 })
    .hyperparameters({ epochs, batchSize: 512, seed: 1 })
    .raw();

/** A job that trains for longer than any test waits, in batches of a few milliseconds. */
const endless = () =>
  jobSpec()
    .synthetic({ generator: 'spirals', samples: 2000 })
    .hyperparameters({ epochs: 100000 })
    .raw();

interface Exit {
  code: number | null;
  /** When the process closed (performance.now()). */
  at: number;
  terminationLog: string;
}

interface Pod {
  child: ChildProcess;
  stderr(): string;
  /** The server's port, from the 'Started the runtime' log line. */
  port(): Promise<number>;
  exit: Promise<Exit>;
}

/** Starts `node src/runtime/main.ts train` on a port the OS picks. */
function startPod(name: string, spec: JobSpec, extraEnv: NodeJS.ProcessEnv = {}): Pod {
  const terminationLog = join(dir, `${name}.termination-log`);
  const env: NodeJS.ProcessEnv = {
    PATH: process.env.PATH,
    HOME: process.env.HOME,
    [ENV.spec]: JSON.stringify(spec),
    [ENV.jobName]: name,
    [ENV.namespace]: 'default',
    [ENV.rank]: '0',
    [ENV.worldSize]: '1',
    [ENV.port]: '0',
    [ENV.pathMap]: JSON.stringify({ '/mnt/pvc/models': join(dir, 'models') }),
    [ENV.terminationLog]: terminationLog,
    ...extraEnv,
  };
  const child = spawn(process.execPath, ['src/runtime/main.ts', 'train'], {
    cwd: process.cwd(),
    env,
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  let stderr = '';
  child.stderr!.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
  const exit = new Promise<Exit>((resolve) =>
    child.on('close', (code) => {
      const at = performance.now();
      void readFile(terminationLog, 'utf8')
        .catch(() => '')
        .then((log) => resolve({ code, at, terminationLog: log }));
    }),
  );
  const started = (): boolean => {
    if (child.exitCode !== null) throw new Error(`The pod exited early: ${stderr}`);
    return logLines(stderr, 'Started the runtime').length > 0;
  };
  const port = async (): Promise<number> => {
    await waitFor('the runtime to start', started, 30_000);
    return logLines(stderr, 'Started the runtime')[0]!.port as number;
  };
  const pod = { child, stderr: () => stderr, port, exit };
  running.push(pod);
  return pod;
}

/** The runtime's JSON log lines with `message`. */
function logLines(stderr: string, message: string): Record<string, unknown>[] {
  return stderr
    .split('\n')
    .filter((line) => line.startsWith('{') && line.endsWith('}'))
    .map((line) => JSON.parse(line) as Record<string, unknown>)
    .filter((line) => line.message === message);
}

async function progressOf(port: number): Promise<Progress> {
  const res = await fetch(`http://127.0.0.1:${port}/progress`);
  return (await res.json()) as Progress;
}

/** Waits for /progress to say Training and returns what it says. */
async function trainingProgress(pod: Pod): Promise<Progress> {
  const port = await pod.port();
  let progress: Progress | undefined;
  await waitFor(
    'the pod to train',
    async () => (progress = await progressOf(port)).phase === 'Training',
    60_000,
  );
  return progress!;
}

describe('§thread training in a worker thread', () => {
  it('§thread /healthz, /readyz and /progress answer within 100 ms during a batch that takes seconds', async () => {
    const pod = startPod('endpoints', longBatches(2));
    const port = await pod.port();
    await trainingProgress(pod);
    // A round of probes at each poll until the first epoch, a single batch, has ended.
    const probes: { path: string; ms: number; status: number }[] = [];
    let progress: Progress | undefined;
    await waitFor(
      'the first batch to end',
      async () => {
        for (const path of ['/healthz', '/readyz', '/progress']) {
          const started = performance.now();
          const res = await fetch(`http://127.0.0.1:${port}${path}`);
          const body = await res.text();
          probes.push({ path, ms: performance.now() - started, status: res.status });
          if (path === '/progress') progress ??= JSON.parse(body) as Progress;
        }
        return logLines(pod.stderr(), 'Finished epoch').length > 0;
      },
      120_000,
    );
    const exit = await pod.exit;
    expect(exit.code).toBe(EXIT.ok);
    // Blocked by the batch, the server would have answered one round, after the batch.
    expect(probes.length).toBeGreaterThan(6);
    expect(probes.filter((p) => p.status !== 200)).toEqual([]);
    // The pod's server answers within 100 ms; on this 2-core machine under load an idle Node
    // server alone sometimes takes 120-270 ms, so: nine in ten within 100 ms, and none near the
    // seconds a blocked event loop would take (the batch's length).
    const slow = probes.filter((p) => p.ms >= 100);
    expect(slow.length).toBeLessThanOrEqual(Math.floor(probes.length / 10));
    expect(probes.filter((p) => p.ms >= 1000)).toEqual([]);
    // Read during the first batch.
    expect(progress).toMatchObject({ phase: 'Training', backend: 'wasm', epoch: 0 });
  });
});

describe('§sigterm SIGTERM while training', () => {
  it('§sigterm without a checkpoint configured, SIGTERM during a long batch ends the pod within a second, with the SIGTERM exit (§thread)', async () => {
    const pod = startPod('sigterm-batch', longBatches(1000));
    await trainingProgress(pod);
    const signalled = performance.now();
    expect(pod.child.kill('SIGTERM')).toBe(true);
    const exit = await pod.exit;
    expect(exit.code).toBe(EXIT.retryable);
    expect(exit.terminationLog).toBe('Stopped by SIGTERM');
    // The batch takes seconds; the thread is given 800 ms to reach its end, then terminated.
    expect(logLines(pod.stderr(), 'Finished epoch')).toEqual([]);
    // 800 ms for the thread, then the exit; a loaded machine adds a little, the batch many seconds.
    expect(exit.at - signalled).toBeLessThan(2500);
  });

  /** Two epochs of four CNN batches of a second or more each, checkpointed under its output. */
  const checkpointed = (output: string) =>
    jobSpec()
      .preset('cnn', { inputShape: [32, 32] })
      .synthetic({ generator: 'blobs', samples: 128, features: 1024, classes: 3, seed: 3 })
      .hyperparameters({ epochs: 2, batchSize: 32, seed: 1 })
      .output(`pvc://models/${output}`)
      .checkpoint()
      .raw();

  /** The weights a pod saved, from its output's weights.bin (float32: no quantization). */
  const savedWeights = async (output: string): Promise<Float32Array> => {
    const bytes = await readFile(join(dir, 'models', output, 'weights.bin'));
    return new Float32Array(bytes.buffer, bytes.byteOffset, bytes.byteLength / 4);
  };

  it('§sigterm with checkpoints, SIGTERM during a long epoch checkpoints the stopped batch, and the resumed run ends with the weights of an uninterrupted one', async () => {
    const straight = startPod('sigterm-straight', checkpointed('sigterm-straight'));
    const stopped = startPod('sigterm-stopped', checkpointed('sigterm-resumed'));
    await trainingProgress(stopped);
    expect(stopped.child.kill('SIGTERM')).toBe(true);
    const exit = await stopped.exit;
    expect(exit.code).toBe(EXIT.retryable);
    expect(exit.terminationLog).toBe('Stopped by SIGTERM');
    // The batch in flight ended, and the step after it was checkpointed, within epoch 1.
    const [saved] = logLines(stopped.stderr(), 'Saved a checkpoint of the stopped batch');
    expect(saved).toMatchObject({ epoch: 0, step: expect.any(Number) });
    const step = saved!.step as number;
    expect(step).toBeGreaterThan(0);
    expect(step).toBeLessThan(4);
    expect(await readdir(join(dir, 'models', 'sigterm-resumed', 'checkpoints'))).toEqual([
      `epoch-000000-step-${String(step).padStart(6, '0')}`,
    ]);

    const resumed = startPod('sigterm-resumed', checkpointed('sigterm-resumed'));
    expect((await resumed.exit).code).toBe(EXIT.ok);
    expect(logLines(resumed.stderr(), 'Resumed from checkpoint')).toEqual([
      expect.objectContaining({ epoch: 0, optimizerRestored: true }),
    ]);
    expect((await straight.exit).code).toBe(EXIT.ok);
    const a = await savedWeights('sigterm-straight');
    const b = await savedWeights('sigterm-resumed');
    expect(a.length).toBe(b.length);
    let max = 0;
    for (let i = 0; i < a.length; i++) max = Math.max(max, Math.abs(a[i]! - b[i]!));
    expect(max).toBeLessThan(1e-4);
  });

  it('§sigterm with checkpoints, a batch longer than the grace period left keeps the last checkpoint and says so', async () => {
    const spec = {
      ...longBatches(1000),
      output: { uri: 'pvc://models/sigterm-late' },
      checkpoint: {},
    };
    // 2 s of grace: the thread gets 800 ms, less than the batch takes.
    const pod = startPod('sigterm-late', spec, { [TERMINATION_GRACE_ENV]: '2' });
    await trainingProgress(pod);
    expect(pod.child.kill('SIGTERM')).toBe(true);
    const exit = await pod.exit;
    expect(exit.code).toBe(EXIT.retryable);
    expect(exit.terminationLog).toBe('Stopped by SIGTERM');
    expect(
      logLines(
        pod.stderr(),
        'Kept the last checkpoint: training did not reach a batch boundary within the grace period',
      ),
    ).toEqual([expect.objectContaining({ graceSeconds: 0.8, epoch: 0 })]);
    expect(logLines(pod.stderr(), 'Saved a checkpoint of the stopped batch')).toEqual([]);
    expect(existsSync(join(dir, 'models', 'sigterm-late', 'checkpoints'))).toBe(false);
  });
});

describe('§backend spec.runtime.backend', () => {
  it.each<[RuntimeBackend, string]>([
    ['auto', 'wasm'],
    ['wasm', 'wasm'],
    ['cpu', 'cpu'],
  ])('§backend %s trains on %s and /progress says so', async (choice, backend) => {
    const pod = startPod(`backend-${choice}`, withBackend(endless(), choice));
    expect(await trainingProgress(pod)).toMatchObject({ backend });
    pod.child.kill('SIGTERM');
    expect((await pod.exit).code).toBe(EXIT.retryable);
    expect(logLines(pod.stderr(), 'Initialised the backend')).toEqual([
      expect.objectContaining({ backend, requested: choice }),
    ]);
  });

  it('§backend the result records the backend chosen', async () => {
    const spec = jobSpec()
      .synthetic({ generator: 'blobs', samples: 200, classes: 3 })
      .hyperparameters({ epochs: 2, seed: 1 })
      .raw();
    const pod = startPod('backend-result', withBackend(spec, 'cpu'));
    const exit = await pod.exit;
    expect(exit.code).toBe(EXIT.ok);
    expect((JSON.parse(exit.terminationLog) as TrainingResult).backend).toBe('cpu');
  });

  it('§backend a named backend that is not installed fails permanently, naming those present', async () => {
    const pod = startPod('backend-missing', withBackend(endless(), 'tfjs-node-gpu'));
    const exit = await pod.exit;
    expect(exit.code).toBe(EXIT.permanent);
    expect(exit.terminationLog).toBe('tfjs-node-gpu is not installed here; available: wasm, cpu');
  });

  describe('a model wasm cannot train (a depthwise convolution)', () => {
    let uri: string;
    beforeAll(async () => {
      await initBackend('cpu');
      const model = tf.sequential({
        layers: [
          tf.layers.reshape({ targetShape: [4, 4, 1], inputShape: [16] }),
          tf.layers.depthwiseConv2d({ kernelSize: 3 }),
          tf.layers.flatten(),
          tf.layers.dense({ units: 2, activation: 'softmax' }),
        ],
      });
      const folder = join(dir, 'depthwise');
      await writeArtifacts(folder, await modelArtifacts(model));
      uri = pathToFileURL(folder).toString();
    });
    const spec = () =>
      jobSpec()
        .modelUri(uri)
        .synthetic({ generator: 'blobs', samples: 200, features: 16, classes: 2 })
        .hyperparameters({ epochs: 2, seed: 1 })
        .raw();

    it('§backend with auto trains on cpu and says so in the log and the result', async () => {
      const pod = startPod('depthwise-auto', withBackend(spec(), 'auto'));
      const exit = await pod.exit;
      expect(exit.code).toBe(EXIT.ok);
      expect((JSON.parse(exit.terminationLog) as TrainingResult).backend).toBe('cpu');
      expect(logLines(pod.stderr(), 'Started training')).toEqual([
        expect.objectContaining({ backend: 'cpu' }),
      ]);
    });

    it('§backend with wasm named fails permanently, naming the kernels wasm lacks', async () => {
      const pod = startPod('depthwise-wasm', withBackend(spec(), 'wasm'));
      const exit = await pod.exit;
      expect(exit.code).toBe(EXIT.permanent);
      expect(exit.terminationLog).toMatch(
        /^spec\.runtime\.backend is wasm, which lacks the gradient kernels this model needs \(DepthwiseConv2dNativeBackpropFilter, DepthwiseConv2dNativeBackpropInput\)/,
      );
    });
  });
});

describe('§trial-metrics the history on /progress', () => {
  it('§trial-metrics /progress carries one entry per epoch done, through the training thread', async () => {
    const pod = startPod('history', endless());
    const port = await pod.port();
    let progress: Progress | undefined;
    await waitFor(
      'three epochs',
      async () => ((progress = await progressOf(port)).epoch ?? 0) >= 3,
      120_000,
    );
    pod.child.kill('SIGTERM');
    const p = progress!;
    // spirals: a classification without validation data, so no val* lists.
    expect(Object.keys(p.history ?? {}).sort()).toEqual(['accuracy', 'loss']);
    expect(p.history?.loss).toHaveLength(p.epoch);
    expect(p.history?.accuracy).toHaveLength(p.epoch);
    expect(p.history?.loss?.at(-1)).toBe(p.loss);
    expect(p.history?.accuracy?.at(-1)).toBe(p.accuracy);
    expect((await pod.exit).code).toBe(EXIT.retryable);
  });
});
