// The contract between the operator and the runtime that runs in workload pods: environment
// variables, ports, endpoints, exit codes and the termination message. Both sides import this
// file, so it is the one place to change either.

/** Environment variables the operator sets on every workload container. */
export const ENV = {
  /** The part of the TrainingJob's spec the runtime reads (RUNTIME_SPEC_FIELDS), as JSON. */
  spec: 'LEPTON_JOB_SPEC',
  jobName: 'LEPTON_JOB_NAME',
  namespace: 'LEPTON_NAMESPACE',
  /** 0-based worker index; rank 0 is the chief. */
  rank: 'LEPTON_RANK',
  worldSize: 'LEPTON_WORLD_SIZE',
  /** host:port of the chief's averaging endpoint (data-parallel training). */
  chiefAddress: 'LEPTON_CHIEF_ADDRESS',
  /** Port of the HTTP server: /healthz, /readyz, /progress, /metrics. */
  port: 'LEPTON_PORT',
  /** Set by the local node only: JSON map from mount paths to folders (see the README). */
  pathMap: 'LEPTON_PATH_MAP',
  /** Where to write the termination message (the local node sets it; else /dev/termination-log). */
  terminationLog: 'LEPTON_TERMINATION_LOG',
} as const;

/**
 * The fields of a TrainingJob's spec the runtime reads (spec.ts resolveSpec). Only they go into
 * LEPTON_JOB_SPEC: what every pod carries does not grow with podTemplate, schedule, federated or
 * the run policy, which the operator alone reads.
 */
export const RUNTIME_SPEC_FIELDS = [
  'model',
  'dataset',
  'hyperparameters',
  'output',
  'checkpoint',
  'earlyStopping',
  'workers',
  'averaging',
] as const;
export type RuntimeSpecField = (typeof RUNTIME_SPEC_FIELDS)[number];

/**
 * Most bytes LEPTON_JOB_SPEC may hold; the operator refuses a larger spec (SpecTooLarge). The
 * CRD's bounds keep a spec of ASCII text under it; escaped or multi-byte characters can exceed it.
 */
export const RUNTIME_SPEC_MAX_BYTES = 64 * 1024;

/** The part of a spec the runtime reads, as the operator passes it in LEPTON_JOB_SPEC. */
export function runtimeSpecOf<T extends Partial<Record<RuntimeSpecField, unknown>>>(
  spec: T,
): Pick<T, RuntimeSpecField> {
  const out: Partial<Record<RuntimeSpecField, unknown>> = {};
  for (const field of RUNTIME_SPEC_FIELDS) if (spec[field] !== undefined) out[field] = spec[field];
  return out as Pick<T, RuntimeSpecField>;
}

export const DEFAULT_PORT = 8080;
export const AVERAGING_PORT = 7070;
export const DEFAULT_TERMINATION_LOG = '/dev/termination-log';

/**
 * Exit codes. The operator retries a worker (within backoffLimit) only when a retry can help.
 *   0         success
 *   10        permanent: the spec, dataset or model is unusable; retrying cannot help
 *   11        retryable: a peer or the chief was lost, a transient I/O error
 *   other     crashes and signals (137: killed, e.g. out of memory): retryable
 */
export const EXIT = { ok: 0, permanent: 10, retryable: 11 } as const;

export function isPermanentExit(code: number): boolean {
  return code === EXIT.permanent;
}

/** What /progress answers while training runs. */
export interface Progress {
  phase: 'Starting' | 'Training' | 'Saving' | 'Done' | 'Failed';
  backend: string;
  epoch: number;
  epochs: number;
  loss?: number;
  accuracy?: number;
  valLoss?: number;
  valAccuracy?: number;
  samplesPerSecond?: number;
}

/** The chief's termination message on success: JSON of this shape. */
export interface TrainingResult {
  model: { uri: string; digest: string };
  metrics: { loss?: number; accuracy?: number; valLoss?: number; valAccuracy?: number };
  epochs: number;
  backend: string;
}

/** Where the operator mounts PersistentVolumeClaim CLAIM named by a pvc://CLAIM/PATH URI. */
export const PVC_MOUNT_ROOT = '/mnt/pvc';

/** The claims named by pvc:// URIs, in order of first appearance. */
export function claimsOf(uris: (string | undefined)[]): string[] {
  const claims: string[] = [];
  for (const uri of uris) {
    const m = /^pvc:\/\/([^/]+)/.exec(uri ?? '');
    if (m?.[1] && !claims.includes(m[1])) claims.push(m[1]);
  }
  return claims;
}
