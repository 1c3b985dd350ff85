// The chief (rank 0) of data-parallel averaging: an HTTP server where, in each round, every
// other rank POSTs its weights to /v1/rounds/<round> and waits; the chief adds its own weights
// in-process, averages once all worldSize updates are in, and answers every waiting request
// with the average. The all-reduce is synchronous, so one missing rank stops everybody: the
// chief turns that into a prompt, explicit failure (a timeout, a dropped connection, an update
// it cannot use) rather than a hang, and stays failed, because ranks that missed an average can
// only resume from a checkpoint.
import { type IncomingMessage, type Server, type ServerResponse, createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Logger } from 'winston';
import { AVERAGING_PORT } from '../../contract/runtime.ts';
import type { WeightSync } from '../train/weight-sync.ts';
import { ShapeMismatchError, checkShapes, fedAvg, shapeOf } from '../aggregation/aggregate.ts';
import { InvalidUpdateError, RoundFailedError } from './errors.ts';
import {
  DEFAULT_STARTUP_TIMEOUT_MS,
  DEFAULT_TIMEOUT_MS,
  RANK_HEADER,
  parseRoundPath,
} from './protocol.ts';
import { WireError, decode, encode, messageByteLength } from './wire.ts';

// Until the chief's own update tells it the model's size (round 0), bodies up to this size are
// read; afterwards only bodies of exactly the model's size are.
const MAX_UNCHECKED_BODY_BYTES = 2 ** 32;

export interface ChiefOptions {
  worldSize: number;
  everySteps: number;
  /** Address to listen on; 0.0.0.0 when absent. */
  host?: string;
  /** AVERAGING_PORT when absent; 0 picks a free port. */
  port?: number;
  /** DEFAULT_TIMEOUT_MS when absent. */
  timeoutMs?: number;
  /** DEFAULT_STARTUP_TIMEOUT_MS when absent. */
  startupTimeoutMs?: number;
  logger?: Logger;
}

interface Submission {
  rank: number;
  /** Body bytes announced and received so far. */
  expected: number;
  received: number;
  /** Set once the whole update is in and checked. */
  update?: { weights: Float32Array[]; samples: number; step: number };
  /** The waiting request; absent for the chief's own update. */
  res?: ServerResponse;
}

type SyncFailure = RoundFailedError | InvalidUpdateError;

export async function startChief(options: ChiefOptions): Promise<ChiefSync> {
  const chief = new ChiefSync(options);
  await chief.listen(options.host ?? '0.0.0.0', options.port ?? AVERAGING_PORT);
  return chief;
}

export class ChiefSync implements WeightSync {
  readonly everySteps: number;
  private readonly worldSize: number;
  private readonly timeoutMs: number;
  private readonly startupTimeoutMs: number;
  private readonly logger: Logger | undefined;
  private readonly server: Server | undefined;
  /** The round being collected: every earlier one has completed. */
  private round = 0;
  private submissions = new Map<number, Submission>();
  private firstRank: number | undefined;
  private timer: NodeJS.Timeout | undefined;
  private own: { resolve: (w: Float32Array[]) => void; reject: (e: Error) => void } | undefined;
  /** The chief's model, as the number of values of each variable, once it has synced. */
  private shape: number[] | undefined;
  private failure: SyncFailure | undefined;
  private closing: Promise<void> | undefined;
  /** Requests not yet finished, including answers still being written. */
  private readonly open = new Set<ServerResponse>();
  private drained: (() => void) | undefined;

  /** Use startChief, which also starts listening. */
  constructor(options: ChiefOptions) {
    this.worldSize = options.worldSize;
    this.everySteps = options.everySteps;
    this.timeoutMs = options.timeoutMs ?? DEFAULT_TIMEOUT_MS;
    this.startupTimeoutMs = options.startupTimeoutMs ?? DEFAULT_STARTUP_TIMEOUT_MS;
    this.logger = options.logger;
    // A single process averages with itself: no server, nothing to wait for.
    if (this.worldSize > 1) {
      this.server = createServer((req, res) => this.handle(req, res));
      // The round timer bounds the uploads that matter; Node's default 300 s limit on reading a
      // request would cut the upload of a large model for no better reason.
      this.server.requestTimeout = 0;
    }
  }

  /** The port the server listens on (useful when it was started on port 0). */
  get port(): number {
    const address = this.server?.address();
    return address && typeof address === 'object' ? (address as AddressInfo).port : 0;
  }

