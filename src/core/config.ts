// The operator's configuration: command-line flags, each with an environment variable fallback
// (flags win), defaults, and the --help text. Invalid values fail start-up with a message that
// names the flag.
import { parseArgs } from 'node:util';
import type { LogLevel } from './logging.ts';

export interface OperatorConfig {
  kubeconfig?: string;
  /** Namespaces to watch; empty means all. */
  namespaces: string[];
  metricsBindAddress: string;
  /** Serve /metrics over HTTPS to callers whose token RBAC allows `get /metrics`. */
  metricsSecure: boolean;
  /** Directory with tls.crt and tls.key for the secure metrics server; unset: self-signed. */
  metricsCertDir?: string;
  healthProbeBindAddress: string;
  leaderElect: boolean;
  leaderElectionNamespace: string;
  leaderElectionId: string;
  leaseDurationMs: number;
  renewDeadlineMs: number;
  retryPeriodMs: number;
  identity?: string;
  concurrency: number;
  kubeApiQps: number;
  kubeApiBurst: number;
  relistIntervalMs: number;
  shutdownTimeoutMs: number;
  runtimeImage: string;
  runtimeGpuImage: string;
  logLevel: LogLevel;
}

type Kind = 'string' | 'boolean' | 'duration' | 'int' | 'number' | 'list' | 'level';

interface FlagSpec {
  key: keyof OperatorConfig;
  kind: Kind;
  env: string;
  default?: string;
  help: string;
}

const VERSION = '0.1.0';

// client-go's leaderelection.JitterFactor: a renew deadline leaves room for one jittered retry.
const JITTER_FACTOR = 1.2;
// Lower bounds of the lease flags (see checkLeaderElection). 100 ms keeps a replica at no more
// than 10 Lease reads a second; 500 ms is a few API round trips on a loaded control plane.
const MIN_RETRY_PERIOD_MS = 100;
const MIN_RENEW_DEADLINE_MS = 500;

const FLAGS: Record<string, FlagSpec> = {
  kubeconfig: {
    key: 'kubeconfig',
    kind: 'string',
    env: 'KUBECONFIG',
    help: "Path to a kubeconfig (several, separated by ':', merge as kubectl merges them). Default: ~/.kube/config, else the pod's service account",
  },
  namespaces: {
    key: 'namespaces',
    kind: 'list',
    env: 'LEPTON_NAMESPACES',
    default: '',
    help: 'Comma-separated namespaces to watch; empty watches all namespaces',
  },
  'metrics-bind-address': {
    key: 'metricsBindAddress',
    kind: 'string',
    env: 'LEPTON_METRICS_BIND_ADDRESS',
    default: ':8080',
    help: 'Address of the /metrics endpoint; "0" disables it',
  },
  'metrics-secure': {
    key: 'metricsSecure',
    kind: 'boolean',
    env: 'LEPTON_METRICS_SECURE',
    default: 'false',
    help: 'Serve /metrics over HTTPS and only to callers with a bearer token that a TokenReview accepts and a SubjectAccessReview allows to get the non-resource URL /metrics (401 without a valid token, 403 without the permission); needs an address of its own, not --health-probe-bind-address',
  },
  'metrics-cert-dir': {
    key: 'metricsCertDir',
    kind: 'string',
    env: 'LEPTON_METRICS_CERT_DIR',
    help: 'Directory holding tls.crt and tls.key (a mounted kubernetes.io/tls Secret) for --metrics-secure. Default: a self-signed certificate generated at start',
  },
  'health-probe-bind-address': {
    key: 'healthProbeBindAddress',
    kind: 'string',
    env: 'LEPTON_HEALTH_PROBE_BIND_ADDRESS',
    default: ':8081',
    help: 'Address of /healthz and /readyz; "0" disables them',
  },
  'leader-elect': {
    key: 'leaderElect',
    kind: 'boolean',
    env: 'LEPTON_LEADER_ELECT',
    default: 'true',
    help: 'Elect a leader on a Lease so that only one replica reconciles',
  },
  'leader-election-namespace': {
    key: 'leaderElectionNamespace',
    kind: 'string',
    env: 'LEPTON_LEADER_ELECTION_NAMESPACE',
    default: 'lepton-system',
    help: 'Namespace of the leader Lease (in a pod: its own namespace unless set)',
  },
  'leader-election-id': {
    key: 'leaderElectionId',
    kind: 'string',
    env: 'LEPTON_LEADER_ELECTION_ID',
    default: 'lepton-operator.lepton.ai',
    help: 'Name of the leader Lease',
  },
  'lease-duration': {
    key: 'leaseDurationMs',
    kind: 'duration',
    env: 'LEPTON_LEASE_DURATION',
    default: '15s',
    help: 'How long a standby waits after the last renewal before it takes the lease; whole seconds, at least 1s',
  },
  'renew-deadline': {
    key: 'renewDeadlineMs',
    kind: 'duration',
    env: 'LEPTON_RENEW_DEADLINE',
    default: '10s',
    help: 'How long the leader keeps trying to renew before it steps down; at least 500ms, under --lease-duration',
  },
  'retry-period': {
    key: 'retryPeriodMs',
    kind: 'duration',
    env: 'LEPTON_RETRY_PERIOD',
    default: '2s',
    help: 'Interval between lease acquire and renew attempts; at least 100ms, under --renew-deadline / 1.2',
  },
  identity: {
    key: 'identity',
    kind: 'string',
    env: 'LEPTON_IDENTITY',
    help: "This replica's identity in the Lease. Default: pod name (HOSTNAME) plus a random suffix",
  },
  concurrency: {
    key: 'concurrency',
    kind: 'int',
    env: 'LEPTON_CONCURRENCY',
    default: '4',
    help: 'Reconciles that may run at once, per controller',
  },
  'kube-api-qps': {
    key: 'kubeApiQps',
    kind: 'number',
    env: 'LEPTON_KUBE_API_QPS',
    default: '50',
    help: 'Sustained requests per second to the Kubernetes API (client-side limit; 0: no limit), for each purpose apart: workload objects and other requests, status writes, and Events each get this rate',
  },
  'kube-api-burst': {
    key: 'kubeApiBurst',
    kind: 'int',
    env: 'LEPTON_KUBE_API_BURST',
    default: '100',
    help: 'Burst of requests allowed above --kube-api-qps, for each purpose apart (as --kube-api-qps)',
  },
  'relist-interval': {
    key: 'relistIntervalMs',
    kind: 'duration',
    env: 'LEPTON_RELIST_INTERVAL',
    default: '10m',
    help: 'Full relist period of every informer, repairing watches that missed events; 0 disables',
  },
  'shutdown-timeout': {
    key: 'shutdownTimeoutMs',
    kind: 'duration',
    env: 'LEPTON_SHUTDOWN_TIMEOUT',
    default: '30s',
    help: 'How long SIGTERM waits for reconciles in flight',
  },
  'runtime-image': {
    key: 'runtimeImage',
    kind: 'string',
    env: 'LEPTON_RUNTIME_IMAGE',
    default: `lepton-ai/runtime:${VERSION}`,
    help: 'Default image of workload pods on CPU nodes',
  },
  'runtime-gpu-image': {
    key: 'runtimeGpuImage',
    kind: 'string',
    env: 'LEPTON_RUNTIME_GPU_IMAGE',
    default: `lepton-ai/runtime:${VERSION}-gpu`,
    help: 'Default image of workload pods that request GPUs (tfjs-node-gpu)',
  },
  'log-level': {
    key: 'logLevel',
    kind: 'level',
    env: 'LEPTON_LOG_LEVEL',
    default: 'info',
    help: 'error, warn, info or debug',
  },
};

