// Jest global setup for the integration project: starts a private local cluster (a supervisor
// process that stops by itself if this test runner dies) and publishes its kubeconfig to the
// tests through LEPTON_TEST_KUBECONFIG, and its S3 server through LEPTON_TEST_S3_*. With
// LEPTON_TEST_KUBECONFIG already set, that cluster is used instead (a quicker edit-test loop
// against `npm run cluster -- up`); its S3 settings are read from s3.json next to its kubeconfig.
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, openSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));

/** Publishes the S3 settings the cluster wrote next to its kubeconfig, when there are any. */
function publishS3(clusterDir) {
  const file = join(clusterDir, 's3.json');
  if (!existsSync(file)) return;
  const s3 = JSON.parse(readFileSync(file, 'utf8'));
  process.env.LEPTON_TEST_S3_ENDPOINT = s3.endpoint;
  process.env.LEPTON_TEST_S3_REGION = s3.region;
  process.env.LEPTON_TEST_S3_ACCESS_KEY_ID = s3.accessKeyId;
  process.env.LEPTON_TEST_S3_SECRET_ACCESS_KEY = s3.secretAccessKey;
}

export default async function globalSetup() {
  if (process.env.LEPTON_TEST_KUBECONFIG) {
    publishS3(dirname(process.env.LEPTON_TEST_KUBECONFIG));
    return;
  }
  const stateDir = mkdtempSync(join(tmpdir(), 'lepton-test-cluster-'));
  const build = spawnSync(process.execPath, [join(here, 'cli.ts'), 'build'], { stdio: 'inherit' });
  if (build.status !== 0) throw new Error('Building the cluster binaries failed');
  const log = openSync(join(stateDir, 'supervisor.log'), 'w');
  const child = spawn(
    process.execPath,
    [
      join(here, 'cli.ts'),
      'up',
      '--foreground',
      '--state',
      stateDir,
      '--parent-pid',
      String(process.pid),
    ],
    { stdio: ['ignore', log, log] },
  );
  const statePath = join(stateDir, 'state.json');
  const deadline = Date.now() + 180_000;
  for (;;) {
    if (child.exitCode !== null) {
      throw new Error(
        `The test cluster failed to start:\n${readFileSync(join(stateDir, 'supervisor.log'), 'utf8')}`,
      );
    }
    if (existsSync(statePath) && JSON.parse(readFileSync(statePath, 'utf8')).ready) break;
    if (Date.now() > deadline)
      throw new Error(`The test cluster did not start in 180 s; see ${stateDir}`);
    await new Promise((r) => setTimeout(r, 250));
  }
  process.env.LEPTON_TEST_KUBECONFIG = join(stateDir, 'kubeconfig');
  process.env.LEPTON_TEST_CLUSTER_STATE = stateDir;
  publishS3(stateDir);
  globalThis.__leptonCluster = child;
}
