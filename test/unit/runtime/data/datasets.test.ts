import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import {
  type Dataset,
  exampleFeatures,
  loadDataset,
  loadIris,
  shardDataset,
  splitDataset,
  tableToDataset,
  withClassNames,
} from '../../../../src/runtime/data/datasets.ts';
import { PermanentError } from '../../../../src/runtime/errors.ts';
import type { DatasetSpec, SyntheticSpec, Task } from '../../../../src/runtime/spec.ts';
import { generateSynthetic } from '../../../../src/runtime/data/synthetic.ts';
import { Table, parseCsv, parseJsonl } from '../../../../src/runtime/data/table.ts';

function csv(
  text: string,
  opts: { label?: string; features?: string[]; task?: Task } = {},
): Dataset {
  const label = opts.label ?? 'label';
  const table = new Table(label);
  parseCsv(text, 'data.csv', table);
  return tableToDataset(table, {
    source: 'data.csv',
    labelColumn: label,
    featureColumns: opts.features,
    task: opts.task ?? 'classification',
  });
}

function jsonl(text: string, opts: { label?: string; task?: Task } = {}): Dataset {
  const label = opts.label ?? 'label';
  const table = new Table(label);
  parseJsonl(text, 'data.jsonl', table);
  return tableToDataset(table, {
    source: 'data.jsonl',
    labelColumn: label,
    task: opts.task ?? 'classification',
  });
}

function rows(ds: Dataset): number[][] {
  return Array.from({ length: ds.numExamples }, (_, i) => Array.from(exampleFeatures(ds, i)));
}

function synthetic(overrides: Partial<SyntheticSpec> = {}): SyntheticSpec {
  return {
    generator: 'blobs',
    samples: 100,
    features: 2,
    classes: 3,
    noise: 0.1,
    seed: 42,
    ...overrides,
  };
}

describe('CSV', () => {
  it('uses every numeric column but the label as features, in header order', () => {
    const ds = csv('a,name,b,label\n1,x,2,cat\n3,y,4,dog\n5,z,6,cat\n');
    expect(ds.featureNames).toEqual(['a', 'b']);
    expect(rows(ds)).toEqual([
      [1, 2],
      [3, 4],
      [5, 6],
    ]);
    expect(ds.classNames).toEqual(['cat', 'dog']);
    expect(Array.from(ds.labels)).toEqual([0, 1, 0]);
    expect(ds.numClasses).toBe(2);
  });

  it('reads quoted fields, CRLF line ends, blank lines and a byte order mark', () => {
    const ds = csv('\ufeff"a","b, c",label\r\n1,"2",x\r\n\r\n"3",4,"y ""quoted"""\r\n');
    expect(ds.featureNames).toEqual(['a', 'b, c']);
    expect(rows(ds)).toEqual([
      [1, 2],
      [3, 4],
    ]);
    expect(ds.classNames).toEqual(['x', 'y "quoted"']);
  });

  it('orders numeric class labels numerically', () => {
    const ds = csv('f,label\n1,10\n2,9\n3,10.0\n4,1\n');
    expect(ds.classNames).toEqual(['1', '9', '10']);
    expect(Array.from(ds.labels)).toEqual([2, 1, 2, 0]);
  });

  it('keeps numeric labels as values for regression', () => {
    const ds = csv('f,label\n1,0.5\n2,-3\n', { task: 'regression' });
    expect(Array.from(ds.labels)).toEqual([0.5, -3]);
    expect(ds.classNames).toEqual([]);
    expect(ds.numClasses).toBe(0);
  });

  it('takes the feature columns asked for, in that order', () => {
    const ds = csv('a,b,c,label\n1,2,3,x\n4,5,6,y\n', { features: ['c', 'a'] });
    expect(rows(ds)).toEqual([
      [3, 1],
      [6, 4],
    ]);
  });

  it.each([
    [
      'a row with a field too many',
      'a,label\n1,x\n2,y,3\n',
      {},
      /data\.csv line 3: expected 2 fields/,
    ],
    [
      'an unclosed quote',
      'a,label\n1,x\n"2,y\n',
      {},
      /data\.csv line 3: a quoted field is never closed/,
    ],
    [
      'a text in an asked-for feature',
      'a,label\n1,x\n2,y\nz,x\n',
      { features: ['a'] },
      /data\.csv line 4: "a" is not a number \("z"\)/,
    ],
    [
      'an empty asked-for feature',
      'a,label\n1,x\n,y\n',
      { features: ['a'] },
      /data\.csv line 3: "a" is empty/,
    ],
    ['a missing label', 'a,label\n1,x\n2,\n', {}, /data\.csv line 3: no label in "label"/],
    [
      'a text label for regression',
      'a,label\n1,2\n2,big\n',
      { task: 'regression' as Task },
      /data\.csv line 3: label "big" is not a number/,
    ],
    ['no label column', 'a,b\n1,2\n', {}, /no label column "label" \(columns: a, b\)/],
    [
      'an unknown feature column',
      'a,label\n1,x\n',
      { features: ['nope'] },
      /no feature column "nope"/,
    ],
    ['a duplicate header', 'a,a,label\n1,2,x\n', {}, /line 1: header names column "a" twice/],
    ['a single class', 'a,label\n1,x\n2,x\n', {}, /single value/],
    ['no rows', 'a,label\n', {}, /holds no examples/],
  ])('rejects %s, naming the line', (_name, text, opts, message) => {
    expect(() => csv(text, opts)).toThrow(PermanentError);
    expect(() => csv(text, opts)).toThrow(message);
  });
});

