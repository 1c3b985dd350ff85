// Serving test fixtures: a ServingSpec builder, predictors whose every row gives a different,
// known answer (so a batch that mixes rows up shows), and small HTTP helpers.
import { request } from 'node:http';
import { Socket, connect } from 'node:net';
import type { ServingSpec } from '../../../../src/contract/serving.ts';
import type {
  Batch,
  Prediction,
  Predictor,
  TensorSpec,
} from '../../../../src/runtime/serving/predictor.ts';

export function servingSpec(fields: Partial<ServingSpec> = {}): ServingSpec {
  return {
    modelName: 'iris',
    variant: 'predictor',
    modelUri: 'file:///models/iris/model.json',
    format: 'tfjs-layers',
    quantization: 'none',
    maxRequestBytes: 1 << 20,
    drainSeconds: 0,
    ...fields,
  };
}

/** A predictor that records its batches and can hold them until released. */
abstract class RecordingPredictor implements Predictor {
  abstract readonly inputs: TensorSpec[];
  abstract readonly outputs: TensorSpec[];
  /** Rows of each batch predicted, in order. */
  readonly batches: number[] = [];
  private gate: Promise<void> | undefined;
  /** Predictions running at once (at most one with a batcher). */
  running = 0;
  maxRunning = 0;

  /** Holds every prediction from now until the returned function is called. */
  hold(): () => void {
    let release = () => {};
    this.gate = new Promise<void>((resolve) => (release = resolve));
    return () => {
      this.gate = undefined;
      release();
    };
  }

  async predict(batch: Batch): Promise<Prediction> {
    this.batches.push(batch.rows);
    this.running++;
    this.maxRunning = Math.max(this.maxRunning, this.running);
    try {
      if (this.gate !== undefined) await this.gate;
      return this.compute(batch);
    } finally {
      this.running--;
    }
  }

  protected abstract compute(batch: Batch): Prediction;

  dispose(): void {}
}

/** x: FP32 [-1, 3] → y: FP32 [-1, 2] = [x0 + x1 + x2, 2 x0]. */
export class LinearPredictor extends RecordingPredictor {
  readonly inputs: TensorSpec[] = [{ name: 'x', datatype: 'FP32', shape: [-1, 3] }];
  readonly outputs: TensorSpec[] = [{ name: 'y', datatype: 'FP32', shape: [-1, 2] }];

  protected compute(batch: Batch): Prediction {
    const x = batch.inputs[0]!;
    const y = new Float32Array(batch.rows * 2);
    for (let r = 0; r < batch.rows; r++) {
      y[2 * r] = x[3 * r]! + x[3 * r + 1]! + x[3 * r + 2]!;
      y[2 * r + 1] = 2 * x[3 * r]!;
    }
    return { outputs: [y] };
  }
}

/** The expected y of LinearPredictor for one row. */
export function linear(row: number[]): number[] {
  return [Math.fround(Math.fround(row[0]! + row[1]!) + row[2]!), Math.fround(2 * row[0]!)];
}

/**
 * Three inputs and outputs of each datatype, one with scalar rows:
 * a: FP32 [-1, 2], b: INT32 [-1], c: BOOL [-1, 2] →
 * sum: FP32 [-1] = a0 + a1 + b, double: INT32 [-1, 1] = 2b, not: BOOL [-1, 2] = !c.
 */
export class MixedPredictor extends RecordingPredictor {
  readonly inputs: TensorSpec[] = [
    { name: 'a', datatype: 'FP32', shape: [-1, 2] },
    { name: 'b', datatype: 'INT32', shape: [-1] },
    { name: 'c', datatype: 'BOOL', shape: [-1, 2] },
  ];
  readonly outputs: TensorSpec[] = [
    { name: 'sum', datatype: 'FP32', shape: [-1] },
    { name: 'double', datatype: 'INT32', shape: [-1, 1] },
    { name: 'not', datatype: 'BOOL', shape: [-1, 2] },
  ];

  protected compute(batch: Batch): Prediction {
    const [a, b, c] = batch.inputs as [Float32Array, Int32Array, Uint8Array];
    const sum = new Float32Array(batch.rows);
    const double = new Int32Array(batch.rows);
    const not = new Uint8Array(batch.rows * 2);
    for (let r = 0; r < batch.rows; r++) {
      sum[r] = a[2 * r]! + a[2 * r + 1]! + b[r]!;
      double[r] = 2 * b[r]!;
      not[2 * r] = c[2 * r] ? 0 : 1;
      not[2 * r + 1] = c[2 * r + 1] ? 0 : 1;
    }
    return { outputs: [sum, double, not] };
  }
}

export interface Answer {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: Buffer;
  json(): unknown;
}

/** One HTTP request on a fresh connection (no keep-alive, so tests do not share sockets). */
export function call(
  port: number,
  method: string,
  path: string,
  body?: string | Buffer,
  headers: Record<string, string> = {},
): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port, method, path, headers, agent: false }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => {
        const data = Buffer.concat(chunks);
        resolve({
          status: res.statusCode ?? 0,
          headers: res.headers,
          body: data,
          json: () => JSON.parse(data.toString('utf8')) as unknown,
        });
      });
    });
    req.on('error', reject);
    req.end(body);
  });
}

export const post = (port: number, path: string, body: unknown, headers?: Record<string, string>) =>
  call(
    port,
    'POST',
    path,
    typeof body === 'string' || Buffer.isBuffer(body) ? body : JSON.stringify(body),
    headers,
  );

/**
 * Writes raw bytes on a connection and collects everything the server sends until it closes
 * the connection (for requests an HTTP client would not send).
 */
export function raw(port: number, write: (socket: Socket) => void): Promise<string> {
  return new Promise((resolve) => {
    const socket = connect(port, '127.0.0.1');
    const chunks: Buffer[] = [];
    socket.on('data', (c: Buffer) => chunks.push(c));
    const done = () => resolve(Buffer.concat(chunks).toString('utf8'));
    // A reset after the response still leaves the response in `chunks`.
    socket.on('error', done);
    socket.on('close', done);
    socket.on('connect', () => write(socket));
  });
}

/** Polls `check` until it holds, failing after `timeoutMs` (never a fixed sleep). */
export async function waitFor(what: string, check: () => boolean, timeoutMs = 5000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > deadline)
      throw new Error(`Timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
}
