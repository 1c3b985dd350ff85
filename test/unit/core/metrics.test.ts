import { OperatorMetrics } from '../../../src/core/metrics.ts';
import { waitFor } from '../../cluster/cluster.ts';

/** The value of an unlabelled sample in Prometheus text, or undefined when it is absent. */
function sample(text: string, name: string): number | undefined {
  const line = text.split('\n').find((l) => l.startsWith(`${name} `));
  return line === undefined ? undefined : Number(line.split(' ')[1]);
}

/** Keeps the event loop busy, as a reconcile that computes too long would. */
function blockEventLoop(ms: number): void {
  const end = performance.now() + ms;
  while (performance.now() < end) {
    // busy on purpose
  }
}

// One registry for the process: its default metrics watch the process's own event loop.
const metrics = new OperatorMetrics();

describe('OperatorMetrics process metrics', () => {
  it("§1 the event-loop lag is exported: prom-client's nodejs_eventloop_lag_* and lepton_event_loop_lag_max_seconds", async () => {
    const text = await metrics.registry.metrics();
    for (const name of [
      'nodejs_eventloop_lag_seconds',
      'nodejs_eventloop_lag_max_seconds',
      'nodejs_eventloop_lag_p99_seconds',
      'lepton_event_loop_lag_max_seconds',
    ]) {
      expect(text).toContain(`# TYPE ${name} gauge\n`);
      expect(sample(text, name)).toBeGreaterThanOrEqual(0);
    }
    expect(text).toMatch(/# HELP lepton_event_loop_lag_max_seconds .*since the process started/);
  });

  it('§1 lepton_event_loop_lag_max_seconds keeps the longest lag across scrapes, for a reading after a run', async () => {
    const max = async () =>
      sample(await metrics.registry.metrics(), 'lepton_event_loop_lag_max_seconds') ?? 0;
    // The sampler records a delay between two of its ticks: wait until it has ticked.
    await waitFor('the event-loop sampler to record', async () => (await max()) > 0, 5000);
    // Longer than any lag seen so far, so the reading below can only come from this block.
    const blockSeconds = (await max()) + 0.2;
    blockEventLoop(blockSeconds * 1000);
    await waitFor(
      'the blocked event loop to show in the lag maximum',
      async () => (await max()) >= blockSeconds - 0.05,
      5000,
    );
    // Other scrapers in between (each resets prom-client's histogram) do not lose it.
    for (let i = 0; i < 3; i++) await metrics.registry.metrics();
    expect(await max()).toBeGreaterThanOrEqual(blockSeconds - 0.05);
  });

  it('§4 no gauge ends in _total (promtool: reserved for counters); the per-type active handle gauges stay', async () => {
    const text = await metrics.registry.metrics();
    const gauges = [...text.matchAll(/^# TYPE (\S+) gauge$/gm)].map((m) => m[1] ?? '');
    expect(gauges.filter((n) => n.endsWith('_total'))).toEqual([]);
    for (const dropped of [
      'nodejs_active_handles_total',
      'nodejs_active_requests_total',
      'nodejs_active_resources_total',
    ])
      expect(text).not.toContain(`${dropped} `);
    expect(gauges).toEqual(
      expect.arrayContaining(['nodejs_active_handles', 'nodejs_active_resources']),
    );
  });

  it('§4 without process metrics a registry has neither the defaults nor the lag gauge (one per test)', async () => {
    const text = await new OperatorMetrics({ processMetrics: false }).registry.metrics();
    expect(text).not.toContain('nodejs_');
    expect(text).not.toContain('lepton_event_loop_lag_max_seconds');
  });
});
