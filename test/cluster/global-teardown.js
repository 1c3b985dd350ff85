// Stops the cluster that global-setup.js started, makes sure nothing it ran is left (also when
// the supervisor had to be killed), and removes its state folder.
import { spawnSync } from 'node:child_process';
import { rmSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));

export default async function globalTeardown() {
  const child = globalThis.__leptonCluster;
  const stateDir = process.env.LEPTON_TEST_CLUSTER_STATE;
  if (!child || !stateDir) return;
  if (child.exitCode === null && child.signalCode === null) {
    const exited = new Promise((r) => child.once('exit', r));
    child.kill('SIGTERM');
    const timer = setTimeout(() => child.kill('SIGKILL'), 30_000);
    await exited;
    clearTimeout(timer);
  }
  spawnSync(process.execPath, [join(here, 'cli.ts'), 'down', '--state', stateDir], {
    stdio: 'ignore',
  });
  rmSync(stateDir, { recursive: true, force: true });
}
