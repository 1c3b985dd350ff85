import { request } from 'node:http';
import type { ServingSpec } from '../../../../src/contract/serving.ts';
import { VARIANT_HEADER } from '../../../../src/contract/serving.ts';
import {
  type ServingModel,
  type ServingServer,
  type ServingServerOptions,
  startServingServer,
} from '../../../../src/runtime/serving/http.ts';
import type { Predictor } from '../../../../src/runtime/serving/predictor.ts';
import {
  LinearPredictor,
  MixedPredictor,
  call,
  linear,
  post,
  raw,
  servingSpec,
  waitFor,
} from './fixtures.ts';

const MODEL: ServingModel = {
  uri: 'file:///models/iris/model.json',
  digest: 'sha256:abc',
  format: 'tfjs-layers',
  loadSeconds: 1.5,
};

const servers: ServingServer[] = [];
afterEach(async () => {
  await Promise.all(servers.splice(0).map((s) => s.close()));
});

interface Start {
  spec?: Partial<ServingSpec>;
  options?: Partial<ServingServerOptions>;
  predictor?: Predictor | undefined;
  load?: boolean;
}

async function start({
  spec,
  options,
  predictor = new LinearPredictor(),
  load = true,
}: Start = {}) {
  const server = await startServingServer({
    spec: servingSpec(spec),
    predictor: () => predictor,
    port: 0,
    host: '127.0.0.1',
    ...options,
  });
  servers.push(server);
  if (load && predictor !== undefined) server.markLoaded(MODEL);
  return server;
}

const PREDICT = '/v1/models/iris:predict';
const INFER = '/v2/models/iris/infer';
const good = { instances: [[1, 2, 3]] };

/** The server still answers a good request (a bad one must neither crash nor stall it). */
async function stillServes(server: ServingServer): Promise<void> {
  const res = await post(server.port, PREDICT, good);
  expect(res.status).toBe(200);
  expect(res.json()).toEqual({ predictions: [linear([1, 2, 3])] });
}

describe('serving HTTP server: KServe V1', () => {
  it('§v1 answers model status (ready) and the model list', async () => {
    const server = await start();
    const status = await call(server.port, 'GET', '/v1/models/iris');
    expect(status.status).toBe(200);
    expect(status.json()).toEqual({
      name: 'iris',
      ready: true,
      model_version_status: [
        { version: '1', state: 'AVAILABLE', status: { error_code: 'OK', error_message: '' } },
      ],
    });
    expect((await call(server.port, 'GET', '/v1/models')).json()).toEqual({ models: ['iris'] });
  });

  it('§v1 predicts instances (row format) and inputs (columnar), with or without a version', async () => {
    const server = await start();
    const rows = await post(server.port, PREDICT, {
      instances: [
        [1, 2, 3],
        [4, 5, 6],
      ],
    });
    expect(rows.status).toBe(200);
    expect(rows.headers['content-type']).toBe('application/json');
    expect(rows.json()).toEqual({ predictions: [linear([1, 2, 3]), linear([4, 5, 6])] });
    const columns = await post(server.port, '/v1/models/iris/versions/1:predict', {
      inputs: [[4, 5, 6]],
    });
    expect(columns.json()).toEqual({ outputs: [linear([4, 5, 6])] });
  });

  it('§v1 answers many rows in one request', async () => {
    const server = await start({
      spec: { batcher: { maxBatchSize: 8, maxLatencyMs: 1, maxQueueSize: 16 } },
    });
    const instances = Array.from({ length: 5000 }, (_, i) => [i, 1, -i]);
    const res = await post(server.port, PREDICT, { instances });
    expect(res.status).toBe(200);
    expect((res.json() as { predictions: number[][] }).predictions).toEqual(instances.map(linear));
  });
});

