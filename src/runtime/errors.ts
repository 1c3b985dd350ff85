// Failures the operator must not retry: the spec, the dataset or the model is unusable as given.
// Anything else that escapes the runtime counts as transient (see EXIT in contract.ts).

export class PermanentError extends Error {
  override readonly name = 'PermanentError';
}

export function isPermanentError(err: unknown): err is PermanentError {
  return err instanceof PermanentError;
}