  /**
   * The round being collected, the ranks whose update for it is in and those still sending
   * theirs: what a progress report shows while a round waits.
   */
  status(): { round: number; arrived: number[]; sending: number[] } {
    const arrived: number[] = [];
    const sending: number[] = [];
    for (const sub of this.submissions.values()) (sub.update ? arrived : sending).push(sub.rank);
    const ascending = (a: number, b: number) => a - b;
    return {
      round: this.round,
      arrived: arrived.sort(ascending),
      sending: sending.sort(ascending),
    };
  }

  async listen(host: string, port: number): Promise<void> {
    const server = this.server;
    if (!server) return;
    await new Promise<void>((resolve, reject) => {
      server.once('error', (err: Error) =>
        reject(new Error(`Averaging chief could not listen on ${host}:${port}: ${err.message}`)),
      );
      server.listen(port, host, () => resolve());
    });
    this.logger?.info('Started the averaging server', {
      host,
      port: this.port,
      worldSize: this.worldSize,
    });
  }

  sync(weights: Float32Array[], samples: number): Promise<Float32Array[]> {
    if (this.failure) return Promise.reject(this.failure);
    if (this.closing) return Promise.reject(new Error('The averaging chief is closed'));
    if (this.own) {
      return Promise.reject(new Error('sync() was called again before the previous call ended'));
    }
    const round = this.round;
    const problem = this.checkOwn(weights, samples);
    if (problem) {
      this.fail(new InvalidUpdateError(round, [0], `Round ${round} failed: rank 0 ${problem}`));
      return Promise.reject(this.failure);
    }
    if (!this.server) return Promise.resolve(weights);
    this.shape ??= shapeOf(weights);
    const promise = new Promise<Float32Array[]>((resolve, reject) => {
      this.own = { resolve, reject };
    });
    // Updates that arrived before the chief knew the model's shape are checked now.
    for (const sub of this.submissions.values()) {
      if (sub.update && !this.shapeMatches(sub, sub.update.weights)) return promise;
    }
    this.submissions.set(0, {
      rank: 0,
      expected: 0,
      received: 0,
      update: { weights, samples, step: this.step() },
    });
    this.arrived(0);
    return promise;
  }

  close(): Promise<void> {
    this.closing ??= this.shutDown();
    return this.closing;
  }

  private async shutDown(): Promise<void> {
    clearTimeout(this.timer);
    const message = `The averaging chief shut down during round ${this.round}`;
    this.own?.reject(new RoundFailedError(this.round, [], message));
    this.own = undefined;
    for (const sub of this.submissions.values()) if (sub.res) reply(sub.res, 503, message);
    const server = this.server;
    if (!server) return;
    const stopped = new Promise<void>((resolve) => server.close(() => resolve()));
    // Answers already written (the last round's average) get time to reach their workers
    // before the remaining connections are cut.
    if (this.open.size > 0) {
      await new Promise<void>((resolve) => {
        const grace = setTimeout(resolve, this.timeoutMs);
        this.drained = () => {
          clearTimeout(grace);
          resolve();
        };
      });
    }
    server.closeAllConnections();
    await stopped;
  }

  /**
   * The step an update carries, (round + 1) · everySteps, is not the batch count (the training
   * loop also syncs at the end of each epoch): ranks agree on it exactly when they agree on
   * everySteps, which is what the chief checks it for.
   */
  private step(): number {
    return (this.round + 1) * this.everySteps;
  }

  private checkOwn(weights: Float32Array[], samples: number): string | undefined {
    if (!(Number.isFinite(samples) && samples >= 0)) {
      return `synced with a sample count of ${samples}, not a finite number >= 0`;
    }
    if (this.shape) {
      try {
        checkShapes(this.shape, weights, 'its model');
      } catch (err) {
        return `changed shape since the last round: ${(err as Error).message}`;
      }
    }
    return undefined;
  }

