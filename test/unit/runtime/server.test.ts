import type { Progress } from '../../../src/contract/training.ts';
import { type RuntimeServer, startRuntimeServer } from '../../../src/runtime/server.ts';

describe('runtime server', () => {
  let progress: Progress;
  let ready: boolean;
  let server: RuntimeServer;
  const get = (path: string) => fetch(`http://127.0.0.1:${server.port}${path}`);

  beforeAll(async () => {
    progress = { phase: 'Starting', backend: '', epoch: 0, epochs: 10 };
    ready = false;
    server = await startRuntimeServer(
      { progress: () => progress, ready: () => ready },
      { port: 0, host: '127.0.0.1' },
    );
  });
  afterAll(() => server.close());

  it('is healthy at once and ready only once data and model are loaded', async () => {
    expect((await get('/healthz')).status).toBe(200);
    expect((await get('/readyz')).status).toBe(503);
    ready = true;
    expect((await get('/readyz')).status).toBe(200);
  });

  it('answers /progress with the current Progress as JSON', async () => {
    progress = {
      phase: 'Training',
      backend: 'wasm',
      epoch: 3,
      epochs: 10,
      loss: 0.5,
      accuracy: 0.75,
    };
    const res = await get('/progress');
    expect(res.headers.get('content-type')).toBe('application/json');
    expect(await res.json()).toEqual(progress);
  });

  it('exposes the progress as lepton_runtime_ metrics', async () => {
    progress = {
      phase: 'Training',
      backend: 'wasm',
      epoch: 4,
      epochs: 10,
      loss: 0.25,
      accuracy: 0.875,
      samplesPerSecond: 1200,
    };
    const text = await (await get('/metrics')).text();
    expect(text).toContain('lepton_runtime_loss 0.25');
    expect(text).toContain('lepton_runtime_accuracy 0.875');
    expect(text).toContain('lepton_runtime_epoch 4');
    expect(text).toContain('lepton_runtime_samples_per_second 1200');
    expect(text).toContain('lepton_runtime_backend_info{backend="wasm"} 1');
  });

  it('answers 404 elsewhere', async () => {
    expect((await get('/nope')).status).toBe(404);
  });
});
