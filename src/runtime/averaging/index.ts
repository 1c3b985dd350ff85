// Data-parallel weight averaging for the training loop: rank 0 runs the chief, every other rank
// a worker that talks to it over HTTP.
import type { Logger } from 'winston';
import { PermanentError } from '../errors.ts';
import type { WeightSync } from '../train/weight-sync.ts';
import { startChief } from './chief.ts';
import { WorkerSync } from './worker.ts';

export { InvalidUpdateError, RoundFailedError } from './errors.ts';

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

export async function createWeightSync(options: WeightSyncOptions): Promise<WeightSync> {
  const { rank, worldSize, everySteps } = options;
  // These come from the operator's environment for the pod: a restart would see the same.
  const invalid = (why: string) => new PermanentError(`Cannot set up averaging: ${why}`);
  if (!isCount(worldSize, 1)) throw invalid(`world size ${worldSize} is not an integer >= 1`);
  if (!isCount(rank, 0) || rank >= worldSize) {
    throw invalid(`rank ${rank} is not an integer in [0, ${worldSize})`);
  }
  if (!isCount(everySteps, 1)) throw invalid(`everySteps ${everySteps} is not an integer >= 1`);
  if (rank === 0) return startChief(options);
  try {
    return new WorkerSync(options);
  } catch (err) {
    throw invalid((err as Error).message);
  }
}

function isCount(n: number, min: number): boolean {
  return Number.isSafeInteger(n) && n >= min;
}