describe('serving HTTP server: Open Inference Protocol V2', () => {
  it('§v2 answers health, server metadata, model metadata and model readiness', async () => {
    const server = await start();
    expect((await call(server.port, 'GET', '/v2/health/live')).json()).toEqual({ live: true });
    expect((await call(server.port, 'GET', '/v2/health/ready')).json()).toEqual({ ready: true });
    expect((await call(server.port, 'GET', '/v2')).json()).toEqual({
      name: 'lepton-runtime',
      version: '0.1.0',
      extensions: ['binary_tensor_data'],
    });
    const metadata = {
      name: 'iris',
      versions: ['1'],
      platform: 'tfjs-layers',
      inputs: [{ name: 'x', datatype: 'FP32', shape: [-1, 3] }],
      outputs: [{ name: 'y', datatype: 'FP32', shape: [-1, 2] }],
    };
    expect((await call(server.port, 'GET', '/v2/models/iris')).json()).toEqual(metadata);
    expect((await call(server.port, 'GET', '/v2/models/iris/versions/1')).json()).toEqual(metadata);
    for (const path of ['/v2/models/iris/ready', '/v2/models/iris/versions/1/ready']) {
      const res = await call(server.port, 'GET', path);
      expect([res.status, res.json()]).toEqual([200, { name: 'iris', ready: true }]);
    }
  });

  it('§v2 infers with per-output datatype and shape, the requested outputs and the id', async () => {
    const server = await start({ predictor: new MixedPredictor() });
    const res = await post(server.port, '/v2/models/iris/versions/1/infer', {
      id: 'req-7',
      inputs: [
        { name: 'a', shape: [1, 2], datatype: 'FP32', data: [[1, 2]] },
        { name: 'b', shape: [1], datatype: 'INT32', data: [3] },
        { name: 'c', shape: [1, 2], datatype: 'BOOL', data: [true, false] },
      ],
      outputs: [{ name: 'double' }, { name: 'not' }],
    });
    expect(res.status).toBe(200);
    expect(res.json()).toEqual({
      model_name: 'iris',
      model_version: '1',
      id: 'req-7',
      outputs: [
        { name: 'double', datatype: 'INT32', shape: [1, 1], data: [6] },
        { name: 'not', datatype: 'BOOL', shape: [1, 2], data: [false, true] },
      ],
    });
  });

  it('§v2 gives a request without an id one of its own', async () => {
    const server = await start();
    const res = await post(server.port, INFER, {
      inputs: [{ name: 'x', shape: [1, 3], datatype: 'FP32', data: [1, 2, 3] }],
    });
    expect((res.json() as { id: string }).id).toMatch(/^[0-9a-f-]{36}$/);
  });

  it('§v2 speaks the binary tensor extension both ways', async () => {
    const server = await start();
    const head = Buffer.from(
      JSON.stringify({
        inputs: [
          { name: 'x', shape: [2, 3], datatype: 'FP32', parameters: { binary_data_size: 24 } },
        ],
        outputs: [{ name: 'y', parameters: { binary_data: true } }],
      }),
    );
    const x = new Float32Array([1, 2, 3, 4, 5, 6]);
    const res = await post(server.port, INFER, Buffer.concat([head, Buffer.from(x.buffer)]), {
      'Inference-Header-Content-Length': String(head.length),
    });
    expect(res.status).toBe(200);
    expect(res.headers['content-type']).toBe('application/octet-stream');
    const jsonLength = Number(res.headers['inference-header-content-length']);
    const answer = JSON.parse(res.body.subarray(0, jsonLength).toString()) as {
      outputs: unknown[];
    };
    expect(answer.outputs).toEqual([
      { name: 'y', datatype: 'FP32', shape: [2, 2], parameters: { binary_data_size: 16 } },
    ]);
    const y = res.body.subarray(jsonLength);
    expect(
      Array.from(new Float32Array(y.buffer.slice(y.byteOffset, y.byteOffset + y.length))),
    ).toEqual([...linear([1, 2, 3]), ...linear([4, 5, 6])]);
  });
});

