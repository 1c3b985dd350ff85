// npm run cluster -- <command>
//
//   build                 build the cluster binaries (skipped when they are cached)
//   up [--state DIR]      start the local cluster and its S3 server in the background (builds
//                         binaries first if needed)
//   down [--state DIR]    stop it; no process is left behind
//   status [--state DIR]  show whether it runs and how to reach it
//   kubectl ARGS...       run the project's kubectl against it
//   logs [-n NS] POD [-c CONTAINER] [--previous]
//                         print the log of a pod the local node runs (kubectl logs cannot reach it)
//
// `up --foreground` runs the supervisor in this process (the test suite uses it with
// --parent-pid, so the cluster stops when the test runner dies, however it dies).
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, openSync, readFileSync, readdirSync, statSync } from 'node:fs';
import { join, resolve } from 'node:path';
import {
  type ClusterState,
  LocalCluster,
  binDir,
  isAlive,
  killLeftovers,
  missingBinaries,
  readState,
  repoRoot,
  waitFor,
} from './cluster.ts';

const DEFAULT_STATE = join(repoRoot, '.cluster');

function flag(args: string[], name: string): string | undefined {
  const i = args.indexOf(name);
  return i >= 0 ? args[i + 1] : undefined;
}

function ensureBinaries(): void {
  if (missingBinaries().length === 0) return;
  process.stderr.write(
    `Building the cluster binaries into ${binDir()} (once; about 30 minutes cold on 2 cores)\n`,
  );
  const r = spawnSync('bash', [join(repoRoot, 'test', 'cluster', 'build-binaries.sh')], {
    stdio: 'inherit',
  });
  if (r.status !== 0) throw new Error(`build-binaries.sh failed with exit code ${r.status}`);
}

async function foreground(stateDir: string, parentPid: number | undefined): Promise<void> {
  const cluster = new LocalCluster({ stateDir });
  let stopping: Promise<void> | undefined;
  const stop = (why: string) => {
    stopping ??= (async () => {
      process.stderr.write(`[cluster] stopping (${why})\n`);
      await cluster.stop();
      process.exit(0);
    })();
  };
  process.on('SIGTERM', () => stop('SIGTERM'));
  process.on('SIGINT', () => stop('SIGINT'));
  process.on('SIGHUP', () => stop('SIGHUP'));
  if (parentPid) {
    setInterval(() => {
      if (!isAlive(parentPid)) stop(`parent ${parentPid} is gone`);
    }, 1000);
  }
  try {
    await cluster.start();
  } catch (err) {
    process.stderr.write(`[cluster] start failed: ${(err as Error).message}\n`);
    await cluster.stop();
    process.exit(1);
  }
  // Stay alive until told to stop.
  setInterval(() => undefined, 1 << 30);
}

async function up(stateDir: string): Promise<void> {
  const existing = readState(stateDir);
  if (existing?.ready && isAlive(existing.supervisorPid)) {
    printHowTo(existing);
    return;
  }
  ensureBinaries();
  mkdirSync(stateDir, { recursive: true });
  const logFile = join(stateDir, 'supervisor.log');
  const log = openSync(logFile, 'w');
  const child = spawn(
    process.execPath,
    [process.argv[1] ?? '', 'up', '--foreground', '--state', stateDir],
    {
      detached: true,
      stdio: ['ignore', log, log],
    },
  );
  child.unref();
  process.stderr.write(`Starting the local cluster (logs: ${stateDir}/logs, ${logFile})\n`);
  await waitFor(
    'the local cluster',
    () => {
      if (child.exitCode !== null) throw new Error(`the cluster supervisor exited; see ${logFile}`);
      return readState(stateDir)?.ready === true;
    },
    180_000,
  );
  const state = readState(stateDir);
  if (state) printHowTo(state);
}

function printHowTo(state: ClusterState): void {
  const kubectl = join(binDir(), 'kubectl');
  const s3 = state.s3
    ? [
        `S3 server: ${state.s3.endpoint} (region ${state.s3.region}, path-style; buckets are the folders of ${state.s3.root})`,
        `  credentials: ${state.s3.settingsFile}`,
      ]
    : [];
  process.stdout.write(
    [
      'The local cluster is running.',
      `  export KUBECONFIG=${state.kubeconfig}`,
      `  ${kubectl} get nodes -L nvidia.com/gpu.product`,
      ...s3,
      'Stop it with: npm run cluster -- down',
      '',
    ].join('\n'),
  );
}