export class ConfigError extends Error {}

/** Parses "1500ms", "30s", "10m", "1h" or a bare number of seconds into milliseconds. */
export function parseDuration(text: string): number {
  const m = /^(\d+(?:\.\d+)?)(ms|s|m|h)?$/.exec(text.trim());
  if (!m) throw new ConfigError(`"${text}" is not a duration (examples: 500ms, 15s, 10m, 1h)`);
  const unit = { ms: 1, s: 1000, m: 60_000, h: 3_600_000 }[(m[2] ?? 's') as 'ms' | 's' | 'm' | 'h'];
  return Math.round(Number(m[1]) * unit);
}

function convert(flag: string, spec: FlagSpec, raw: string): unknown {
  try {
    switch (spec.kind) {
      case 'string':
        return raw;
      case 'list':
        return raw
          .split(',')
          .map((s) => s.trim())
          .filter(Boolean);
      case 'boolean':
        if (['true', '1', 'yes'].includes(raw)) return true;
        if (['false', '0', 'no'].includes(raw)) return false;
        throw new ConfigError('want true or false');
      case 'duration':
        return parseDuration(raw);
      case 'int':
      case 'number': {
        const n = Number(raw);
        if (!Number.isFinite(n) || n < 0 || (spec.kind === 'int' && !Number.isInteger(n))) {
          throw new ConfigError(
            `want a non-negative ${spec.kind === 'int' ? 'integer' : 'number'}`,
          );
        }
        return n;
      }
      case 'level':
        if (!['error', 'warn', 'info', 'debug'].includes(raw))
          throw new ConfigError('want error, warn, info or debug');
        return raw;
    }
  } catch (err) {
    throw new ConfigError(
      `--${flag} (or ${spec.env}): invalid value "${raw}": ${(err as Error).message}`,
    );
  }
}

/** A refusal that names the flag and its variable, as convert() does for unparsable values. */
function flagError(flag: string, message: string): ConfigError {
  const spec = FLAGS[flag] as FlagSpec;
  return new ConfigError(`--${flag} (or ${spec.env}): ${message}`);
}

/**
 * The rules of client-go's leaderelection.NewLeaderElector (all durations > 0, leaseDuration >
 * renewDeadline > JitterFactor × retryPeriod), plus what our Lease needs: without them a 0 s
 * retry period polls the Lease in a hot loop (hundreds of GETs a second) and a lease shorter
 * than a second, or not whole seconds, is stored differently from what the leader times itself
 * by, so leaders step down at once.
 */
