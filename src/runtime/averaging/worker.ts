// A worker (rank > 0) of data-parallel averaging: each sync POSTs this rank's weights to the
// chief's /v1/rounds/<round> and waits for the average in the answer. Until it has reached the
// chief once, a worker retries connecting with backoff, because the chief's pod may start after
// it; after that, losing the chief fails the sync at once with a RoundFailedError.
import { type ClientRequest, type IncomingMessage, request } from 'node:http';
import type { Logger } from 'winston';
import type { WeightSync } from '../train/weight-sync.ts';
import { ShapeMismatchError, checkShapes, shapeOf } from '../aggregation/aggregate.ts';
import { InvalidUpdateError, RoundFailedError } from './errors.ts';
import {
  DEFAULT_STARTUP_TIMEOUT_MS,
  DEFAULT_TIMEOUT_MS,
  RANK_HEADER,
  roundPath,
} from './protocol.ts';
import { WireError, decode, encode } from './wire.ts';

export interface WorkerOptions {
  rank: number;
  /** host:port of the chief's averaging server. */
  chiefAddress: string;
  everySteps: number;
  /** The chief's round timeout (see ChiefOptions); this side derives its own limits from it. */
  timeoutMs?: number;
  /** How long to keep trying to reach the chief at start-up; round 0 also waits this much longer. */
  startupTimeoutMs?: number;
  logger?: Logger;
}

const FIRST_RETRY_MS = 100;
const MAX_RETRY_MS = 5_000;
// A connection attempt that neither succeeds nor fails (packets dropped while the chief's pod IP
// is not routable yet) is abandoned after this, and retried.
const CONNECT_ATTEMPT_MS = 10_000;
// Error bodies are short texts; a longer one is cut rather than buffered whole.
const MAX_ERROR_BODY_BYTES = 64 * 1024;

/** The chief could not be reached at all; worth retrying while the chief may still be starting. */
class ConnectError extends Error {}

interface Reply {
  status: number;
  body: Uint8Array;
}

export class WorkerSync implements WeightSync {
  readonly everySteps: number;
  private readonly rank: number;
  private readonly address: string;
  private readonly host: string;
  private readonly port: number;
  private readonly timeoutMs: number;
  private readonly startupTimeoutMs: number;
  private readonly logger: Logger | undefined;
  private round = 0;
  /** Whether some connection to the chief ever succeeded; from then on, no more retries. */
  private reached = false;
  private busy = false;
  private failure: Error | undefined;
  private closed = false;
  /** Cancels what the current sync is waiting for (a request or a back-off) when closing. */
  private cancel: ((reason: Error) => void) | undefined;

  constructor(options: WorkerOptions) {
    this.rank = options.rank;
    this.everySteps = options.everySteps;
    this.address = options.chiefAddress;
    ({ host: this.host, port: this.port } = parseHostPort(options.chiefAddress));
    this.timeoutMs = options.timeoutMs ?? DEFAULT_TIMEOUT_MS;
    this.startupTimeoutMs = options.startupTimeoutMs ?? DEFAULT_STARTUP_TIMEOUT_MS;
    this.logger = options.logger;
  }

  async sync(weights: Float32Array[], samples: number): Promise<Float32Array[]> {
    if (this.failure) throw this.failure;
    if (this.closed) throw new Error('The averaging worker is closed');
    if (this.busy) throw new Error('sync() was called again before the previous call ended');
    this.busy = true;
    const round = this.round;
    try {
      const chunks = encode({
        rank: this.rank,
        round,
        step: (round + 1) * this.everySteps,
        samples,
        weights,
      });
      const reply = await this.submit(round, chunks);
      const average = this.average(round, reply, shapeOf(weights));
      this.round++;
      return average;
    } catch (err) {
      // The ranks are out of step once a round is lost; only a restart brings them together.
      if (!this.closed) this.failure = err as Error;
      throw err;
    } finally {
      this.busy = false;
    }
  }

