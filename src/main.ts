#!/usr/bin/env node
// The operator's entry point: parse flags, connect to the cluster (a kubeconfig, or the pod's
// in-cluster config), register the controllers and run until SIGTERM or SIGINT.
import { ConfigError, VERSION, helpText, parseConfig } from './core/config.ts';
import { loadClusterAccess } from './core/kubeconfig.ts';
import { createLogger } from './core/logging.ts';
import { Manager } from './core/manager.ts';
import { OperatorMetrics } from './core/metrics.ts';
import { registerControllers } from './controllers/register.ts';

async function main(): Promise<number> {
  let parsed;
  try {
    parsed = parseConfig(process.argv.slice(2));
  } catch (err) {
    if (err instanceof ConfigError) {
      process.stderr.write(`lepton-operator: ${err.message}\n`);
      return 2;
    }
    throw err;
  }
  if ('help' in parsed) {
    process.stdout.write(helpText());
    return 0;
  }
  if ('version' in parsed) {
    process.stdout.write(`${VERSION}\n`);
    return 0;
  }
  const config = parsed.config;
  const logger = createLogger(config.logLevel);
  const metrics = new OperatorMetrics();
  let exitCode = 0;
  let resolveDone: () => void = () => undefined;
  const done = new Promise<void>((r) => (resolveDone = r));

  let kubeConfig;
  try {
    kubeConfig = await loadClusterAccess({ kubeconfig: config.kubeconfig });
  } catch (err) {
    logger.error('Failed to load the cluster connection', { error: (err as Error).message });
    return 1;
  }
  const manager = new Manager({
    config,
    kubeConfig,
    logger,
    metrics,
    onLeadershipLost: () => {
      // As controller-runtime does: a replica that lost the lease exits at once and is
      // restarted, rather than risk reconciling next to the new leader.
      exitCode = 1;
      resolveDone();
    },
  });
  registerControllers(manager, config);

  const shutdown = (signal: string) => {
    logger.info('Received a signal; shutting down', { signal });
    void manager.stop().then(resolveDone);
  };
  process.once('SIGTERM', () => shutdown('SIGTERM'));
  process.once('SIGINT', () => shutdown('SIGINT'));
  process.on('unhandledRejection', (err) => {
    logger.error('Unhandled promise rejection', { error: (err as Error)?.stack ?? String(err) });
  });

  try {
    // A signal during start-up (caches still syncing) ends the wait too.
    await Promise.race([manager.start(), done]);
  } catch (err) {
    logger.error('Failed to start', { error: (err as Error).message });
    await manager.stop();
    return 1;
  }
  await done;
  return exitCode;
}

main().then(
  (code) => process.exit(code),
  (err: Error) => {
    process.stderr.write(`lepton-operator: ${err.stack ?? err.message}\n`);
    process.exit(1);
  },
);
