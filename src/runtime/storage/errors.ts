// What an S3 failure means for the job: the request is wrong (a PermanentError: the operator does
// not retry) or the service or network may recover (a plain Error: retried within backoffLimit).
// Messages name the action, the URI and the S3 error code; never a credential.
import { PermanentError } from '../errors.ts';

/** Codes that say "slow down" or "try later", whatever their status. */
const TRANSIENT_CODES = new Set([
  'SlowDown',
  'Throttling',
  'ThrottlingException',
  'RequestTimeout',
  'RequestTimeoutException',
  'InternalError',
  'ServiceUnavailable',
  'TimeoutError',
]);

/** What a person can do about a code that is not plain from its name. */
const HINTS: Record<string, string> = {
  InvalidAccessKeyId: 'the access key of the Secret is not known to the server',
  SignatureDoesNotMatch: 'the secret key of the Secret does not match its access key',
  AccessDenied: 'the credentials may not do this',
  Forbidden: 'the credentials may not do this, or are wrong',
  NotFound: 'no such bucket or key',
  PermanentRedirect: 'the bucket is in another region or needs another endpoint',
};

interface SdkError {
  name?: string;
  code?: string;
  message?: string;
  $fault?: 'client' | 'server';
  $metadata?: { httpStatusCode?: number };
}

/** The error to throw for `err`, raised by S3 action `action` on `uri`. */
export function s3Error(err: unknown, action: string, uri: string, endpoint?: string): Error {
  if (err instanceof PermanentError) return err;
  const e = (err ?? {}) as SdkError;
  if (e.name === 'AbortError') return err as Error;
  const status = e.$metadata?.httpStatusCode;
  const where = `S3 ${action} ${uri}`;
  if (status === undefined || e.$fault === undefined) {
    // No answer from a server: a refused or reset connection, a timeout, a name that does not
    // resolve. The endpoint may be wrong or down; retrying may help, so it is not permanent.
    const code = e.code ?? (e.name === 'TimeoutError' ? 'timeout' : e.name);
    const to = endpoint === undefined ? '' : ` at ${endpoint}`;
    return new Error(
      `${where} failed: no answer from S3${to} (${[code, e.message].filter(Boolean).join(': ')})`,
      { cause: err },
    );
  }
  // Answers without a body (HEAD) leave the SDK with no code: "Unknown" or "UnknownError".
  const known = e.name !== undefined && !/^Unknown/.test(e.name);
  const code = known ? e.name! : `HTTP ${status}`;
  const said =
    e.message && !/^Unknown/.test(e.message) && e.message !== code ? e.message : undefined;
  const hint = HINTS[code];
  const detail = [known ? `${code} (${status})` : code, said, hint].filter(Boolean).join(': ');
  const message = `${where} failed: ${detail}`;
  const transient = TRANSIENT_CODES.has(code) || status >= 500 || status === 408 || status === 429;
  return transient
    ? new Error(message, { cause: err })
    : new PermanentError(message, { cause: err });
}

/** The S3 error code behind an error s3Error returned ('' when it is none). */
export function s3ErrorCode(err: unknown): string {
  const cause = (err as { cause?: SdkError } | undefined)?.cause;
  return cause?.$fault === undefined ? '' : (cause.name ?? '');
}
