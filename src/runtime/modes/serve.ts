// The serving mode (`node src/runtime/main.ts serve`): an InferenceService's pod. The HTTP server
// answers at once (live, not ready) so the kubelet's probes see a process that is loading, not a
// dead one; the model is loaded, checked and warmed up; then the pod is ready until SIGTERM,
// when it drains (not ready, still answering for drainSeconds, in-flight requests finished) and
// exits 0. A model that cannot be served ends the pod with the reason as its termination
// message (SERVING_FAILURES prefix first) and the contract's exit code.
import { DEFAULT_TERMINATION_LOG, ENV, EXIT } from '../../contract/runtime.ts';
import { SERVING_ENV, SERVING_FAILURES, SERVING_PORT } from '../../contract/serving.ts';
import { initBackend } from '../backend.ts';
import { PermanentError, isPermanentError } from '../errors.ts';
import { createRuntimeLogger } from '../log.ts';
import { oneLine, writeTerminationLog } from '../pod.ts';
import { type ServingServer, startServingServer } from '../serving/http.ts';
import { loadPredictor } from '../serving/model.ts';
import type { Predictor } from '../serving/predictor.ts';
import { parseServingSpec } from '../serving/spec.ts';

export async function runServe(env: NodeJS.ProcessEnv): Promise<number> {
  const terminationLog = env[ENV.terminationLog] || DEFAULT_TERMINATION_LOG;
  const terminated = new Promise<'SIGTERM'>((resolve) =>
    process.once('SIGTERM', () => resolve('SIGTERM')),
  );
  let server: ServingServer | undefined;
  let predictor: Predictor | undefined;
  try {
    const spec = parseServingSpec(env[SERVING_ENV.spec]);
    const log = createRuntimeLogger({
      ...(env[ENV.namespace] ? { namespace: env[ENV.namespace]! } : {}),
      name: spec.modelName,
      variant: spec.variant,
    });
    const port = Number(env[ENV.port] || SERVING_PORT);
    if (!Number.isInteger(port) || port < 0 || port > 65535)
      throw new PermanentError(
        `${SERVING_FAILURES.invalidSpec}: ${ENV.port}=${env[ENV.port]} is not a port`,
      );
    server = await startServingServer({ spec, predictor: () => predictor, port, log });
    log.info('Started the serving server', { port: server.port, modelUri: spec.modelUri });

    const loading = load(spec, env);
    // A pod deleted while it loads has nothing to drain but the probes: it exits at once.
    const first = await Promise.race([loading, terminated]);
    if (first === 'SIGTERM') {
      log.info('Stopped by SIGTERM while loading the model');
      // The load may still finish or fail; neither changes the exit.
      loading.then((l) => l.predictor.dispose()).catch(() => undefined);
      await server.close();
      return EXIT.ok;
    }
    predictor = first.predictor;
    try {
      server.markLoaded({
        uri: spec.modelUri,
        digest: first.digest,
        format: spec.format,
        loadSeconds: first.loadSeconds,
      });
    } catch (err) {
      // The server refuses tensors its protocols cannot carry: a model it can never serve.
      throw new PermanentError(
        `${SERVING_FAILURES.modelLoadFailed}: ${spec.modelUri}: ${(err as Error).message}`,
      );
    }
    log.info('Loaded the model', {
      backend: first.backend,
      digest: first.digest,
      format: spec.format,
      quantization: spec.quantization,
      loadSeconds: +first.loadSeconds.toFixed(3),
      inputs: predictor.inputs,
      outputs: predictor.outputs,
    });

    await terminated;
    log.info('Started draining', {
      drainSeconds: spec.drainSeconds,
      inFlight: server.stats().inFlight,
    });
    await server.drain();
    log.info('Drained', { requestsTotal: server.stats().requestsTotal });
    return EXIT.ok;
  } catch (err) {
    const message = oneLine(err);
    process.stderr.write(`${message}\n`);
    writeTerminationLog(terminationLog, message);
    return isPermanentError(err) ? EXIT.permanent : EXIT.retryable;
  } finally {
    await server?.close();
    predictor?.dispose();
  }
}

/** Loads the model on the pod's backend; every failure says ModelLoadFailed or a digest. */
async function load(
  spec: Parameters<typeof loadPredictor>[0],
  env: NodeJS.ProcessEnv,
): Promise<Awaited<ReturnType<typeof loadPredictor>> & { backend: string }> {
  let backend: string;
  try {
    backend = await initBackend();
  } catch (err) {
    throw new Error(`${SERVING_FAILURES.modelLoadFailed}: ${(err as Error).message}`);
  }
  return { ...(await loadPredictor(spec, env)), backend };
}
