// Checks of a spec that the CRD's OpenAPI schema and CEL rules cannot make: a cron expression,
// a time zone, the scheme of a model or dataset URI. Each problem names the field, so the
// operator can put it in a condition a person can act on.
import type { SpecProblem } from '../engine/workload.ts';
import { parseCron } from './cron.ts';

/** URI schemes the runtime reads (models, datasets) and writes (outputs, checkpoints). */
export const READ_SCHEMES = ['file', 'pvc', 'http', 'https'] as const;
export const WRITE_SCHEMES = ['file', 'pvc'] as const;
/** Kinds with spec.storage (TrainingJob, InferenceService) also read and write s3://BUCKET/KEY. */
export const STORAGE_READ_SCHEMES = [...READ_SCHEMES, 's3'] as const;
export const STORAGE_WRITE_SCHEMES = [...WRITE_SCHEMES, 's3'] as const;

const DNS1123_LABEL = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;
const S3_BUCKET = /^[a-z0-9][-.a-z0-9]{1,61}[a-z0-9]$/;

/** The user information (user:password@) of a URI, even of one that does not parse. */
const USERINFO = /^([A-Za-z][-+.A-Za-z0-9]*:\/\/)[^/?#]*@/;

/** A URI as it may be shown in a message, an Event or a log: without its user information. */
export function redactUri(uri: string): string {
  return uri.replace(USERINFO, '$1***@');
}

/**
 * Checks a URI field: it parses, has one of `schemes`, names a claim for pvc://, and carries no
 * credentials (CredentialsInURI): user:password@ would be stored in the object, shown to everyone
 * who may read it and copied into pods. Messages never repeat the user information.
 */
export function checkUri(
  field: string,
  uri: string | undefined,
  schemes: readonly string[],
): SpecProblem[] {
  if (uri === undefined) return [];
  if (USERINFO.test(uri)) {
    return [
      {
        field,
        reason: 'CredentialsInURI',
        message: `${field}: "${redactUri(uri)}" carries credentials (user:password@), which anyone who can read the object would see; keep them in a Secret and give them to the pods with spec.podTemplate.spec.env[].valueFrom.secretKeyRef`,
      },
    ];
  }
  let url: URL;
  try {
    url = new URL(uri);
  } catch {
    return [
      {
        field,
        reason: 'InvalidURI',
        message: `${field}: "${redactUri(uri)}" is not a URI (example: pvc://models/iris)`,
      },
    ];
  }
  const scheme = url.protocol.replace(/:$/, '');
  if (!schemes.includes(scheme)) {
    return [
      {
        field,
        reason: 'UnsupportedURIScheme',
        message: `${field}: scheme "${scheme}" is not supported here; use one of ${schemes.map((s) => `${s}://`).join(', ')}`,
      },
    ];
  }
  if (scheme === 's3' && !S3_BUCKET.test(url.hostname)) {
    return [
      {
        field,
        reason: 'InvalidURI',
        message: `${field}: "${uri}" must name a bucket: s3://BUCKET/PREFIX with a bucket name of 3 to 63 lower-case letters, digits, dots and hyphens`,
      },
    ];
  }
  if (scheme === 'pvc' && !DNS1123_LABEL.test(url.hostname)) {
    return [
      {
        field,
        reason: 'InvalidURI',
        message: `${field}: "${uri}" must name a PersistentVolumeClaim: pvc://CLAIM/PATH with a lower-case DNS label as CLAIM`,
      },
    ];
  }
  return [];
}

export function checkCron(field: string, expression: string | undefined): SpecProblem[] {
  if (expression === undefined) return [];
  const parsed = parseCron(expression);
  if (parsed.ok) return [];
  return [
    { field, reason: 'InvalidSchedule', message: `${field}: "${expression}": ${parsed.problem}` },
  ];
}

export function checkTimeZone(field: string, timeZone: string | undefined): SpecProblem[] {
  if (timeZone === undefined) return [];
  try {
    new Intl.DateTimeFormat('en-US', { timeZone });
    return [];
  } catch {
    return [
      {
        field,
        reason: 'InvalidTimeZone',
        message: `${field}: "${timeZone}" is not an IANA time zone (e.g. Europe/Paris)`,
      },
    ];
  }
}

/** Whether `uri` is `base` itself or lies under it (path segments, not string prefixes). */
export function withinOutput(uri: string, base: string): boolean {
  const b = base.replace(/\/+$/, '');
  return uri === b || uri.startsWith(`${b}/`);
}
