// Leader election timing, on a fake clock. The API is a stand-in object here because what is
// tested is the elector's own timing (the real Lease round trip is covered by the integration
// test leader-election.test.ts).
import type { KubeClient } from '../../../src/core/client.ts';
import { ApiError } from '../../../src/core/client.ts';
import { FakeClock } from '../../../src/core/clock.ts';
import { LeaderElector, microTime } from '../../../src/core/leader.ts';
import { createLogger } from '../../../src/core/logging.ts';

type Lease = { metadata: { resourceVersion?: string }; spec?: Record<string, unknown> };

/** A Lease store whose reads can be made to hang, as over a broken connection. */
function leaseStore() {
  let lease: Lease | undefined;
  let version = 0;
  const state = { hang: false };
  const never = new Promise<never>(() => undefined);
  const client = {
    async get() {
      if (state.hang) return never;
      if (!lease) throw new ApiError('not found', 404, 'NotFound');
      return structuredClone(lease);
    },
    async create(_rt: unknown, obj: Lease) {
      lease = { ...obj, metadata: { ...obj.metadata, resourceVersion: String(++version) } };
      return lease;
    },
    async replace(_rt: unknown, obj: Lease) {
      if (state.hang) return never;
      if (obj.metadata.resourceVersion !== lease?.metadata.resourceVersion)
        throw new ApiError('conflict', 409, 'Conflict');
      lease = { ...obj, metadata: { ...obj.metadata, resourceVersion: String(++version) } };
      return lease;
    },
  };
  return { client: client as unknown as KubeClient, state, lease: () => lease };
}

const flush = async () => {
  for (let i = 0; i < 10; i++) await Promise.resolve();
};

async function advance(clock: FakeClock, ms: number, step = 100) {
  for (let t = 0; t < ms; t += step) {
    clock.advance(step);
    await flush();
  }
}

function elector(
  store: ReturnType<typeof leaseStore>,
  clock: FakeClock,
  events: string[],
  identity = 'a',
) {
  return new LeaderElector({
    client: store.client,
    namespace: 'ns',
    name: 'lease',
    identity,
    leaseDurationMs: 15_000,
    renewDeadlineMs: 10_000,
    retryPeriodMs: 2_000,
    logger: createLogger('error'),
    clock,
    onStartedLeading: () => events.push(`${identity} started`),
    onStoppedLeading: () => events.push(`${identity} stopped`),
  });
}

describe('LeaderElector', () => {
  it('takes a free lease and renews it every retry period', async () => {
    const clock = new FakeClock(Date.parse('2026-01-01T00:00:00Z'));
    const store = leaseStore();
    const events: string[] = [];
    const e = elector(store, clock, events);
    e.start();
    await flush();
    expect(events).toEqual(['a started']);
    await advance(clock, 2_000);
    expect(store.lease()?.spec?.renewTime).toBe(microTime(clock.now()));
    expect(store.lease()?.spec?.holderIdentity).toBe('a');
  });

  it('steps down at the renew deadline even when the renew request never answers', async () => {
    const clock = new FakeClock(Date.parse('2026-01-01T00:00:00Z'));
    const store = leaseStore();
    const events: string[] = [];
    const e = elector(store, clock, events);
    e.start();
    await flush();
    store.state.hang = true;
    await advance(clock, 9_000);
    expect(e.isLeader()).toBe(true);
    await advance(clock, 2_000);
    expect(e.isLeader()).toBe(false);
    expect(events).toEqual(['a started', 'a stopped']);
  });

  it('lets a standby take over only after the lease duration without renewals', async () => {
    const clock = new FakeClock(Date.parse('2026-01-01T00:00:00Z'));
    const store = leaseStore();
    const events: string[] = [];
    const a = elector(store, clock, events, 'a');
    a.start();
    await flush();
    const b = elector(store, clock, events, 'b');
    b.start();
    await advance(clock, 4_000);
    expect(b.isLeader()).toBe(false);
    await a.stop(false); // dies without releasing
    await advance(clock, 14_000);
    expect(b.isLeader()).toBe(false);
    await advance(clock, 4_000);
    expect(b.isLeader()).toBe(true);
    expect(store.lease()?.spec).toMatchObject({ holderIdentity: 'b', leaseTransitions: 1 });
    await b.stop();
  });
});
