// Issue 11 §s3: CSV and JSONL datasets on s3:// (read whole, as local ones are), against the
// real S3 server: a prefix is every object below it in key order (_SUCCESS and hidden keys left
// out), one object is itself, and a prefix with nothing below it is a permanent error.
import { loadDataset } from '../../../../src/runtime/data/datasets.ts';
import { PermanentError } from '../../../../src/runtime/errors.ts';
import { resolveSpec } from '../../../../src/runtime/spec.ts';
import { storeFor } from '../../../../src/runtime/storage/index.ts';
import { type S3Fixture, startS3 } from '../storage/s3-fixture.ts';

let s3: S3Fixture;
beforeAll(async () => {
  s3 = await startS3('tables');
});
afterAll(async () => {
  await s3?.stop();
});

const dataset = (uri: string) =>
  resolveSpec({ model: { preset: 'mlp' }, dataset: { uri, labelColumn: 'label' } }).dataset;

describe('§s3 a CSV dataset on s3://', () => {
  it('§s3 reads every object of a prefix in key order, and one object alone', async () => {
    const base = `s3://${s3.bucket}/iris`;
    const store = storeFor(base, s3.env);
    await store.write(`${base}/b.csv`, 'x,y,label\n3,4,b\n5,6,a\n');
    await store.write(`${base}/a.csv`, 'x,y,label\n1,2,a\n');
    await store.write(`${base}/_SUCCESS`, '');
    const all = await loadDataset(dataset(`${base}/`), 'classification', s3.env);
    expect(all.numExamples).toBe(3);
    expect(Array.from(all.features)).toEqual([1, 2, 3, 4, 5, 6]);
    expect(all.classNames).toEqual(['a', 'b']);
    const one = await loadDataset(dataset(`${base}/b.csv`), 'classification', s3.env);
    expect(Array.from(one.features)).toEqual([3, 4, 5, 6]);
  });

  it('§s3 reads JSONL objects', async () => {
    const base = `s3://${s3.bucket}/events`;
    await storeFor(base, s3.env).write(
      `${base}/part-0.jsonl`,
      '{"x":1,"label":"u"}\n{"x":2,"label":"v"}\n',
    );
    const ds = await loadDataset(dataset(`${base}/`), 'classification', s3.env);
    expect(ds.numExamples).toBe(2);
  });

  it('§s3 a prefix with nothing below it is a permanent error naming the key', async () => {
    const uri = `s3://${s3.bucket}/nothing/here.csv`;
    const err = await loadDataset(dataset(uri), 'classification', s3.env).catch((e: Error) => e);
    expect(err).toBeInstanceOf(PermanentError);
    expect((err as Error).message).toMatch(/nothing\/here\.csv/);
    expect((err as Error).message).toMatch(/NoSuchKey|NotFound|404/);
  });
});
