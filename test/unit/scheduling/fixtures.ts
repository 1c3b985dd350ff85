// Nodes and pods as the caches hold them, for the scheduling tests.

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
