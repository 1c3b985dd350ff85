import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtemp, readFile, readdir, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { BACKENDS } from '../../../../src/runtime/backend.ts';
import { ENV, EXIT } from '../../../../src/contract/runtime.ts';
import {
  HISTORY_MAX_EPOCHS,
  HISTORY_METRICS,
  type ResultHistory,
  type TrainingResult,
} from '../../../../src/contract/training.ts';
import { parseResult } from '../../../../src/controllers/trainingjob/result.ts';
import {
  MODEL_CARD,
  MODEL_JSON,
  digestOfFolder,
} from '../../../../src/runtime/model/model-store.ts';
import { HISTORY_DIGITS, resultMessage } from '../../../../src/runtime/modes/train.ts';
import { TERMINATION_MESSAGE_MAX } from '../../../../src/runtime/pod.ts';
import { jobSpec } from '../fixtures.ts';
import type { JobSpec } from '../../../../src/runtime/spec.ts';

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'lepton-main-'));
});
afterAll(() => rm(dir, { recursive: true, force: true }));

interface Exit {
  code: number | null;
  stderr: string;
  terminationLog: string;
}

/**
 * Runs `node src/runtime/main.ts train` as the operator would, with claim "models" mapped.
 * `onStderr` sees the log as it comes, with the child to signal.
 */
