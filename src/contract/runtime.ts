// The contract between the operator and the runtime that runs in workload pods, for every mode:
// the mode names, environment variables, ports, endpoints, exit codes and mounts. The operator
// and the runtime both import src/contract/ and nothing else of each other; it imports nothing.

/** The runtime's modes: the first argument of its command line. */
export const MODES = {
  train: 'train',
  // The federated modes: their strings are FEDERATED_MODES of federated.ts (which imports
  // nothing, as this file does not), repeated here so that Mode covers every mode.
  federatedClient: 'federated-client',
  federatedUnmask: 'federated-unmask',
  aggregate: 'aggregate',
  // The serving mode: SERVING_MODE of serving.ts, repeated for the same reason.
  serve: 'serve',
} as const;
export type Mode = (typeof MODES)[keyof typeof MODES];

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
  /**
   * The container's memory limit in bytes (the downward API's limits.memory), set when the spec
   * gives one: the runtime sizes its training thread's heap and its dataset limit from it.
   */
  memoryLimit: 'LEPTON_MEMORY_LIMIT',
} as const;

export const DEFAULT_PORT = 8080;
export const AVERAGING_PORT = 7070;
export const DEFAULT_TERMINATION_LOG = '/dev/termination-log';

/** Paths of the runtime's HTTP server on DEFAULT_PORT. */
export const ENDPOINTS = {
  healthz: '/healthz',
  readyz: '/readyz',
  /** The training mode's Progress (training.ts), read by the operator from the chief. */
  progress: '/progress',
  metrics: '/metrics',
} as const;

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
