// Checks of a spec that the CRD's OpenAPI schema and CEL rules cannot make: a cron expression,
// a time zone, the scheme of a model or dataset URI. Each problem names the field, so the
// operator can put it in a condition a person can act on.
import cron from 'node-cron';

export interface SpecProblem {
  /** JSON path of the field, e.g. "spec.schedule.cron". */
  field: string;
  /** CamelCase reason for the condition, e.g. "InvalidSchedule". */
  reason: string;
  message: string;
}

/** URI schemes the runtime reads (models, datasets) and writes (outputs, checkpoints). */
export const READ_SCHEMES = ['file', 'pvc', 'http', 'https'] as const;
export const WRITE_SCHEMES = ['file', 'pvc'] as const;

const DNS1123_LABEL = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;

export function checkUri(
  field: string,
  uri: string | undefined,
  schemes: readonly string[],
): SpecProblem[] {
  if (uri === undefined) return [];
  let url: URL;
  try {
    url = new URL(uri);
  } catch {
    return [
      {
        field,
        reason: 'InvalidURI',
        message: `${field}: "${uri}" is not a URI (example: pvc://models/iris)`,
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
  const result = cron.validateDetailed(expression);
  if (result.valid) return [];
  const why = result.errors
    .map((e) => (e.field === 'expression' ? e.message : `${e.field}: ${e.message}`))
    .join(', ');
  return [
    {
      field,
      reason: 'InvalidSchedule',
      message: `${field}: "${expression}" is not a cron expression (${why}); example: "0 3 * * *"`,
    },
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
