import { createServer, type Server } from 'node:http';
import { mkdir, mkdtemp, readFile, rm, truncate, writeFile } from 'node:fs/promises';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { ENV } from '../../../../src/contract/runtime.ts';
import type { ServingSpec } from '../../../../src/contract/serving.ts';
import { initBackend } from '../../../../src/runtime/backend.ts';
import { PermanentError } from '../../../../src/runtime/errors.ts';
import {
  WEIGHTS_FILE,
  modelArtifacts,
  saveModel,
  writeArtifacts,
} from '../../../../src/runtime/model/model-store.ts';
import { quantizeArtifacts } from '../../../../src/runtime/model/quantize.ts';
import { type LoadedPredictor, loadPredictor } from '../../../../src/runtime/serving/model.ts';
import {
  graphArtifacts,
  graphExpected,
  mlp,
  servingSpec,
  twoByTwo,
  writeGraphModel,
} from './model-fixtures.ts';

let dir: string;
let server: Server;
let httpBase: string;
const digests: Record<string, string> = {};
const original = mlp(7);

// Every test loads from these folders; written once, as the training mode writes them.
beforeAll(async () => {
  await initBackend('wasm');
  dir = await mkdtemp(join(tmpdir(), 'lepton-serving-model-'));
  digests.mlp = (await saveModel(original, join(dir, 'mlp'))).digest;
  digests.graph = (await writeGraphModel(join(dir, 'graph'))).digest;
  server = createServer((req, res) => {
    readFile(join(dir, req.url ?? '/')).then(
      (body) => res.end(body),
      () => res.writeHead(404).end(),
    );
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  httpBase = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});
afterAll(async () => {
  await new Promise((resolve) => server.close(resolve));
  await rm(dir, { recursive: true, force: true });
});

const ROWS = [5.1, 3.5, 1.4, 0.2, 6.7, 3.0, 5.2, 2.3, 5.9, 3.0, 4.2, 1.5];
const fileUri = (name: string): string => `file://${join(dir, name)}`;

async function load(spec: ServingSpec, env: NodeJS.ProcessEnv = {}): Promise<LoadedPredictor> {
  return loadPredictor(spec, env);
}

function predictInProcess(model: tf.LayersModel, rows: number[], width: number): number[] {
  return tf.tidy(() =>
    Array.from(
      (model.predict(tf.tensor2d(rows, [rows.length / width, width])) as tf.Tensor).dataSync(),
    ),
  );
}

async function failure(spec: ServingSpec): Promise<Error> {
  return load(spec).then(
    () => {
      throw new Error('the model loaded');
    },
    (err: Error) => err,
  );
}

describe('loadPredictor: tfjs layers models', () => {
  it.each([
    ['file://', () => fileUri('mlp'), { map: false }],
    ['file:// of model.json', () => `${fileUri('mlp')}/model.json`, { map: false }],
    ['pvc:// through LEPTON_PATH_MAP', () => 'pvc://models/mlp', { map: true }],
    ['http://', () => `${httpBase}/mlp/model.json`, { map: false }],
  ])(
    '§serving-runtime loads from %s and predicts what the trained model predicts',
    async (_name, uri, opts) => {
      const env = opts.map ? { [ENV.pathMap]: JSON.stringify({ '/mnt/pvc/models': dir }) } : {};
      const { predictor, digest, loadSeconds } = await load(servingSpec(uri()), env);
      try {
        expect(digest).toBe(digests.mlp);
        expect(loadSeconds).toBeGreaterThan(0);
        expect(predictor.inputs).toEqual([
          { name: 'hidden_1_input', datatype: 'FP32', shape: [-1, 4] },
        ]);
        expect(predictor.outputs).toEqual([{ name: 'output', datatype: 'FP32', shape: [-1, 3] }]);
        const { outputs } = await predictor.predict({ rows: 3, inputs: [new Float32Array(ROWS)] });
        expect(outputs).toHaveLength(1);
        expect(outputs[0]).toBeInstanceOf(Float32Array);
        expect(Array.from(outputs[0]!)).toEqual(predictInProcess(original, ROWS, 4));
      } finally {
        predictor.dispose();
      }
    },
  );

  it('§serving-runtime keeps the order of several inputs and outputs', async () => {
    const model = twoByTwo();
    await saveModel(model, join(dir, 'two'));
    const { predictor } = await load(servingSpec(fileUri('two')));
    try {
      expect(predictor.inputs).toEqual([
        { name: 'features', datatype: 'FP32', shape: [-1, 3] },
        { name: 'extra', datatype: 'FP32', shape: [-1, 2] },
      ]);
      expect(predictor.outputs.map((o) => [o.name, o.shape])).toEqual([
        ['probabilities', [-1, 4]],
        ['score', [-1, 1]],
      ]);
      const features = [1, 2, 3, -1, 0, 0.5];
      const extra = [0.25, -0.75, 2, 1];
      const { outputs } = await predictor.predict({
        rows: 2,
        inputs: [new Float32Array(features), new Float32Array(extra)],
      });
      const expected = tf.tidy(() =>
        (
          model.predict([tf.tensor2d(features, [2, 3]), tf.tensor2d(extra, [2, 2])]) as tf.Tensor[]
        ).map((t) => Array.from(t.dataSync())),
      );
      expect(outputs.map((o) => Array.from(o))).toEqual(expected);
    } finally {
      predictor.dispose();
    }
  });

  it.each(['float16', 'uint8'] as const)(
    '§serving-runtime quantizes to %s on load: predicts as the quantized model does, near the original',
    async (dtype) => {
      const { predictor, digest } = await load(
        servingSpec(fileUri('mlp'), { quantization: dtype }),
      );
      const quantized = await tf.loadLayersModel(
        tf.io.fromMemory(quantizeArtifacts(await modelArtifacts(original), dtype)),
      );
      try {
        // The digest names the files as stored; quantization happens after the check.
        expect(digest).toBe(digests.mlp);
        const { outputs } = await predictor.predict({ rows: 3, inputs: [new Float32Array(ROWS)] });
        expect(Array.from(outputs[0]!)).toEqual(predictInProcess(quantized, ROWS, 4));
        const exact = predictInProcess(original, ROWS, 4);
        const worst = Math.max(...exact.map((v, i) => Math.abs(v - outputs[0]![i]!)));
        expect(worst).toBeGreaterThan(0);
        expect(worst).toBeLessThan(dtype === 'float16' ? 1e-2 : 5e-2);
      } finally {
        predictor.dispose();
        quantized.dispose();
      }
    },
  );
});

describe('loadPredictor: tfjs graph models', () => {
  it.each(['none', 'float16', 'uint8'] as const)(
    '§serving-runtime loads a graph model (quantization %s) with FP32 and INT32 outputs',
    async (quantization) => {
      const { predictor, digest } = await load(
        servingSpec(fileUri('graph'), { format: 'tfjs-graph', quantization }),
      );
      try {
        expect(digest).toBe(digests.graph);
        expect(predictor.inputs).toEqual([{ name: 'x', datatype: 'FP32', shape: [-1, 3] }]);
        expect(predictor.outputs).toEqual([
          { name: 'probabilities', datatype: 'FP32', shape: [-1, 2] },
          { name: 'class', datatype: 'INT32', shape: [-1] },
        ]);
        const x = [1, 2, 3, -1, 0, 1, 0.5, -2, 0];
        const { outputs } = await predictor.predict({ rows: 3, inputs: [new Float32Array(x)] });
        const expected = graphExpected(x);
        const tolerance = quantization === 'none' ? 1e-6 : 2e-2;
        Array.from(outputs[0]!).forEach((p, i) =>
          expect(Math.abs(p - expected.probabilities[i]!)).toBeLessThan(tolerance),
        );
        expect(outputs[1]).toBeInstanceOf(Int32Array);
        expect(Array.from(outputs[1]!)).toEqual(expected.class);
      } finally {
        predictor.dispose();
      }
    },
  );
});

describe('loadPredictor: the digest', () => {
  it('§serving-runtime loads when the digest is the one expected', async () => {
    const { predictor } = await load(servingSpec(fileUri('mlp'), { digest: digests.mlp }));
    predictor.dispose();
  });

  it('§serving-runtime refuses another digest, permanently, naming both', async () => {
    const expected = `sha256:${'0'.repeat(64)}`;
    const err = await failure(servingSpec(fileUri('mlp'), { digest: expected }));
    expect(err).toBeInstanceOf(PermanentError);
    expect(err.message).toMatch(/^ModelDigestMismatch: /);
    expect(err.message).toContain(expected);
    expect(err.message).toContain(digests.mlp);
  });
});

describe('loadPredictor: models that cannot load', () => {
  beforeAll(async () => {
    await mkdir(join(dir, 'not-json'));
    await writeFile(join(dir, 'not-json', 'model.json'), '{"modelTopology":');
    await mkdir(join(dir, 'no-topology'));
    await writeFile(join(dir, 'no-topology', 'model.json'), '{"weightsManifest":[]}');
    await saveModel(mlp(2), join(dir, 'no-weights'));
    await rm(join(dir, 'no-weights', WEIGHTS_FILE));
    await saveModel(mlp(2), join(dir, 'short-weights'));
    await truncate(join(dir, 'short-weights', WEIGHTS_FILE), 16);
    // A graph whose one input has no fixed row size: the protocols could not reshape rows.
    const free = graphArtifacts();
    const topology = free.modelTopology as { node: { name: string; attr: object }[] };
    topology.node[0]!.attr = {
      dtype: { type: 'DT_FLOAT' },
      shape: { shape: { dim: [{ size: '-1' }, { size: '-1' }] } },
    };
    await writeArtifacts(join(dir, 'free-shape'), free);
  });

  it.each([
    ['a folder that does not exist', 'missing', {}, /Cannot read/],
    ['a model.json that is not JSON', 'not-json', {}, /is not JSON/],
    ['a JSON file that is not a model', 'no-topology', {}, /no modelTopology/],
    ['a missing weights file', 'no-weights', {}, /Cannot read/],
    [
      'a weights file too short',
      'short-weights',
      {},
      /the weights hold 16 bytes, model.json lists 268/,
    ],
    ['a graph model served as tfjs-layers', 'graph', {}, /graph-model, not tfjs-layers/],
    [
      'a layers model served as tfjs-graph',
      'mlp',
      { format: 'tfjs-graph' },
      /layers-model, not tfjs-graph/,
    ],
    [
      'an input without a fixed row size',
      'free-shape',
      { format: 'tfjs-graph' },
      /input x has shape \[-1, -1\]/,
    ],
  ] as const)(
    '§serving-runtime fails on %s with ModelLoadFailed, permanently',
    async (_name, folder, fields, reason) => {
      const before = tf.memory().numTensors;
      const err = await failure(servingSpec(fileUri(folder), fields));
      expect(err).toBeInstanceOf(PermanentError);
      expect(err.message).toMatch(/^ModelLoadFailed: file:\/\//);
      expect(err.message).toMatch(reason);
      expect(tf.memory().numTensors).toBe(before);
    },
  );

  it('§serving-runtime fails transiently (not PermanentError) when the server answers 5xx', async () => {
    const flaky = createServer((_req, res) => res.writeHead(503).end());
    await new Promise<void>((resolve) => flaky.listen(0, '127.0.0.1', resolve));
    try {
      const port = (flaky.address() as AddressInfo).port;
      const err = await failure(servingSpec(`http://127.0.0.1:${port}/m/model.json`));
      expect(err).not.toBeInstanceOf(PermanentError);
      expect(err.message).toMatch(/^ModelLoadFailed: .*answered 503/);
    } finally {
      await new Promise((resolve) => flaky.close(resolve));
    }
  });
});

describe('loadPredictor: warm-up and tensors', () => {
  /** The rows of every prediction run while `f` ran: each ends in the output layer's softmax. */
  async function predictedRows(f: () => Promise<void>): Promise<number[]> {
    const profile = await tf.profile(f);
    return profile.kernels.filter((k) => k.name === 'Softmax').map((k) => k.inputShapes[0]![0]!);
  }

  it('§serving-runtime predicts a zero batch of 1 row before it returns', async () => {
    let loaded: LoadedPredictor | undefined;
    const rows = await predictedRows(async () => {
      loaded = await load(servingSpec(fileUri('mlp')));
    });
    loaded!.predictor.dispose();
    expect(rows).toEqual([1]);
  });

  it('§serving-runtime with a batcher, also predicts a batch of maxBatchSize rows', async () => {
    let loaded: LoadedPredictor | undefined;
    const rows = await predictedRows(async () => {
      loaded = await load(
        servingSpec(fileUri('mlp'), {
          batcher: { maxBatchSize: 16, maxLatencyMs: 2, maxQueueSize: 64 },
        }),
      );
    });
    loaded!.predictor.dispose();
    expect(rows).toEqual([1, 16]);
  });

  it('§serving-runtime leaks no tensor: predictions keep the count, dispose returns it', async () => {
    for (const spec of [
      servingSpec(fileUri('mlp'), { quantization: 'uint8' }),
      servingSpec(fileUri('graph'), { format: 'tfjs-graph' }),
    ]) {
      const before = tf.memory().numTensors;
      const { predictor } = await load(spec);
      const loaded = tf.memory().numTensors;
      const width = predictor.inputs[0]!.shape[1]!;
      // Concurrent predictions too: each one's tensors are its own.
      await Promise.all(
        [1, 2, 7, 32].map((rows) =>
          predictor.predict({ rows, inputs: [new Float32Array(rows * width).fill(0.5)] }),
        ),
      );
      expect(tf.memory().numTensors).toBe(loaded);
      await expect(
        predictor.predict({ rows: 2, inputs: [new Float32Array(width)] }),
      ).rejects.toThrow(/2 rows of shape/);
      expect(tf.memory().numTensors).toBe(loaded);
      predictor.dispose();
      expect(tf.memory().numTensors).toBe(before);
    }
  });

  it('§serving-runtime a batch predicts what its rows predict one by one', async () => {
    const { predictor } = await load(servingSpec(fileUri('mlp')));
    try {
      const batch = await predictor.predict({ rows: 3, inputs: [new Float32Array(ROWS)] });
      const single: number[] = [];
      for (let r = 0; r < 3; r++) {
        const row = new Float32Array(ROWS.slice(r * 4, r * 4 + 4));
        single.push(...(await predictor.predict({ rows: 1, inputs: [row] })).outputs[0]!);
      }
      expect(Array.from(batch.outputs[0]!)).toEqual(single);
    } finally {
      predictor.dispose();
    }
  });
});
