// The aggregation mode (`node src/runtime/main.ts aggregate`): the aggregator pod of a
// FederatedRound (src/contract/federated.ts). It combines the updates the operator accepted,
// writes the new global model to the round's output, and ends with the AggregatorResult JSON as
// its termination message (a one-line reason on failure) and the contract's exit code.
import { AGGREGATOR, FEDERATED_ENV } from '../../contract/federated.ts';
import { EXIT } from '../../contract/runtime.ts';
import { initBackend } from '../backend.ts';
import { runAggregator, terminationMessage } from '../federated/aggregator.ts';
import { loadIdentity } from '../federated/identity.ts';
import { TERMINATION_MESSAGE_MAX, startPod } from '../pod.ts';
import { parseAggregatorEnv, parsePeers } from '../federated/spec.ts';
import { POLL_MS } from '../federated/store.ts';

export async function runAggregate(env: NodeJS.ProcessEnv): Promise<number> {
  const pod = await startPod(env, { role: 'aggregator' });
  try {
    const config = parseAggregatorEnv(env);
    const peers = parsePeers(env[FEDERATED_ENV.peers]);
    const identity = await loadIdentity(AGGREGATOR, peers, env);
    const backend = await initBackend();
    pod.setProgress({ phase: 'Training', backend });
    pod.log.info('Started the aggregator', {
      round: config.round.name,
      strategy: config.strategy,
      accepted: config.accepted.map((a) => a.name),
    });
    const result = await runAggregator({
      config,
      identity,
      peers,
      backend,
      env,
      log: pod.log,
      waiting: { pollMs: POLL_MS, signal: pod.signal },
    });
    pod.setProgress({ phase: 'Done' });
    pod.terminate(terminationMessage(result, TERMINATION_MESSAGE_MAX));
    pod.log.info('Aggregated the round', {
      ...result.model,
      accepted: result.accepted,
      rejected: result.rejected.map((r) => `${r.name}: ${r.reason}`),
    });
    return EXIT.ok;
  } catch (err) {
    return pod.fail(err);
  } finally {
    await pod.close();
  }
}
