// Throughput of the work queue (src/core/workqueue.ts) with runWorkers: keys per second handed
// out and done, with de-duplication at work (every key is added several times while queued).
//
//   node bench/workqueue.ts [--keys 100000] [--adds 3] [--concurrency 4]
import { parseArgs } from 'node:util';
import { runWorkers } from '../src/core/worker.ts';
import { WorkQueue } from '../src/core/workqueue.ts';

const { values } = parseArgs({
  options: {
    keys: { type: 'string', default: '100000' },
    adds: { type: 'string', default: '3' },
    concurrency: { type: 'string', default: '4' },
  },
});
const keys = Number(values.keys);
const adds = Number(values.adds);
const concurrency = Number(values.concurrency);

async function run(): Promise<{ seconds: number; handled: number }> {
  const queue = new WorkQueue({ name: 'bench' });
  let handled = 0;
  const started = performance.now();
  for (let a = 0; a < adds; a++) for (let i = 0; i < keys; i++) queue.add(`ns/key-${i}`);
  const workers = runWorkers(queue, concurrency, async () => {
    handled++;
    if (handled === keys) queue.shutDown();
  });
  await workers;
  return { seconds: (performance.now() - started) / 1000, handled };
}

await run(); // warm-up
const results = [];
for (let i = 0; i < 5; i++) results.push(await run());
const rates = results.map((r) => r.handled / r.seconds).sort((a, b) => a - b);
const median = rates[2] ?? 0;
process.stdout.write(
  `work queue: ${keys} keys x ${adds} adds, ${concurrency} workers: median ${Math.round(median).toLocaleString('en')} keys/s ` +
    `(min ${Math.round(rates[0] ?? 0).toLocaleString('en')}, max ${Math.round(rates[4] ?? 0).toLocaleString('en')}); ` +
    `each key handled once: ${results.every((r) => r.handled === keys)}\n`,
);
