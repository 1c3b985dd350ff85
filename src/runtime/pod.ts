// What the three federated modes share with the training mode as pods: the HTTP server, the
// termination message, the exit code of a failure, SIGTERM, and a logger.
import { writeFileSync } from 'node:fs';
import { DEFAULT_PORT, DEFAULT_TERMINATION_LOG, ENV, EXIT } from '../contract/runtime.ts';
import type { Progress } from '../contract/training.ts';
import { isPermanentError } from './errors.ts';
import { createRuntimeLogger } from './log.ts';
import { type RuntimeServer, startRuntimeServer } from './server.ts';

/** Kubernetes keeps at most 4096 bytes of a termination message. */
export const TERMINATION_MESSAGE_MAX = 4096;

export interface Pod {
  log: ReturnType<typeof createRuntimeLogger>;
  /** Aborted on SIGTERM. */
  signal: AbortSignal;
  setProgress(progress: Partial<Progress>): void;
  /** Writes the termination message (cut to what Kubernetes keeps). */
  terminate(message: string): void;
  /** Logs the failure, writes it as the termination message, and returns the exit code. */
  fail(err: unknown): number;
  close(): Promise<void>;
}

/** Starts the pod's server (/healthz, /readyz, /progress, /metrics) and its SIGTERM handling. */
export async function startPod(env: NodeJS.ProcessEnv, meta: Record<string, string>): Promise<Pod> {
  const terminationLog = env[ENV.terminationLog] || DEFAULT_TERMINATION_LOG;
  const log = createRuntimeLogger({
    ...(env[ENV.namespace] ? { namespace: env[ENV.namespace]! } : {}),
    ...(env[ENV.jobName] ? { name: env[ENV.jobName]! } : {}),
    ...meta,
  });
  const stop = new AbortController();
  const onTerm = (): void => stop.abort(new Error('Stopped by SIGTERM'));
  let progress: Progress = { phase: 'Starting', backend: '', epoch: 0, epochs: 0 };
  const port = Number(env[ENV.port] || DEFAULT_PORT);
  const server: RuntimeServer = await startRuntimeServer(
    {
      progress: () => progress,
      ready: () => progress.phase !== 'Starting' && progress.phase !== 'Failed',
    },
    { port: Number.isInteger(port) ? port : DEFAULT_PORT },
  );
  process.once('SIGTERM', onTerm);
  return {
    log,
    signal: stop.signal,
    setProgress: (p) => (progress = { ...progress, ...p }),
    terminate: (message) => writeTerminationLog(terminationLog, message),
    fail: (err) => {
      progress = { ...progress, phase: 'Failed' };
      const message = oneLine(err);
      process.stderr.write(`${message}\n`);
      writeTerminationLog(terminationLog, message);
      return isPermanentError(err) ? EXIT.permanent : EXIT.retryable;
    },
    close: async () => {
      process.removeListener('SIGTERM', onTerm);
      await server.close();
    },
  };
}

export function oneLine(err: unknown): string {
  const text = err instanceof Error ? err.message || err.name : String(err);
  return text.replace(/\s*\n\s*/g, ' ').trim();
}

/** A pod without a writable termination log still exits right: the exit code tells. */
export function writeTerminationLog(path: string, message: string): void {
  try {
    writeFileSync(path, message.slice(0, TERMINATION_MESSAGE_MAX));
  } catch {
    // Outside Kubernetes /dev/termination-log may not exist.
  }
}
