// The local node as a process (the cluster supervisor starts one; tests and people may start
// more):
//
//   node test/cluster/localnode/main.ts --kubeconfig FILE --state DIR [--name lepton-local-0]
//     [--ip-octet N] [--cpu 2] [--memory 8Gi] [--pods 110] [--gpus 0] [--gpu-product NAME]
//     [--gpu-resource nvidia.com/gpu] [--label k=v ...] [--taint k=v:NoSchedule ...]
//     [--provision-claims] [--network auto|netns|loopback]
//
// With --gpus N the node advertises N GPUs (scheduling only: no GPU exists here), labels
// nvidia.com/gpu.product and nvidia.com/gpu.count, and takes the nvidia.com/gpu NoSchedule taint
// that real GPU nodes carry. SIGTERM stops every pod it runs, then the node (NotReady).
import { availableParallelism, totalmem } from 'node:os';
import { resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { createLogger } from '../../../src/core/logging.ts';
import { repoRoot } from '../cluster.ts';
import { LocalNode, type Taint } from './node.ts';

const { values } = parseArgs({
  options: {
    kubeconfig: { type: 'string' },
    state: { type: 'string' },
    name: { type: 'string', default: 'lepton-local-0' },
    'ip-octet': { type: 'string' },
    cpu: { type: 'string', default: String(availableParallelism()) },
    memory: { type: 'string', default: `${Math.floor(totalmem() / 2 ** 30)}Gi` },
    pods: { type: 'string', default: '110' },
    gpus: { type: 'string', default: '0' },
    'gpu-product': { type: 'string', default: 'Lepton-Local-Simulated-GPU' },
    'gpu-resource': { type: 'string', default: 'nvidia.com/gpu' },
    label: { type: 'string', multiple: true, default: [] },
    taint: { type: 'string', multiple: true, default: [] },
    'provision-claims': { type: 'boolean', default: false },
    network: { type: 'string', default: 'auto' },
  },
});
if (!values.kubeconfig || !values.state) {
  process.stderr.write('usage: localnode/main.ts --kubeconfig FILE --state DIR [options]\n');
  process.exit(2);
}

const labels: Record<string, string> = {};
for (const l of values.label) {
  const [k, v = ''] = l.split('=');
  if (k) labels[k] = v;
}
const taints: Taint[] = values.taint.map((t) => {
  const m = /^([^=:]+)(?:=([^:]*))?:(NoSchedule|PreferNoSchedule|NoExecute)$/.exec(t);
  if (!m) throw new Error(`--taint ${t}: want key[=value]:Effect`);
  return { key: m[1] as string, ...(m[2] ? { value: m[2] } : {}), effect: m[3] as Taint['effect'] };
});
const capacity: Record<string, string> = {
  cpu: values.cpu,
  memory: values.memory,
  pods: values.pods,
};
const gpus = Number(values.gpus);
if (gpus > 0) {
  capacity[values['gpu-resource']] = String(gpus);
  labels['nvidia.com/gpu.present'] = 'true';
  labels['nvidia.com/gpu.product'] = values['gpu-product'];
  labels['nvidia.com/gpu.count'] = String(gpus);
  taints.push({ key: values['gpu-resource'], value: 'present', effect: 'NoSchedule' });
}

const logger = createLogger('info', { component: 'localnode' });
const node = new LocalNode({
  name: values.name,
  kubeconfig: resolve(values.kubeconfig),
  stateDir: resolve(values.state),
  repoRoot,
  ipOctet: values['ip-octet'] ? Number(values['ip-octet']) : undefined,
  labels,
  taints,
  capacity,
  logger,
  provisionClaims: values['provision-claims'],
  network: values.network as 'auto' | 'netns' | 'loopback',
});

let stopping = false;
const stop = async (signal: string) => {
  if (stopping) return;
  stopping = true;
  logger.info('Stopping the local node', { signal });
  await node.stop();
  process.exit(0);
};
process.on('SIGTERM', () => void stop('SIGTERM'));
process.on('SIGINT', () => void stop('SIGINT'));

await node.start();
