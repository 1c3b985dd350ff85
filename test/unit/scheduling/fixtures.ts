// Nodes and pods as the caches hold them, for the scheduling tests.
import { type PodObject, slimPod } from '../../../src/scheduling/capacity.ts';

export const node = (
  name: string,
  allocatable: Record<string, string>,
  extra: { labels?: Record<string, string>; spec?: object; ready?: boolean } = {},
) => ({
  metadata: { name, labels: extra.labels ?? {} },
  spec: extra.spec ?? {},
  status: {
    allocatable,
    conditions: [{ type: 'Ready', status: extra.ready === false ? 'False' : 'True' }],
  },
});

export const pod = (
  nodeName: string | undefined,
  resources: { limits?: Record<string, string>; requests?: Record<string, string> },
  phase = 'Running',
) => ({
  metadata: { name: `p-${Math.random()}` },
  spec: { nodeName, containers: [{ resources }] },
  status: { phase },
});

/** A pod as the ledger's cache holds it after the informer's transform (slimPod). */
export const bound = <T extends PodObject>(p: T, nodeName: string): PodObject =>
  slimPod({ ...p, spec: { ...p.spec, nodeName }, status: { phase: 'Running' } });
