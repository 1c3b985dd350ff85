// The federated client mode (`node src/runtime/main.ts federated-client`): one participant of a
// FederatedRound (src/contract/federated.ts). Serves /healthz, /readyz, /progress and /metrics as
// the training mode does, trains on the participant's data, writes its update to the round's
// folder, and ends with the ClientReport JSON as its termination message (a one-line reason on
// failure) and the contract's exit code.
import { FEDERATED_ENV } from '../../contract/federated.ts';
import { EXIT } from '../../contract/runtime.ts';
import { initBackend } from '../backend.ts';
import { runClient } from '../federated/client.ts';
import { loadIdentity } from '../federated/identity.ts';
import { startPod } from '../pod.ts';
import { parseClientEnv, parsePeers } from '../federated/spec.ts';
import { POLL_MS } from '../federated/store.ts';

export async function runFederatedClient(env: NodeJS.ProcessEnv): Promise<number> {
  const pod = await startPod(env, { participant: env[FEDERATED_ENV.participant] ?? '' });
  try {
    const config = parseClientEnv(env);
    const peers = parsePeers(env[FEDERATED_ENV.peers]);
    const identity = await loadIdentity(config.participant, peers, env);
    const backend = await initBackend();
    pod.setProgress({ backend, epochs: config.training.hyperparameters.epochs });
    pod.log.info('Started the federated client', {
      round: config.round.name,
      strategy: config.strategy,
      secureAggregation: config.privacy.secureAggregation !== undefined,
      differentialPrivacy: config.privacy.differentialPrivacy !== undefined,
    });
    const report = await runClient({
      config,
      identity,
      peers,
      backend,
      env,
      log: pod.log,
      waiting: { pollMs: POLL_MS, signal: pod.signal },
      onProgress: (p) => pod.setProgress(p),
    });
    pod.setProgress({ phase: 'Done' });
    pod.terminate(JSON.stringify(report));
    pod.log.info('Reported the update', { ...report.update, samples: report.samples });
    return EXIT.ok;
  } catch (err) {
    return pod.fail(err);
  } finally {
    await pod.close();
  }
}