  async close(): Promise<void> {
    this.closed = true;
    this.cancel?.(new RoundFailedError(this.round, [], 'The averaging worker was closed'));
  }

  /** POSTs the update, retrying failed connections until the chief has been reached once. */
  private async submit(round: number, chunks: Uint8Array[]): Promise<Reply> {
    const deadline = Date.now() + this.startupTimeoutMs;
    let delay = FIRST_RETRY_MS;
    for (let attempt = 1; ; attempt++) {
      try {
        return await this.post(round, chunks);
      } catch (err) {
        if (!(err instanceof ConnectError)) throw err;
        const remaining = deadline - Date.now();
        if (this.reached || remaining <= 0) {
          const why = this.reached
            ? `the chief at ${this.address} is gone (${err.message})`
            : `could not reach the chief at ${this.address} within ${this.startupTimeoutMs} ms ` +
              `(${attempt} attempts; last error: ${err.message})`;
          throw new RoundFailedError(round, [0], `Round ${round} failed: ${why}`, { cause: err });
        }
        this.logger?.info('Could not reach the averaging chief yet, retrying', {
          chief: this.address,
          rank: this.rank,
          attempt,
          error: err.message,
        });
        await this.pause(Math.min(delay, remaining));
        delay = Math.min(2 * delay, MAX_RETRY_MS);
      }
    }
  }

  private pause(ms: number): Promise<void> {
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.cancel = undefined;
        resolve();
      }, ms);
      this.cancel = (reason) => {
        clearTimeout(timer);
        reject(reason);
      };
    });
  }

  /**
   * One request. Every wait has a limit: connecting (CONNECT_ATTEMPT_MS), the upload and the
   * download (no progress for timeoutMs), and the answer itself. The chief answers a round
   * within its budget (timeoutMs, plus startupTimeoutMs in round 0) of the round's first update,
   * which came no later than ours, plus the time to average; twice the budget covers that.
   */
  private post(round: number, chunks: Uint8Array[]): Promise<Reply> {
    const budget = this.timeoutMs + (round === 0 ? this.startupTimeoutMs : 0);
    const length = chunks.reduce((sum, c) => sum + c.byteLength, 0);
    return new Promise<Reply>((resolve, reject) => {
      let connected = false;
      let settled = false;
      let phase = 'connecting';
      let timer: NodeJS.Timeout | undefined;
      const settle = (err: Error | undefined, reply?: Reply) => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        this.cancel = undefined;
        req.destroy();
        if (err) reject(err);
        else resolve(reply!);
      };
      const lost = (why: string) =>
        new RoundFailedError(
          round,
          [0],
          `Round ${round} failed: lost the chief at ${this.address} while ${phase}: ${why}`,
        );
      const limit = (ms: number, error: () => Error) => {
        clearTimeout(timer);
        timer = setTimeout(() => settle(error()), ms);
      };

      const req: ClientRequest = request({
        host: this.host,
        port: this.port,
        method: 'POST',
        path: roundPath(round),
        // A connection per round: an idle kept-alive socket that dies between rounds must not
        // look like a lost chief, and a new connection costs nothing next to the weights.
        agent: false,
        headers: {
          'content-type': 'application/octet-stream',
          'content-length': length,
          [RANK_HEADER]: String(this.rank),
        },
      });
      this.cancel = (reason) => settle(reason);
      limit(
        CONNECT_ATTEMPT_MS,
        () => new ConnectError(`no connection after ${CONNECT_ATTEMPT_MS} ms`),
      );
      req.on('socket', (socket) => {
        const onConnect = () => {
          connected = true;
          this.reached = true;
          phase = 'sending the update';
          clearTimeout(timer);
          socket.setTimeout(this.timeoutMs);
        };
        if (socket.connecting) socket.once('connect', onConnect);
        else onConnect();
        socket.on('timeout', () => settle(lost(`no progress for ${this.timeoutMs} ms`)));
      });
      req.on('error', (err) =>
        settle(connected ? lost(err.message) : new ConnectError(err.message)),
      );
      req.on('close', () => settle(lost('the connection closed')));
      req.on('finish', () => {
        if (settled || phase !== 'sending the update') return;
        phase = 'waiting for the average';
        req.socket?.setTimeout(0);
        limit(
          2 * budget,
          () =>
            new RoundFailedError(
              round,
              [0],
              `Round ${round} failed: the chief at ${this.address} did not answer within ` +
                `${2 * budget} ms`,
            ),
        );
      });
      req.on('response', (res: IncomingMessage) => {
        phase = 'receiving the answer';
        clearTimeout(timer);
        res.socket.setTimeout(this.timeoutMs);
        // A callback rather than a promise: the end of the body must settle this request
        // before the 'close' that follows it in the same tick reads as a lost connection.
        readBody(res, res.statusCode === 200 ? undefined : MAX_ERROR_BODY_BYTES, (err, body) =>
          settle(err && lost(err.message), { status: res.statusCode ?? 0, body }),
        );
      });
      for (const chunk of chunks) req.write(chunk);
      req.end();
    });
  }

  /** Turns the chief's answer into the average, or into the error it reports. */
  private average(round: number, reply: Reply, shape: number[]): Float32Array[] {
    if (reply.status !== 200) {
      const text = new TextDecoder().decode(reply.body).trim();
      const why = `Round ${round} failed: the chief at ${this.address} answered ${reply.status}: ${text}`;
      // 4xx other than 409 (out of step) means the update itself can never be accepted.
      const permanent = reply.status >= 400 && reply.status < 500 && reply.status !== 409;
      throw permanent
        ? new InvalidUpdateError(round, [this.rank], why)
        : new RoundFailedError(round, [], why);
    }
    try {
      const message = decode(reply.body);
      if (message.round !== round) {
        throw new WireError(`it is the average of round ${message.round}, not ${round}`);
      }
      checkShapes(shape, message.weights, "the chief's average");
      return message.weights;
    } catch (err) {
      if (!(err instanceof WireError || err instanceof ShapeMismatchError)) throw err;
      throw new InvalidUpdateError(
        round,
        [0],
        `Round ${round} failed: unusable average from the chief at ${this.address}: ${err.message}`,
      );
    }
  }
}

