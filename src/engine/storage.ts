// Object storage that a workload's s3:// URIs name (spec.storage.s3, the same on every kind that
// has it): what the pods get, and the check of the credentials Secret it names. The settings go
// into the pods' environment; the Secret is mounted read-only, so its keys are never in the
// environment or in the object (src/contract/storage.ts is the runtime's side).
import {
  DEFAULT_S3_REGION,
  S3_CREDENTIALS_MOUNT,
  S3_ENV,
  S3_SECRET_KEYS,
} from '../contract/storage.ts';
import type { Clock } from '../core/clock.ts';
import type { KubeClient } from '../core/client.ts';
import { type KubeObject, Resources } from '../core/resources.ts';
import type { SpecProblem } from './workload.ts';

/** spec.storage.s3 as the CRDs define it. */
export interface S3Storage {
  endpoint?: string;
  region?: string;
  forcePathStyle?: boolean;
  secretRef?: { name: string };
}

export interface StorageSpec {
  s3?: S3Storage;
}

/** The environment the runtime reads S3 settings from; nothing when the spec has no storage. */
export function storageEnv(storage: StorageSpec | undefined): { name: string; value: string }[] {
  const s3 = storage?.s3;
  if (s3 === undefined) return [];
  const env: { name: string; value: string }[] = [
    { name: S3_ENV.region, value: s3.region ?? DEFAULT_S3_REGION },
    {
      name: S3_ENV.forcePathStyle,
      value: String(s3.forcePathStyle ?? s3.endpoint !== undefined),
    },
  ];
  if (s3.endpoint !== undefined) env.unshift({ name: S3_ENV.endpoint, value: s3.endpoint });
  if (s3.secretRef) env.push({ name: S3_ENV.credentialsDir, value: S3_CREDENTIALS_MOUNT });
  return env;
}

/** The Secret mounted for the runtime to read the keys from, if the spec names one. */
export function storageSecrets(
  storage: StorageSpec | undefined,
): { secretName: string; mountPath: string }[] {
  const name = storage?.s3?.secretRef?.name;
  return name ? [{ secretName: name, mountPath: S3_CREDENTIALS_MOUNT }] : [];
}

/** What the schema cannot check of spec.storage. */
export function checkStorage(storage: StorageSpec | undefined): SpecProblem[] {
  const endpoint = storage?.s3?.endpoint;
  if (endpoint === undefined) return [];
  const field = 'spec.storage.s3.endpoint';
  let url: URL | undefined;
  try {
    url = new URL(endpoint);
  } catch {
    url = undefined;
  }
  if (
    url === undefined ||
    !['http:', 'https:'].includes(url.protocol) ||
    url.username !== '' ||
    url.password !== '' ||
    (url.pathname !== '/' && url.pathname !== '') ||
    url.search !== ''
  )
    return [
      {
        field,
        reason: 'InvalidS3Endpoint',
        message: `${field}: "${endpoint.replace(/\/\/[^/@]*@/, '//***@')}" is not an http(s)://HOST[:PORT] URL without credentials or path`,
      },
    ];
  return [];
}

/** How long a Secret's verdict is reused: the check runs before pods exist, not every reconcile. */
const SECRET_CHECK_TTL_MS = 10_000;

/**
 * Checks that the Secret spec.storage.s3.secretRef names exists and holds both keys, before any
 * pod that would mount it is created: a kubelet would otherwise hold such a pod in
 * ContainerCreating with nothing in the workload's status. Only the keys' presence is read, never
 * their values into a message. Verdicts are cached for a few seconds per Secret.
 */
export class S3SecretCheck {
  private readonly cache = new Map<string, { at: number; problems: SpecProblem[] }>();
  private readonly client: KubeClient;
  private readonly clock: Clock;

  constructor(client: KubeClient, clock: Clock) {
    this.client = client;
    this.clock = clock;
  }

  async problems(namespace: string, storage: StorageSpec | undefined): Promise<SpecProblem[]> {
    const name = storage?.s3?.secretRef?.name;
    if (!name) return [];
    const key = `${namespace}/${name}`;
    const now = this.clock.now();
    const cached = this.cache.get(key);
    if (cached && now - cached.at < SECRET_CHECK_TTL_MS) return cached.problems;
    for (const [k, v] of this.cache) if (now - v.at >= SECRET_CHECK_TTL_MS) this.cache.delete(k);
    const secret = await this.client.find<KubeObject & { data?: Record<string, string> }>(
      Resources.Secret,
      namespace,
      name,
    );
    const problems = secretProblems(name, secret);
    this.cache.set(key, { at: now, problems });
    return problems;
  }
}

export function secretProblems(
  name: string,
  secret: (KubeObject & { data?: Record<string, string> }) | undefined,
): SpecProblem[] {
  const field = 'spec.storage.s3.secretRef.name';
  if (secret === undefined)
    return [
      {
        field,
        reason: 'S3SecretNotFound',
        message: `${field}: Secret "${name}" does not exist in this namespace; create it with the keys ${S3_SECRET_KEYS.accessKeyId} and ${S3_SECRET_KEYS.secretAccessKey} (checked again every ${SECRET_CHECK_TTL_MS / 1000} s)`,
      },
    ];
  const data = secret.data ?? {};
  const missing = [S3_SECRET_KEYS.accessKeyId, S3_SECRET_KEYS.secretAccessKey].filter(
    (k) => !data[k],
  );
  if (missing.length === 0) return [];
  return [
    {
      field,
      reason: 'S3SecretInvalid',
      message: `${field}: Secret "${name}" has no ${missing.join(' and no ')} (it holds: ${Object.keys(data).sort().join(', ') || 'nothing'})`,
    },
  ];
}
