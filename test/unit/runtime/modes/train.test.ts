import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtemp, readFile, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { BACKENDS } from '../../../../src/runtime/backend.ts';
import { ENV, EXIT } from '../../../../src/contract/runtime.ts';
import type { TrainingResult } from '../../../../src/contract/training.ts';
import {
  MODEL_CARD,
  MODEL_JSON,
  digestOfFolder,
} from '../../../../src/runtime/model/model-store.ts';
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
