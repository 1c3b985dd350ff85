// API writes as the API server counts them, the same way for any operator: kube-apiserver's
// apiserver_request_total (by verb, group, resource, subresource; it has no client label) read
// before and after a run, and the Event objects the operator left (a client-go Event that
// repeats is one object whose count grows by a PATCH each time, so its count is its writes).
import { execFileSync } from 'node:child_process';
import { join } from 'node:path';
import type { KubeClient } from '../src/core/client.ts';
import type { KubeObject, ResourceType } from '../src/core/resources.ts';
import { binDir } from '../test/cluster/cluster.ts';

const READS = new Set(['GET', 'LIST', 'WATCH', 'CONNECT']);

/** Write requests so far, keyed `group/resource/subresource/VERB` (the core group is ''). */
export type WriteCounts = Map<string, number>;

export function apiserverWrites(kubeconfig: string): WriteCounts {
  const text = execFileSync(
    join(binDir(), 'kubectl'),
    [`--kubeconfig=${kubeconfig}`, 'get', '--raw', '/metrics'],
    { encoding: 'utf8', maxBuffer: 512 * 1024 * 1024 },
  );
  const counts: WriteCounts = new Map();
  for (const line of text.split('\n')) {
    if (!line.startsWith('apiserver_request_total{')) continue;
    const close = line.lastIndexOf('}');
    const labels = Object.fromEntries(
      [...line.slice(0, close).matchAll(/(\w+)="((?:[^"\\]|\\.)*)"/g)].map((m) => [m[1], m[2]]),
    );
    if (READS.has(labels.verb ?? '')) continue;
    const key = [labels.group, labels.resource, labels.subresource, labels.verb].join('/');
    counts.set(key, (counts.get(key) ?? 0) + Number(line.slice(close + 1)));
  }
  return counts;
}

export function since(after: WriteCounts, before: WriteCounts): WriteCounts {
  const d: WriteCounts = new Map();
  for (const [k, v] of after) if (v - (before.get(k) ?? 0) > 0) d.set(k, v - (before.get(k) ?? 0));
  return d;
}

/**
 * Writes to `group/resource`: every subresource and verb unless given ('' is the object itself).
 */
export function writesTo(
  d: WriteCounts,
  group: string,
  resource: string,
  only: { subresource?: string; verb?: string } = {},
): number {
  let n = 0;
  for (const [k, v] of d) {
    const [g, r, s, verb] = k.split('/');
    if (g !== group || r !== resource) continue;
    if (only.subresource !== undefined && s !== only.subresource) continue;
    if (only.verb !== undefined && verb !== only.verb) continue;
    n += v;
  }
  return n;
}

const CoreEvents: ResourceType = {
  group: '',
  version: 'v1',
  plural: 'events',
  kind: 'Event',
  namespaced: true,
};

interface CoreEvent extends KubeObject {
  count?: number;
  series?: { count?: number };
  source?: { component?: string };
  reportingComponent?: string;
}

/** Event writes in `namespace` by reporting component (events.k8s.io and core Events alike). */
export async function eventWrites(
  admin: KubeClient,
  namespace: string,
): Promise<Map<string, number>> {
  const byReporter = new Map<string, number>();
  const events = await admin.list<CoreEvent>(CoreEvents, { namespace });
  for (const e of events.items) {
    const reporter = e.reportingComponent || e.source?.component || '';
    const writes = Math.max(1, e.count ?? 0, e.series?.count ?? 0);
    byReporter.set(reporter, (byReporter.get(reporter) ?? 0) + writes);
  }
  return byReporter;
}
