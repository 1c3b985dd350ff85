// The local cluster's supervisor leaves no process behind: neither when it is told to stop nor
// when the process that started it (a test runner, say) dies without warning.
import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { type ClusterState, isAlive, readState } from '../cluster/cluster.ts';
import { repoRoot, waitFor } from './harness.ts';

const cli = join(repoRoot, 'test', 'cluster', 'cli.ts');
const dirs: string[] = [];
const children: ChildProcess[] = [];

afterAll(() => {
  for (const c of children) if (c.exitCode === null) c.kill('SIGKILL');
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

async function startSupervisor(
  extra: string[],
): Promise<{ supervisor: ChildProcess; state: ClusterState }> {
  const stateDir = mkdtempSync(join(tmpdir(), 'lepton-lifecycle-'));
  dirs.push(stateDir);
  const supervisor = spawn(
    process.execPath,
    [cli, 'up', '--foreground', '--state', stateDir, ...extra],
    { stdio: 'ignore' },
  );
  children.push(supervisor);
  await waitFor('the cluster to be ready', () => readState(stateDir)?.ready === true, 120_000);
  const state = readState(stateDir) as ClusterState;
  expect(Object.keys(state.pids).sort()).toEqual([
    'etcd',
    'kube-apiserver',
    'kube-controller-manager',
    'kube-scheduler',
    'kwok',
    'localnode',
    's3',
  ]);
  for (const pid of Object.values(state.pids)) expect(isAlive(pid)).toBe(true);
  return { supervisor, state };
}

describe('the local cluster supervisor', () => {
  it('stops every component on SIGTERM', async () => {
    const { supervisor, state } = await startSupervisor([]);
    supervisor.kill('SIGTERM');
    await waitFor(
      'every component to exit',
      () => Object.values(state.pids).every((p) => !isAlive(p)),
      30_000,
    );
    await waitFor('the supervisor to exit', () => supervisor.exitCode !== null, 10_000);
    expect(supervisor.exitCode).toBe(0);
  });

  it('stops every component when its parent process dies', async () => {
    const parent = spawn('sleep', ['600'], { stdio: 'ignore' });
    children.push(parent);
    const { state } = await startSupervisor(['--parent-pid', String(parent.pid)]);
    parent.kill('SIGKILL');
    await waitFor(
      'every component and the supervisor to exit',
      () => {
        return [state.supervisorPid, ...Object.values(state.pids)].every((p) => !isAlive(p));
      },
      30_000,
    );
  });
});