describe('serving HTTP server: bad requests', () => {
  const x = (data: unknown, shape = [1, 3], datatype = 'FP32') => ({
    inputs: [{ name: 'x', shape, datatype, data }],
  });
  it.each([
    [
      'malformed JSON (V1)',
      'POST',
      PREDICT,
      '{"instances": [',
      400,
      /^malformed JSON in the request body: /,
    ],
    [
      'malformed JSON (V2)',
      'POST',
      INFER,
      '{"inputs"',
      400,
      /^malformed JSON in the request body: /,
    ],
    [
      'no instances or inputs',
      'POST',
      PREDICT,
      { signature_name: 'x' },
      400,
      /neither "instances"/,
    ],
    ['no inputs (V2)', 'POST', INFER, {}, 400, /^"inputs" must be a non-empty list of tensors/],
    [
      'a row of the wrong size',
      'POST',
      PREDICT,
      { instances: [[1, 2]] },
      400,
      /^instances\[0\] does not fit input "x" \(FP32, row shape \[3\]\)/,
    ],
    [
      'an element count unlike the shape',
      'POST',
      INFER,
      x([1, 2]),
      400,
      /^input "x": 2 values in "data" for shape \[1,3\] \(3 expected\)$/,
    ],
    [
      'row dims unlike the model',
      'POST',
      INFER,
      x([1, 2, 3, 4], [1, 4]),
      400,
      /^input "x": shape \[1,4\] does not match the model's \[-1,3\]$/,
    ],
    [
      'a wrong datatype',
      'POST',
      INFER,
      x([1, 2, 3], [1, 3], 'INT32'),
      400,
      /^input "x" has datatype INT32, the model expects FP32$/,
    ],
    [
      'a value of the wrong type',
      'POST',
      PREDICT,
      { instances: [[1, null, 3]] },
      400,
      /expected a number \(FP32\), got null/,
    ],
    [
      'an unknown input name',
      'POST',
      INFER,
      { inputs: [{ name: 'z', shape: [1], datatype: 'FP32', data: [1] }] },
      400,
      /^unknown input "z"/,
    ],
    [
      'an unknown model (V1)',
      'POST',
      '/v1/models/other:predict',
      good,
      404,
      /^model "other" does not exist \(this server serves "iris"\)$/,
    ],
    [
      'an unknown model (V2)',
      'GET',
      '/v2/models/other',
      undefined,
      404,
      /^model "other" does not exist/,
    ],
    [
      'an unknown version',
      'POST',
      '/v2/models/iris/versions/2/infer',
      x([1, 2, 3]),
      404,
      /^model "iris" has no version "2" \(it has version 1\)$/,
    ],
    [
      'an unknown verb',
      'POST',
      '/v1/models/iris:classify',
      good,
      404,
      /^unknown verb ":classify" \(the runtime serves :predict\)$/,
    ],
    ['an unknown path', 'GET', '/v3/models', undefined, 404, /^no such path: \/v3\/models /],
    [
      'GET on predict',
      'GET',
      PREDICT,
      undefined,
      405,
      /^GET is not allowed on \/v1\/models\/iris:predict \(use POST\)$/,
    ],
    [
      'POST on metadata',
      'POST',
      '/v2/models/iris',
      good,
      405,
      /^POST is not allowed on \/v2\/models\/iris \(use GET\)$/,
    ],
    [
      'DELETE on readiness',
      'DELETE',
      '/v2/health/ready',
      undefined,
      405,
      /^DELETE is not allowed on \/v2\/health\/ready \(use GET\)$/,
    ],
  ])(
    '§bad-input answers %s with a JSON error that says what is wrong',
    async (_, method, path, body, status, message) => {
      const server = await start();
      const payload = body === undefined || typeof body === 'string' ? body : JSON.stringify(body);
      const res = await call(server.port, method, path, payload);
      expect(res.status).toBe(status);
      expect(res.headers['content-type']).toBe('application/json');
      expect(res.headers[VARIANT_HEADER]).toBe('predictor');
      expect((res.json() as { error: string }).error).toMatch(message);
      if (status === 405) expect(res.headers.allow).toMatch(/^(POST|GET, HEAD)$/);
      await stillServes(server);
    },
  );

  it('§bad-input answers 503 until the model is loaded, then serves', async () => {
    let predictor: Predictor | undefined = undefined;
    const server = await start({ options: { predictor: () => predictor }, load: false });
    for (const [method, path, body] of [
      ['POST', PREDICT, JSON.stringify(good)],
      ['GET', '/v1/models/iris', undefined],
      ['GET', '/v2/health/ready', undefined],
      ['GET', '/v2/models/iris/ready', undefined],
      ['GET', '/v2/models/iris', undefined],
    ] as const) {
      const res = await call(server.port, method, path, body);
      expect([path, res.status]).toEqual([path, 503]);
      expect((res.json() as { error: string }).error).toMatch(
        /^model "iris" is not (loaded yet|ready)$/,
      );
    }
    expect(server.stats().ready).toBe(false);
    expect(() => server.markLoaded(MODEL)).toThrow('the predictor is not set yet');
    predictor = new LinearPredictor();
    server.markLoaded(MODEL);
    expect(server.stats()).toMatchObject({ ready: true, model: MODEL });
    await stillServes(server);
  });

  it('§bad-input refuses a body over maxRequestBytes with 413 before reading it', async () => {
    const server = await start({ spec: { maxRequestBytes: 1000 } });
    // Headers that announce 100 MB, and no body at all: the answer cannot have waited for it.
    const answer = await raw(server.port, (s) =>
      s.write(`POST ${PREDICT} HTTP/1.1\r\nHost: x\r\nContent-Length: 100000000\r\n\r\n`),
    );
    expect(answer).toMatch(/^HTTP\/1.1 413 /);
    expect(answer).toMatch(/connection: close/i);
    expect(answer).toContain('{"error":"the request body is larger than the limit of 1000 bytes"}');
    await stillServes(server);
  });

  it('§bad-input refuses a chunked body with 413 as soon as it passes maxRequestBytes', async () => {
    const server = await start({ spec: { maxRequestBytes: 1000 } });
    const chunk = 'x'.repeat(600);
    const answer = await raw(server.port, (s) =>
      // Two chunks pass the limit; the body never ends, so only the limit can answer.
      s.write(
        `POST ${INFER} HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n` +
          `258\r\n${chunk}\r\n258\r\n${chunk}\r\n`,
      ),
    );
    expect(answer).toMatch(/^HTTP\/1.1 413 /);
    expect(answer).toContain(`${VARIANT_HEADER}: predictor`);
    await stillServes(server);
  });

  it('§bad-input answers a body that trickles with 408', async () => {
    const server = await start({ options: { bodyTimeoutMs: 200 } });
    let timer: NodeJS.Timeout | undefined;
    const answer = await raw(server.port, (s) => {
      s.write(`POST ${PREDICT} HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{`);
      // One byte every 20 ms: the connection is never idle, yet the body is far from done.
      timer = setInterval(() => s.writable && s.write(' '), 20);
    });
    clearInterval(timer);
    expect(answer).toMatch(/^HTTP\/1.1 408 /);
    expect(answer).toMatch(
      /\{"error":"the request body did not arrive within 200 ms \(\d+ bytes received\)"\}$/,
    );
    await stillServes(server);
  });

  it('§bad-input answers headers that never finish with 408', async () => {
    const server = await start({ options: { headersTimeoutMs: 200 } });
    const answer = await raw(server.port, (s) =>
      s.write(`POST ${PREDICT} HTTP/1.1\r\nHost: x\r\n`),
    );
    expect(answer).toMatch(/^HTTP\/1.1 408 /);
    expect(answer).toContain('{"error":"the request did not arrive within 200 ms"}');
    await stillServes(server);
  });

  it('§bad-input answers a malformed HTTP request with a JSON 400', async () => {
    const server = await start();
    const answer = await raw(server.port, (s) => s.write('NOT HTTP AT ALL\r\n\r\n'));
    expect(answer).toMatch(/^HTTP\/1.1 400 /);
    expect(answer).toMatch(/\{"error":"malformed HTTP request: .+"\}$/);
    await stillServes(server);
  });

  it('§bad-input survives a client that leaves during its prediction', async () => {
    const predictor = new LinearPredictor();
    const server = await start({ predictor });
    const release = predictor.hold();
    const req = request({
      host: '127.0.0.1',
      port: server.port,
      method: 'POST',
      path: PREDICT,
      agent: false,
    });
    req.on('error', () => {});
    req.end(JSON.stringify(good));
    await waitFor('the prediction to start', () => predictor.batches.length === 1);
    req.destroy();
    await waitFor('the request to leave', () => server.stats().inFlight === 0);
    release();
    await stillServes(server);
  });

  it('§bad-input answers 500 when the model fails, and goes on serving', async () => {
    const predictor = new LinearPredictor();
    let fail = true;
    const failing: Predictor = {
      inputs: predictor.inputs,
      outputs: predictor.outputs,
      predict: (b) => (fail ? Promise.reject(new Error('kernel crashed')) : predictor.predict(b)),
      dispose: () => {},
    };
    const server = await start({ predictor: failing });
    const res = await post(server.port, PREDICT, good);
    expect([res.status, res.json()]).toEqual([500, { error: 'prediction failed: kernel crashed' }]);
    fail = false;
    await stillServes(server);
  });

  it('§bad-input refuses to mark loaded a model whose rows have no fixed shape', async () => {
    const variable = new LinearPredictor();
    const server = await start({
      predictor: {
        inputs: [{ name: 'x', datatype: 'FP32', shape: [-1, -1] }],
        outputs: variable.outputs,
        predict: (b) => variable.predict(b),
        dispose: () => {},
      },
      load: false,
    });
    expect(() => server.markLoaded(MODEL)).toThrow(
      "The model's input x has shape [-1,-1]: the runtime serves only fixed dimensions after the batch dimension",
    );
    expect(server.stats().ready).toBe(false);
  });

  it('§variant every response carries the variant header', async () => {
    const server = await start({ spec: { variant: 'canary' } });
    for (const [method, path] of [
      ['GET', '/v2/health/live'],
      ['GET', '/v2/health/ready'],
      ['GET', '/stats'],
      ['GET', '/metrics'],
      ['GET', '/v2'],
      ['GET', '/nope'],
      ['PUT', '/v1/models'],
      ['POST', PREDICT],
    ]) {
      const res = await call(
        server.port,
        method!,
        path!,
        method === 'POST' ? JSON.stringify(good) : undefined,
      );
      expect([path, res.headers[VARIANT_HEADER]]).toEqual([path, 'canary']);
    }
  });
});

