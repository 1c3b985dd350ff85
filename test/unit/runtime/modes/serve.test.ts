import { type ChildProcess, spawn } from 'node:child_process';
import { type IncomingHttpHeaders, type Server, createServer, request } from 'node:http';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ENV, EXIT } from '../../../../src/contract/runtime.ts';
import {
  SERVING_ENV,
  type ServingSpec,
  type ServingStats,
} from '../../../../src/contract/serving.ts';
import { initBackend } from '../../../../src/runtime/backend.ts';
import { saveModel } from '../../../../src/runtime/model/model-store.ts';
import { loadPredictor } from '../../../../src/runtime/serving/model.ts';
import { waitFor } from '../../../cluster/cluster.ts';
import { mlp, servingSpec } from '../serving/model-fixtures.ts';

// Three iris-like rows, and what the model predicts for them in this process.
const ROWS = [
  [5.1, 3.5, 1.4, 0.2],
  [6.7, 3.0, 5.2, 2.3],
  [5.9, 3.0, 4.2, 1.5],
];
let dir: string;
let digest: string;
let expected: number[][];

beforeAll(async () => {
  await initBackend('wasm');
  dir = await mkdtemp(join(tmpdir(), 'lepton-serve-'));
  digest = (await saveModel(mlp(11), join(dir, 'models', 'iris'))).digest;
  const { predictor } = await loadPredictor(servingSpec(`file://${join(dir, 'models', 'iris')}`));
  const { outputs } = await predictor.predict({ rows: 3, inputs: [new Float32Array(ROWS.flat())] });
  expected = ROWS.map((_, r) => Array.from(outputs[0]!.subarray(r * 3, r * 3 + 3)));
  predictor.dispose();
});
afterAll(() => rm(dir, { recursive: true, force: true }));

interface Pod {
  child: ChildProcess;
  port(): Promise<number>;
  stderr(): string;
  exit: Promise<{ code: number | null; terminationLog: string }>;
}

const pods: Pod[] = [];
afterEach(() => {
  for (const pod of pods.splice(0)) if (pod.child.exitCode === null) pod.child.kill('SIGKILL');
});

/** `node src/runtime/main.ts serve` as the kubelet runs it, on a port the OS picks (logged). */
function startServe(name: string, spec: ServingSpec | string): Pod {
  const terminationLog = join(dir, `${name}.termination-log`);
  const child = spawn(process.execPath, ['src/runtime/main.ts', 'serve'], {
    cwd: process.cwd(),
    env: {
      PATH: process.env.PATH,
      HOME: process.env.HOME,
      [SERVING_ENV.spec]: typeof spec === 'string' ? spec : JSON.stringify(spec),
      [ENV.namespace]: 'default',
      [ENV.port]: '0',
      [ENV.pathMap]: JSON.stringify({ '/mnt/pvc/models': join(dir, 'models') }),
      [ENV.terminationLog]: terminationLog,
    },
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  let stderr = '';
  child.stderr!.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
  const exit = new Promise<number | null>((resolve) => child.on('close', resolve)).then(
    async (code) => ({
      code,
      terminationLog: await readFile(terminationLog, 'utf8').catch(() => ''),
    }),
  );
  let port = 0;
  const pod: Pod = {
    child,
    stderr: () => stderr,
    exit,
    port: async () => {
      await waitFor(
        'the serving server to log its port',
        () => {
          port = logged(stderr, 'Started the serving server')?.port ?? 0;
          return port > 0 || child.exitCode !== null;
        },
        30_000,
      );
      if (port === 0) throw new Error(`The pod exited before listening: ${stderr}`);
      return port;
    },
  };
  pods.push(pod);
  return pod;
}

/** The first JSON log line with this message. */
function logged(stderr: string, message: string): { port?: number } | undefined {
  for (const line of stderr.split('\n')) {
    if (!line.startsWith('{')) continue;
    const entry = JSON.parse(line) as { message?: string; port?: number };
    if (entry.message === message) return entry;
  }
  return undefined;
}

interface Answer {
  status: number;
  headers: IncomingHttpHeaders;
  body: string;
}

/** One request on a connection of its own, so that a server that stopped listening shows. */
function call(port: number, method: string, path: string, body?: unknown): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const req = request(
      {
        host: '127.0.0.1',
        port,
        method,
        path,
        agent: false,
        headers: { 'content-type': 'application/json' },
      },
      (res) => {
        let text = '';
        res.setEncoding('utf8');
        res.on('data', (c: string) => (text += c));
        res.on('end', () => resolve({ status: res.statusCode!, headers: res.headers, body: text }));
      },
    );
    req.on('error', reject);
    req.end(body === undefined ? undefined : JSON.stringify(body));
  });
}

