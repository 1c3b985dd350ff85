// Stops the cluster that global-setup.js started, and waits until its processes are gone.
export default async function globalTeardown() {
  const child = globalThis.__leptonCluster;
  if (!child || child.exitCode !== null) return;
  const exited = new Promise((r) => child.once('exit', r));
  child.kill('SIGTERM');
  const timer = setTimeout(() => child.kill('SIGKILL'), 30_000);
  await exited;
  clearTimeout(timer);
}
