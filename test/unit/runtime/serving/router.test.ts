import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { VARIANT_HEADER } from '../../../../src/contract/serving.ts';
import type { ServingSpec } from '../../../../src/contract/serving.ts';
import {
  type ServingServer,
  type ServingServerOptions,
  startServingServer,
} from '../../../../src/runtime/serving/http.ts';
import type { Predictor } from '../../../../src/runtime/serving/predictor.ts';
import { CanaryRouter } from '../../../../src/runtime/serving/router.ts';
import { LinearPredictor, call, linear, post, servingSpec } from './fixtures.ts';

const MODEL = {
  uri: 'file:///m',
  digest: 'sha256:0',
  format: 'tfjs-layers',
  loadSeconds: 0,
} as const;
const PREDICT = '/v1/models/iris:predict';
const INFER = '/v2/models/iris/infer';

/** The linear model times `k`: tells which server answered by the numbers alone. */
function scaled(k: number): Predictor {
  const base = new LinearPredictor();
  return {
    inputs: base.inputs,
    outputs: base.outputs,
    predict: async (b) => ({ outputs: [(await base.predict(b)).outputs[0]!.map((v) => v * k)] }),
    dispose: () => {},
  };
}

const servers: ServingServer[] = [];
afterEach(async () => {
  await Promise.all(servers.splice(0).map((s) => s.close()));
});

async function serve(
  spec: Partial<ServingSpec>,
  predictor: Predictor,
  options: Partial<ServingServerOptions> = {},
) {
  const server = await startServingServer({
    spec: servingSpec(spec),
    predictor: () => predictor,
    port: 0,
    host: '127.0.0.1',
    ...options,
  });
  server.markLoaded(MODEL);
  servers.push(server);
  return server;
}

/** A canary (answers ×10) and a predictor that sends `trafficPercent` of its requests there. */
async function pair(trafficPercent: number, options: Partial<ServingServerOptions> = {}) {
  const canary = await serve({ variant: 'canary' }, scaled(10));
  const resolved: string[] = [];
  const predictor = await serve(
    { canary: { host: 'iris-canary.ns.svc', port: canary.port, trafficPercent } },
    new LinearPredictor(),
    {
      resolve: async (host) => {
        resolved.push(host);
        return ['127.0.0.1'];
      },
      ...options,
    },
  );
  return { canary, predictor, resolved };
}