describe('serving HTTP server: batching', () => {
  it('§batching batches concurrent requests; results equal unbatched ones; big requests still answered', async () => {
    const predictor = new LinearPredictor();
    const server = await start({
      predictor,
      spec: { batcher: { maxBatchSize: 4, maxLatencyMs: 5, maxQueueSize: 100 } },
    });
    const release = predictor.hold();
    const instances = Array.from({ length: 12 }, (_, i) => [[i, i / 2, -i]]);
    const answers = instances.map((rows) => post(server.port, PREDICT, { instances: rows }));
    const big = post(server.port, PREDICT, {
      instances: Array.from({ length: 9 }, (_, i) => [i, 0, 0]),
    });
    await waitFor('requests to queue up', () => server.stats().inFlight === 13);
    release();
    const results = await Promise.all(answers);
    expect(results.map((r) => r.json())).toEqual(
      instances.map((rows) => ({ predictions: rows.map(linear) })),
    );
    expect((await big).status).toBe(200);
    expect(predictor.maxRunning).toBe(1);
    expect(predictor.batches.some((n) => n > 1)).toBe(true);
    expect(predictor.batches).toContain(9);
    expect(predictor.batches.filter((n) => n !== 9).every((n) => n <= 4)).toBe(true);
  });

  it('§batching answers 503 with Retry-After at once when the queue is full', async () => {
    const predictor = new LinearPredictor();
    const server = await start({
      predictor,
      spec: { batcher: { maxBatchSize: 1, maxLatencyMs: 0, maxQueueSize: 2 } },
    });
    const release = predictor.hold();
    const running = post(server.port, PREDICT, good);
    await waitFor('the first batch to run', () => predictor.batches.length === 1);
    const queued = [post(server.port, PREDICT, good), post(server.port, PREDICT, good)];
    await waitFor('two rows to wait', () => server.stats().inFlight === 3);
    const refused = await post(server.port, PREDICT, good);
    expect(refused.status).toBe(503);
    expect(refused.headers['retry-after']).toBe('1');
    expect((refused.json() as { error: string }).error).toBe(
      'the batch queue is full (2 rows waiting, maxQueueSize 2): retry later',
    );
    release();
    expect((await Promise.all([running, ...queued])).map((r) => r.status)).toEqual([200, 200, 200]);
  });
});

