// The aggregator's secure aggregation over the round's folder (Bonawitz et al. 2017, rounds 2 and
// 3): it takes the sets the clients decided (roster, U1, U2), sums the masked updates it accepts
// (U3, the survivors), asks the survivors for their shares in one signed UnmaskRequest, and
// unmasks the sum once `threshold` of them have answered. It never sees an update alone.
import type { KeyObject } from 'node:crypto';
import { PermanentError } from '../errors.ts';
import type { RuntimeLog } from '../log.ts';
import {
  type AggregateResult,
  type Envelope,
  SecAggAggregator,
  SecAggRefusedError,
  SecAggThresholdError,
} from '../secagg/index.ts';
import { type Decided, type Stage, readDecision } from './agreement.ts';
import type { Identity } from './identity.ts';
import {
  keysStage,
  maxWeightOf,
  rosterStage,
  secAggConfig,
  sharersStage,
} from './secagg-client.ts';
import type { RoundCommon } from './spec.ts';
import {
  type RoundStore,
  type Waiting,
  createFolder,
  createOnce,
  poll,
  readIfPresent,
} from './store.ts';

export interface MaskedUpdate {
  name: string;
  /** The protocol's signed MaskedInput header, from the update file's header. */
  envelope: Envelope;
  vector: Uint32Array;
}

export interface SecureSumRun {
  config: RoundCommon;
  identity: Identity;
  peers: ReadonlyMap<string, KeyObject>;
  store: RoundStore;
  waiting: Waiting;
  /** Values of each variable of the global model. */
  shape: number[];
  /** The masked updates that passed the aggregator's own checks, in participant order. */
  updates: MaskedUpdate[];
  /** Called for an update the protocol refuses (it is then not in the sum). */
  reject(name: string, message: string): void;
  log: RuntimeLog;
}

/** The unmasked Σ w·Δ and Σ w over the survivors (the updates in the sum). */
export async function secureSum(run: SecureSumRun): Promise<AggregateResult> {
  const { config, store, peers, log } = run;
  const roster = await decided(rosterStage(config, store, peers));
  const libraryConfig = secAggConfig(config, peers, run.shape, maxWeightOf(config, roster));
  const aggregator = new SecAggAggregator({
    config: libraryConfig,
    privateKey: run.identity.privateKey,
  });
  const keys = await decided(keysStage(config, store, peers, roster.members));
  protocol(() => aggregator.acceptKeyRoster(keys.message));
  const sharers = await decided(sharersStage(config, store, peers, keys.members));
  protocol(() => aggregator.acceptShareSet(sharers.message));

  // An aggregator that ran before (and was restarted) asked already: the survivors answer only
  // that question, so it is asked again, and only its survivors' updates go into the sum.
  const earlier = await readIfPresent(store.unmaskRequest);
  const asked =
    earlier &&
    protocol(() =>
      aggregator.acceptUnmaskRequest(JSON.parse(earlier.toString('utf8')) as Envelope),
    );
  for (const update of run.updates) {
    if (asked && !asked.survivors.includes(update.name)) {
      run.reject(update.name, 'the unmask request of an earlier attempt counts it as dropped');
      continue;
    }
    try {
      aggregator.receiveMaskedInput({ envelope: update.envelope, vector: update.vector });
    } catch (err) {
      if (!(err instanceof SecAggRefusedError)) throw err;
      run.reject(update.name, err.message);
    }
  }
  let question = asked;
  if (!question) {
    const request = protocol(() => aggregator.unmaskRequest());
    // The answers' folder comes first: the survivors write into it only while it exists, so none
    // writes a share into a round folder this aggregator has already removed.
    await createFolder(store.unmaskDir);
    if (!(await createOnce(store.unmaskRequest, JSON.stringify(request))))
      throw new Error(`${store.unmaskRequest} appeared while this aggregator wrote it; retrying`);
    question = JSON.parse(request.payload) as { survivors: string[]; dropped: string[] };
  }
  const { survivors, dropped } = question;
  log.info('Asked the survivors to unmask', { survivors, dropped });

  let shortfall: SecAggThresholdError | undefined;
  const result = await poll(async () => {
    for (const name of survivors) {
      if (aggregator.progress.responded.includes(name)) continue;
      const text = await readIfPresent(store.unmaskResponse(name));
      if (text === undefined) continue;
      try {
        aggregator.receiveUnmaskResponse(JSON.parse(text.toString('utf8')) as Envelope);
      } catch (err) {
        if (!(err instanceof SecAggRefusedError) && !(err instanceof SyntaxError)) throw err;
        log.warn('Refused an unmask response', { participant: name, reason: String(err) });
      }
    }
    try {
      return aggregator.unmask();
    } catch (err) {
      if (!(err instanceof SecAggThresholdError)) throw err;
      shortfall = err;
      return undefined;
    }
  }, run.waiting);
  if (result) return result;
  throw new PermanentError(
    `Secure aggregation could not unmask the sum by the deadline: ${shortfall?.message ?? 'no unmask responses'}`,
  );
}

async function decided<D extends Decided>(
  stage: Pick<Stage<D>, 'name' | 'decisionPath' | 'read'>,
): Promise<D> {
  const found = await readDecision(stage);
  if (found === undefined)
    throw new PermanentError(
      `Secure aggregation: ${stage.decisionPath} is missing (no client got to the ${stage.name} step)`,
    );
  return found;
}

function protocol<T>(step: () => T): T {
  try {
    return step();
  } catch (err) {
    if (err instanceof SecAggRefusedError || err instanceof SecAggThresholdError)
      throw new PermanentError(`Secure aggregation: ${err.message}`);
    throw err;
  }
}
