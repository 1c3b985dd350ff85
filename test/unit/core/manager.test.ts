// The manager's graceful shutdown without a cluster: leader election off, endpoints disabled and
// no caches, so Manager.stop() is what SIGTERM runs, on a fake clock whose shutdown timeout never
// fires unless the test moves it.
import { KubeConfig } from '@kubernetes/client-node';
import { FakeClock } from '../../../src/core/clock.ts';
import { parseConfig } from '../../../src/core/config.ts';
import { Controller, type ReconcileRequest } from '../../../src/core/controller.ts';
import { createLogger } from '../../../src/core/logging.ts';
import { Manager } from '../../../src/core/manager.ts';
import { OperatorMetrics } from '../../../src/core/metrics.ts';

const flush = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));

async function waitFor(condition: () => boolean, what: string, timeoutMs = 5_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error(`Timed out waiting for ${what}`);
    await flush();
  }
}

/** A kubeconfig for an address nothing listens on: this test must not reach any API server. */
function unreachableKubeConfig(): KubeConfig {
  const kc = new KubeConfig();
  kc.loadFromOptions({
    clusters: [{ name: 'none', server: 'http://127.0.0.1:1' }],
    users: [{ name: 'none' }],
    contexts: [{ name: 'none', cluster: 'none', user: 'none' }],
    currentContext: 'none',
  });
  return kc;
}

describe('Manager', () => {
  it('§5 SIGTERM returns once the reconciles in flight end, with a backlog still queued and the shutdown timeout not reached', async () => {
    const parsed = parseConfig(
      [
        '--leader-elect=false',
        '--metrics-bind-address=0',
        '--health-probe-bind-address=0',
        '--concurrency=3',
        '--shutdown-timeout=30s',
      ],
      {},
    );
    if (!('config' in parsed)) throw new Error('expected a config');
    const clock = new FakeClock();
    const logger = createLogger('error');
    const manager = new Manager({
      config: parsed.config,
      kubeConfig: unreachableKubeConfig(),
      logger,
      metrics: new OperatorMetrics({ processMetrics: false }),
      clock,
    });
    const started: string[] = [];
    const pending: (() => void)[] = [];
    const controller = new Controller({
      name: 'test',
      concurrency: parsed.config.concurrency,
      logger,
      clock,
      reconciler: {
        reconcile(req: ReconcileRequest): Promise<void> {
          started.push(req.name);
          return new Promise((r) => pending.push(r));
        },
      },
    });
    manager.addController(controller);
    for (let i = 0; i < 100; i++) controller.queue.add(`ns/job-${i}`);
    await manager.start();
    await waitFor(() => started.length === 3, 'three reconciles in flight');

    let stopped = false;
    void manager.stop().then(() => (stopped = true));
    await flush();
    expect(stopped).toBe(false);
    await waitFor(() => {
      pending.splice(0).forEach((r) => r());
      return stopped;
    }, 'the manager to stop');
    // Only the three in flight ran; the fake clock never moved, so it was not the timeout.
    expect(started).toEqual(['job-0', 'job-1', 'job-2']);
    expect(clock.now()).toBe(0);
  });
});
