// How a workload pod reaches S3-compatible object storage (spec.storage.s3): the operator sets
// the plain settings as environment variables and mounts the credentials Secret read-only; the
// runtime reads the keys from files, so no secret is in the pod's environment or its spec.
// Imports nothing, as the rest of src/contract/.

export const S3_ENV = {
  /** http(s)://host[:port] of the S3 API; unset: AWS's regional endpoint. */
  endpoint: 'LEPTON_S3_ENDPOINT',
  region: 'LEPTON_S3_REGION',
  /** "true": bucket in the path (http://host/bucket/key), as most S3-compatible servers need. */
  forcePathStyle: 'LEPTON_S3_FORCE_PATH_STYLE',
  /** The folder holding the credentials' files; unset: anonymous requests. */
  credentialsDir: 'LEPTON_S3_CREDENTIALS_DIR',
} as const;

/** Where the operator mounts the Secret of spec.storage.s3.secretRef. */
export const S3_CREDENTIALS_MOUNT = '/var/run/lepton/s3';

/** The Secret's keys (the AWS SDKs' environment names, as KServe's and Trainer's Secrets use). */
export const S3_SECRET_KEYS = {
  accessKeyId: 'AWS_ACCESS_KEY_ID',
  secretAccessKey: 'AWS_SECRET_ACCESS_KEY',
  /** Optional. */
  sessionToken: 'AWS_SESSION_TOKEN',
} as const;

export const DEFAULT_S3_REGION = 'us-east-1';

export function isS3Uri(uri: string | undefined): boolean {
  return uri !== undefined && uri.startsWith('s3://');
}