describe('JSONL', () => {
  it('reads numbers and booleans as features and maps string labels', () => {
    const ds = jsonl(
      '{"x": 1, "flag": true, "label": "b"}\n\n{"x": 2.5, "flag": false, "label": "a"}\n',
    );
    expect(ds.featureNames).toEqual(['x', 'flag']);
    expect(rows(ds)).toEqual([
      [1, 1],
      [2.5, 0],
    ]);
    expect(ds.classNames).toEqual(['a', 'b']);
    expect(Array.from(ds.labels)).toEqual([1, 0]);
  });

  it('leaves out of the default features a key that some line lacks or that holds text', () => {
    const ds = jsonl(
      '{"x": 1, "y": 2, "s": "t", "label": 0}\n{"x": 3, "label": 1}\n{"x": 4, "z": 1, "label": 1}\n',
    );
    expect(ds.featureNames).toEqual(['x']);
  });

  it('maps boolean labels false, true to classes 0, 1', () => {
    const ds = jsonl('{"x": 1, "label": true}\n{"x": 2, "label": false}\n');
    expect(ds.classNames).toEqual(['false', 'true']);
    expect(Array.from(ds.labels)).toEqual([1, 0]);
  });

  it.each([
    ['invalid JSON', '{"x": 1, "label": 0}\n{"x": 2,\n', /data\.jsonl line 2: not JSON/],
    ['an array', '{"x": 1, "label": 0}\n\n[1, 2]\n', /data\.jsonl line 3: not a JSON object/],
  ])('rejects %s, naming the line', (_name, text, message) => {
    expect(() => jsonl(text)).toThrow(message);
  });
});

describe('loadDataset from a URI', () => {
  let dir: string;
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'lepton-data-'));
    await mkdir(join(dir, 'parts'));
    await writeFile(join(dir, 'parts', 'b.csv'), 'f,label\n3,y\n4,x\n');
    await writeFile(join(dir, 'parts', 'a.csv'), 'f,label\n1,x\n2,y\n');
    await writeFile(join(dir, 'parts', 'notes.txt'), 'not data');
    await writeFile(join(dir, 'one.ndjson'), '{"f": 1, "y": 0}\n{"f": 2, "y": 1}\n');
    await writeFile(join(dir, 'bad.csv'), 'f,label\n1,x\n2\n');
  });
  afterAll(() => rm(dir, { recursive: true, force: true }));

  const spec = (uri: string, overrides: Partial<DatasetSpec> = {}): DatasetSpec => ({
    uri,
    labelColumn: 'label',
    validationSplit: 0,
    shuffle: true,
    ...overrides,
  });

  it('reads a folder as its files of the format, in name order', async () => {
    const ds = await loadDataset(spec(pathToFileURL(join(dir, 'parts')).href), 'classification');
    expect(rows(ds)).toEqual([[1], [2], [3], [4]]);
  });

  it('reads a pvc URI through LEPTON_PATH_MAP, with the format from the extension', async () => {
    const env = { LEPTON_PATH_MAP: JSON.stringify({ '/mnt/pvc/data': dir }) };
    const ds = await loadDataset(
      spec('pvc://data/one.ndjson', { labelColumn: 'y' }),
      'regression',
      env,
    );
    expect(Array.from(ds.labels)).toEqual([0, 1]);
  });

  it('names the file and line of a broken row', async () => {
    await expect(
      loadDataset(spec(pathToFileURL(join(dir, 'bad.csv')).href), 'classification'),
    ).rejects.toThrow(/bad\.csv line 3: expected 2 fields/);
  });

  it('reports a missing file as a permanent error', async () => {
    const missing = loadDataset(spec(pathToFileURL(join(dir, 'nope.csv')).href), 'classification');
    await expect(missing).rejects.toBeInstanceOf(PermanentError);
  });
});

