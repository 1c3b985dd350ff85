// The HTTP endpoints of a workload pod on LEPTON_PORT: /healthz (the process answers), /readyz
// (data and model are loaded), /progress (JSON Progress, which the operator polls) and /metrics
// (Prometheus text, from a registry of the runtime's own).
import { type Server, createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Gauge, Registry } from 'prom-client';
import { ENDPOINTS } from '../contract/runtime.ts';
import type { Progress } from '../contract/training.ts';

export interface RuntimeStatus {
  progress(): Progress;
  ready(): boolean;
}

export interface RuntimeServer {
  /** The port listened on (useful when asked for port 0). */
  port: number;
  registry: Registry;
  close(): Promise<void>;
}

/** A registry whose gauges read `status` when scraped, so nothing has to push updates. */
export function runtimeRegistry(status: RuntimeStatus): Registry {
  const registry = new Registry();
  const registers = [registry];
  const fromProgress = (name: string, help: string, read: (p: Progress) => number | undefined) =>
    new Gauge({
      name,
      help,
      registers,
      collect() {
        this.set(read(status.progress()) ?? NaN);
      },
    });
  fromProgress('lepton_runtime_loss', 'Training loss of the last epoch', (p) => p.loss);
  fromProgress('lepton_runtime_accuracy', 'Training accuracy of the last epoch', (p) => p.accuracy);
  fromProgress('lepton_runtime_epoch', 'Epochs completed', (p) => p.epoch);
  fromProgress(
    'lepton_runtime_samples_per_second',
    'Training examples per second in the last epoch',
    (p) => p.samplesPerSecond,
  );
  new Gauge({
    name: 'lepton_runtime_backend_info',
    help: 'The TensorFlow.js backend in use (value 1)',
    labelNames: ['backend'],
    registers,
    collect() {
      this.reset();
      const backend = status.progress().backend;
      if (backend) this.set({ backend }, 1);
    },
  });
  return registry;
}

export async function startRuntimeServer(
  status: RuntimeStatus,
  opts: { port: number; host?: string },
): Promise<RuntimeServer> {
  const registry = runtimeRegistry(status);
  const server: Server = createServer((req, res) => {
    const path = (req.url ?? '/').split('?')[0];
    const text = (code: number, body: string) =>
      res.writeHead(code, { 'Content-Type': 'text/plain' }).end(body);
    if (path === ENDPOINTS.healthz) {
      text(200, 'ok\n');
    } else if (path === ENDPOINTS.readyz) {
      if (status.ready()) text(200, 'ok\n');
      else text(503, 'not ready\n');
    } else if (path === ENDPOINTS.progress) {
      res
        .writeHead(200, { 'Content-Type': 'application/json' })
        .end(JSON.stringify(status.progress()));
    } else if (path === ENDPOINTS.metrics) {
      registry.metrics().then(
        (body) => res.writeHead(200, { 'Content-Type': registry.contentType }).end(body),
        (err: Error) => text(500, `${err.message}\n`),
      );
    } else {
      text(404, 'not found\n');
    }
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(opts.port, opts.host ?? '0.0.0.0', () => resolve());
  });
  return {
    port: (server.address() as AddressInfo).port,
    registry,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
