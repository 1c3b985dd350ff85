// Labels and annotations the operator puts on what it creates. All use the lepton.ai/ prefix,
// except the app.kubernetes.io/managed-by label that tools across the ecosystem understand.

export const MANAGED_BY_LABEL = 'app.kubernetes.io/managed-by';
export const MANAGED_BY_VALUE = 'lepton-operator';
/** Selects everything the operator created; its informers for owned objects watch only these. */
export const MANAGED_SELECTOR = `${MANAGED_BY_LABEL}=${MANAGED_BY_VALUE}`;

export const JOB_NAME_LABEL = 'lepton.ai/job-name';
export const REPLICA_INDEX_LABEL = 'lepton.ai/replica-index';
export const ROLE_LABEL = 'lepton.ai/role';
/** The attempt of the gang a pod belongs to (a restart of the gang is the next attempt). */
export const ATTEMPT_LABEL = 'lepton.ai/attempt';
/** A hash of what shapes the pods (see Workload.podShape): pods of another shape are replaced. */
export const POD_SHAPE_LABEL = 'lepton.ai/pod-shape';