describe('splitDataset', () => {
  const ds = generateSynthetic(synthetic({ samples: 100 }), 'classification');

  it('holds out the fraction, and the two parts together are the whole', () => {
    const { train, validation } = splitDataset(ds, 0.2, { shuffle: true, seed: 7 });
    expect(train.numExamples).toBe(80);
    expect(validation?.numExamples).toBe(20);
    const all = [...rows(train), ...rows(validation!)].map((r) => r.join()).sort();
    expect(all).toEqual(
      rows(ds)
        .map((r) => r.join())
        .sort(),
    );
  });

  it('gives the same split for the same seed and another for another seed', () => {
    const a = splitDataset(ds, 0.2, { shuffle: true, seed: 7 });
    const b = splitDataset(ds, 0.2, { shuffle: true, seed: 7 });
    const c = splitDataset(ds, 0.2, { shuffle: true, seed: 8 });
    expect(rows(a.validation!)).toEqual(rows(b.validation!));
    expect(rows(a.validation!)).not.toEqual(rows(c.validation!));
  });

  it('without shuffling holds out the last examples, as Keras does', () => {
    const { validation } = splitDataset(ds, 0.1, { shuffle: false, seed: 7 });
    expect(rows(validation!)).toEqual(rows(ds).slice(90));
  });

  it('has no validation set at fraction 0 and refuses a split that leaves nothing to train on', () => {
    expect(splitDataset(ds, 0, { shuffle: true, seed: 1 }).validation).toBeUndefined();
    const tiny = generateSynthetic(synthetic({ samples: 10 }), 'classification');
    expect(() => splitDataset(tiny, 0.95, { shuffle: true, seed: 1 })).toThrow(PermanentError);
  });
});

describe('shardDataset', () => {
  it.each([
    [100, 1],
    [100, 3],
    [101, 4],
    [7, 7],
  ])('%i examples over %i workers: disjoint shards that cover every example', (n, workers) => {
    const ds = generateSynthetic(synthetic({ samples: n, features: 3 }), 'classification');
    const keys = (d: Dataset) => rows(d).map((r) => r.join());
    const shards = Array.from({ length: workers }, (_, r) => shardDataset(ds, r, workers));
    const seen = shards.flatMap(keys);
    expect(new Set(seen).size).toBe(seen.length);
    expect(seen.sort()).toEqual(keys(ds).sort());
    const sizes = shards.map((s) => s.numExamples);
    expect(Math.max(...sizes) - Math.min(...sizes)).toBeLessThanOrEqual(1);
  });

  it('refuses more workers than examples and a rank outside the world', () => {
    const ds = generateSynthetic(synthetic({ samples: 10 }), 'classification');
    expect(() => shardDataset(ds, 0, 11)).toThrow(PermanentError);
    expect(() => shardDataset(ds, 3, 3)).toThrow(PermanentError);
  });
});

describe('generateSynthetic', () => {
  it.each(['blobs', 'moons', 'spirals', 'xor', 'linear'] as const)(
    '%s: the same seed gives the same data, another seed other data',
    (generator) => {
      const task: Task = generator === 'linear' ? 'regression' : 'classification';
      const a = generateSynthetic(synthetic({ generator, seed: 1 }), task);
      const b = generateSynthetic(synthetic({ generator, seed: 1 }), task);
      const c = generateSynthetic(synthetic({ generator, seed: 2 }), task);
      expect(a.features).toEqual(b.features);
      expect(a.labels).toEqual(b.labels);
      expect(a.features).not.toEqual(c.features);
      expect(a.numExamples).toBe(100);
      expect(a.features.every(Number.isFinite)).toBe(true);
    },
  );

  it('balances the classes', () => {
    const ds = generateSynthetic(
      synthetic({ generator: 'spirals', samples: 90, classes: 3 }),
      'classification',
    );
    const counts = [0, 0, 0];
    ds.labels.forEach((l) => counts[l]!++);
    expect(counts).toEqual([30, 30, 30]);
    expect(ds.classNames).toEqual(['0', '1', '2']);
  });

  it('labels xor by the signs of the noiseless point', () => {
    const ds = generateSynthetic(synthetic({ generator: 'xor', noise: 0 }), 'classification');
    rows(ds).forEach(([x, y], i) => expect(ds.labels[i]).toBe(x! > 0 !== y! > 0 ? 1 : 0));
  });

  it('refuses to make classes out of the linear generator', () => {
    expect(() => generateSynthetic(synthetic({ generator: 'linear' }), 'classification')).toThrow(
      /set spec\.model\.task: regression/,
    );
  });
});

describe('loadIris and withClassNames', () => {
  it('has 150 flowers of 3 species', () => {
    const iris = loadIris();
    expect(iris.numExamples).toBe(150);
    expect(iris.numFeatures).toBe(4);
    expect(iris.classNames).toEqual(['setosa', 'versicolor', 'virginica']);
  });

  it('re-indexes labels by the class names of a model, and refuses a class it does not know', () => {
    const ds = csv('f,label\n1,b\n2,c\n');
    expect(Array.from(withClassNames(ds, ['c', 'a', 'b']).labels)).toEqual([2, 0]);
    expect(() => withClassNames(ds, ['a', 'b'])).toThrow(/class "c"/);
  });
});