const v1Body = { instances: ROWS };
const v2Body = {
  inputs: [{ name: 'hidden_1_input', shape: [3, 4], datatype: 'FP32', data: ROWS.flat() }],
};
const ready = async (port: number) => (await call(port, 'GET', '/v2/health/ready')).status === 200;

/** A model store over HTTP that holds every answer back until released. */
async function heldStore(): Promise<{
  url: string;
  asked(): boolean;
  release(): void;
  close(): Promise<void>;
}> {
  let release: () => void = () => undefined;
  const held = new Promise<void>((resolve) => (release = resolve));
  let asked = false;
  const server: Server = createServer((req, res) => {
    asked = true;
    void held.then(() =>
      readFile(join(dir, 'models', req.url!)).then(
        (body) => res.end(body),
        () => res.writeHead(404).end(),
      ),
    );
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    asked: () => asked,
    release,
    close: async () => {
      release();
      server.closeAllConnections();
      await new Promise((resolve) => server.close(resolve));
    },
  };
}

describe('node src/runtime/main.ts serve', () => {
  it('§serving-runtime answers live at once, and ready only once the model is loaded', async () => {
    const store = await heldStore();
    try {
      const pod = startServe('loading', servingSpec(`${store.url}/iris/model.json`, { digest }));
      const port = await pod.port();
      await waitFor('the pod to ask for the model', () => store.asked(), 30_000);
      expect((await call(port, 'GET', '/v2/health/live')).status).toBe(200);
      expect((await call(port, 'GET', '/v2/health/ready')).status).toBe(503);
      expect((await call(port, 'POST', '/v1/models/iris:predict', v1Body)).status).toBe(503);
      const loading = JSON.parse((await call(port, 'GET', '/stats')).body) as ServingStats;
      expect(loading).toMatchObject({ ready: false, draining: false });
      store.release();
      await waitFor('the pod to be ready', () => ready(port), 30_000);
      const stats = JSON.parse((await call(port, 'GET', '/stats')).body) as ServingStats;
      expect(stats.model).toMatchObject({ digest, format: 'tfjs-layers' });
      expect(stats.model!.loadSeconds).toBeGreaterThan(0);
      pod.child.kill('SIGTERM');
      expect((await pod.exit).code).toBe(EXIT.ok);
    } finally {
      await store.close();
    }
  });

  it('§serving-runtime exits 0 on SIGTERM while the model is still loading', async () => {
    const store = await heldStore();
    try {
      const pod = startServe('stopped', servingSpec(`${store.url}/iris/model.json`));
      await pod.port();
      await waitFor('the pod to ask for the model', () => store.asked(), 30_000);
      pod.child.kill('SIGTERM');
      expect((await pod.exit).code).toBe(EXIT.ok);
      expect(logged(pod.stderr(), 'Stopped by SIGTERM while loading the model')).toBeDefined();
    } finally {
      await store.close();
    }
  });

  it('§serving-runtime predicts on V1 and V2 what the model predicts in process', async () => {
    const pod = startServe('predict', servingSpec('pvc://models/iris', { digest }));
    const port = await pod.port();
    await waitFor('the pod to be ready', () => ready(port), 30_000);

    const v1 = await call(port, 'POST', '/v1/models/iris:predict', v1Body);
    expect(v1.status).toBe(200);
    expect(JSON.parse(v1.body)).toEqual({ predictions: expected });

    const v2 = await call(port, 'POST', '/v2/models/iris/infer', v2Body);
    expect(v2.status).toBe(200);
    expect(JSON.parse(v2.body)).toMatchObject({
      model_name: 'iris',
      outputs: [{ name: 'output', datatype: 'FP32', shape: [3, 3], data: expected.flat() }],
    });
    pod.child.kill('SIGTERM');
    expect((await pod.exit).code).toBe(EXIT.ok);
  });

  it.each([
    [
      'a digest other than the model’s',
      () => servingSpec('pvc://models/iris', { digest: `sha256:${'0'.repeat(64)}` }),
      () =>
        new RegExp(
          `^ModelDigestMismatch: pvc://models/iris has digest ${digest}, the spec expects sha256:0{64}$`,
        ),
    ],
    [
      'a model folder that does not exist',
      () => servingSpec('pvc://models/none'),
      () => /^ModelLoadFailed: pvc:\/\/models\/none: Cannot read/,
    ],
    [
      'a spec without modelUri',
      () => JSON.stringify({ ...servingSpec('pvc://models/iris'), modelUri: undefined }),
      () => /^InvalidServingSpec: modelUri must be a string, got nothing$/,
    ],
  ])(
    '§serving-runtime on %s exits 10 with the reason as its termination message',
    async (_name, spec, reason) => {
      const pod = startServe('bad', spec());
      const exit = await pod.exit;
      expect(exit.code).toBe(EXIT.permanent);
      expect(exit.terminationLog).toMatch(reason());
      expect(exit.terminationLog).not.toContain('\n');
      expect(pod.stderr().trim().split('\n').at(-1)).toBe(exit.terminationLog);
    },
  );

  it('§serving-runtime on SIGTERM drains: not ready, still answering, in-flight requests finished, exit 0', async () => {
    const pod = startServe('drain', servingSpec('pvc://models/iris', { drainSeconds: 3 }));
    const port = await pod.port();
    await waitFor('the pod to be ready', () => ready(port), 30_000);

    // A request in flight across the whole drain: its body arrives only after the server has
    // stopped listening.
    const body = JSON.stringify(v2Body);
    let inFlight: Answer | undefined;
    const req = request(
      {
        host: '127.0.0.1',
        port,
        method: 'POST',
        path: '/v2/models/iris/infer',
        agent: false,
        headers: { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) },
      },
      (res) => {
        let text = '';
        res.on('data', (c: Buffer) => (text += c.toString()));
        res.on(
          'end',
          () => (inFlight = { status: res.statusCode!, headers: res.headers, body: text }),
        );
      },
    );
    req.write(body.slice(0, 20));
    const stats = async () => JSON.parse((await call(port, 'GET', '/stats')).body) as ServingStats;
    await waitFor(
      'the request to be in flight',
      async () => (await stats()).inFlight === 1,
      10_000,
    );

    pod.child.kill('SIGTERM');
    await waitFor(
      'the pod to drain',
      () => logged(pod.stderr(), 'Started draining') !== undefined,
      10_000,
    );
    expect(await ready(port)).toBe(false);
    expect((await stats()).draining).toBe(true);
    // Endpoints take a while to drop the pod: requests that still come are answered.
    const late = await call(port, 'POST', '/v1/models/iris:predict', v1Body);
    expect(late.status).toBe(200);
    expect(late.headers.connection).toBe('close');

    await waitFor(
      'the server to stop listening',
      () =>
        call(port, 'GET', '/v2/health/live').then(
          () => false,
          () => true,
        ),
      15_000,
    );
    expect(pod.child.exitCode).toBeNull();
    req.end(body.slice(20));
    const exit = await pod.exit;
    expect(inFlight?.status).toBe(200);
    expect(JSON.parse(inFlight!.body).outputs[0].data).toEqual(expected.flat());
    expect(exit.code).toBe(EXIT.ok);
  });
});
