// The s3:// object store against a real S3 server (versitygw): listing, ranged reads, writes,
// the model store, checkpoints and serving on s3://, and what each kind of failure becomes.
import { createHash } from 'node:crypto';
import { mkdir, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { S3_ENV, S3_SECRET_KEYS } from '../../../../src/contract/storage.ts';
import { initBackend } from '../../../../src/runtime/backend.ts';
import { countLines, openSource } from '../../../../src/runtime/data/source.ts';
import { PermanentError } from '../../../../src/runtime/errors.ts';
import {
  MODEL_CARD,
  MODEL_JSON,
  WEIGHTS_FILE,
  loadArtifacts,
  saveModel,
} from '../../../../src/runtime/model/model-store.ts';
import { loadBaseModel } from '../../../../src/runtime/model/models.ts';
import type { ModelCard } from '../../../../src/runtime/model/output.ts';
import { loadIris, splitDataset } from '../../../../src/runtime/data/datasets.ts';
import type { TrainingSpec } from '../../../../src/runtime/spec.ts';
import { train } from '../../../../src/runtime/train/train.ts';
import { readUri } from '../../../../src/runtime/paths.ts';
import { loadPredictor } from '../../../../src/runtime/serving/model.ts';
import { storeFor } from '../../../../src/runtime/storage/index.ts';
import { S3Store, s3Settings } from '../../../../src/runtime/storage/s3.ts';
import {
  checkpointRoot,
  listCheckpoints,
  restoreCheckpoint,
  saveCheckpoint,
} from '../../../../src/runtime/train/checkpoints.ts';
import { flatWeights } from '../../../../src/runtime/train/weight-sync.ts';
import { freePort } from '../../../cluster/cluster.ts';
import { jobSpec, maxDifference } from '../fixtures.ts';
import { mlp, servingSpec } from '../serving/model-fixtures.ts';
import { type S3Fixture, startS3, writeCredentials } from './s3-fixture.ts';

let s3: S3Fixture;
let local: string;

beforeAll(async () => {
  await initBackend('cpu');
  s3 = await startS3('lake');
  local = await mkdtemp(join(tmpdir(), 'lepton-s3-local-'));
});
afterAll(async () => {
  await s3?.stop();
  await rm(local, { recursive: true, force: true });
});

const uri = (key: string): string => `s3://${s3.bucket}/${key}`;
const bytes = (n: number): Uint8Array => Uint8Array.from({ length: n }, (_, i) => (i * 7) % 256);
const md5 = (data: Uint8Array | string): string => createHash('md5').update(data).digest('hex');

describe('the s3:// object store §s3', () => {
  it('§s3 list pages through ListObjectsV2: every object below the prefix, by key, hidden and temporary ones left out', async () => {
    const store = storeFor(uri('x'), s3.env);
    const keys = Array.from(
      { length: 30 },
      (_, i) => `date=2026-11-${String(i + 1).padStart(2, '0')}/part-${i % 3}.csv`,
    );
    const noise = [
      'pages/.staging/a.csv',
      'pages/b.csv.tmp-1234',
      'pages/.c.csv.tmp-1234-ab12cd34',
      'pages-other/d.csv',
      'pages.csv',
    ];
    await Promise.all([
      ...keys.map((k) => store.write(uri(`pages/${k}`), k)),
      ...noise.map((k) => store.write(uri(k), k)),
    ]);
    // Seven keys a page: five pages, so a listing that stops after the first misses most.
    const paged = new S3Store({ ...s3Settings(s3.env), pageSize: 7 });
    const listed = await paged.list(uri('pages/'));
    expect(listed.map((o) => o.key)).toEqual([...keys].sort());
    expect(listed[0]).toEqual({
      uri: uri(`pages/${keys[0]}`),
      key: keys[0],
      size: keys[0]!.length,
      version: md5(keys[0]!),
    });
    expect(await paged.list(uri('pages'))).toEqual(listed);
    expect(await store.list(uri('nothing-here'))).toEqual([]);
  });

  it('§s3 stat gives size and ETag; readRange reads bytes [start, end) with a ranged GET', async () => {
    const store = storeFor(uri('x'), s3.env);
    const data = bytes(1000);
    await store.write(uri('ranges/blob.bin'), data);
    expect(await store.stat(uri('ranges/blob.bin'))).toEqual({
      uri: uri('ranges/blob.bin'),
      key: 'blob.bin',
      size: 1000,
      version: md5(data),
    });
    expect(await store.readRange(uri('ranges/blob.bin'), 100, 250)).toEqual(data.slice(100, 250));
    expect(await store.readRange(uri('ranges/blob.bin'), 990, 2000)).toEqual(data.slice(990));
    expect((await store.readRange(uri('ranges/blob.bin'), 1000, 1010)).length).toBe(0);
    expect(await store.read(uri('ranges/blob.bin'))).toEqual(data);
  });

  it('§s3 a data file streams from S3 (openSource, countLines) and reads whole (readUri)', async () => {
    const csv = 'a,b,label\n1,2,x\n3,4,y\n';
    await storeFor(uri('x'), s3.env).write(uri('data/small.csv'), csv);
    const source = await openSource(uri('data/small.csv'), s3.env);
    expect(source.size).toBe(csv.length);
    const chunks: Uint8Array[] = [];
    for await (const chunk of source.chunks) chunks.push(chunk);
    expect(Buffer.concat(chunks).toString()).toBe(csv);
    expect(await countLines(uri('data/small.csv'), s3.env)).toBe(4);
    expect((await readUri(uri('data/small.csv'), s3.env)).toString()).toBe(csv);
  });

  it('§s3 write replaces an object whole; removeAll removes what is below a prefix, and only that', async () => {
    const store = storeFor(uri('x'), s3.env);
    await store.write(uri('rm/a/one'), 'old');
    await store.write(uri('rm/a/one'), 'new');
    expect(Buffer.from(await store.read(uri('rm/a/one'))).toString()).toBe('new');
    await store.write(uri('rm/a/.hidden'), 'h');
    await store.write(uri('rm/a/deep/two'), '2');
    await store.write(uri('rm/ab/three'), '3');
    await store.removeAll(uri('rm/a'));
    expect((await store.list(uri('rm'))).map((o) => o.key)).toEqual(['ab/three']);
    await expect(store.stat(uri('rm/a/.hidden'))).rejects.toBeInstanceOf(PermanentError);
    await store.removeAll(uri('rm/none'));
  });
});

describe('models and checkpoints on s3:// §s3', () => {
  it('§s3 a model saved to s3:// loads back with the digest of the same model saved locally', async () => {
    const model = mlp(3);
    const here = await saveModel(model, join(local, 'model'));
    const there = await saveModel(model, uri('models/m1'), {}, s3.env);
    expect(there.digest).toBe(here.digest);
    const listed = await storeFor(uri('x'), s3.env).list(uri('models/m1'));
    expect(listed.map((o) => o.key)).toEqual([MODEL_JSON, WEIGHTS_FILE]);
    for (const location of [uri('models/m1'), uri('models/m1/'), uri(`models/m1/${MODEL_JSON}`)])
      expect((await loadArtifacts(location, s3.env)).digest).toBe(here.digest);
    const base = await loadBaseModel(uri('models/m1'), 0, s3.env);
    expect(base.digest).toBe(here.digest);
    expect(maxDifference(flatWeights(base.model), flatWeights(model))).toBe(0);
  });

  it('§s3 serving loads a model from s3:// and checks its digest', async () => {
    const saved = await saveModel(mlp(4), uri('models/served'), {}, s3.env);
    const loaded = await loadPredictor(
      servingSpec(uri('models/served'), { digest: saved.digest }),
      s3.env,
    );
    expect(loaded.digest).toBe(saved.digest);
    loaded.predictor.dispose();
    const wrong = await loadPredictor(
      servingSpec(uri('models/served'), { digest: `sha256:${'0'.repeat(64)}` }),
      s3.env,
    ).catch((e: unknown) => e);
    expect(wrong).toBeInstanceOf(PermanentError);
    expect((wrong as Error).message).toMatch(/^ModelDigestMismatch: /);
  });

  it('§s3 checkpoints on s3://: checkpoint.json marks a complete one, the newest `keep` stay, restore gives the weights back', async () => {
    const model = mlp(5);
    model.compile({ optimizer: tf.train.adam(0.01), loss: 'categoricalCrossentropy' });
    const xs = tf.ones([4, 4]);
    const ys = tf.oneHot(tf.tensor1d([0, 1, 2, 0], 'int32'), 3);
    const root = checkpointRoot(uri('run/checkpoints'), s3.env);
    const store = storeFor(root.uri, s3.env);
    let weights: Float32Array[] = [];
    let best: Float32Array[] = [];
    for (let epoch = 1; epoch <= 3; epoch++) {
      await model.fit(xs, ys, { epochs: 1, verbose: 0 });
      weights = flatWeights(model);
      best = weights.map((w) => w.map((v) => v + epoch));
      // What a pod killed mid-checkpoint left: no checkpoint.json, so no checkpoint.
      if (epoch === 3)
        await store.write(uri('run/checkpoints/epoch-000009/weights.bin'), 'partial');
      const state = {
        epoch,
        metrics: { loss: 1 / epoch },
        optimizer: 'Adam',
        createdAt: new Date().toISOString(),
      };
      await saveCheckpoint(root, model, state, { keep: 2, bestWeights: best });
    }
    const checkpoints = await listCheckpoints(root);
    expect(checkpoints.map((c) => [c.dir, c.state.epoch])).toEqual([
      [uri('run/checkpoints/epoch-000003'), 3],
      [uri('run/checkpoints/epoch-000002'), 2],
    ]);
    const folders = new Set((await store.list(root.uri)).map((o) => o.key.split('/')[0]));
    expect([...folders]).toEqual(['epoch-000002', 'epoch-000003']);
    const restored = await restoreCheckpoint(checkpoints[0]!);
    expect(maxDifference(flatWeights(restored.model), weights)).toBe(0);
    expect(maxDifference(restored.bestWeights!, best)).toBe(0);
    expect(restored.optimizerWeights.length).toBeGreaterThan(1);
    restored.optimizerWeights.forEach((w) => w.tensor.dispose());
    xs.dispose();
    ys.dispose();
  });
});

describe('training with output and checkpoints on s3:// §s3', () => {
  const spec = (): TrainingSpec =>
    jobSpec()
      .preset('mlp', { hiddenUnits: [8] })
      .synthetic({ generator: 'blobs' }, 0.2)
      .hyperparameters({ epochs: 4, batchSize: 16, learningRate: 0.01, seed: 3 })
      .output(uri('jobs/a/model'))
      .checkpoint({ everyEpochs: 1, keep: 2 })
      .build();
  const data = splitDataset(loadIris(), 0.2, { shuffle: true, seed: 3 });

  it('§s3 a job killed after epoch 2 resumes from its s3:// checkpoint and writes model and card to s3://', async () => {
    const stop = new AbortController();
    const killed = await train({
      spec: spec(),
      data,
      backend: 'cpu',
      env: s3.env,
      signal: stop.signal,
      onEpochEnd: (epoch) => {
        if (epoch === 2) stop.abort(new Error('killed'));
      },
    }).catch((err: unknown) => err);
    expect(killed).toEqual(new Error('killed'));
    const store = storeFor(uri('x'), s3.env);
    expect(await store.list(uri('jobs/a/model/model.json'))).toEqual([]);
    const resumed = await train({ spec: spec(), data, backend: 'cpu', env: s3.env });
    expect(resumed.resumedFromEpoch).toBe(2);
    const card = JSON.parse(
      Buffer.from(await store.read(uri(`jobs/a/model/${MODEL_CARD}`))).toString(),
    ) as ModelCard;
    expect(card.digest).toBe(resumed.result.model.digest);
    expect((await loadArtifacts(uri('jobs/a/model'), s3.env)).digest).toBe(card.digest);
    const checkpoints = await listCheckpoints(
      checkpointRoot(uri('jobs/a/model/checkpoints'), s3.env),
    );
    expect(checkpoints.map((c) => c.state.epoch)).toEqual([4, 3]);
  });
});

describe('S3 failures §s3', () => {
  let wrongEndpoint: string;
  let credentials: Record<string, string>;

  beforeAll(async () => {
    // A port nothing listens on: connections are refused.
    wrongEndpoint = `http://127.0.0.1:${await freePort()}`;
    credentials = {};
    const cases: [string, string | undefined, string | undefined][] = [
      ['unknown-key', 'NOSUCHKEY0000000000', s3.server.secretAccessKey],
      ['wrong-secret', s3.server.accessKeyId, 'not-the-secret-0000000000000000000000000'],
      ['no-secret-file', s3.server.accessKeyId, undefined],
      ['no-files', undefined, undefined],
    ];
    for (const [name, id, secret] of cases) {
      credentials[name] = join(s3.dir, 'bad-credentials', name);
      await writeCredentials(credentials[name], id, secret);
    }
    await mkdir(credentials['no-files']!, { recursive: true });
    await storeFor(uri('x'), s3.env).write(uri('exists.txt'), 'here');
  });

  const withEnv = (changes: NodeJS.ProcessEnv): NodeJS.ProcessEnv => ({ ...s3.env, ...changes });

  it('§s3 a wrong endpoint is a transient error that names the URI and the endpoint', async () => {
    const env = withEnv({ [S3_ENV.endpoint]: wrongEndpoint });
    for (const attempt of [
      (): Promise<unknown> => storeFor(uri('exists.txt'), env).read(uri('exists.txt')),
      (): Promise<unknown> => storeFor(uri('exists.txt'), env).list(uri('')),
    ]) {
      const err = (await attempt().catch((e: unknown) => e)) as Error;
      expect(err).toBeInstanceOf(Error);
      expect(err).not.toBeInstanceOf(PermanentError);
      expect(err.message).toContain(wrongEndpoint);
      expect(err.message).toContain('ECONNREFUSED');
      expect(err.message).toContain(`s3://${s3.bucket}/`);
    }
  });

  it('§s3 an endpoint that is no URL is permanent', () => {
    expect(() => storeFor(uri('exists.txt'), withEnv({ [S3_ENV.endpoint]: 'lake:9000' }))).toThrow(
      new PermanentError(`${S3_ENV.endpoint} "lake:9000" is not a URL: use http(s)://host[:port]`),
    );
  });

  it.each([
    ['no-secret-file', S3_SECRET_KEYS.secretAccessKey],
    ['no-files', S3_SECRET_KEYS.accessKeyId],
  ])(
    '§s3 missing credentials files (%s) are permanent, naming the file and not the keys',
    async (name, file) => {
      const env = withEnv({ [S3_ENV.credentialsDir]: credentials[name] });
      const err = (await storeFor(uri('exists.txt'), env)
        .read(uri('exists.txt'))
        .catch((e: unknown) => e)) as Error;
      expect(err).toBeInstanceOf(PermanentError);
      expect(err.message).toContain(`has no file ${file}`);
      expect(err.message).not.toContain(s3.server.accessKeyId);
    },
  );

  it.each([
    ['unknown-key', 'InvalidAccessKeyId'],
    ['wrong-secret', 'SignatureDoesNotMatch'],
  ])('§s3 bad keys (%s) are permanent: %s', async (name, code) => {
    const env = withEnv({ [S3_ENV.credentialsDir]: credentials[name] });
    const store = storeFor(uri('exists.txt'), env);
    for (const attempt of [
      (): Promise<unknown> => store.read(uri('exists.txt')),
      (): Promise<unknown> => store.stat(uri('exists.txt')),
      (): Promise<unknown> => store.list(uri('')),
      (): Promise<unknown> => store.write(uri('new.txt'), 'x'),
    ]) {
      const err = (await attempt().catch((e: unknown) => e)) as Error;
      expect(err).toBeInstanceOf(PermanentError);
      expect(err.message).toContain(code);
      expect(err.message).not.toContain(s3.server.secretAccessKey);
    }
  });

  it('§s3 a bucket that does not exist is permanent: NoSuchBucket', async () => {
    const store = storeFor('s3://no-such-bucket/k', s3.env);
    for (const attempt of [
      (): Promise<unknown> => store.read('s3://no-such-bucket/k'),
      (): Promise<unknown> => store.stat('s3://no-such-bucket/k'),
      (): Promise<unknown> => store.list('s3://no-such-bucket/prefix'),
      (): Promise<unknown> => store.write('s3://no-such-bucket/k', 'x'),
    ]) {
      const err = (await attempt().catch((e: unknown) => e)) as Error;
      expect(err).toBeInstanceOf(PermanentError);
      expect(err.message).toMatch(
        /^S3 \w+ s3:\/\/no-such-bucket\/\S* failed: NoSuchBucket \(404\)/,
      );
    }
  });

  it('§s3 a key that does not exist is permanent: NoSuchKey', async () => {
    const store = storeFor(uri('missing.csv'), s3.env);
    for (const attempt of [
      (): Promise<unknown> => store.read(uri('missing.csv')),
      (): Promise<unknown> => store.stat(uri('missing.csv')),
      (): Promise<unknown> => store.stream(uri('missing.csv')),
      (): Promise<unknown> => loadArtifacts(uri('models/missing'), s3.env),
    ]) {
      const err = (await attempt().catch((e: unknown) => e)) as Error;
      expect(err).toBeInstanceOf(PermanentError);
      expect(err.message).toContain('NoSuchKey (404)');
    }
  });

  it('§s3 without a credentials folder requests go unsigned (anonymous), and a private bucket refuses them', async () => {
    const env = withEnv({ [S3_ENV.credentialsDir]: undefined });
    const err = (await storeFor(uri('exists.txt'), env)
      .read(uri('exists.txt'))
      .catch((e: unknown) => e)) as Error;
    expect(err).toBeInstanceOf(PermanentError);
    expect(err.message).toContain('AccessDenied (403)');
  });
});
