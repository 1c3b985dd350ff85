import type { WorkQueue } from './workqueue.ts';

/**
 * Runs `concurrency` loops that take a key, handle it and mark it done, until the queue shuts
 * down; resolves when every loop has stopped. The queue never hands one key to two loops.
 * `handle` should deal with its own errors (requeue, log); one that escapes goes to `onError`
 * so that a single bad key cannot stop a worker.
 */
export async function runWorkers(
  queue: WorkQueue,
  concurrency: number,
  handle: (key: string) => Promise<void>,
  onError?: (key: string, err: unknown) => void,
): Promise<void> {
  if (!Number.isInteger(concurrency) || concurrency < 1) {
    throw new RangeError(
      `Workers for queue ${queue.name}: concurrency must be a positive integer, got ${concurrency}`,
    );
  }
  const loop = async (): Promise<void> => {
    for (let key = await queue.get(); key !== undefined; key = await queue.get()) {
      // Each reconcile starts in a macrotask of its own: otherwise the synchronous parts of many
      // reconciles whose awaits resolve together run back to back as one chain of microtasks,
      // and the event loop (lease renewals, watches, probes) waits for the whole chain.
      await new Promise<void>((resolve) => setImmediate(resolve));
      try {
        await handle(key);
      } catch (err) {
        onError?.(key, err);
      } finally {
        queue.done(key);
      }
    }
  };
  await Promise.all(Array.from({ length: concurrency }, loop));
}
