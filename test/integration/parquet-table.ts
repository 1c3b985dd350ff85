// Parquet tables for the data-lake tests: `cols` float32 features and a learnable INT32 label
// (whether x0 is above the middle). Run as a script it writes `files` such tables into a
// folder: hyparquet-writer runs several times slower inside jest's module system than in plain
// Node, and the memory test needs hundreds of MB of them.
//
//   node test/integration/parquet-table.ts OUT_DIR FILES ROWS COLS
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { parquetWriteBuffer } from 'hyparquet-writer';

export function learnableTable(
  rows: number,
  cols: number,
  opts: { label?: boolean; rowGroupSize?: number } = {},
): Uint8Array {
  const columnData: { name: string; data: Float32Array | Int32Array; type: 'FLOAT' | 'INT32' }[] =
    [];
  for (let c = 0; c < cols; c++) {
    const data = new Float32Array(rows);
    for (let i = 0; i < rows; i++) data[i] = ((i * 7919 + c * 104729) % 1000) / 1000;
    columnData.push({ name: `x${c}`, data, type: 'FLOAT' });
  }
  if (opts.label !== false) {
    const label = new Int32Array(rows);
    for (let i = 0; i < rows; i++) label[i] = columnData[0]!.data[i]! > 0.5 ? 1 : 0;
    columnData.push({ name: 'label', data: label, type: 'INT32' });
  }
  return new Uint8Array(
    parquetWriteBuffer({
      columnData,
      rowGroupSize: opts.rowGroupSize ?? 5000,
      codec: 'UNCOMPRESSED',
    }),
  );
}

if (import.meta.main) {
  const [out, files, rows, cols] = process.argv.slice(2);
  if (!out || !files || !rows || !cols) {
    process.stderr.write('usage: parquet-table.ts OUT_DIR FILES ROWS COLS\n');
    process.exit(2);
  }
  mkdirSync(out, { recursive: true });
  for (let f = 0; f < Number(files); f++)
    writeFileSync(join(out, `part-${f}.parquet`), learnableTable(Number(rows), Number(cols)));
}
