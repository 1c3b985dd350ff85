// The order of the classes of a classification dataset, the same whichever format the labels come
// from (CSV, JSONL, Parquet): class k is the k-th distinct label in sorted order, numerically when
// every label is a number, so the same data give the same class indices in every loader.
import type { LabelKey } from './table.ts';

/** The indices into `keys` (distinct labels) in class order. */
export function classOrder(keys: readonly LabelKey[]): number[] {
  const order = keys.map((_, id) => id);
  const compare = keys.every((k) => typeof k === 'number')
    ? (a: number, b: number) => (keys[a] as number) - (keys[b] as number)
    : (a: number, b: number) => byText(keys[a]!, keys[b]!);
  return order.sort(compare);
}

function byText(a: LabelKey, b: LabelKey): number {
  const x = String(a);
  const y = String(b);
  return x < y ? -1 : x > y ? 1 : 0;
}
