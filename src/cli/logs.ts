// `kubectl lepton logs NAME [-f]`: the log of an object's main pod through the API server's
// pods/log subresource (the API server asks the node's kubelet), streamed as it arrives.
import type { IncomingMessage } from 'node:http';
import type { Writable } from 'node:stream';
import type { KubeClient } from '../core/client.ts';
import { http, https } from '../core/node-http.ts';
import { Resources, resourcePath } from '../core/resources.ts';
import { type FlagSpecs, type Parsed, count, str } from './args.ts';
import { CliError, type Session } from './connect.ts';
import { type Pod, choosePod, podsOf } from './pods.ts';
import { resolve } from './resolve.ts';

export const LOGS_FLAGS: FlagSpecs = {
  follow: { type: 'boolean', short: 'f', help: 'keep streaming new lines until the pod ends' },
  tail: { type: 'string', value: 'N', help: 'only the last N lines' },
  previous: { type: 'boolean', short: 'p', help: "the previous container's log (after a restart)" },
  timestamps: { type: 'boolean', help: 'prefix each line with its time' },
  container: {
    type: 'string',
    short: 'c',
    value: 'NAME',
    help: "container (default: the pod's first)",
  },
  worker: { type: 'string', value: 'N', help: 'TrainingJob: worker N instead of the chief (0)' },
  participant: {
    type: 'string',
    value: 'NAME',
    help: "FederatedRound: a participant's client instead of the aggregator",
  },
  canary: {
    type: 'boolean',
    help: 'InferenceService: a canary replica instead of a predictor one',
  },
};

export const LOGS_HELP = `Print the log of an object's main pod: a TrainingJob's chief (worker 0, latest
attempt), a FederatedRound's aggregator, an InferenceService's predictor replica.

Usage:
  kubectl lepton logs [KIND/]NAME [flags]

Examples:
  kubectl lepton logs mnist -f
  kubectl lepton logs trainingjob/mnist --worker 2 --tail 50
  kubectl lepton logs fround/campaign-round-3 --participant site-a
  kubectl lepton logs infsvc/fraud --canary
`;

/** The nodes of the local test cluster: one runs pods as processes, kwok's only simulate them. */
const LOCAL_NODE_LABEL = 'lepton.ai/local-node';
const KWOK_NODE_ANNOTATION = 'kwok.x-k8s.io/node';

/** Why node `name` cannot serve a log, when it is one of the test cluster's nodes. */
async function nodeHint(client: KubeClient, pod: Pod, name: string): Promise<string> {
  const node = await client
    .get<{ metadata: { labels?: Record<string, string>; annotations?: Record<string, string> } }>(
      Resources.Node,
      '',
      name,
    )
    .catch(() => undefined);
  if (node?.metadata.labels?.[LOCAL_NODE_LABEL] === 'true')
    return `; node ${name} is the local test cluster's node, which runs pods as processes and serves no kubelet log API: read the log with npm run cluster -- logs [--state DIR] -n ${pod.metadata.namespace} ${pod.metadata.name}`;
  if (node?.metadata.annotations?.[KWOK_NODE_ANNOTATION])
    return `; node ${name} is a kwok node, which simulates its pods and keeps no logs`;
  return '';
}

/** What the API server answered instead of a log, with what a person can do about it. */
async function explainRefusal(
  client: KubeClient,
  pod: Pod,
  container: string,
  code: number,
  body: string,
): Promise<string> {
  let message = body.trim();
  try {
    message = (JSON.parse(body) as { message?: string }).message ?? message;
  } catch {
    // Not a metav1.Status: the body as it is.
  }
  const where = `container ${container} of pod ${pod.metadata.namespace}/${pod.metadata.name}`;
  const node = pod.spec.nodeName;
  // 400 is a container that has no log yet (waiting to start); a 404 for a pod that exists, or
  // an error naming the kubelet's address, is the node failing to serve the log.
  if (
    node &&
    (code === 404 ||
      (code >= 500 && /containerLogs|dial tcp|no such host|connection refused/.test(message)))
  ) {
    const hint = await nodeHint(client, pod, node);
    return `The API server could not get the log of ${where} from the kubelet of node ${node} (${code}): ${message}${hint}`;
  }
  return `No log for ${where} (${code}): ${message}`;
}

/** Streams the log to `out`; resolves when the server ends it (with -f: when the container ends). */
async function streamLog(
  client: KubeClient,
  pod: Pod,
  query: Record<string, string>,
  out: Writable,
): Promise<void> {
  const access = client.access;
  const url = new URL(
    access.server + resourcePath(Resources.Pod, pod.metadata.namespace, pod.metadata.name, 'log'),
  );
  for (const [k, v] of Object.entries(query)) url.searchParams.set(k, v);
  const headers = await access.authHeaders();
  const lib = url.protocol === 'http:' ? http : https;
  const res = await new Promise<IncomingMessage>((ok, fail) => {
    const req = lib.request(url, { method: 'GET', headers, ...access.tls });
    req.on('response', ok);
    req.on('error', fail);
    req.end();
  });
  if (res.statusCode !== 200) {
    let body = '';
    res.setEncoding('utf8');
    for await (const chunk of res) body += chunk as string;
    throw new CliError(
      await explainRefusal(client, pod, query.container ?? '', res.statusCode ?? 0, body),
    );
  }
  await new Promise<void>((ok, fail) => {
    res.on('error', fail);
    res.on('end', ok);
    res.pipe(out, { end: false });
  });
}

export async function logsCommand(s: Session, p: Parsed, out: Writable): Promise<void> {
  const { kind, obj } = await resolve(s, p.words, 'logs');
  const worker = count(p.flags, 'worker');
  const tail = count(p.flags, 'tail');
  const pods = await podsOf(s.client, kind, obj);
  const pod = choosePod(kind, obj, pods, {
    worker,
    participant: str(p.flags, 'participant'),
    canary: p.flags.canary === true,
  });
  const container = str(p.flags, 'container') ?? pod.spec.containers[0]?.name ?? '';
  if (!pod.spec.containers.some((c) => c.name === container)) {
    throw new CliError(
      `Pod ${pod.metadata.name} has no container "${container}" (containers: ${pod.spec.containers.map((c) => c.name).join(', ')})`,
    );
  }
  const query: Record<string, string> = { container };
  if (p.flags.follow === true) query.follow = 'true';
  if (p.flags.previous === true) query.previous = 'true';
  if (p.flags.timestamps === true) query.timestamps = 'true';
  if (tail !== undefined) query.tailLines = String(tail);
  await streamLog(s.client, pod, query, out);
}