async function down(stateDir: string): Promise<void> {
  const state = readState(stateDir);
  if (!state) {
    process.stdout.write('The local cluster is not running.\n');
    return;
  }
  if (isAlive(state.supervisorPid)) {
    process.kill(state.supervisorPid, 'SIGTERM');
    await waitFor(
      'the cluster supervisor to exit',
      () => !isAlive(state.supervisorPid),
      30_000,
    ).catch(() => undefined);
  }
  killLeftovers(stateDir);
  process.stdout.write('The local cluster is stopped.\n');
}

/**
 * Container logs of the local node live in <state>/localnode/pods/<ns>_<pod>_<uid>/<container>/<restart>.log,
 * like a kubelet's /var/log/pods.
 */
function printLog(stateDir: string, args: string[]): void {
  const namespace = flag(args, '-n') ?? 'default';
  const skip = new Set(['-n', '-c', '--state']);
  const pod = args.find((a, i) => !a.startsWith('-') && !skip.has(args[i - 1] ?? ''));
  if (!pod)
    throw new Error(
      'usage: npm run cluster -- logs [-n NAMESPACE] POD [-c CONTAINER] [--previous]',
    );
  const podsDir = join(stateDir, 'localnode', 'pods');
  const dirs = existsSync(podsDir)
    ? readdirSync(podsDir).filter((d) => d.startsWith(`${namespace}_${pod}_`))
    : [];
  const dir = dirs
    .map((d) => join(podsDir, d))
    .sort((a, b) => statSync(b).mtimeMs - statSync(a).mtimeMs)[0];
  if (!dir)
    throw new Error(`No pod ${namespace}/${pod} has run on the local node (looked in ${podsDir})`);
  const containers = readdirSync(dir, { withFileTypes: true }).filter(
    (e) => e.isDirectory() && e.name !== 'volumes',
  );
  const container = flag(args, '-c') ?? (containers.length === 1 ? containers[0]?.name : undefined);
  if (!container)
    throw new Error(
      `Pod ${pod} has several containers; choose one with -c: ${containers.map((c) => c.name).join(', ')}`,
    );
  const restarts = readdirSync(join(dir, container))
    .filter((f) => f.endsWith('.log'))
    .map((f) => Number(f.slice(0, -4)))
    .sort((a, b) => a - b);
  const pick = args.includes('--previous') ? restarts.at(-2) : restarts.at(-1);
  if (pick === undefined)
    throw new Error(
      `No ${args.includes('--previous') ? 'previous ' : ''}log for container ${container}`,
    );
  process.stdout.write(readFileSync(join(dir, container, `${pick}.log`)));
}

async function main(): Promise<void> {
  const [cmd = 'help', ...args] = process.argv.slice(2);
  const stateDir = resolve(flag(args, '--state') ?? DEFAULT_STATE);
  switch (cmd) {
    case 'build':
      ensureBinaries();
      process.stdout.write(`Cluster binaries are in ${binDir()}\n`);
      return;
    case 'up':
      if (args.includes('--foreground')) {
        const parent = flag(args, '--parent-pid');
        return foreground(stateDir, parent ? Number(parent) : undefined);
      }
      return up(stateDir);
    case 'down':
      return down(stateDir);
    case 'status': {
      const s = readState(stateDir);
      if (s?.ready && isAlive(s.supervisorPid)) printHowTo(s);
      else process.stdout.write('The local cluster is not running.\n');
      return;
    }
    case 'logs':
      return printLog(stateDir, args);
    case 'kubectl': {
      const r = spawnSync(
        join(binDir(), 'kubectl'),
        [`--kubeconfig=${join(stateDir, 'kubeconfig')}`, ...args],
        {
          stdio: 'inherit',
        },
      );
      process.exitCode = r.status ?? 1;
      return;
    }
    default:
      process.stdout.write(
        'usage: npm run cluster -- build | up | down | status | kubectl ARGS...\n',
      );
  }
}

main().catch((err: Error) => {
  process.stderr.write(`${err.message}\n`);
  process.exit(1);
});
