// What the TrainingJob integration tests share: a job builder for kwok GPU nodes (kwok plays the
// pods' lives from annotations passed through the pod template, see test/cluster/kwok/stages.yaml)
// and reads and waits against the real API server, bound to one test namespace.
import { Resources } from '../../src/core/resources.ts';
import { kubeClient, waitFor } from './harness.ts';

export interface Condition {
  type: string;
  status: string;
  reason: string;
  message: string;
  observedGeneration?: number;
}

export interface Job {
  metadata: { name: string; namespace?: string; uid?: string; generation?: number };
  spec: Record<string, unknown>;
  status?: {
    phase?: string;
    restarts?: number;
    gpus?: number;
    workers?: { active?: number; ready?: number; succeeded?: number; failed?: number };
    failure?: { reason?: string; message?: string; worker?: number; exitCode?: number };
    model?: { uri?: string; digest?: string };
    dataset?: { uri?: string; digest?: string; rows?: number; files?: number; bytes?: number };
    progress?: { epoch?: number; valAccuracy?: number } & Record<string, unknown>;
    conditions?: Condition[];
    completionTime?: string;
    lastScheduleTime?: string;
  };
}

export interface Pod {
  metadata: {
    name: string;
    uid?: string;
    labels?: Record<string, string>;
    deletionTimestamp?: string;
  };
  spec: {
    nodeName?: string;
    automountServiceAccountToken?: boolean;
    hostname?: string;
    subdomain?: string;
    securityContext?: { runAsNonRoot?: boolean; seccompProfile?: { type: string } };
    tolerations?: { key?: string }[];
    containers: {
      env?: { name: string; value?: string }[];
      resources?: { limits?: Record<string, string> };
      securityContext?: { allowPrivilegeEscalation?: boolean; capabilities?: { drop?: string[] } };
    }[];
  };
  status?: {
    phase?: string;
    podIP?: string;
    containerStatuses?: { containerID?: string; state?: { running?: object } }[];
  };
}

export interface JobOpts {
  workers?: number;
  gpus?: number;
  product?: string;
  annotations?: Record<string, string>;
  extra?: Record<string, unknown>;
  nodeSelector?: Record<string, string>;
  podSpec?: Record<string, unknown>;
}

export const H100 = 'NVIDIA-H100-80GB-HBM3';
export const A100 = 'NVIDIA-A100-SXM4-80GB';

export const cond = (j: Job, type: string): Condition | undefined =>
  j.status?.conditions?.find((c) => c.type === type);

/** Builders and waits for TrainingJobs in namespace `ns`. */
export function trainingJobs(ns: string) {
  const client = kubeClient();

  const job = (name: string, o: JobOpts = {}): Job => ({
    metadata: { name, namespace: ns },
    spec: {
      model: { preset: 'mlp' },
      dataset: { synthetic: { generator: 'blobs' } },
      // file:// needs no claim, so kwok pods schedule without one.
      output: { uri: `file:///var/lib/lepton/${name}` },
      workers: o.workers ?? 1,
      resources: o.gpus ? { gpu: { count: o.gpus, product: o.product } } : undefined,
      podTemplate: {
        metadata: { annotations: o.annotations ?? {} },
        spec: { nodeSelector: o.nodeSelector ?? { type: 'kwok' }, ...o.podSpec },
      },
      ...o.extra,
    },
  });

  const create = (j: Job) =>
    client.create(Resources.TrainingJob, {
      apiVersion: 'lepton.ai/v1alpha1',
      kind: 'TrainingJob',
      ...j,
    });

  const get = (name: string) =>
    client.get<Job & { metadata: object }>(Resources.TrainingJob, ns, name);

  const podsOf = async (name: string) =>
    (
      await client.list<Pod & { metadata: object }>(Resources.Pod, {
        namespace: ns,
        labelSelector: `lepton.ai/job-name=${name}`,
      })
    ).items;

  async function waitForJob(
    name: string,
    what: string,
    ok: (j: Job) => boolean,
    timeoutMs = 30_000,
  ): Promise<Job> {
    let last: Job | undefined;
    await waitFor(
      `TrainingJob ${name} ${what}`,
      async () => ok((last = await get(name))),
      timeoutMs,
    ).catch((err: Error) => {
      throw new Error(`${err.message}; last status: ${JSON.stringify(last?.status)}`);
    });
    return last as Job;
  }

  async function remove(name: string): Promise<void> {
    await client
      .delete(Resources.TrainingJob, ns, name, { propagationPolicy: 'Foreground' })
      .catch(() => undefined);
    await waitFor(
      `TrainingJob ${name} and its pods to be gone`,
      async () => (await podsOf(name)).length === 0,
      30_000,
    );
  }

  /** Waits until no pod left by earlier tests holds GPUs of `product`. */
  async function gpusIdle(product: string): Promise<void> {
    await waitFor(
      `${product} GPUs to be idle`,
      async () => {
        const pods = await client.list<Pod & { metadata: object }>(Resources.Pod, {
          fieldSelector: 'status.phase!=Succeeded,status.phase!=Failed',
        });
        const nodes = new Set(
          (
            await client.list<{ metadata: { name?: string } }>(Resources.Node, {
              labelSelector: `nvidia.com/gpu.product=${product}`,
            })
          ).items.map((n) => n.metadata.name),
        );
        return !pods.items.some(
          (p) =>
            nodes.has(p.spec.nodeName) &&
            p.spec.containers.some((c) => c.resources?.limits?.['nvidia.com/gpu']),
        );
      },
      60_000,
    );
  }

  /** The Events recorded about `name` (events.k8s.io/v1), oldest first. */
  async function eventsOf(
    name: string,
  ): Promise<{ type: string; reason: string; note?: string }[]> {
    const list = await client.list<{
      metadata: object;
      type: string;
      reason: string;
      note?: string;
      regarding?: { name?: string; kind?: string };
    }>(Resources.Event, { namespace: ns });
    return list.items.filter(
      (e) => e.regarding?.kind === 'TrainingJob' && e.regarding.name === name,
    );
  }

  return { client, job, create, get, podsOf, waitForJob, remove, gpusIdle, eventsOf };
}
