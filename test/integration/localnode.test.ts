// The local node runs the pods the real scheduler binds to it as processes on this machine:
// exit codes and restarts, pod addresses and Services, probes, GPU capacity in scheduling,
// deletion within the grace period, claims shared between pods, init containers and Secret
// volumes, and the names of headless Services.
import { existsSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { execFileSync } from 'node:child_process';
import { dirname, join } from 'node:path';
import { Resources } from '../../src/core/resources.ts';
import { createLogger } from '../../src/core/logging.ts';
import { LOCAL_NODE, isAlive } from '../cluster/cluster.ts';
import { LocalNode } from '../cluster/localnode/node.ts';
import {
  createNamespace,
  kubeClient,
  kubeconfigPath,
  kubectl,
  repoRoot,
  waitFor,
} from './harness.ts';

interface ContainerState {
  running?: { startedAt: string };
  waiting?: { reason: string; message?: string };
  terminated?: { exitCode: number; reason: string; message?: string };
}
interface ContainerStatus {
  name?: string;
  containerID?: string;
  restartCount: number;
  ready: boolean;
  state: ContainerState;
  lastState?: ContainerState;
}
interface Pod {
  metadata: { name: string; namespace?: string; labels?: Record<string, string> };
  spec: Record<string, unknown> & { nodeName?: string };
  status?: {
    phase?: string;
    podIP?: string;
    conditions?: { type: string; status: string; reason?: string; message?: string }[];
    initContainerStatuses?: ContainerStatus[];
    containerStatuses?: ContainerStatus[];
  };
}

const client = kubeClient();
let ns: string;
const extraNodes: LocalNode[] = [];

beforeAll(() => {
  ns = createNamespace('local');
});
afterAll(async () => {
  await Promise.all(extraNodes.map((n) => n.stop()));
  kubectl(['delete', 'namespace', ns, '--wait=false']);
  kubectl(['delete', 'node', 'lepton-local-test']);
});

const LOCAL_TOLERATIONS = [
  { key: 'lepton.ai/local-node', operator: 'Exists', effect: 'NoSchedule' },
  { key: 'nvidia.com/gpu', operator: 'Exists', effect: 'NoSchedule' },
];

interface PodOpts {
  script: string;
  restartPolicy?: 'Never' | 'OnFailure' | 'Always';
  labels?: Record<string, string>;
  gpus?: number;
  nodeSelector?: Record<string, string>;
  volumes?: unknown[];
  mounts?: unknown[];
  readinessPort?: number;
  grace?: number;
  initContainers?: unknown[];
}

/** A pod whose one container runs `node -e SCRIPT` on the local node. */
function nodePod(name: string, o: PodOpts): Pod {
  return {
    metadata: { name, namespace: ns, labels: o.labels },
    spec: {
      restartPolicy: o.restartPolicy ?? 'Never',
      nodeSelector: o.nodeSelector ?? { 'kubernetes.io/hostname': LOCAL_NODE },
      tolerations: LOCAL_TOLERATIONS,
      terminationGracePeriodSeconds: o.grace ?? 30,
      volumes: o.volumes,
      initContainers: o.initContainers,
      containers: [
        {
          name: 'main',
          image: 'node:24',
          args: ['-e', o.script],
          env: [{ name: 'POD_NAME', valueFrom: { fieldRef: { fieldPath: 'metadata.name' } } }],
          ports: [{ name: 'http', containerPort: 8080 }],
          volumeMounts: o.mounts,
          resources: o.gpus ? { limits: { 'nvidia.com/gpu': String(o.gpus) } } : undefined,
          readinessProbe: o.readinessPort
            ? { httpGet: { path: '/', port: o.readinessPort }, periodSeconds: 1 }
            : undefined,
        },
      ],
    },
  };
}

const create = (pod: Pod) =>
  client.create(Resources.Pod, { apiVersion: 'v1', kind: 'Pod', ...pod });
const get = (name: string) => client.get<Pod & { metadata: object }>(Resources.Pod, ns, name);

async function waitForPod(
  name: string,
  what: string,
  ok: (p: Pod) => boolean,
  timeoutMs = 30_000,
): Promise<Pod> {
  let last: Pod | undefined;
  await waitFor(`pod ${name} ${what}`, async () => ok((last = await get(name))), timeoutMs).catch(
    (err: Error) => {
      throw new Error(`${err.message}; last status: ${JSON.stringify(last?.status)}`);
    },
  );
  return last as Pod;
}

const pidOf = (p: Pod) =>
  Number(p.status?.containerStatuses?.[0]?.containerID?.replace('local://', '') ?? 0);
const main = (p: Pod) => p.status?.containerStatuses?.[0];

// Serves its pod name on $LEPTON_POD_IP:8080 until stopped.
const SERVER = `require('http').createServer((q, s) => s.end(process.env.POD_NAME)).listen(8080, process.env.LEPTON_POD_IP)`;

describe('the local node', () => {
  it('ends a pod that exits 0 Succeeded', async () => {
    await create(nodePod('exits-0', { script: 'process.exit(0)' }));
    const pod = await waitForPod('exits-0', 'to succeed', (p) => p.status?.phase === 'Succeeded');
    expect(pod.spec.nodeName).toBe(LOCAL_NODE);
    expect(main(pod)?.state.terminated).toMatchObject({ exitCode: 0, reason: 'Completed' });
  });

  it('ends a pod that exits 3 Failed, with its exit code and termination message', async () => {
    const script = `require('fs').writeFileSync(process.env.LEPTON_TERMINATION_LOG, 'label column missing'); process.exit(3)`;
    await create(nodePod('exits-3', { script }));
    const pod = await waitForPod('exits-3', 'to fail', (p) => p.status?.phase === 'Failed');
    expect(main(pod)?.state.terminated).toMatchObject({
      exitCode: 3,
      reason: 'Error',
      message: 'label column missing',
    });
  });

  it('restarts a failing container under restartPolicy OnFailure and counts the restarts', async () => {
    // Fails twice, then succeeds: the attempt count lives in an emptyDir, which outlives restarts.
    const script = `
      const fs = require('fs');
      const f = JSON.parse(process.env.LEPTON_PATH_MAP)['/scratch'] + '/attempts';
      const n = fs.existsSync(f) ? Number(fs.readFileSync(f, 'utf8')) : 0;
      fs.writeFileSync(f, String(n + 1));
      process.exit(n < 2 ? 1 : 0);`;
    await create(
      nodePod('on-failure', {
        script,
        restartPolicy: 'OnFailure',
        volumes: [{ name: 'scratch', emptyDir: {} }],
        mounts: [{ name: 'scratch', mountPath: '/scratch' }],
      }),
    );
    const pod = await waitForPod(
      'on-failure',
      'to succeed after restarts',
      (p) => p.status?.phase === 'Succeeded',
    );
    expect(main(pod)?.restartCount).toBe(2);
  });

  it('gives each pod its own address: two pods serve the same port, a probe gates Ready, a Service finds the ready one', async () => {
    await create(
      nodePod('web-ready', { script: SERVER, labels: { app: 'web' }, readinessPort: 8080 }),
    );
    // Its probe asks a port nothing listens on: it serves, but never becomes Ready.
    await create(
      nodePod('web-unready', { script: SERVER, labels: { app: 'web' }, readinessPort: 9999 }),
    );
    await client.create(Resources.Service, {
      apiVersion: 'v1',
      kind: 'Service',
      metadata: { name: 'web', namespace: ns },
      spec: { selector: { app: 'web' }, ports: [{ port: 80, targetPort: 8080 }] },
    });
    const ready = await waitForPod(
      'web-ready',
      'to be Ready',
      (p) => p.status?.conditions?.some((c) => c.type === 'Ready' && c.status === 'True') ?? false,
    );
    const unready = await waitForPod(
      'web-unready',
      'to run',
      (p) => p.status?.phase === 'Running' && Boolean(p.status.podIP),
    );
    expect(ready.status?.podIP).not.toBe(unready.status?.podIP);
    for (const p of [ready, unready]) {
      await waitFor(
        `pod ${p.metadata.name} to serve`,
        async () => {
          const res = await fetch(`http://${p.status?.podIP}:8080/`).catch(() => undefined);
          return (await res?.text()) === p.metadata.name;
        },
        15_000,
      );
    }
    expect(
      (await get('web-unready')).status?.conditions?.find((c) => c.type === 'Ready')?.status,
    ).toBe('False');

    type Slice = {
      metadata: object;
      endpoints?: { addresses: string[]; conditions?: { ready?: boolean } }[];
    };
    let readyAddresses: string[] = [];
    await waitFor(
      'the EndpointSlice to list the ready pod',
      async () => {
        const slices = await client.list<Slice>(
          {
            group: 'discovery.k8s.io',
            version: 'v1',
            plural: 'endpointslices',
            kind: 'EndpointSlice',
            namespaced: true,
          },
          { namespace: ns, labelSelector: 'kubernetes.io/service-name=web' },
        );
        readyAddresses = slices.items.flatMap((s) =>
          (s.endpoints ?? []).filter((e) => e.conditions?.ready).flatMap((e) => e.addresses),
        );
        return readyAddresses.length > 0;
      },
      30_000,
    );
    expect(readyAddresses).toEqual([ready.status?.podIP]);
    const res = await fetch(`http://${readyAddresses[0]}:8080/`);
    expect(await res.text()).toBe('web-ready');
  });

  it('receives a pod asking for a GPU when it advertises GPUs', async () => {
    await create(nodePod('gpu-here', { script: 'process.exit(0)', gpus: 1 }));
    const pod = await waitForPod('gpu-here', 'to succeed', (p) => p.status?.phase === 'Succeeded');
    expect(pod.spec.nodeName).toBe(LOCAL_NODE);
  });

  it('is not given a pod asking for a GPU when it advertises none', async () => {
    const node = new LocalNode({
      name: 'lepton-local-test',
      kubeconfig: kubeconfigPath(),
      stateDir: mkdtempSync(join(tmpdir(), 'lepton-localnode-')),
      repoRoot,
      labels: { 'test.lepton.ai/node': 'no-gpu' },
      taints: [{ key: 'lepton.ai/local-node', value: 'true', effect: 'NoSchedule' }],
      capacity: { cpu: '2', memory: '4Gi', pods: '20' },
      logger: createLogger('warn'),
    });
    extraNodes.push(node);
    await node.start();
    await waitFor(
      'the new node to lose the not-ready taint',
      async () => {
        const n = await client.get<{ metadata: object; spec?: { taints?: { key: string }[] } }>(
          Resources.Node,
          '',
          'lepton-local-test',
        );
        return !(n.spec?.taints ?? []).some((t) => t.key.startsWith('node.kubernetes.io/'));
      },
      30_000,
    );
    await create(
      nodePod('gpu-nowhere', {
        script: 'process.exit(0)',
        gpus: 1,
        nodeSelector: { 'test.lepton.ai/node': 'no-gpu' },
      }),
    );
    const pod = await waitForPod(
      'gpu-nowhere',
      'to be unschedulable',
      (p) =>
        p.status?.conditions?.some(
          (c) => c.type === 'PodScheduled' && c.reason === 'Unschedulable',
        ) ?? false,
    );
    expect(pod.status?.conditions?.find((c) => c.type === 'PodScheduled')?.message).toContain(
      'Insufficient nvidia.com/gpu',
    );
    // The same pod without the GPU request runs there.
    await create(
      nodePod('cpu-there', {
        script: 'process.exit(0)',
        nodeSelector: { 'test.lepton.ai/node': 'no-gpu' },
      }),
    );
    await waitForPod('cpu-there', 'to succeed', (p) => p.status?.phase === 'Succeeded');
  });

  it('stops a deleted pod within its grace period, SIGKILLing one that ignores SIGTERM, and leaves no process', async () => {
    await create(
      nodePod('stubborn', { script: `process.on('SIGTERM', () => {}); ${SERVER}`, grace: 2 }),
    );
    const running = await waitForPod(
      'stubborn',
      'to run',
      (p) => main(p)?.state.running !== undefined && Boolean(p.status?.podIP),
    );
    const pid = pidOf(running);
    expect(isAlive(pid)).toBe(true);
    // Running means spawned: the script ignores SIGTERM only once it ran, which its answer shows.
    await waitFor(
      'the stubborn pod to answer',
      () =>
        fetch(`http://${running.status?.podIP}:8080/`).then(
          (r) => r.ok,
          () => false,
        ),
      20_000,
    );
    const started = Date.now();
    await client.delete(Resources.Pod, ns, 'stubborn');
    await waitFor(
      'the pod object to be removed',
      async () => (await client.find(Resources.Pod, ns, 'stubborn')) === undefined,
      20_000,
    );
    expect(isAlive(pid)).toBe(false);
    // SIGTERM was ignored, so the process lived until the 2 s grace period ended.
    expect(Date.now() - started).toBeGreaterThanOrEqual(2000);
  });

  it('stops the pods it runs when it stops, and reports NotReady', async () => {
    const node = extraNodes[0] as LocalNode;
    await create(
      nodePod('runs-until-node-stops', {
        script: SERVER,
        nodeSelector: { 'test.lepton.ai/node': 'no-gpu' },
      }),
    );
    const running = await waitForPod(
      'runs-until-node-stops',
      'to run',
      (p) => main(p)?.state.running !== undefined,
    );
    const pid = pidOf(running);
    expect(isAlive(pid)).toBe(true);
    await node.stop();
    expect(isAlive(pid)).toBe(false);
    const status = await client.get<{
      metadata: object;
      status: { conditions: { type: string; status: string }[] };
    }>(Resources.Node, '', 'lepton-local-test');
    expect(status.status.conditions.find((c) => c.type === 'Ready')?.status).toBe('False');
  });

  it('lets a pod reach a peer by its DNS name (hostname.subdomain.namespace.svc.cluster.local)', async () => {
    const peer = nodePod('peer', { script: SERVER });
    peer.spec.hostname = 'worker-0';
    peer.spec.subdomain = 'ring';
    await create(peer);
    await waitForPod('peer', 'to run', (p) => main(p)?.state.running !== undefined);
    const url = `http://worker-0.ring.${ns}.svc.cluster.local:8080/`;
    const client = `
      const fs = require('fs');
      const ask = () => fetch('${url}').then((r) => r.text()).then(
        (t) => { fs.writeFileSync(process.env.LEPTON_TERMINATION_LOG, t); process.exit(0); },
        () => setTimeout(ask, 200));
      ask();`;
    await create(nodePod('asks-peer', { script: client }));
    const pod = await waitForPod('asks-peer', 'to succeed', (p) => p.status?.phase === 'Succeeded');
    expect(main(pod)?.state.terminated?.message).toBe('peer');
  });

  it('keeps container logs where npm run cluster -- logs finds them', async () => {
    await create(nodePod('talks', { script: `console.log('hello from ' + process.env.POD_NAME)` }));
    await waitForPod('talks', 'to succeed', (p) => p.status?.phase === 'Succeeded');
    const stateDir = dirname(kubeconfigPath());
    const out = execFileSync(
      process.execPath,
      [join(repoRoot, 'test', 'cluster', 'cli.ts'), 'logs', '--state', stateDir, '-n', ns, 'talks'],
      { encoding: 'utf8' },
    );
    expect(out).toBe('hello from talks\n');
  });

  it("lets two pods that mount the same claim see each other's files", async () => {
    kubectl(
      ['create', '-n', ns, '-f', '-'],
      JSON.stringify({
        apiVersion: 'v1',
        kind: 'PersistentVolumeClaim',
        metadata: { name: 'shared' },
        spec: { accessModes: ['ReadWriteMany'], resources: { requests: { storage: '1Gi' } } },
      }),
    );
    const claim = {
      volumes: [{ name: 'data', persistentVolumeClaim: { claimName: 'shared' } }],
      mounts: [{ name: 'data', mountPath: '/data' }],
    };
    const dir = `JSON.parse(process.env.LEPTON_PATH_MAP)['/data']`;
    await create(
      nodePod('writer', {
        ...claim,
        script: `require('fs').writeFileSync(${dir} + '/model.txt', 'weights-v1')`,
      }),
    );
    await waitForPod('writer', 'to succeed', (p) => p.status?.phase === 'Succeeded');
    const reader = `const t = require('fs').readFileSync(${dir} + '/model.txt', 'utf8'); require('fs').writeFileSync(process.env.LEPTON_TERMINATION_LOG, t)`;
    await create(nodePod('reader', { ...claim, script: reader }));
    const pod = await waitForPod('reader', 'to succeed', (p) => p.status?.phase === 'Succeeded');
    expect(main(pod)?.state.terminated?.message).toBe('weights-v1');
  });
});

const SECRETS = {
  group: '',
  version: 'v1',
  plural: 'secrets',
  kind: 'Secret',
  namespaced: true,
};
const INIT_NODE = 'lepton-local-init';
const onInitNode = { 'test.lepton.ai/node': 'init-secrets' };
const initOf = (p: Pod) => p.status?.initContainerStatuses?.[0];
const condition = (p: Pod, type: string) => p.status?.conditions?.find((c) => c.type === type);
/** Node code that puts the folder mounted at MOUNT (through LEPTON_PATH_MAP) in `dir`. */
const mounted = (mount: string) =>
  `const dir = JSON.parse(process.env.LEPTON_PATH_MAP)['${mount}'];`;
const say = (expr: string) =>
  `require('fs').writeFileSync(process.env.LEPTON_TERMINATION_LOG, ${expr});`;

/** A container running `node -e SCRIPT`, for spec.initContainers. */
const nodeContainer = (name: string, script: string, mounts?: unknown[]) => ({
  name,
  image: 'node:24',
  args: ['-e', script],
  volumeMounts: mounts,
});

// Init containers and Secret volumes, on a node of this test's own: it runs this checkout's
// code, whenever the shared cluster's node was started.
describe('the local node with init containers and Secret volumes', () => {
  let node: LocalNode;
  beforeAll(async () => {
    node = new LocalNode({
      name: INIT_NODE,
      kubeconfig: kubeconfigPath(),
      stateDir: mkdtempSync(join(tmpdir(), 'lepton-localnode-')),
      repoRoot,
      labels: onInitNode,
      taints: [{ key: 'lepton.ai/local-node', value: 'true', effect: 'NoSchedule' }],
      capacity: { cpu: '2', memory: '4Gi', pods: '20' },
      logger: createLogger('warn'),
    });
    await node.start();
    await waitFor(
      `node ${INIT_NODE} to lose the not-ready taint`,
      async () => {
        const n = await client.get<{ metadata: object; spec?: { taints?: { key: string }[] } }>(
          Resources.Node,
          '',
          INIT_NODE,
        );
        return !(n.spec?.taints ?? []).some((t) => t.key.startsWith('node.kubernetes.io/'));
      },
      30_000,
    );
  });
  afterAll(async () => {
    await node.stop();
    kubectl(['delete', 'node', INIT_NODE]);
  });

  it('§localnode an init container runs to completion first and writes a file the main container reads', async () => {
    // The init container waits for a file the test writes, so its running state is observed
    // rather than raced.
    const gate = mkdtempSync(join(tmpdir(), 'lepton-init-gate-'));
    const volumes = [
      { name: 'work', emptyDir: {} },
      { name: 'gate', hostPath: { path: gate } },
    ];
    const prepare = `
      const fs = require('fs');
      ${mounted('/work')}
      const gate = JSON.parse(process.env.LEPTON_PATH_MAP)['/gate'] + '/go';
      const wait = () => {
        if (!fs.existsSync(gate)) return setTimeout(wait, 100);
        fs.writeFileSync(dir + '/prepared.txt', 'shard-7');
        ${say("'prepared 1 file'")}
      };
      wait();`;
    await create(
      nodePod('init-then-main', {
        nodeSelector: onInitNode,
        volumes,
        initContainers: [
          nodeContainer('prepare', prepare, [
            { name: 'work', mountPath: '/work' },
            { name: 'gate', mountPath: '/gate' },
          ]),
        ],
        mounts: [{ name: 'work', mountPath: '/data' }],
        script: `${mounted('/data')} ${say("require('fs').readFileSync(dir + '/prepared.txt', 'utf8')")}`,
      }),
    );
    const initializing = await waitForPod(
      'init-then-main',
      'to run its init container',
      (p) => initOf(p)?.state.running !== undefined,
    );
    expect(initializing.status?.phase).toBe('Pending');
    expect(main(initializing)?.state.waiting?.reason).toBe('PodInitializing');
    expect(condition(initializing, 'Initialized')).toMatchObject({
      status: 'False',
      reason: 'ContainersNotInitialized',
    });
    expect(initOf(initializing)?.ready).toBe(false);

    writeFileSync(join(gate, 'go'), '');
    const done = await waitForPod(
      'init-then-main',
      'to succeed',
      (p) => p.status?.phase === 'Succeeded',
    );
    expect(initOf(done)).toMatchObject({
      name: 'prepare',
      ready: false,
      restartCount: 0,
      state: { terminated: { exitCode: 0, reason: 'Completed', message: 'prepared 1 file' } },
    });
    expect(main(done)?.state.terminated).toMatchObject({ exitCode: 0, message: 'shard-7' });
    expect(condition(done, 'Initialized')?.status).toBe('True');
  });

  it('§localnode an init container that fails under restartPolicy Never fails the pod, and the main container never starts', async () => {
    await create(
      nodePod('init-fails', {
        nodeSelector: onInitNode,
        initContainers: [nodeContainer('check', `${say("'no dataset at /data'")} process.exit(4)`)],
        script: 'process.exit(0)',
      }),
    );
    const pod = await waitForPod('init-fails', 'to fail', (p) => p.status?.phase === 'Failed');
    expect(initOf(pod)).toMatchObject({
      name: 'check',
      restartCount: 0,
      state: { terminated: { exitCode: 4, reason: 'Error', message: 'no dataset at /data' } },
    });
    expect(main(pod)?.state.waiting?.reason).toBe('PodInitializing');
    expect(main(pod)?.containerID).toBeUndefined();
    expect(condition(pod, 'Initialized')?.status).toBe('False');
  });

  it('§localnode a failing init container is restarted under restartPolicy OnFailure, then the main container runs', async () => {
    // Fails once, then succeeds: the attempt count lives in an emptyDir, which outlives restarts.
    const flaky = `
      const fs = require('fs');
      ${mounted('/scratch')}
      const n = fs.existsSync(dir + '/attempts') ? 1 : 0;
      fs.writeFileSync(dir + '/attempts', '1');
      process.exit(n === 0 ? 1 : 0);`;
    await create(
      nodePod('init-retries', {
        nodeSelector: onInitNode,
        restartPolicy: 'OnFailure',
        volumes: [{ name: 'scratch', emptyDir: {} }],
        initContainers: [
          nodeContainer('flaky', flaky, [{ name: 'scratch', mountPath: '/scratch' }]),
        ],
        script: 'process.exit(0)',
      }),
    );
    const pod = await waitForPod(
      'init-retries',
      'to succeed',
      (p) => p.status?.phase === 'Succeeded',
    );
    expect(initOf(pod)?.restartCount).toBe(1);
    expect(initOf(pod)?.lastState?.terminated?.exitCode).toBe(1);
    expect(initOf(pod)?.state.terminated?.exitCode).toBe(0);
  });

  it('§localnode deleting a pod while its init container runs stops that container', async () => {
    await create(
      nodePod('init-deleted', {
        nodeSelector: onInitNode,
        grace: 5,
        initContainers: [nodeContainer('forever', SERVER)],
        script: 'process.exit(0)',
      }),
    );
    const running = await waitForPod(
      'init-deleted',
      'to run its init container',
      (p) => initOf(p)?.state.running !== undefined,
    );
    const pid = Number(initOf(running)?.containerID?.replace('local://', '') ?? 0);
    expect(isAlive(pid)).toBe(true);
    await client.delete(Resources.Pod, ns, 'init-deleted');
    await waitFor(
      'the pod object to be removed',
      async () => (await client.find(Resources.Pod, ns, 'init-deleted')) === undefined,
      20_000,
    );
    expect(isAlive(pid)).toBe(false);
  });

  it("§localnode a Secret volume's keys are files the container reads, removed with the pod", async () => {
    await client.create(SECRETS, {
      apiVersion: 'v1',
      kind: 'Secret',
      metadata: { name: 'site-key', namespace: ns },
      data: { token: Buffer.from('s3cr3t').toString('base64') },
    });
    const read = `
      const fs = require('fs');
      ${mounted('/etc/site')}
      const file = dir + '/token';
      ${say("JSON.stringify({ file, token: fs.readFileSync(file, 'utf8'), mode: fs.statSync(file).mode & 0o777 })")}`;
    await create(
      nodePod('reads-secret', {
        nodeSelector: onInitNode,
        // Without defaultMode the API server sets 0644, as for any pod.
        volumes: [{ name: 'site', secret: { secretName: 'site-key', defaultMode: 0o440 } }],
        mounts: [{ name: 'site', mountPath: '/etc/site', readOnly: true }],
        script: read,
      }),
    );
    const pod = await waitForPod(
      'reads-secret',
      'to succeed',
      (p) => p.status?.phase === 'Succeeded',
    );
    const seen = JSON.parse(main(pod)?.state.terminated?.message ?? '{}') as {
      file: string;
      token: string;
      mode: number;
    };
    expect(seen).toMatchObject({ token: 's3cr3t', mode: 0o440 });
    expect(existsSync(seen.file)).toBe(true);

    await client.delete(Resources.Pod, ns, 'reads-secret');
    await waitFor(
      'the pod object to be removed',
      async () => (await client.find(Resources.Pod, ns, 'reads-secret')) === undefined,
      20_000,
    );
    expect(existsSync(seen.file)).toBe(false);
  });

  it('§localnode a missing Secret keeps the container waiting with CreateContainerConfigError, and the pod starts once it exists', async () => {
    await create(
      nodePod('awaits-secret', {
        nodeSelector: onInitNode,
        volumes: [{ name: 'creds', secret: { secretName: 'late-key' } }],
        mounts: [{ name: 'creds', mountPath: '/creds' }],
        script: `${mounted('/creds')} ${say("require('fs').readFileSync(dir + '/password', 'utf8')")}`,
      }),
    );
    const waiting = await waitForPod(
      'awaits-secret',
      'to wait for its Secret',
      (p) => main(p)?.state.waiting?.reason === 'CreateContainerConfigError',
    );
    expect(main(waiting)?.state.waiting?.message).toContain('secret "late-key" not found');
    expect(waiting.status?.phase).toBe('Pending');

    await client.create(SECRETS, {
      apiVersion: 'v1',
      kind: 'Secret',
      metadata: { name: 'late-key', namespace: ns },
      stringData: { password: 'hunter2' },
    });
    const pod = await waitForPod(
      'awaits-secret',
      'to succeed',
      (p) => p.status?.phase === 'Succeeded',
    );
    expect(main(pod)?.state.terminated?.message).toBe('hunter2');
  });
});

const DNS_NODE = 'lepton-local-dns';
const onDnsNode = { 'test.lepton.ai/node': 'service-dns' };
// Answers GET /NAME with the sorted addresses dns.lookup(NAME, { all: true }) gives inside the
// pod (getaddrinfo over its /etc/hosts, as the serving runtime resolves), or the error code.
const RESOLVER = `
  const dns = require('dns');
  require('http').createServer((q, s) => dns.lookup(q.url.slice(1), { all: true }, (err, all) =>
    s.end(JSON.stringify(err ? err.code : all.map((a) => a.address).sort())),
  )).listen(8080, process.env.LEPTON_POD_IP);`;

// On a node of this test's own, so it runs this checkout's code whenever the shared cluster's
// node was started.
describe('the local node as the DNS of headless Services', () => {
  let node: LocalNode;
  beforeAll(async () => {
    node = new LocalNode({
      name: DNS_NODE,
      kubeconfig: kubeconfigPath(),
      stateDir: mkdtempSync(join(tmpdir(), 'lepton-localnode-')),
      repoRoot,
      labels: onDnsNode,
      taints: [{ key: 'lepton.ai/local-node', value: 'true', effect: 'NoSchedule' }],
      capacity: { cpu: '2', memory: '4Gi', pods: '20' },
      logger: createLogger('warn'),
    });
    await node.start();
    await waitFor(
      `node ${DNS_NODE} to lose the not-ready taint`,
      async () => {
        const n = await client.get<{ metadata: object; spec?: { taints?: { key: string }[] } }>(
          Resources.Node,
          '',
          DNS_NODE,
        );
        return !(n.spec?.taints ?? []).some((t) => t.key.startsWith('node.kubernetes.io/'));
      },
      30_000,
    );
  });
  afterAll(async () => {
    await node.stop();
    kubectl(['delete', 'node', DNS_NODE]);
  });

  it('§canary a headless Service resolves inside a pod to its ready pods, and drops a deleted one', async () => {
    expect(node.network.mode).toBe('netns');
    const backend = (name: string) =>
      nodePod(name, {
        script: SERVER,
        labels: { app: 'canary-dns' },
        readinessPort: 8080,
        nodeSelector: onDnsNode,
        grace: 2,
      });
    await create(backend('canary-a'));
    await create(backend('canary-b'));
    await create(nodePod('resolver', { script: RESOLVER, nodeSelector: onDnsNode }));
    await client.create(Resources.Service, {
      apiVersion: 'v1',
      kind: 'Service',
      metadata: { name: 'canary-dns', namespace: ns },
      spec: {
        clusterIP: 'None',
        selector: { app: 'canary-dns' },
        ports: [{ port: 8080, targetPort: 8080 }],
      },
    });
    const isReady = (p: Pod) =>
      p.status?.conditions?.some((c) => c.type === 'Ready' && c.status === 'True') ?? false;
    const [a, b] = await Promise.all([
      waitForPod('canary-a', 'to be Ready', isReady),
      waitForPod('canary-b', 'to be Ready', isReady),
    ]);
    const resolver = await waitForPod('resolver', 'to run', (p) => Boolean(p.status?.podIP));
    const names = [`canary-dns.${ns}.svc.cluster.local`, `canary-dns.${ns}.svc`];
    let seen: Record<string, unknown> = {};
    const resolvesTo = (ips: (string | undefined)[]) => async () => {
      seen = {};
      for (const name of names) {
        const res = await fetch(`http://${resolver.status?.podIP}:8080/${name}`).catch(
          () => undefined,
        );
        seen[name] = res ? JSON.parse(await res.text()) : 'no answer';
      }
      const want = JSON.stringify([...ips].sort());
      return names.every((n) => JSON.stringify(seen[n]) === want);
    };
    const expectResolution = async (what: string, ips: (string | undefined)[]) =>
      waitFor(what, resolvesTo(ips), 30_000).catch((err: Error) => {
        throw new Error(`${err.message}; the pod resolved ${JSON.stringify(seen)}`);
      });

    await expectResolution('the Service to resolve to both pods', [
      a.status?.podIP,
      b.status?.podIP,
    ]);
    await client.delete(Resources.Pod, ns, 'canary-a');
    await expectResolution('the Service to resolve to the pod left', [b.status?.podIP]);
  });
});