  private handle(req: IncomingMessage, res: ServerResponse): void {
    // An aborted upload also closes `res`, which is where it is handled.
    req.on('error', () => undefined);
    this.open.add(res);
    res.on('close', () => {
      this.open.delete(res);
      if (this.open.size === 0) this.drained?.();
    });
    const path = (req.url ?? '/').split('?')[0] ?? '/';
    const round = parseRoundPath(path);
    if (round === undefined) return reply(res, 404, `No such endpoint: ${path}`);
    if (req.method !== 'POST') {
      res.setHeader('allow', 'POST');
      return reply(res, 405, `Use POST to send an update to ${path}`);
    }
    const rankHeader = req.headers[RANK_HEADER];
    const rank = Number(rankHeader);
    if (typeof rankHeader !== 'string' || !/^\d+$/.test(rankHeader) || rank < 1) {
      return reply(res, 400, `Header ${RANK_HEADER} must be a worker rank, got ${rankHeader}`);
    }
    if (rank >= this.worldSize) {
      return reply(res, 400, `Rank ${rank} is not below the world size ${this.worldSize}`);
    }
    if (this.failure) return reply(res, 503, this.failure.message);
    if (this.closing) return reply(res, 503, 'The averaging chief is shutting down');
    const current = this.round;
    const failed = (status: number, error: SyncFailure) => this.fail(error, status, res);
    if (round !== current) {
      return failed(
        409,
        new RoundFailedError(
          current,
          [rank],
          `Round ${current} failed: rank ${rank} sent an update for round ${round}, so it is ` +
            `out of step with the chief (did it restart?)`,
        ),
      );
    }
    if (this.submissions.has(rank)) {
      return reply(res, 409, `Rank ${rank} already sent an update for round ${round}`);
    }
    const invalid = (status: number, why: string) =>
      failed(status, new InvalidUpdateError(current, [rank], `Round ${current} failed: ${why}`));
    const lengthHeader = req.headers['content-length'];
    if (lengthHeader === undefined) {
      return invalid(411, `rank ${rank} sent its update without a Content-Length`);
    }
    const length = Number(lengthHeader);
    const expected = this.shape && messageByteLength(this.shape);
    if (expected !== undefined && length !== expected) {
      const values = this.shape?.reduce((a, b) => a + b, 0);
      return invalid(
        400,
        `rank ${rank}'s update has ${length} bytes but the chief's model takes ${expected} ` +
          `(${this.shape?.length} variables, ${values} values): the models differ`,
      );
    }
    if (length > MAX_UNCHECKED_BODY_BYTES) {
      return invalid(413, `rank ${rank}'s update of ${length} bytes is too large`);
    }

    const sub: Submission = { rank, expected: length, received: 0, res };
    this.submissions.set(rank, sub);
    const body = new Uint8Array(length);
    const live = () => !this.failure && this.submissions.get(rank) === sub;
    req.on('data', (chunk: Buffer) => {
      // Node's parser stops at Content-Length; this keeps a bug there from throwing here.
      if (sub.received + chunk.length > length) return req.destroy();
      body.set(chunk, sub.received);
      sub.received += chunk.length;
    });
    req.on('end', () => {
      if (live()) this.received(sub, body);
    });
    res.on('close', () => {
      if (res.writableEnded || !live()) return;
      const when = sub.update
        ? 'after sending its update, before the average was ready'
        : `while sending its update (${sub.received} of ${sub.expected} bytes received)`;
      this.fail(
        new RoundFailedError(
          current,
          [rank],
          `Round ${current} failed: rank ${rank} disconnected ${when}`,
        ),
      );
    });
  }

  private received(sub: Submission, body: Uint8Array): void {
    const round = this.round;
    let message;
    try {
      message = decode(body);
    } catch (err) {
      if (!(err instanceof WireError)) throw err;
      const why = `rank ${sub.rank}'s update is not a valid weights message: ${err.message}`;
      return this.fail(
        new InvalidUpdateError(round, [sub.rank], `Round ${round} failed: ${why}`),
        400,
      );
    }
    if (message.rank !== sub.rank || message.round !== round) {
      return this.fail(
        new InvalidUpdateError(
          round,
          [sub.rank],
          `Round ${round} failed: the update sent as rank ${sub.rank}, round ${round} says ` +
            `rank ${message.rank}, round ${message.round}`,
        ),
        400,
      );
    }
    if (!this.shapeMatches(sub, message.weights)) return;
    sub.update = { weights: message.weights, samples: message.samples, step: message.step };
    this.arrived(sub.rank);
  }

  /** Checks an update against the chief's model, failing the round when it differs. */
  private shapeMatches(sub: Submission, weights: Float32Array[]): boolean {
    if (!this.shape) return true;
    try {
      checkShapes(this.shape, weights, `rank ${sub.rank}`);
      return true;
    } catch (err) {
      if (!(err instanceof ShapeMismatchError)) throw err;
      const why = `${err.message} (in the chief's model): the models differ`;
      this.fail(
        new InvalidUpdateError(this.round, [sub.rank], `Round ${this.round} failed: ${why}`),
        400,
      );
      return false;
    }
  }

