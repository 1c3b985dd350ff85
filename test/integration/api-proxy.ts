// An API server outage for one test only: a TCP proxy in front of the shared test cluster's
// kube-apiserver, and a kubeconfig that points at it. down() refuses connections and cuts the
// open ones (what a restarting kube-apiserver looks like to a client); up() serves again on the
// same port. TLS passes through untouched, and the server certificate names 127.0.0.1, so the
// operator verifies it as usual. Other tests keep using the cluster directly.
import { readFileSync, writeFileSync } from 'node:fs';
import { type Server, type Socket, connect, createServer } from 'node:net';
import { dirname, join } from 'node:path';
import { parse, stringify } from 'yaml';
import { freePort } from '../cluster/cluster.ts';
import { kubeconfigPath } from './harness.ts';

interface Kubeconfig {
  clusters: { name: string; cluster: { server: string } }[];
}

export class ApiProxy {
  readonly port: number;
  /** A copy of the test cluster's admin kubeconfig whose server is this proxy. */
  readonly kubeconfig: string;
  private readonly target: URL;
  private server: Server | undefined;
  private readonly sockets = new Set<Socket>();

  private constructor(port: number, target: URL, kubeconfig: string) {
    this.port = port;
    this.target = target;
    this.kubeconfig = kubeconfig;
  }

  static async start(name: string): Promise<ApiProxy> {
    const config = parse(readFileSync(kubeconfigPath(), 'utf8')) as Kubeconfig;
    const cluster = config.clusters[0];
    if (!cluster) throw new Error(`${kubeconfigPath()} has no cluster`);
    const target = new URL(cluster.cluster.server);
    const port = await freePort();
    cluster.cluster.server = `https://127.0.0.1:${port}`;
    const path = join(dirname(kubeconfigPath()), `${name}.kubeconfig`);
    writeFileSync(path, stringify(config), { mode: 0o600 });
    const proxy = new ApiProxy(port, target, path);
    await proxy.up();
    return proxy;
  }

  isUp(): boolean {
    return this.server !== undefined;
  }

  async up(): Promise<void> {
    if (this.server) return;
    const server = createServer((client) => {
      const upstream = connect(Number(this.target.port), this.target.hostname);
      for (const s of [client, upstream]) {
        this.sockets.add(s);
        s.on('close', () => this.sockets.delete(s));
        s.on('error', () => {
          client.destroy();
          upstream.destroy();
        });
      }
      client.pipe(upstream).pipe(client);
    });
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(this.port, '127.0.0.1', () => resolve());
    });
    this.server = server;
  }

  async down(): Promise<void> {
    const server = this.server;
    if (!server) return;
    this.server = undefined;
    const closed = new Promise<void>((r) => server.close(() => r()));
    for (const s of this.sockets) s.destroy();
    await closed;
  }
}
