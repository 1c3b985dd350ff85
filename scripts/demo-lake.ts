// The demo's data lake: writes a Hive-partitioned Parquet dataset (two moons, 3 days, 2 files a
// day) into the local cluster's S3 server, and reads back what a trained model's card says of
// its data. Settings and keys come from .cluster/s3.json, which `npm run cluster -- up` writes.
//
//   node scripts/demo-lake.ts write BUCKET PREFIX
//   node scripts/demo-lake.ts card BUCKET KEY          # prints lineage of lepton.json at KEY
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import {
  CreateBucketCommand,
  GetObjectCommand,
  PutObjectCommand,
  S3Client,
} from '@aws-sdk/client-s3';
import { parquetWriteBuffer } from 'hyparquet-writer';

const settings = JSON.parse(
  readFileSync(join(import.meta.dirname, '..', '.cluster', 's3.json'), 'utf8'),
) as { endpoint: string; region: string; accessKeyId: string; secretAccessKey: string };
const s3 = new S3Client({
  endpoint: settings.endpoint,
  region: settings.region,
  forcePathStyle: true,
  credentials: { accessKeyId: settings.accessKeyId, secretAccessKey: settings.secretAccessKey },
});

/** Two interleaved half circles with noise, labels "inner" and "outer". */
function moons(rows: number, seed: number) {
  let state = seed;
  const rand = () => (state = (Math.imul(state, 1664525) + 1013904223) >>> 0) / 2 ** 32;
  const x = new Float32Array(rows);
  const y = new Float32Array(rows);
  const label: string[] = [];
  for (let i = 0; i < rows; i++) {
    const t = Math.PI * rand();
    const outer = rand() < 0.5;
    x[i] = (outer ? Math.cos(t) : 1 - Math.cos(t)) + 0.1 * (rand() - 0.5);
    y[i] = (outer ? Math.sin(t) : 0.5 - Math.sin(t)) + 0.1 * (rand() - 0.5);
    label.push(outer ? 'outer' : 'inner');
  }
  return { x, y, label };
}

async function write(bucket: string, prefix: string): Promise<void> {
  await s3.send(new CreateBucketCommand({ Bucket: bucket })).catch((err: Error) => {
    if (err.name !== 'BucketAlreadyOwnedByYou') throw err;
  });
  const days = ['2026-11-29', '2026-11-30', '2026-12-01'];
  let files = 0;
  for (const [d, day] of days.entries())
    for (const part of [0, 1]) {
      const { x, y, label } = moons(400, 7 + 10 * d + part);
      const body = new Uint8Array(
        parquetWriteBuffer({
          columnData: [
            { name: 'x', data: x, type: 'FLOAT' },
            { name: 'y', data: y, type: 'FLOAT' },
            { name: 'shape', data: label, type: 'STRING' },
          ],
          rowGroupSize: 100,
        }),
      );
      const key = `${prefix}/date=${day}/part-${part}.parquet`;
      await s3.send(
        new PutObjectCommand({ Bucket: bucket, Key: key, Body: body, ContentLength: body.length }),
      );
      files++;
    }
  console.log(
    `wrote ${files} Parquet files under s3://${bucket}/${prefix}/ (date=${days.join(', date=')})`,
  );
}

async function card(bucket: string, key: string): Promise<void> {
  const out = await s3.send(new GetObjectCommand({ Bucket: bucket, Key: key }));
  const text = await out.Body!.transformToString();
  const lineage = (JSON.parse(text) as { lineage: { datasetIdentity?: unknown } }).lineage;
  console.log(JSON.stringify(lineage.datasetIdentity ?? lineage, null, 2));
}

const [command, bucket, where] = process.argv.slice(2);
try {
  if (command === 'write' && bucket && where) await write(bucket, where);
  else if (command === 'card' && bucket && where) await card(bucket, where);
  else {
    console.error('usage: demo-lake.ts write BUCKET PREFIX | card BUCKET KEY');
    process.exitCode = 2;
  }
} finally {
  s3.destroy();
}
