// The controller's shutdown: what SIGTERM waits for. A stand-in reconciler that finishes only
// when the test says so stands for a slow reconcile, so nothing here depends on timing.
import { FakeClock } from '../../../src/core/clock.ts';
import { Controller, type ReconcileRequest } from '../../../src/core/controller.ts';
import { createLogger } from '../../../src/core/logging.ts';

/** Lets pending promise callbacks and I/O callbacks run. */
const flush = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));

async function waitFor(condition: () => boolean, what: string, timeoutMs = 5_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error(`Timed out waiting for ${what}`);
    await flush();
  }
}

/** A reconciler whose every reconcile waits until the test releases it. */
function slowReconciler() {
  const started: string[] = [];
  const pending: (() => void)[] = [];
  return {
    started,
    releaseAll: () => pending.splice(0).forEach((r) => r()),
    reconcile(req: ReconcileRequest): Promise<void> {
      started.push(`${req.namespace}/${req.name}`);
      return new Promise((r) => pending.push(r));
    },
  };
}

describe('Controller', () => {
  it('§5 stop() waits for the reconciles in flight only, not for the queued backlog', async () => {
    const reconciler = slowReconciler();
    const controller = new Controller({
      name: 'test',
      reconciler,
      concurrency: 2,
      logger: createLogger('error'),
      clock: new FakeClock(),
    });
    for (let i = 0; i < 50; i++) controller.queue.add(`ns/job-${i}`);
    void controller.start();
    await waitFor(() => reconciler.started.length === 2, 'two reconciles in flight');
    expect(controller.queue.len()).toBe(48);

    let stopped = false;
    const stopping = controller.stop().then(() => (stopped = true));
    await flush();
    // The reconciles in flight are waited for: stop must not return under them.
    expect(stopped).toBe(false);

    // Release whatever runs, as often as it starts, until stop() returns: the old drain would
    // run the whole backlog here (and fail below) instead of hanging the test.
    await waitFor(() => {
      reconciler.releaseAll();
      return stopped;
    }, 'stop() to return');
    await stopping;
    // Before, stop() drained the queue: 50 reconciles ran after SIGTERM, so a backlog longer
    // than --shutdown-timeout kept the lease from ever being released.
    expect(reconciler.started).toEqual(['ns/job-0', 'ns/job-1']);
    expect(controller.queue.len()).toBe(0);
    expect(controller.queue.isShuttingDown()).toBe(true);
  });
});