async function runMain(
  name: string,
  spec: JobSpec | string,
  onStderr?: (text: string, child: ChildProcess) => void,
): Promise<Exit> {
  const terminationLog = join(dir, `${name}.termination-log`);
  const env: NodeJS.ProcessEnv = {
    PATH: process.env.PATH,
    HOME: process.env.HOME,
    [ENV.spec]: typeof spec === 'string' ? spec : JSON.stringify(spec),
    [ENV.jobName]: name,
    [ENV.namespace]: 'default',
    [ENV.rank]: '0',
    [ENV.worldSize]: '1',
    [ENV.port]: '0',
    [ENV.pathMap]: JSON.stringify({ '/mnt/pvc/models': join(dir, 'models') }),
    [ENV.terminationLog]: terminationLog,
  };
  const child = spawn(process.execPath, ['src/runtime/main.ts', 'train'], {
    cwd: process.cwd(),
    env,
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  let stderr = '';
  child.stderr.on('data', (chunk: Buffer) => {
    stderr += chunk.toString();
    onStderr?.(stderr, child);
  });
  const code = await new Promise<number | null>((resolve) => child.on('close', resolve));
  const log = await readFile(terminationLog, 'utf8').catch(() => '');
  return { code, stderr, terminationLog: log };
}

describe('node src/runtime/main.ts train', () => {
  it('trains a synthetic job, saves the model and writes the TrainingResult', async () => {
    const spec = jobSpec()
      .preset('mlp', { hiddenUnits: [16] })
      .synthetic({ generator: 'blobs', samples: 300, classes: 3, seed: 5 }, 0.2)
      .hyperparameters({ epochs: 4, learningRate: 0.05, seed: 1 })
      .output('pvc://models/blobs', 'float16')
      .checkpoint({ everyEpochs: 2 })
      .raw();
    const exit = await runMain('blobs', spec);
    expect(exit.code).toBe(EXIT.ok);
    const result = JSON.parse(exit.terminationLog) as TrainingResult;
    const out = join(dir, 'models', 'blobs');
    expect(result).toMatchObject({ model: { uri: 'pvc://models/blobs' }, epochs: 4 });
    expect(result.model.digest).toBe(await digestOfFolder(out));
    expect(BACKENDS).toContain(result.backend);
    expect(result.metrics.valAccuracy).toBeGreaterThan(0.5);
    const modelJson = JSON.parse(await readFile(join(out, MODEL_JSON), 'utf8'));
    expect(modelJson.weightsManifest[0].weights[0].quantization).toEqual({ dtype: 'float16' });
    expect(await readdir(out)).toEqual(
      expect.arrayContaining([MODEL_CARD, 'checkpoints', MODEL_JSON, 'weights.bin']),
    );
    expect(await readdir(join(out, 'checkpoints'))).toEqual(['epoch-000002', 'epoch-000004']);
  });

  it.each([
    [
      'a dataset that does not exist',
      jobSpec().datasetUri('file:///nonexistent/lepton/data.csv').raw(),
      /Dataset file:\/\/\/nonexistent\/lepton\/data\.csv not found/,
    ],
    ['a spec that is not JSON', '{"model":', /LEPTON_JOB_SPEC is not JSON/],
  ])('exits with the permanent code on %s, saying why', async (_name, spec, message) => {
    const exit = await runMain('bad', spec);
    expect(exit.code).toBe(EXIT.permanent);
    expect(exit.terminationLog).toMatch(message);
    expect(exit.terminationLog).not.toContain('\n');
    expect(exit.stderr.trim().split('\n').at(-1)).toBe(exit.terminationLog);
  });

  it('stops on SIGTERM with the retryable code', async () => {
    const spec = jobSpec()
      .synthetic({ generator: 'spirals', samples: 20000 })
      .hyperparameters({ epochs: 1000 })
      .raw();
    let signalled = false;
    const exit = await runMain('sigterm', spec, (text, child) => {
      if (!signalled && text.includes('Finished epoch')) signalled = child.kill('SIGTERM');
    });
    expect(signalled).toBe(true);
    expect(exit.code).toBe(EXIT.retryable);
    expect(exit.terminationLog).toBe('Stopped by SIGTERM');
  });
});

describe('§trial-metrics the cost metrics in the termination message', () => {
  it('§trial-metrics the chief reports parameters, the quantized weights file and the latency', async () => {
    const spec = jobSpec()
      .preset('mlp', { hiddenUnits: [16] })
      .synthetic({ generator: 'blobs', samples: 200, classes: 3, seed: 5 }, 0.2)
      .hyperparameters({ epochs: 2, seed: 1 })
      .output('pvc://models/cost', 'float16')
      .raw();
    const exit = await runMain('cost', spec);
    expect(exit.code).toBe(EXIT.ok);
    const { model } = JSON.parse(exit.terminationLog) as TrainingResult;
    // blobs has 2 features: (2 + 1) * 16 + (16 + 1) * 3 parameters, 2 bytes each in float16.
    expect(model.parameters).toBe(99);
    const weights = await stat(join(dir, 'models', 'cost', 'weights.bin'));
    expect(model.bytes).toBe(weights.size);
    expect(model.bytes).toBe(99 * 2);
    expect(model.latencySeconds).toBeGreaterThan(0);
    expect(Number.isFinite(model.latencySeconds)).toBe(true);
  });

  it('§trial-metrics a result with URIs at their bounds stays JSON within what Kubernetes keeps', () => {
    const result: TrainingResult = {
      model: {
        uri: `pvc://models/${'m'.repeat(2035)}`,
        digest: `sha256:${'a'.repeat(64)}`,
        parameters: Number.MAX_SAFE_INTEGER,
        bytes: Number.MAX_SAFE_INTEGER,
        latencySeconds: 1 / 81000,
      },
      metrics: { loss: -1 / 81000, accuracy: 1 / 3, valLoss: -1 / 81000, valAccuracy: 1 / 3 },
      evaluation: {
        loss: 1 / 81000,
        accuracy: 1 / 3,
        samples: 2 ** 31 - 1,
      },
      epochs: 2 ** 31 - 1,
      backend: 'tfjs-node-gpu',
      dataset: {
        uri: `s3://${'d'.repeat(2043)}`,
        digest: `sha256:${'b'.repeat(64)}`,
        rows: Number.MAX_SAFE_INTEGER,
        files: Number.MAX_SAFE_INTEGER,
        bytes: Number.MAX_SAFE_INTEGER,
      },
    };
    expect(Buffer.byteLength(JSON.stringify(result))).toBeGreaterThan(TERMINATION_MESSAGE_MAX);
    const message = resultMessage(result);
    expect(Buffer.byteLength(message)).toBeLessThanOrEqual(TERMINATION_MESSAGE_MAX);
    const { dataset: _left, ...kept } = result;
    expect(JSON.parse(message)).toEqual(kept);
    // A result that fits is left whole.
    const small = { ...result, model: { ...result.model, uri: 'pvc://models/m' } };
    expect(JSON.parse(resultMessage(small))).toEqual(small);
  });
});

describe('§trial-metrics the history in the termination message', () => {
  const round = (v: number) => Number(v.toPrecision(HISTORY_DIGITS));
  /** Figures of full precision (17 significant digits), as training produces them. */
  const epochs = (n: number): ResultHistory => ({
    start: 0,
    loss: Array.from({ length: n }, (_, i) => 1 / (i + 3)),
    accuracy: Array.from({ length: n }, (_, i) => 1 - 1 / (i + 7)),
    valLoss: Array.from({ length: n }, (_, i) => 1.5 / (i + 3)),
    valAccuracy: Array.from({ length: n }, (_, i) => 1 - 1.3 / (i + 7)),
  });
  const atBounds = (history: ResultHistory): TrainingResult => ({
    model: {
      uri: `pvc://models/${'m'.repeat(2035)}`,
      digest: `sha256:${'a'.repeat(64)}`,
      parameters: Number.MAX_SAFE_INTEGER,
      bytes: Number.MAX_SAFE_INTEGER,
      latencySeconds: 1 / 81000,
    },
    metrics: { loss: -1 / 81000, accuracy: 1 / 3, valLoss: -1 / 81000, valAccuracy: 1 / 3 },
    evaluation: { loss: 1 / 81000, accuracy: 1 / 3, samples: 2 ** 31 - 1 },
    epochs: 2 ** 31 - 1,
    backend: 'tfjs-node-gpu',
    dataset: {
      uri: `s3://${'d'.repeat(2043)}`,
      digest: `sha256:${'b'.repeat(64)}`,
      rows: Number.MAX_SAFE_INTEGER,
      files: Number.MAX_SAFE_INTEGER,
      bytes: Number.MAX_SAFE_INTEGER,
    },
    history,
  });

  it('§trial-metrics carries the whole history when it fits, rounded to 6 significant digits', () => {
    const history = epochs(20);
    const result: TrainingResult = {
      model: { uri: 'pvc://models/m', digest: `sha256:${'a'.repeat(64)}` },
      metrics: { loss: 1 / 3 },
      epochs: 20,
      backend: 'cpu',
      history,
    };
    const written = JSON.parse(resultMessage(result)) as TrainingResult;
    expect(written.history).toEqual({
      start: 0,
      loss: history.loss!.map(round),
      accuracy: history.accuracy!.map(round),
      valLoss: history.valLoss!.map(round),
      valAccuracy: history.valAccuracy!.map(round),
    });
    expect(written.history?.loss?.[0]).toBe(0.333333);
    // The final metrics keep full precision.
    expect(written.metrics.loss).toBe(1 / 3);
  });

  it('§trial-metrics a 1000-epoch history is cut to its tail within 4096 bytes together with 2048-character URIs', () => {
    const history = epochs(HISTORY_MAX_EPOCHS);
    const result = atBounds(history);
    const message = resultMessage(result);
    expect(Buffer.byteLength(message)).toBeLessThanOrEqual(TERMINATION_MESSAGE_MAX);
    const written = JSON.parse(message) as TrainingResult;
    // The rest of the result has priority: all of it is there but the dataset summary, which
    // does not fit beside the two URIs even without a history.
    const { dataset: _left, history: _cut, ...rest } = result;
    expect({ ...written, history: undefined }).toEqual({ ...rest, history: undefined });
    const tail = written.history!;
    expect(tail.start).toBeGreaterThan(0);
    for (const name of HISTORY_METRICS) {
      expect(tail[name]).toHaveLength(HISTORY_MAX_EPOCHS - tail.start);
      expect(tail[name]).toEqual(history[name]!.slice(tail.start).map(round));
    }
    // The newest epochs that fit, not fewer: one more epoch would not fit.
    const oneMore = { ...tail, start: tail.start - 1 };
    for (const name of HISTORY_METRICS)
      oneMore[name] = history[name]!.slice(oneMore.start).map(round);
    expect(Buffer.byteLength(JSON.stringify({ ...written, history: oneMore }))).toBeGreaterThan(
      TERMINATION_MESSAGE_MAX,
    );
    // And the operator takes it, tail and all.
    const verdict = parseResult(message, result.model.uri);
    expect(verdict).toMatchObject({ ok: true, result: { history: tail } });
  });

  it('§trial-metrics leaves the history out when not one epoch fits, and never exceeds the bound', () => {
    const result = atBounds(epochs(5));
    const { dataset: _left, history: _none, ...rest } = result;
    const without = JSON.stringify(rest);
    // Room for the rest and a few bytes: not a single epoch of four figures.
    const max = Buffer.byteLength(without) + 20;
    expect(JSON.parse(resultMessage(result, max))).toEqual(rest);
    for (let room = 0; room < 300; room += 7) {
      const message = resultMessage(result, Buffer.byteLength(without) + room);
      expect(Buffer.byteLength(message)).toBeLessThanOrEqual(Buffer.byteLength(without) + room);
    }
  });

  it('§trial-metrics a chief that trained 20 epochs reports all 20 in its result, as it logged them', async () => {
    const spec = jobSpec()
      .preset('mlp', { hiddenUnits: [8] })
      .synthetic({ generator: 'blobs', samples: 200, classes: 3, seed: 2 }, 0.2)
      .hyperparameters({ epochs: 20, seed: 2 })
      .raw();
    const exit = await runMain('history', spec);
    expect(exit.code).toBe(EXIT.ok);
    const { epochs: trained, history } = JSON.parse(exit.terminationLog) as TrainingResult;
    expect(trained).toBe(20);
    const logged = exit.stderr
      .split('\n')
      .filter((line) => line.includes('"Finished epoch"'))
      .map((line) => JSON.parse(line) as Record<string, number>);
    expect(logged.map((l) => l.epoch)).toEqual(Array.from({ length: 20 }, (_, i) => i + 1));
    expect(history?.start).toBe(0);
    for (const name of HISTORY_METRICS)
      expect(history?.[name]).toEqual(logged.map((l) => round(l[name]!)));
  });
});
