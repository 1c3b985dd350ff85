// The format of a data file told by its name (spec.dataset.format says it otherwise). IDX files
// are named by their own convention (see isIdxUri in idx.ts).
import { extname } from 'node:path';

export type NamedFormat = 'csv' | 'jsonl' | 'parquet';

export function formatOfName(name: string): NamedFormat | undefined {
  const ext = extname(name).toLowerCase();
  if (ext === '.csv') return 'csv';
  if (ext === '.jsonl' || ext === '.ndjson') return 'jsonl';
  if (ext === '.parquet') return 'parquet';
  return undefined;
}
