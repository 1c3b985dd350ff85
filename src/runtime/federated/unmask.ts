// A client's last part in a round with secure aggregation (Bonawitz et al. 2017, round 3): the
// pod's main container, after its init container masked and reported, waits for the aggregator's
// signed UnmaskRequest and answers it once with its shares, from the state the init container
// left in the pod's /tmp. An aggregator that had enough answers without this one, or a round
// that ended otherwise, simply never asks: the wait then ends without an answer.
import type { KeyObject } from 'node:crypto';
import { stat } from 'node:fs/promises';
import { PermanentError } from '../errors.ts';
import type { RuntimeLog } from '../log.ts';
import { type Envelope, SecAggClient, SecAggRefusedError } from '../secagg/index.ts';
import type { Identity } from './identity.ts';
import { readUnmaskState } from './secagg-client.ts';
import type { ClientConfig } from './spec.ts';
import { type Waiting, createOnce, poll, readIfPresent, roundStore } from './store.ts';

/**
 * How long after the round's training deadline the answer may still be needed: the aggregator
 * starts at the latest at that deadline (quorum met), and asks as soon as it has read the updates.
 */
export const UNMASK_GRACE_MS = 10 * 60_000;

export interface UnmaskRun {
  config: ClientConfig;
  identity: Identity;
  peers: ReadonlyMap<string, KeyObject>;
  env: NodeJS.ProcessEnv;
  log: RuntimeLog;
  waiting: Omit<Waiting, 'deadline'>;
}

/** Answers the unmask request; resolves to what happened, for the termination message. */
export async function answerUnmaskRequest(run: UnmaskRun): Promise<string> {
  const { config, env, log } = run;
  const me = config.participant;
  const store = roundStore(config.outputUri, env);
  const saved = await readUnmaskState(config, env);
  if (saved === undefined)
    return `${me} holds no secure-aggregation state (its training container did not mask): nothing to unmask`;
  const client = new SecAggClient({
    config: saved.config,
    id: me,
    privateKey: run.identity.privateKey,
    state: saved.client,
  });
  const outcome = await poll(
    async () => {
      if (await readIfPresent(store.unmaskResponse(me))) return `${me} had answered already`;
      const text = await readIfPresent(store.unmaskRequest);
      if (text === undefined) {
        const folder = await stat(store.secaggDir).catch(() => undefined);
        return folder ? undefined : 'The round folder is gone: the round is over';
      }
      let request: Envelope;
      try {
        request = JSON.parse(text.toString('utf8')) as Envelope;
      } catch {
        return undefined; // written half, on a file system without hard links: look again
      }
      let answer: Envelope;
      try {
        answer = client.unmask(request);
      } catch (err) {
        if (!(err instanceof SecAggRefusedError)) throw err;
        if (!survivorsOf(request).includes(me))
          return `Not needed: the unmask request does not count ${me} as a survivor`;
        throw new PermanentError(`Refused the unmask request: ${err.message}`);
      }
      try {
        await createOnce(store.unmaskResponse(me), JSON.stringify(answer), { createFolder: false });
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code === 'ENOENT')
          return 'The round folder is gone: the aggregator unmasked without this answer';
        throw err;
      }
      log.info('Answered the unmask request', { survivors: survivorsOf(request) });
      return `${me} answered the unmask request`;
    },
    { ...run.waiting, deadline: config.deadline + UNMASK_GRACE_MS },
  );
  return outcome ?? 'Not needed: no unmask request came by the deadline';
}

function survivorsOf(request: Envelope): string[] {
  try {
    const payload = JSON.parse(request.payload) as { survivors?: unknown };
    return Array.isArray(payload.survivors) ? payload.survivors.map(String) : [];
  } catch {
    return [];
  }
}