  /** A complete update is in: starts the round's clock, or completes the round. */
  private arrived(rank: number): void {
    if (this.firstRank === undefined) {
      this.firstRank = rank;
      const budget = this.timeoutMs + (this.round === 0 ? this.startupTimeoutMs : 0);
      this.timer = setTimeout(() => this.timedOut(budget), budget);
    }
    let complete = 0;
    for (const sub of this.submissions.values()) if (sub.update) complete++;
    if (complete === this.worldSize) this.complete();
  }

  private timedOut(budget: number): void {
    const missing: number[] = [];
    const what: string[] = [];
    for (let rank = 0; rank < this.worldSize; rank++) {
      const sub = this.submissions.get(rank);
      if (sub?.update) continue;
      missing.push(rank);
      if (sub) what.push(`rank ${rank} had sent ${sub.received} of ${sub.expected} bytes`);
      else if (rank === 0) what.push('rank 0 (the chief) had not reached its sync point');
      else what.push(`rank ${rank} had sent nothing`);
    }
    this.fail(
      new RoundFailedError(
        this.round,
        missing,
        `Round ${this.round} failed: ${what.join(', ')}, ${budget} ms after the round's first ` +
          `update (from rank ${this.firstRank})`,
      ),
    );
  }

  private complete(): void {
    clearTimeout(this.timer);
    const round = this.round;
    const subs: Submission[] = [];
    for (let rank = 0; rank < this.worldSize; rank++) subs.push(this.submissions.get(rank)!);
    const updates = subs.map((s) => s.update!);
    const step = updates[0]!.step;
    const offStep = subs.filter((s) => s.update!.step !== step).map((s) => s.rank);
    if (offStep.length > 0) {
      const steps = subs.map((s) => `rank ${s.rank}: ${s.update!.step}`).join(', ');
      return this.fail(
        new InvalidUpdateError(
          round,
          offStep,
          `Round ${round} failed: the ranks sync at different intervals (steps ${steps}); ` +
            `every rank must use everySteps = ${this.everySteps}, as the chief does`,
        ),
        400,
      );
    }
    // A rank whose connection died an instant ago would never get this average and would be
    // missed only a round later: fail now, while the reason is known.
    const dead = subs.find((s) => s.res?.destroyed);
    if (dead) {
      return this.fail(
        new RoundFailedError(
          round,
          [dead.rank],
          `Round ${round} failed: rank ${dead.rank} disconnected after sending its update, ` +
            `before the average was ready`,
        ),
      );
    }
    // Rank order keeps the floating-point sum, and so the model, the same from run to run. The
    // average goes into rank 1's update, a buffer the chief received and owns: new arrays would
    // cost a model-sized allocation, and its first touch, every round (bench/aggregate.ts).
    const average = fedAvg(
      subs.map((s) => ({
        weights: s.update!.weights,
        samples: s.update!.samples,
        worker: `rank ${s.rank}`,
      })),
      updates[1]!.weights,
    );
    const samples = updates.reduce((sum, u) => sum + u.samples, 0);
    // The answer's chunks are views of `average`, which the chief's own sync also returns: the
    // training loop only reads what sync returns, so nothing changes them while they are sent.
    const chunks = encode({ rank: 0, round, step, samples, weights: average });
    const length = chunks.reduce((sum, c) => sum + c.byteLength, 0);
    this.round++;
    this.submissions = new Map();
    this.firstRank = undefined;
    for (const sub of subs) {
      if (!sub.res) continue;
      sub.res.writeHead(200, {
        'content-type': 'application/octet-stream',
        'content-length': length,
      });
      for (const chunk of chunks) sub.res.write(chunk);
      sub.res.end();
    }
    const own = this.own;
    this.own = undefined;
    own?.resolve(average);
  }

  /**
   * Fails the round for good: the ranks the error names get `status` (the others 503), as does
   * `offender`, a request turned away before it had a submission; the chief's sync rejects.
   */
  private fail(error: SyncFailure, status = 503, offender?: ServerResponse): void {
    if (this.failure) return;
    this.failure = error;
    clearTimeout(this.timer);
    if (offender) reply(offender, status, error.message);
    for (const sub of this.submissions.values()) {
      if (sub.res) reply(sub.res, error.ranks.includes(sub.rank) ? status : 503, error.message);
    }
    this.logger?.error('Failed an averaging round', { round: error.round, error: error.message });
    this.own?.reject(error);
    this.own = undefined;
  }
}

function reply(res: ServerResponse, status: number, message: string): void {
  if (res.writableEnded || res.destroyed) return;
  res.writeHead(status, { 'content-type': 'text/plain; charset=utf-8' }).end(`${message}\n`);
}