describe('canary router', () => {
  it.each([0, 1, 10, 25, 33, 50, 99, 100])(
    '§canary sends exactly %i%% of every 100 consecutive requests to the canary',
    (p) => {
      const router = new CanaryRouter({ host: 'c', port: 1, trafficPercent: p });
      const taken = Array.from({ length: 1000 }, () => router.take());
      for (let start = 0; start + 100 <= 1000; start += 7)
        expect(taken.slice(start, start + 100).filter(Boolean).length).toBe(p);
      router.close();
    },
  );

  it('§canary forwards predict and infer requests and returns the canary answers unchanged', async () => {
    const { canary, predictor, resolved } = await pair(25);
    const variants: string[] = [];
    for (let i = 0; i < 200; i++) {
      const res =
        i % 2 === 0
          ? await post(predictor.port, PREDICT, { instances: [[i, 1, 2]] })
          : await post(predictor.port, INFER, {
              id: `r${i}`,
              inputs: [{ name: 'x', shape: [1, 3], datatype: 'FP32', data: [i, 1, 2] }],
            });
      expect(res.status).toBe(200);
      const variant = String(res.headers[VARIANT_HEADER]);
      variants.push(variant);
      const k = variant === 'canary' ? 10 : 1;
      const y = linear([i, 1, 2]).map((v) => Math.fround(v * k));
      if (i % 2 === 0) expect(res.json()).toEqual({ predictions: [y] });
      else expect(res.json()).toMatchObject({ id: `r${i}`, outputs: [{ name: 'y', data: y }] });
    }
    expect(variants.filter((v) => v === 'canary')).toHaveLength(50);
    expect(variants.slice(0, 4)).toEqual(['predictor', 'predictor', 'predictor', 'canary']);
    expect(predictor.stats()).toMatchObject({
      requestsTotal: 200,
      canaryForwardedTotal: 50,
      canaryFallbackTotal: 0,
    });
    expect(canary.stats().requestsTotal).toBe(50);
    expect(resolved[0]).toBe('iris-canary.ns.svc');
  });

  it('§canary answers health and metadata locally, outside the split', async () => {
    const { canary, predictor } = await pair(100);
    for (const path of [
      '/v2/health/ready',
      '/v2/models/iris',
      '/v1/models/iris',
      '/v2',
      '/stats',
    ]) {
      const res = await call(predictor.port, 'GET', path);
      expect([path, res.status, res.headers[VARIANT_HEADER]]).toEqual([path, 200, 'predictor']);
    }
    expect(canary.stats().requestsTotal).toBe(0);
    // Bad requests to other paths are not split either.
    expect(
      (await post(predictor.port, '/v1/models/other:predict', {})).headers[VARIANT_HEADER],
    ).toBe('predictor');
  });

  it('§canary forwards binary infer requests with the headers that describe them', async () => {
    const { predictor } = await pair(100);
    const head = Buffer.from(
      JSON.stringify({
        inputs: [
          { name: 'x', shape: [1, 3], datatype: 'FP32', parameters: { binary_data_size: 12 } },
        ],
      }),
    );
    const res = await post(
      predictor.port,
      INFER,
      Buffer.concat([head, Buffer.from(new Float32Array([1, 2, 3]).buffer)]),
      {
        'Inference-Header-Content-Length': String(head.length),
      },
    );
    expect(res.headers[VARIANT_HEADER]).toBe('canary');
    expect(res.json()).toMatchObject({ outputs: [{ data: linear([1, 2, 3]).map((v) => v * 10) }] });
  });

  it('§canary passes on the canary errors as they are', async () => {
    const { predictor } = await pair(100);
    const res = await post(predictor.port, PREDICT, { instances: [[1, 2]] });
    expect(res.status).toBe(400);
    expect(res.headers[VARIANT_HEADER]).toBe('canary');
    expect((res.json() as { error: string }).error).toMatch(
      /^instances\[0\] does not fit input "x"/,
    );
  });

  it.each([
    ['no address resolves', async () => []],
    ['the lookup fails', () => Promise.reject(new Error('getaddrinfo ENOTFOUND iris-canary'))],
  ])('§canary serves locally and counts a fallback when %s', async (_, resolve) => {
    const predictor = await serve(
      { canary: { host: 'iris-canary', port: 1, trafficPercent: 100 } },
      new LinearPredictor(),
      {
        resolve,
      },
    );
    for (let i = 0; i < 3; i++) {
      const res = await post(predictor.port, PREDICT, { instances: [[1, 2, 3]] });
      expect([res.status, res.headers[VARIANT_HEADER]]).toEqual([200, 'predictor']);
    }
    expect(predictor.stats()).toMatchObject({ canaryForwardedTotal: 0, canaryFallbackTotal: 3 });
    const metrics = (await call(predictor.port, 'GET', '/metrics')).body.toString();
    expect(metrics).toContain('lepton_serving_canary_fallback_total 3');
  });

  it('§canary serves locally when the canary refuses the connection', async () => {
    const closed = createServer();
    await new Promise<void>((resolve) => closed.listen(0, '127.0.0.1', () => resolve()));
    const port = (closed.address() as AddressInfo).port;
    await new Promise((resolve) => closed.close(resolve));
    const predictor = await serve(
      { canary: { host: 'iris-canary', port, trafficPercent: 50 } },
      new LinearPredictor(),
      {
        resolve: async () => ['127.0.0.1'],
      },
    );
    const statuses = [];
    for (let i = 0; i < 4; i++)
      statuses.push((await post(predictor.port, PREDICT, { instances: [[1, 2, 3]] })).status);
    expect(statuses).toEqual([200, 200, 200, 200]);
    expect(predictor.stats()).toMatchObject({ canaryForwardedTotal: 0, canaryFallbackTotal: 2 });
  });

  it('§canary resolves the host about once a second and takes its addresses in turn', async () => {
    const first = await serve({ variant: 'canary' }, scaled(10), { host: '127.0.0.1' });
    // The same port on another loopback address: one Service, two canary pods.
    const hundredfold = scaled(100);
    const second = await startServingServer({
      spec: servingSpec({ variant: 'canary' }),
      predictor: () => hundredfold,
      port: first.port,
      host: '127.0.0.2',
    });
    second.markLoaded(MODEL);
    servers.push(second);
    let t = 0;
    let lookups = 0;
    const predictor = await serve(
      { canary: { host: 'iris-canary', port: first.port, trafficPercent: 100 } },
      new LinearPredictor(),
      {
        now: () => t,
        resolve: async () => {
          lookups++;
          return ['127.0.0.1', '127.0.0.2'];
        },
      },
    );
    const answers: unknown[] = [];
    for (let i = 0; i < 4; i++)
      answers.push((await post(predictor.port, PREDICT, { instances: [[1, 0, 0]] })).json());
    expect(answers).toEqual([10, 100, 10, 100].map((k) => ({ predictions: [[k, 2 * k]] })));
    expect(lookups).toBe(1);
    t += 1001;
    await post(predictor.port, PREDICT, { instances: [[1, 0, 0]] });
    expect(lookups).toBe(2);
    expect([first.stats().requestsTotal, second.stats().requestsTotal]).toEqual([3, 2]);
  });
});