function checkLeaderElection(c: OperatorConfig): void {
  // The Lease's leaseDurationSeconds is an integer: 1500ms would be written as 2 s (standbys wait
  // longer than the leader thinks) and 500ms as 1 s; refuse instead of rounding behind the back.
  if (c.leaseDurationMs < 1000 || c.leaseDurationMs % 1000 !== 0) {
    throw flagError(
      'lease-duration',
      `must be a whole number of seconds, at least 1s (got ${c.leaseDurationMs}ms): the Lease ` +
        'stores leaseDurationSeconds in whole seconds',
    );
  }
  // A renewal is a GET and a PUT of the Lease; a deadline shorter than that under a little load
  // makes a healthy leader step down.
  if (c.renewDeadlineMs < MIN_RENEW_DEADLINE_MS) {
    throw flagError(
      'renew-deadline',
      `must be at least ${MIN_RENEW_DEADLINE_MS}ms (got ${c.renewDeadlineMs}ms): a renewal takes ` +
        'two requests to the API server',
    );
  }
  if (c.retryPeriodMs < MIN_RETRY_PERIOD_MS) {
    throw flagError(
      'retry-period',
      `must be at least ${MIN_RETRY_PERIOD_MS}ms (got ${c.retryPeriodMs}ms): every replica ` +
        'reads the Lease once per retry period',
    );
  }
  if (c.renewDeadlineMs >= c.leaseDurationMs) {
    throw new ConfigError('--renew-deadline must be shorter than --lease-duration');
  }
  if (c.renewDeadlineMs <= JITTER_FACTOR * c.retryPeriodMs) {
    throw new ConfigError(
      "--renew-deadline must be more than 1.2 times --retry-period (client-go's rule)",
    );
  }
}

/** Probes stay plain HTTP for the kubelet, so secure metrics cannot share their server. */
function checkMetricsSecurity(c: OperatorConfig): void {
  if (c.metricsCertDir !== undefined && !c.metricsSecure)
    throw flagError('metrics-cert-dir', 'is only used with --metrics-secure=true');
  if (!c.metricsSecure) return;
  if (c.metricsBindAddress === '0' || c.metricsBindAddress === '')
    throw flagError(
      'metrics-secure',
      'needs a metrics endpoint, but --metrics-bind-address is "0"',
    );
  if (c.metricsBindAddress === c.healthProbeBindAddress)
    throw flagError(
      'metrics-secure',
      `needs --metrics-bind-address apart from --health-probe-bind-address (both "${c.metricsBindAddress}"): the probes stay plain HTTP`,
    );
}

export function helpText(): string {
  const lines = [
    `lepton-operator ${VERSION}: reconciles TrainingJob, FederatedRound and InferenceService (lepton.ai/v1alpha1)`,
    '',
    'Usage: lepton-operator [flags]',
    '',
    'Every flag can also be set by the environment variable shown; a flag wins over its variable.',
    '',
  ];
  for (const [name, spec] of Object.entries(FLAGS)) {
    const def = spec.default !== undefined ? ` (default "${spec.default}")` : '';
    lines.push(`  --${name}${spec.kind === 'boolean' ? '[=true|false]' : ' VALUE'}`);
    lines.push(`      ${spec.help}${def}. Env: ${spec.env}`);
  }
  lines.push(
    '  --help',
    '      Print this text and exit',
    '  --version',
    '      Print the version and exit',
    '',
  );
  return lines.join('\n');
}

export type ParsedArgs = { help: true } | { version: true } | { config: OperatorConfig };

export function parseConfig(argv: string[], env: NodeJS.ProcessEnv = process.env): ParsedArgs {
  const options: Record<string, { type: 'string' | 'boolean' }> = {
    help: { type: 'boolean' },
    version: { type: 'boolean' },
  };
  for (const name of Object.keys(FLAGS)) options[name] = { type: 'string' };
  // Boolean flags may be given bare (--leader-elect) or with a value (--leader-elect=false).
  const normalized = argv.flatMap((a, i) => {
    const name = a.startsWith('--') ? a.slice(2) : '';
    const next = argv[i + 1];
    if (FLAGS[name]?.kind === 'boolean' && (next === undefined || next.startsWith('--')))
      return [`${a}=true`];
    return [a];
  });
  let values: Record<string, string | boolean | undefined>;
  try {
    ({ values } = parseArgs({ args: normalized, options, strict: true, allowPositionals: false }));
  } catch (err) {
    throw new ConfigError(`${(err as Error).message}; see --help`);
  }
  if (values.help) return { help: true };
  if (values.version) return { version: true };
  const config: Record<string, unknown> = {};
  for (const [name, spec] of Object.entries(FLAGS)) {
    const raw = (values[name] as string | undefined) ?? env[spec.env] ?? spec.default;
    if (raw !== undefined) config[spec.key] = convert(name, spec, raw);
  }
  const c = config as unknown as OperatorConfig;
  if (c.leaderElect) checkLeaderElection(c);
  if (c.concurrency < 1) throw new ConfigError('--concurrency must be at least 1');
  checkMetricsSecurity(c);
  return { config: c };
}

export { VERSION };
