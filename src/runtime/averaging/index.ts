// Data-parallel weight averaging for the training loop: rank 0 runs the chief, every other rank
// a worker that talks to it over HTTP.
import type { Logger } from 'winston';
import { PermanentError } from '../errors.ts';
import { startChief } from './chief.ts';
import type { WeightSync } from './weight-sync.ts';
import { WorkerSync, parseHostPort } from './worker.ts';

export { InvalidUpdateError, RoundFailedError } from './errors.ts';
export type { WeightSync } from './weight-sync.ts';

export interface WeightSyncOptions {
  rank: number;
  worldSize: number;
  /** host:port of the chief (LEPTON_CHIEF_ADDRESS); workers connect to it. */
  chiefAddress: string;
  everySteps: number;
  /** The chief's port (AVERAGING_PORT when absent; 0 picks a free one). */
  port?: number;
  /** The chief's listen address, 0.0.0.0 when absent. */
  host?: string;
  /** How long a round waits for its last update once its first one is in (60 s). */
  timeoutMs?: number;
  /** Extra time for start-up: round 0's wait, and a worker's retries to reach the chief (60 s). */
  startupTimeoutMs?: number;
  logger?: Logger;
}

export function createWeightSync(options: WeightSyncOptions): Promise<WeightSync> {
  const { rank, worldSize, everySteps } = options;
  const problem = !isCount(worldSize, 1)
    ? `world size ${worldSize} is not an integer >= 1`
    : !isCount(rank, 0) || rank >= worldSize
      ? `rank ${rank} is not an integer in [0, ${worldSize})`
      : !isCount(everySteps, 1)
        ? `everySteps ${everySteps} is not an integer >= 1`
        : undefined;
  // These come from the operator's environment for the pod: a restart would see the same.
  if (problem) return Promise.reject(new PermanentError(`Cannot set up averaging: ${problem}`));
  if (rank === 0) return startChief(options);
  try {
    parseHostPort(options.chiefAddress);
  } catch (err) {
    return Promise.reject(new PermanentError(`Cannot set up averaging: ${(err as Error).message}`));
  }
  return Promise.resolve(new WorkerSync(options));
}

function isCount(n: number, min: number): boolean {
  return Number.isSafeInteger(n) && n >= min;
}
