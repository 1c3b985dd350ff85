// Where the API server is and how to authenticate to it, read from a kubeconfig or from the pod's
// service account. Written here rather than taken from client-node's KubeConfig because importing
// client-node loads every generated API model (about 80 MB of resident memory, half the
// operator's idle footprint). Only a user that names a credential plugin (exec or auth-provider)
// loads client-node, on demand, to run it.
import { existsSync, readFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { delimiter, dirname, isAbsolute, join } from 'node:path';
import { isIPv6 } from 'node:net';
import type { RequestOptions } from 'node:https';
import type { KubeConfig } from '@kubernetes/client-node';

/** What a connection to the API server needs. */
export interface ClusterAccess {
  /** The API server's base URL, without a trailing slash. */
  readonly server: string;
  readonly tls: TlsSettings;
  /** An HTTP(S) proxy in front of the API server (the kubeconfig's proxy-url). */
  readonly proxyUrl?: string;
  /** The headers that authenticate one request (Authorization, Impersonate-User). */
  authHeaders(): Promise<Record<string, string>>;
}

export interface TlsSettings {
  ca?: Buffer;
  cert?: Buffer;
  key?: Buffer;
  rejectUnauthorized: boolean;
  servername?: string;
}

export const SERVICE_ACCOUNT_DIR = '/var/run/secrets/kubernetes.io/serviceaccount';

// A projected service account token is rotated by the kubelet; client-go re-reads it once a
// minute, well inside the token's lifetime.
const TOKEN_FILE_REREAD_MS = 60_000;

/** A cluster entry of a kubeconfig, with file paths already absolute. */
interface ClusterEntry {
  server: string;
  caData?: string;
  caFile?: string;
  skipTlsVerify?: boolean;
  tlsServerName?: string;
  proxyUrl?: string;
}

/** A user entry of a kubeconfig, with file paths already absolute. */
interface UserEntry {
  token?: string;
  tokenFile?: string;
  certData?: string;
  certFile?: string;
  keyData?: string;
  keyFile?: string;
  username?: string;
  password?: string;
  impersonate?: string;
}

type PluginHeaders = () => Promise<Record<string, string>>;

// The data wins when both are given, as in client-go (and kubectl says so).
const dataOrFile = (data?: string, file?: string): Buffer | undefined =>
  data ? Buffer.from(data, 'base64') : file ? readFileSync(file) : undefined;

/** A cluster and user as one ClusterAccess; TLS material is read now, tokens per request. */
function accessFor(
  cluster: ClusterEntry,
  user: UserEntry,
  plugin?: PluginHeaders,
  now: () => number = Date.now,
): ClusterAccess {
  const tls: TlsSettings = {
    ca: dataOrFile(cluster.caData, cluster.caFile),
    cert: dataOrFile(user.certData, user.certFile),
    key: dataOrFile(user.keyData, user.keyFile),
    rejectUnauthorized: !cluster.skipTlsVerify,
    servername: cluster.tlsServerName,
  };
  let fileToken: { value: string; readAt: number } | undefined;
  // As client-go: a token file wins over a token, and a file that cannot be read keeps the last
  // token read from it (or the kubeconfig's token) rather than failing the request.
  const bearer = (): string | undefined => {
    if (!user.tokenFile) return user.token;
    if (!fileToken || now() - fileToken.readAt > TOKEN_FILE_REREAD_MS) {
      try {
        fileToken = { value: readFileSync(user.tokenFile, 'utf8').trim(), readAt: now() };
      } catch (err) {
        const last = fileToken?.value ?? user.token;
        if (last === undefined) throw err;
        return last;
      }
    }
    return fileToken.value;
  };
  return {
    server: cluster.server.replace(/\/$/, ''),
    tls,
    proxyUrl: cluster.proxyUrl,
    async authHeaders() {
      const headers: Record<string, string> = plugin ? await plugin() : {};
      const token = bearer();
      if (token) headers.Authorization = `Bearer ${token}`;
      else if (user.username && !headers.Authorization)
        headers.Authorization = `Basic ${Buffer.from(`${user.username}:${user.password ?? ''}`).toString('base64')}`;
      if (user.impersonate) headers['Impersonate-User'] = user.impersonate;
      return headers;
    },
  };
}

/** The Authorization (and other) headers client-node computes for its current user. */
function clientNodeHeaders(kc: KubeConfig): PluginHeaders {
  return async () => {
    const opts: RequestOptions = {};
    await kc.applyToHTTPSOptions(opts);
    const headers: Record<string, string> = {};
    for (const [k, v] of Object.entries(opts.headers ?? {}))
      if (v !== undefined) headers[k] = String(v);
    return headers;
  };
}

/**
 * The access of a client-node KubeConfig's current context, for callers that already hold one
 * (tests, benchmarks): the same fields as a kubeconfig file, its credential plugins run by it.
 */
export function accessFromKubeConfig(kc: KubeConfig): ClusterAccess {
  const cluster = kc.getCurrentCluster();
  if (!cluster) throw new Error('The kubeconfig has no current cluster');
  const user = kc.getCurrentUser();
  const usesPlugin = Boolean(user?.exec || user?.authProvider);
  return accessFor(
    {
      server: cluster.server,
      caData: cluster.caData,
      caFile: cluster.caFile,
      skipTlsVerify: cluster.skipTLSVerify,
      tlsServerName: cluster.tlsServerName,
      proxyUrl: cluster.proxyUrl,
    },
    {
      token: user?.token,
      certData: user?.certData,
      certFile: user?.certFile,
      keyData: user?.keyData,
      keyFile: user?.keyFile,
      username: user?.username,
      password: user?.password,
      impersonate: user?.impersonateUser,
    },
    usesPlugin ? clientNodeHeaders(kc) : undefined,
  );
}

/** Either form a KubeClient accepts, as a ClusterAccess. */
export function toClusterAccess(config: ClusterAccess | KubeConfig): ClusterAccess {
  return 'getCurrentCluster' in config ? accessFromKubeConfig(config) : config;
}

interface NamedEntry {
  name?: string;
  [key: string]: unknown;
}

interface KubeconfigDoc {
  clusters?: NamedEntry[];
  users?: NamedEntry[];
  contexts?: NamedEntry[];
  'current-context'?: string;
}

/** A kubeconfig's entry of one kind and name, with the directory of the file it came from. */
interface Found {
  entry: Record<string, unknown>;
  dir: string;
}

const str = (v: unknown): string | undefined => (typeof v === 'string' && v ? v : undefined);
const abs = (dir: string, file: unknown): string | undefined => {
  const f = str(file);
  return f && !isAbsolute(f) ? join(dir, f) : f;
};

/**
 * Reads one or more kubeconfig files as kubectl merges them: for every cluster, user and
 * context name, and for current-context, the first file that sets it wins; relative paths are
 * relative to the file they appear in.
 */
async function loadFiles(paths: string[], now?: () => number): Promise<ClusterAccess> {
  const clusters = new Map<string, Found>();
  const users = new Map<string, Found>();
  const contexts = new Map<string, Found>();
  let current: string | undefined;
  // Loaded here, not at start: a pod that uses its service account never reads YAML.
  const { parse } = await import('yaml');
  for (const path of paths) {
    let doc: KubeconfigDoc;
    try {
      doc = (parse(readFileSync(path, 'utf8')) ?? {}) as KubeconfigDoc;
    } catch (err) {
      throw new Error(`Could not read the kubeconfig ${path}: ${(err as Error).message}`);
    }
    const dir = dirname(path);
    const add = (into: Map<string, Found>, list: NamedEntry[] | undefined, field: string) => {
      for (const item of list ?? []) {
        const entry = item[field];
        if (item.name && !into.has(item.name))
          into.set(item.name, { entry: (entry ?? {}) as Record<string, unknown>, dir });
      }
    };
    add(clusters, doc.clusters, 'cluster');
    add(users, doc.users, 'user');
    add(contexts, doc.contexts, 'context');
    current ??= str(doc['current-context']);
  }
  const where = paths.join(delimiter);
  if (!current) throw new Error(`The kubeconfig ${where} has no current-context`);
  const ctx = contexts.get(current)?.entry;
  if (!ctx) throw new Error(`The kubeconfig ${where} has no context named "${current}"`);
  const clusterName = str(ctx.cluster) ?? '';
  const c = clusters.get(clusterName);
  if (!c || !str(c.entry.server)) {
    throw new Error(`The kubeconfig ${where} has no cluster "${clusterName}" with a server`);
  }
  const userName = str(ctx.user);
  const u = userName ? users.get(userName) : undefined;
  if (userName && !u) throw new Error(`The kubeconfig ${where} has no user named "${userName}"`);
  const cluster: ClusterEntry = {
    server: str(c.entry.server) ?? '',
    caData: str(c.entry['certificate-authority-data']),
    caFile: abs(c.dir, c.entry['certificate-authority']),
    skipTlsVerify: c.entry['insecure-skip-tls-verify'] === true,
    tlsServerName: str(c.entry['tls-server-name']),
    proxyUrl: str(c.entry['proxy-url']),
  };
  const e = u?.entry ?? {};
  const dir = u?.dir ?? '';
  const user: UserEntry = {
    token: str(e.token),
    // client-go spells it tokenFile; client-node read token-file.
    tokenFile: abs(dir, e.tokenFile ?? e['token-file']),
    certData: str(e['client-certificate-data']),
    certFile: abs(dir, e['client-certificate']),
    keyData: str(e['client-key-data']),
    keyFile: abs(dir, e['client-key']),
    username: str(e.username),
    password: str(e.password),
    impersonate: str(e.as),
  };
  if (e.exec || e['auth-provider']) {
    // Only the server and the plugin go to client-node: certificates, CA and tokens are read
    // here, with paths relative to the kubeconfig rather than to the working directory.
    const plugin = { exec: e.exec, 'auth-provider': e['auth-provider'] };
    return accessFor(
      cluster,
      user,
      await pluginHeaders({ server: cluster.server }, plugin, userName ?? 'user'),
      now,
    );
  }
  return accessFor(cluster, user, undefined, now);
}

/** Loads client-node (only now) to run the user's exec or auth-provider credential plugin. */
async function pluginHeaders(
  cluster: Record<string, unknown>,
  user: Record<string, unknown>,
  userName: string,
): Promise<PluginHeaders> {
  const { KubeConfig } = await import('@kubernetes/client-node');
  const kc = new KubeConfig();
  kc.loadFromString(
    JSON.stringify({
      clusters: [{ name: 'cluster', cluster }],
      users: [{ name: userName, user }],
      contexts: [{ name: 'context', context: { cluster: 'cluster', user: userName } }],
      'current-context': 'context',
    }),
  );
  return clientNodeHeaders(kc);
}

/** The pod's service account, as client-go's rest.InClusterConfig reads it. */
function inCluster(env: NodeJS.ProcessEnv, saDir: string, now?: () => number): ClusterAccess {
  const host = env.KUBERNETES_SERVICE_HOST;
  const port = env.KUBERNETES_SERVICE_PORT;
  if (!host || !port) {
    throw new Error(
      'In a pod without KUBERNETES_SERVICE_HOST and KUBERNETES_SERVICE_PORT: cannot reach the API server',
    );
  }
  // As client-node: the ports of a plain-HTTP proxy mean HTTP.
  const scheme = ['80', '8080', '8001'].includes(port) ? 'http' : 'https';
  return accessFor(
    {
      server: `${scheme}://${isIPv6(host) ? `[${host}]` : host}:${port}`,
      caFile: join(saDir, 'ca.crt'),
    },
    { tokenFile: join(saDir, 'token') },
    undefined,
    now,
  );
}

export interface LoadOptions {
  /** --kubeconfig (or KUBECONFIG): one path, or several joined by the path delimiter. */
  kubeconfig?: string;
  env?: NodeJS.ProcessEnv;
  home?: string;
  serviceAccountDir?: string;
  /** The time token files are re-read by (tests move it). */
  now?: () => number;
}

/**
 * The operator's connection: the given kubeconfig (several merge as kubectl merges them), else
 * ~/.kube/config, else the pod's service account; the order of client-node's loadFromDefault.
 */
export async function loadClusterAccess(opts: LoadOptions = {}): Promise<ClusterAccess> {
  const env = opts.env ?? process.env;
  const saDir = opts.serviceAccountDir ?? SERVICE_ACCOUNT_DIR;
  const paths = (opts.kubeconfig ?? '').split(delimiter).filter(Boolean);
  if (paths.length > 0) return loadFiles(paths, opts.now);
  const home = opts.home ?? homedir();
  const fallback = join(home, '.kube', 'config');
  if (home && existsSync(fallback)) return loadFiles([fallback], opts.now);
  if (existsSync(join(saDir, 'token'))) return inCluster(env, saDir, opts.now);
  throw new Error(
    'No kubeconfig: give --kubeconfig (or KUBECONFIG), create ~/.kube/config, or run in a pod with a service account token',
  );
}