/**
 * Reads a response body into one buffer of its own (so that decoding can return views of it).
 * With `limit`, keeps at most that many bytes and drops the rest.
 */
function readBody(
  res: IncomingMessage,
  limit: number | undefined,
  done: (err: Error | undefined, body: Uint8Array) => void,
): void {
  const announced = Number(res.headers['content-length']);
  const known = res.headers['content-length'] !== undefined && Number.isSafeInteger(announced);
  if (limit === undefined && !known) {
    res.resume();
    return done(new Error('the average came without a Content-Length'), new Uint8Array());
  }
  const size = limit === undefined ? announced : known ? Math.min(limit, announced) : limit;
  const body = new Uint8Array(size);
  let received = 0;
  res.on('data', (chunk: Buffer) => {
    const n = Math.min(chunk.length, size - received);
    body.set(chunk.subarray(0, n), received);
    received += n;
  });
  res.on('end', () => {
    if (limit === undefined && received !== size) {
      done(new Error(`the average ended after ${received} of ${size} bytes`), body);
    } else {
      done(undefined, body.subarray(0, received));
    }
  });
  res.on('error', (err) => done(err, body));
}

/** Splits "host:port" or "[v6]:port"; the port is required, as in LEPTON_CHIEF_ADDRESS. */
function parseHostPort(address: string): { host: string; port: number } {
  const match = /^(?:\[([^\]]+)\]|([^:[\]]+)):(\d{1,5})$/.exec(address);
  const port = Number(match?.[3]);
  if (!match || port < 1 || port > 65535) {
    throw new RangeError(`Chief address "${address}" is not host:port`);
  }
  return { host: (match[1] ?? match[2])!, port };
}
