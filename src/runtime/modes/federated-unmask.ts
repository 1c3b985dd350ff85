// The unmask mode (`node src/runtime/main.ts federated-unmask`): the main container of a client
// pod with secure aggregation, after its init container (federated-client) trained and reported.
// It answers the aggregator's unmask request with its shares and exits 0; it also exits 0, saying
// so, when it was not needed (no request by the deadline, or one that does not count it).
import { FEDERATED_ENV } from '../../contract/federated.ts';
import { EXIT } from '../../contract/runtime.ts';
import { loadIdentity } from '../federated/identity.ts';
import { startPod } from '../pod.ts';
import { parseClientEnv, parsePeers } from '../federated/spec.ts';
import { POLL_MS } from '../federated/store.ts';
import { answerUnmaskRequest } from '../federated/unmask.ts';

export async function runFederatedUnmask(env: NodeJS.ProcessEnv): Promise<number> {
  const pod = await startPod(env, { participant: env[FEDERATED_ENV.participant] ?? '' });
  try {
    const config = parseClientEnv(env);
    const peers = parsePeers(env[FEDERATED_ENV.peers]);
    const identity = await loadIdentity(config.participant, peers, env);
    // Ready once it waits: the pod's readiness then says the participant can still answer.
    pod.setProgress({ phase: 'Training' });
    const outcome = await answerUnmaskRequest({
      config,
      identity,
      peers,
      env,
      log: pod.log,
      waiting: { pollMs: POLL_MS, signal: pod.signal },
    });
    pod.setProgress({ phase: 'Done' });
    pod.terminate(outcome);
    pod.log.info('Finished the unmask step', { outcome });
    return EXIT.ok;
  } catch (err) {
    return pod.fail(err);
  } finally {
    await pod.close();
  }
}
