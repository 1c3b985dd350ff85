// What the protocols share about a request: the error a bad one gets (status and a message that
// says exactly what is wrong) and the one JSON parse of its body.

export class RequestError extends Error {
  override readonly name = 'RequestError';
  readonly status: number;
  /** Extra response headers, such as Retry-After. */
  readonly headers: Record<string, string> | undefined;

  constructor(status: number, message: string, headers?: Record<string, string>) {
    super(message);
    this.status = status;
    this.headers = headers;
  }
}

export function badRequest(message: string): RequestError {
  return new RequestError(400, message);
}

export function parseJsonBody(body: Buffer): unknown {
  if (body.length === 0) throw badRequest('the request body is empty (expected JSON)');
  try {
    return JSON.parse(body.toString('utf8'));
  } catch (err) {
    throw badRequest(`malformed JSON in the request body: ${(err as Error).message}`);
  }
}

export type JsonObject = Record<string, unknown>;

export function isObject(value: unknown): value is JsonObject {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** A JSON value as an error message names it, short even when the value is huge. */
export function describeValue(value: unknown): string {
  if (Array.isArray(value)) return `a list of ${value.length}`;
  if (value === null) return 'null';
  if (typeof value === 'object') return 'an object';
  if (typeof value === 'string')
    return JSON.stringify(value.length > 20 ? `${value.slice(0, 20)}...` : value);
  return String(value);
}
