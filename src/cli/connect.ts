// The connection of the plugin, the way kubectl makes it: the kubeconfig of --kubeconfig, else of
// KUBECONFIG (several files merge as kubectl merges them), else ~/.kube/config, else the pod's
// service account (client-node's loadFromDefault); --context picks another context; the namespace is -n, else the
// context's, else `default`. Requests go through the operator's own REST client.
import { existsSync } from 'node:fs';
import { delimiter } from 'node:path';
import { KubeConfig } from '@kubernetes/client-node';
import { ApiError, KubeClient } from '../core/client.ts';
import { LEPTON_GROUP, LEPTON_VERSION, type ResourceType } from '../core/resources.ts';
import type { Kind } from './kinds.ts';

export interface GlobalFlags {
  kubeconfig?: string;
  context?: string;
  namespace?: string;
  allNamespaces?: boolean;
}

export interface Session {
  client: KubeClient;
  /** The namespace to work in (ignored by a list across all namespaces). */
  namespace: string;
  allNamespaces: boolean;
  context: string;
  server: string;
}

/** A failure the plugin explains itself: printed as it is, exit code 1. */
export class CliError extends Error {
  override readonly name = 'CliError';
}

/**
 * Loads several kubeconfig files as kubectl merges them: for current-context and for every
 * cluster, user and context name, the first file that sets it wins (client-node's merge lets a
 * later file's current-context win and refuses a name twice). Files that do not exist are
 * skipped, as kubectl skips them.
 */
function loadMerged(kc: KubeConfig, paths: readonly string[]): void {
  const files = paths
    .filter((p) => existsSync(p))
    .map((p) => {
      const one = new KubeConfig();
      one.loadFromFile(p);
      return one;
    });
  const first = <T extends { name: string }>(lists: T[][]): T[] => {
    const seen = new Map<string, T>();
    for (const item of lists.flat()) if (!seen.has(item.name)) seen.set(item.name, item);
    return [...seen.values()];
  };
  kc.loadFromOptions({
    clusters: first(files.map((f) => f.getClusters())),
    users: first(files.map((f) => f.getUsers())),
    contexts: first(files.map((f) => f.getContexts())),
    currentContext: files.map((f) => f.getCurrentContext()).find(Boolean) ?? '',
  });
}

export function connect(flags: GlobalFlags): Session {
  const kc = new KubeConfig();
  const paths = (process.env.KUBECONFIG ?? '').split(delimiter).filter(Boolean);
  try {
    if (flags.kubeconfig) kc.loadFromFile(flags.kubeconfig);
    else if (paths.length > 1) loadMerged(kc, paths);
    else kc.loadFromDefault();
  } catch (err) {
    throw new CliError(
      `Could not load the kubeconfig ${flags.kubeconfig ?? process.env.KUBECONFIG ?? '~/.kube/config'}: ${(err as Error).message}`,
    );
  }
  if (flags.context) {
    if (!kc.getContextObject(flags.context)) {
      const known = kc.getContexts().map((c) => c.name);
      throw new CliError(
        `No context named "${flags.context}" in the kubeconfig (contexts: ${known.join(', ') || 'none'})`,
      );
    }
    kc.setCurrentContext(flags.context);
  }
  const context = kc.getCurrentContext();
  const cluster = kc.getCurrentCluster();
  if (!cluster) {
    throw new CliError(
      `The kubeconfig's context "${context}" names no cluster: set one with kubectl config set-context`,
    );
  }
  const namespace = flags.namespace || kc.getContextObject(context)?.namespace || 'default';
  let client: KubeClient;
  try {
    client = new KubeClient(kc, { qps: 0, burst: 0, fieldManager: 'kubectl-lepton' });
  } catch (err) {
    throw new CliError(`Could not use context "${context}": ${(err as Error).message}`);
  }
  return {
    client,
    namespace,
    allNamespaces: flags.allNamespaces === true,
    context,
    server: cluster.server,
  };
}

const LEPTON_API = `${LEPTON_GROUP}/${LEPTON_VERSION}`;
const INSTALL_HINT =
  'install the CRDs first: kubectl apply --server-side -f crds/ (or helm install the chart)';

/**
 * Fails with what to do when the cluster does not serve the kinds (the CRDs are not installed,
 * or an older set without one of them), rather than with the API server's bare 404.
 */
export async function requireKinds(s: Session, kinds: readonly Kind[]): Promise<void> {
  const discovery: ResourceType = { ...kinds[0]!.rt, plural: '' };
  let served: string[];
  try {
    const list = await s.client.request<{ resources?: { name: string }[] }>(
      'GET',
      discovery,
      `/apis/${LEPTON_API}`,
    );
    served = (list.resources ?? []).map((r) => r.name);
  } catch (err) {
    if (err instanceof ApiError && err.code === 404) {
      throw new CliError(
        `The cluster of context "${s.context}" does not serve ${LEPTON_API}: ${INSTALL_HINT}`,
      );
    }
    throw err;
  }
  const missing = kinds.filter((k) => !served.includes(k.rt.plural));
  if (missing.length > 0) {
    throw new CliError(
      `The cluster of context "${s.context}" serves ${LEPTON_API} without ${missing.map((k) => k.rt.plural).join(', ')}: ${INSTALL_HINT}`,
    );
  }
}

/** A message for any failure of a request: the API server's answer as kubectl words it. */
export function describeError(err: unknown, s: Session | undefined): string {
  if (err instanceof CliError) return err.message;
  if (err instanceof ApiError) {
    const text = err.message.replace(/^[A-Z]+ \S+: /, '').replace(/ \(\d+\)$/, '');
    return `Error from server (${err.reason || err.code}): ${text}`;
  }
  const e = err as NodeJS.ErrnoException;
  if (s && (e.code === 'ECONNREFUSED' || e.code === 'ENOTFOUND' || e.code === 'ETIMEDOUT')) {
    return `Could not reach the API server ${s.server} of context "${s.context}": ${e.message}`;
  }
  if (s && e.name === 'TimeoutError')
    return `The API server ${s.server} did not answer: ${e.message}`;
  return e.message ?? String(err);
}
