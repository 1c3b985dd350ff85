// The local cluster's simulated GPU nodes: the real kube-scheduler places pods by GPU product
// and capacity, and kwok Stages play the lifecycle the pod's annotations script.
import { Resources } from '../../src/core/resources.ts';
import { createNamespace, kubeClient, kubectlOk, waitFor } from './harness.ts';

interface Pod {
  apiVersion: 'v1';
  kind: 'Pod';
  metadata: { name: string; namespace: string; annotations?: Record<string, string> };
  spec: Record<string, unknown>;
  status?: {
    phase?: string;
    conditions?: { type: string; status: string; reason?: string; message?: string }[];
    containerStatuses?: {
      state?: {
        running?: object;
        waiting?: { reason?: string };
        terminated?: { exitCode: number; reason?: string; message?: string };
      };
    }[];
  };
}

const client = kubeClient();
let ns: string;

beforeAll(() => {
  ns = createNamespace('kwok');
});
afterAll(() => {
  kubectlOk(['delete', 'namespace', ns, '--wait=false']);
});

interface PodOpts {
  gpus?: number;
  product?: string;
  tolerate?: boolean;
  annotations?: Record<string, string>;
}

function gpuPod(name: string, { gpus = 0, product, tolerate = true, annotations }: PodOpts): Pod {
  return {
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: { name, namespace: ns, annotations },
    spec: {
      restartPolicy: 'Never',
      nodeSelector: product ? { 'nvidia.com/gpu.product': product } : { type: 'kwok' },
      tolerations: tolerate
        ? [{ key: 'nvidia.com/gpu', operator: 'Exists', effect: 'NoSchedule' }]
        : [],
      containers: [
        {
          name: 'main',
          image: 'lepton-ai/runtime:test',
          resources: gpus ? { limits: { 'nvidia.com/gpu': String(gpus) } } : {},
        },
      ],
    },
  };
}

async function podStatus(name: string): Promise<Pod & { spec: { nodeName?: string } }> {
  return client.get(Resources.Pod, ns, name);
}

async function waitForPhase(name: string, phase: string, timeoutMs = 30_000): Promise<Pod> {
  let last: Pod | undefined;
  await waitFor(
    `pod ${name} to be ${phase}`,
    async () => {
      last = await podStatus(name);
      return last.status?.phase === phase;
    },
    timeoutMs,
  ).catch((err: Error) => {
    throw new Error(`${err.message}; last status: ${JSON.stringify(last?.status)}`);
  });
  return last as Pod;
}