describe('serving HTTP server: stats, metrics and drain', () => {
  it('§stats integrates in-flight requests over the injected clock', async () => {
    let t = 10_000;
    const predictor = new LinearPredictor();
    const server = await start({ predictor, options: { now: () => t } });
    const release = predictor.hold();
    const first = post(server.port, PREDICT, good);
    await waitFor('one request in flight', () => server.stats().inFlight === 1);
    t += 1000;
    const second = post(server.port, PREDICT, good);
    await waitFor('two requests in flight', () => server.stats().inFlight === 2);
    t += 500;
    expect(server.stats().concurrencySecondsTotal).toBe(2);
    release();
    await Promise.all([first, second]);
    t += 4000;
    await call(server.port, 'GET', '/v2/health/ready');
    expect(server.stats()).toEqual({
      requestsTotal: 2,
      inFlight: 0,
      concurrencySecondsTotal: 2,
      uptimeSeconds: 5.5,
      ready: true,
      draining: false,
      model: MODEL,
    });
  });

  it('§metrics exposes requests, durations, batches, queue, in-flight and the model', async () => {
    const server = await start({
      spec: { batcher: { maxBatchSize: 4, maxLatencyMs: 1, maxQueueSize: 8 } },
    });
    await post(server.port, PREDICT, {
      instances: [
        [1, 2, 3],
        [4, 5, 6],
      ],
    });
    await post(server.port, INFER, { inputs: [] });
    await call(server.port, 'GET', '/nowhere');
    const res = await call(server.port, 'GET', '/metrics');
    expect(res.headers['content-type']).toMatch(/^text\/plain/);
    const text = res.body.toString();
    for (const line of [
      'lepton_serving_requests_total{protocol="v1",model="iris",code="200"} 1',
      'lepton_serving_requests_total{protocol="v2",model="iris",code="400"} 1',
      'lepton_serving_requests_total{protocol="none",model="",code="404"} 1',
      'lepton_serving_request_duration_seconds_bucket{le="0.0005",protocol="v1",model="iris",code="200"}',
      'lepton_serving_request_duration_seconds_bucket{le="10",protocol="v1",model="iris",code="200"} 1',
      'lepton_serving_batch_size_sum 2',
      'lepton_serving_batch_size_count 1',
      'lepton_serving_queue_depth 0',
      'lepton_serving_inflight_requests 0',
      'lepton_serving_model_load_seconds 1.5',
      'lepton_serving_model_info{model="iris",uri="file:///models/iris/model.json",digest="sha256:abc",variant="predictor"} 1',
      'lepton_serving_canary_forwarded_total 0',
    ])
      expect(text).toContain(line);
  });

  it('§drain stops being ready at once and keeps answering for drainSeconds', async () => {
    const server = await start({ spec: { drainSeconds: 3600 } });
    const drained = server.drain();
    expect(server.stats()).toMatchObject({ ready: false, draining: true });
    const ready = await call(server.port, 'GET', '/v2/health/ready');
    expect([ready.status, ready.json()]).toEqual([503, { error: 'draining' }]);
    const res = await post(server.port, PREDICT, good);
    expect(res.status).toBe(200);
    // So that keep-alive clients reconnect to the pods that stay.
    expect(res.headers.connection).toBe('close');
    await server.close();
    await drained;
  });

  it('§drain then stops accepting and waits for the requests in flight', async () => {
    const predictor = new LinearPredictor();
    const server = await start({ predictor });
    const release = predictor.hold();
    const pending = post(server.port, PREDICT, good);
    await waitFor('the prediction to start', () => predictor.batches.length === 1);
    let done = false;
    const drained = server.drain().then(() => (done = true));
    let refused = false;
    const probe = () =>
      call(server.port, 'GET', '/v2/health/live').then(
        () => undefined,
        () => (refused = true),
      );
    while (!refused) await probe();
    expect(done).toBe(false);
    release();
    expect((await pending).json()).toEqual({ predictions: [linear([1, 2, 3])] });
    await drained;
    expect(server.stats().inFlight).toBe(0);
  });
});
