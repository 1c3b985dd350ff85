import * as tf from '@tensorflow/tfjs';
import { initBackend } from '../../../../src/runtime/backend.ts';
import { allTensors, toTensors } from '../../../../src/runtime/data/batches.ts';
import {
  type Dataset,
  splitDataset,
  tableToDataset,
} from '../../../../src/runtime/data/datasets.ts';
import { Table, parseCsv } from '../../../../src/runtime/data/table.ts';

/** `n` examples with features i, 10i and the class i mod 2. */
function numbered(n: number): Dataset {
  const lines = ['a,b,label'];
  for (let i = 0; i < n; i++) lines.push(`${i},${10 * i},${i % 2}`);
  const table = new Table('label');
  parseCsv(lines.join('\n'), 'numbered.csv', table);
  return tableToDataset(table, {
    source: 'numbered.csv',
    labelColumn: 'label',
    task: 'classification',
  });
}

const values = (t: tf.Tensor): number[] => Array.from(t.dataSync());

describe.each(['cpu', 'wasm'])('§memory batches on the %s backend', (backend) => {
  beforeAll(() => initBackend(backend));
  afterAll(() => initBackend('cpu'));

  const ds = numbered(40);

  it('§memory a batch of a shuffled split holds the rows its indices name, with their labels', () => {
    const { train } = splitDataset(ds, 0.25, { shuffle: true, seed: 3 });
    const { x, y } = toTensors(train, [0, 5, 29], [2], { oneHotDepth: 2 });
    const xs = values(x);
    const firsts = [xs[0]!, xs[2]!, xs[4]!];
    expect([xs[1], xs[3], xs[5]]).toEqual(firsts.map((a) => 10 * a));
    expect(values(y)).toEqual(firsts.flatMap((a) => (a % 2 === 0 ? [1, 0] : [0, 1])));
    tf.dispose([x, y]);
  });

  it('§memory a batch keeps its values when the next one is made (reused arrays only where the backend copies)', () => {
    const first = toTensors(ds, [1, 2, 3], [2], {});
    const second = toTensors(ds, [7, 8, 9], [2], {});
    expect(values(first.x)).toEqual([1, 10, 2, 20, 3, 30]);
    expect(values(first.y)).toEqual([1, 0, 1]);
    expect(values(second.x)).toEqual([7, 70, 8, 80, 9, 90]);
    tf.dispose([first.x, first.y, second.x, second.y]);
  });

  it.each([
    ['shuffled', true],
    ['in file order', false],
  ])(
    '§memory allTensors of the validation split (%s) is the split in its order',
    (_name, shuffle) => {
      const { validation } = splitDataset(ds, 0.25, { shuffle, seed: 3 });
      const { x, y } = allTensors(validation!, [2], {});
      const xs = values(x);
      expect(x.shape).toEqual([10, 2]);
      for (let i = 0; i < 10; i++) {
        expect(xs[2 * i + 1]).toBe(10 * xs[2 * i]!);
        expect(values(y)[i]).toBe(xs[2 * i]! % 2);
      }
      if (!shuffle)
        expect(xs.filter((_, j) => j % 2 === 0)).toEqual([30, 31, 32, 33, 34, 35, 36, 37, 38, 39]);
      tf.dispose([x, y]);
    },
  );
});