describe('simulated GPU nodes', () => {
  it('lists two H100 nodes with 8 GPUs, two A100 nodes with 4, and a CPU-only node', async () => {
    const nodes = await client.list<{
      metadata: { name?: string; labels?: Record<string, string> };
      status?: { allocatable?: Record<string, string> };
    }>(Resources.Node, { labelSelector: 'type=kwok' });
    const summary = nodes.items
      .map(
        (n) =>
          `${n.metadata.labels?.['nvidia.com/gpu.product'] ?? 'cpu'}:${n.status?.allocatable?.['nvidia.com/gpu'] ?? '0'}`,
      )
      .sort();
    expect(summary).toEqual([
      'NVIDIA-A100-SXM4-80GB:4',
      'NVIDIA-A100-SXM4-80GB:4',
      'NVIDIA-H100-80GB-HBM3:8',
      'NVIDIA-H100-80GB-HBM3:8',
      'cpu:0',
    ]);
  });

  it.each([
    ['NVIDIA-H100-80GB-HBM3', 8, /^kwok-h100-/],
    ['NVIDIA-A100-SXM4-80GB', 4, /^kwok-a100-/],
  ])('places a pod asking for %s on a node of that product', async (product, gpus, nodePattern) => {
    const name = `on-${product.toLowerCase().slice(7, 11)}`;
    await client.create(Resources.Pod, gpuPod(name, { gpus, product }));
    await waitForPhase(name, 'Running');
    expect((await podStatus(name)).spec.nodeName).toMatch(nodePattern);
  });

  it('does not schedule a GPU pod that does not tolerate the nvidia.com/gpu taint', async () => {
    await client.create(
      Resources.Pod,
      gpuPod('no-toleration', { gpus: 1, product: 'NVIDIA-A100-SXM4-80GB', tolerate: false }),
    );
    await waitFor(
      'the scheduler to report the pod unschedulable',
      async () => {
        const cond = (await podStatus('no-toleration')).status?.conditions?.find(
          (c) => c.type === 'PodScheduled',
        );
        return cond?.status === 'False' && cond.reason === 'Unschedulable';
      },
      30_000,
    );
    const cond = (await podStatus('no-toleration')).status?.conditions?.find(
      (c) => c.type === 'PodScheduled',
    );
    expect(cond?.message).toMatch(/\d+ node\(s\) had untolerated taint/);
  });

  it('does not schedule a pod asking for more GPUs than any node of the product has', async () => {
    await client.create(
      Resources.Pod,
      gpuPod('too-many', { gpus: 5, product: 'NVIDIA-A100-SXM4-80GB' }),
    );
    await waitFor(
      'the scheduler to report insufficient GPUs',
      async () => {
        const cond = (await podStatus('too-many')).status?.conditions?.find(
          (c) => c.type === 'PodScheduled',
        );
        return (
          cond?.reason === 'Unschedulable' &&
          /Insufficient nvidia\.com\/gpu/.test(cond.message ?? '')
        );
      },
      30_000,
    );
  });

  it('runs a pod for its scripted duration, then ends it Succeeded with exit code 0', async () => {
    await client.create(
      Resources.Pod,
      gpuPod('succeeds', {
        gpus: 1,
        product: 'NVIDIA-H100-80GB-HBM3',
        annotations: { 'kwok.lepton.ai/run-duration': '3s' },
      }),
    );
    await waitForPhase('succeeds', 'Running');
    const done = await waitForPhase('succeeds', 'Succeeded');
    expect(done.status?.containerStatuses?.[0]?.state?.terminated).toMatchObject({
      exitCode: 0,
      reason: 'Completed',
    });
  });

  it('ends a pod Failed with the scripted exit code, reason and message', async () => {
    await client.create(
      Resources.Pod,
      gpuPod('fails', {
        gpus: 2,
        product: 'NVIDIA-A100-SXM4-80GB',
        annotations: {
          'kwok.lepton.ai/run-duration': '1s',
          'kwok.lepton.ai/exit-code': '137',
          'kwok.lepton.ai/reason': 'OOMKilled',
          'kwok.lepton.ai/message': 'worker ran out of memory',
        },
      }),
    );
    const failed = await waitForPhase('fails', 'Failed');
    expect(failed.status?.containerStatuses?.[0]?.state?.terminated).toMatchObject({
      exitCode: 137,
      reason: 'OOMKilled',
      message: 'worker ran out of memory',
    });
  });

  it('keeps a pod Pending with its containers waiting for the scripted reason', async () => {
    await client.create(
      Resources.Pod,
      gpuPod('pull-fails', {
        gpus: 1,
        product: 'NVIDIA-H100-80GB-HBM3',
        annotations: { 'kwok.lepton.ai/waiting-reason': 'ImagePullBackOff' },
      }),
    );
    await waitFor(
      'the container to wait with ImagePullBackOff',
      async () => {
        const s = await podStatus('pull-fails');
        return s.status?.containerStatuses?.[0]?.state?.waiting?.reason === 'ImagePullBackOff';
      },
      30_000,
    );
    expect((await podStatus('pull-fails')).status?.phase).toBe('Pending');
  });

  it('keeps an unscripted pod Running and deletes it on request', async () => {
    await client.create(Resources.Pod, gpuPod('runs-on', {}));
    await waitForPhase('runs-on', 'Running');
    await client.delete(Resources.Pod, ns, 'runs-on');
    await waitFor(
      'the pod to be gone',
      async () => (await client.find(Resources.Pod, ns, 'runs-on')) === undefined,
      30_000,
    );
  });
});
