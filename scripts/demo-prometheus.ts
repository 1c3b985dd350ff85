// The demo's Prometheus: the real one (built by test/cluster/build-binaries.sh), on a free port of
// 127.0.0.1, scraping the operator's /metrics and the /metrics of the workload pods the local node
// runs. Pods come and go, so a small supervisor next to Prometheus lists them every second and keeps a
// file_sd target list current (the build leaves out Kubernetes discovery: -tags remove_all_sd).
// Everything lives in STATE/prometheus/ (config, targets, data); its log is STATE/logs/prometheus.log.
//
//   node scripts/demo-prometheus.ts start --state DIR --operator HOST:PORT --kubeconfig FILE
//        starts it (or points a running one at the operator's current address) and waits until it
//        scrapes the operator
//   node scripts/demo-prometheus.ts show --state DIR --namespace NS
//        runs a handful of the Grafana dashboard's queries against it and prints their values
//   node scripts/demo-prometheus.ts stop --state DIR
//        stops it; nothing is left running
import { spawn } from 'node:child_process';
import {
  existsSync,
  mkdirSync,
  openSync,
  readFileSync,
  renameSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { join, resolve } from 'node:path';
import { KubeClient } from '../src/core/client.ts';
import { loadClusterAccess } from '../src/core/kubeconfig.ts';
import { type KubeObject, Resources } from '../src/core/resources.ts';
import { DEFAULT_PORT, ENDPOINTS } from '../src/contract/runtime.ts';
import { ISVC_LABEL } from '../src/controllers/inferenceservice/builders.ts';
import { MANAGED_BY_LABEL, MANAGED_BY_VALUE } from '../src/engine/labels.ts';
import { LOCAL_NODE, binDir, freePort, isAlive, repoRoot } from '../test/cluster/cluster.ts';

// Often, as the demo's training pods live for seconds.
const SCRAPE_SECONDS = 2;
const OPERATOR_JOB = 'lepton-operator';
const DASHBOARD = join(repoRoot, 'charts', 'lepton-operator', 'dashboards', 'lepton-operator.json');
/** The panels `show` runs, by title: one or two of each row of the dashboard. */
const SHOWN = [
  'Training progress (epochs completed / planned)',
  'TrainingJobs by phase',
  'GPUs requested and allocated by product',
  'Campaign rounds (committed / planned)',
  'Inference latency (p50, p95, p99)',
  'Inference throughput',
  'Reconciles by result',
];
const MAX_SERIES = 6;

/** What a running demo Prometheus records in STATE/prometheus.json. */
interface Running {
  supervisorPid: number;
  prometheusPid: number;
  url: string;
  /** Milliseconds since the epoch: the start of its data. */
  startedAt: number;
}

function usage(): never {
  console.error(
    'usage: node scripts/demo-prometheus.ts start --state DIR --operator HOST:PORT --kubeconfig FILE\n' +
      '       node scripts/demo-prometheus.ts show --state DIR --namespace NAMESPACE\n' +
      '       node scripts/demo-prometheus.ts stop --state DIR',
  );
  process.exit(2);
}

const [command, ...rest] = process.argv.slice(2);
function flag(name: string): string {
  const i = rest.indexOf(`--${name}`);
  const value = i >= 0 ? rest[i + 1] : undefined;
  if (!value || value.startsWith('--')) usage();
  return value;
}
/** The state folder, absolute: Prometheus reads the paths in its config relative to the config. */
const stateFlag = () => resolve(flag('state'));

const sleep = (ms: number) => new Promise((ok) => setTimeout(ok, ms));

function paths(state: string) {
  const dir = join(state, 'prometheus');
  return {
    dir,
    config: join(dir, 'prometheus.yml'),
    targets: join(dir, 'pods.json'),
    data: join(dir, 'data'),
    record: join(state, 'prometheus.json'),
    log: join(state, 'logs', 'prometheus.log'),
  };
}

function readRunning(state: string): Running | undefined {
  try {
    return JSON.parse(readFileSync(paths(state).record, 'utf8')) as Running;
  } catch {
    return undefined;
  }
}

/** Whether `pid` is alive and its command line names `needle` (not some later process with its pid). */
function runs(pid: number, needle: string): boolean {
  if (!isAlive(pid)) return false;
  try {
    return readFileSync(`/proc/${pid}/cmdline`, 'utf8').includes(needle);
  } catch {
    return false;
  }
}

const supervising = (state: string, r: Running) =>
  runs(r.supervisorPid, 'demo-prometheus.ts') && runs(r.supervisorPid, resolve(state));

/** Written whole then renamed, so Prometheus never reads half a file. */
function writeAtomically(file: string, text: string): void {
  writeFileSync(`${file}.tmp`, text);
  renameSync(`${file}.tmp`, file);
}

function writeConfig(state: string, operator: string): void {
  const p = paths(state);
  // JSON is YAML: Prometheus reads this as its YAML config.
  const config = {
    global: {
      scrape_interval: `${SCRAPE_SECONDS}s`,
      scrape_timeout: `${SCRAPE_SECONDS}s`,
      evaluation_interval: `${SCRAPE_SECONDS}s`,
    },
    scrape_configs: [
      // The demo runs the operator with plain HTTP metrics on 127.0.0.1.
      { job_name: OPERATOR_JOB, static_configs: [{ targets: [operator] }] },
      {
        job_name: 'lepton-workloads',
        metrics_path: ENDPOINTS.metrics,
        file_sd_configs: [{ files: [p.targets], refresh_interval: `${SCRAPE_SECONDS}s` }],
      },
    ],
  };
  writeAtomically(p.config, `${JSON.stringify(config, null, 2)}\n`);
}

async function api<T>(url: string, path: string): Promise<T> {
  const res = await fetch(`${url}/api/v1${path}`, { signal: AbortSignal.timeout(10_000) });
  const body = (await res.json()) as { status: string; data: T; error?: string };
  if (body.status !== 'success') throw new Error(`Prometheus answered ${path}: ${body.error}`);
  return body.data;
}

async function operatorUp(url: string, operator: string): Promise<boolean> {
  try {
    const data = await api<{
      activeTargets: { scrapePool: string; scrapeUrl: string; health: string }[];
    }>(url, '/targets?state=active');
    return data.activeTargets.some(
      (t) =>
        t.scrapePool === OPERATOR_JOB &&
        t.scrapeUrl.includes(`//${operator}/`) &&
        t.health === 'up',
    );
  } catch {
    return false;
  }
}

interface Pod extends KubeObject {
  spec?: { containers?: { ports?: { name?: string; containerPort: number }[] }[] };
  status?: { phase?: string; podIP?: string };
}

/** Pods the operator made: its own, and those of an InferenceService's Deployments. */
const workload = (labels: Record<string, string> = {}) =>
  labels[MANAGED_BY_LABEL] === MANAGED_BY_VALUE || ISVC_LABEL in labels;

/** The workload pods on the local node that run and have an address, as file_sd targets. */
async function podTargets(client: KubeClient): Promise<object[]> {
  const pods = await client.list<Pod>(Resources.Pod, {
    fieldSelector: `spec.nodeName=${LOCAL_NODE},status.phase=Running`,
  });
  return pods.items.flatMap((pod) => {
    const ip = pod.status?.podIP;
    if (!ip || !workload(pod.metadata.labels)) return [];
    const ports = pod.spec?.containers?.[0]?.ports ?? [];
    const port = ports.find((x) => x.name === 'http')?.containerPort ?? DEFAULT_PORT;
    return [
      {
        targets: [`${ip}:${port}`],
        labels: { namespace: pod.metadata.namespace ?? '', pod: pod.metadata.name ?? '' },
      },
    ];
  });
}

/** The background supervisor: runs Prometheus and keeps its target list in step with the pods. */
async function supervise(state: string, port: number, kubeconfig: string): Promise<void> {
  const p = paths(state);
  const prometheus = spawn(
    join(binDir(), 'prometheus'),
    [
      `--config.file=${p.config}`,
      `--storage.tsdb.path=${p.data}`,
      `--web.listen-address=127.0.0.1:${port}`,
    ],
    { stdio: 'inherit' },
  );
  let stopping = false;
  const stop = () => {
    stopping = true;
    prometheus.kill('SIGTERM');
  };
  for (const signal of ['SIGTERM', 'SIGINT', 'SIGHUP'] as const) process.on(signal, stop);
  let failed = false;
  const exited = new Promise<void>((ok) =>
    prometheus.once('exit', (code, signal) => {
      if (!stopping) console.error(`Prometheus exited (code ${code}, signal ${signal})`);
      failed = !stopping;
      stopping = true;
      ok();
    }),
  );
  if (prometheus.pid === undefined) throw new Error('Could not start Prometheus');
  const record: Running = {
    supervisorPid: process.pid,
    prometheusPid: prometheus.pid,
    url: `http://127.0.0.1:${port}`,
    startedAt: Date.now(),
  };
  writeAtomically(p.record, `${JSON.stringify(record)}\n`);

  const client = new KubeClient(await loadClusterAccess({ kubeconfig }), {
    qps: 0,
    burst: 0,
    fieldManager: 'lepton-demo-prometheus',
  });
  let last = '';
  let lastError = '';
  while (!stopping) {
    try {
      const text = JSON.stringify(await podTargets(client));
      if (text !== last) writeAtomically(p.targets, text);
      last = text;
      lastError = '';
    } catch (err) {
      // The API server may be slow or gone for a moment; say so once and keep the last list.
      const message = (err as Error).message;
      if (message !== lastError) console.error(`Could not list the pods to scrape: ${message}`);
      lastError = message;
    }
    await sleep(1000);
  }
  await exited;
  rmSync(p.record, { force: true });
  process.exit(failed ? 1 : 0);
}

async function start(state: string, operator: string, kubeconfig: string): Promise<void> {
  const p = paths(state);
  const bin = join(binDir(), 'prometheus');
  if (!existsSync(bin))
    throw new Error(`${bin} is missing: run bash test/cluster/build-binaries.sh`);
  const running = readRunning(state);
  if (running && supervising(state, running)) {
    // The operator may run on other ports than when it started: reload with its address.
    writeConfig(state, operator);
    process.kill(running.prometheusPid, 'SIGHUP');
    await waitForOperator(running.url, operator, running);
    console.log(`Prometheus is already running (pid ${running.prometheusPid}): ${running.url}`);
    return;
  }
  rmSync(p.dir, { recursive: true, force: true });
  rmSync(p.record, { force: true });
  mkdirSync(p.dir, { recursive: true });
  mkdirSync(join(state, 'logs'), { recursive: true });
  writeFileSync(p.targets, '[]');
  writeConfig(state, operator);
  // A free port from the kernel can be taken before Prometheus binds it: then it exits, and
  // another port is tried.
  for (let attempt = 1; ; attempt++) {
    const port = await freePort();
    const log = openSync(p.log, 'a');
    const child = spawn(
      process.execPath,
      [
        import.meta.filename,
        'supervise',
        '--state',
        resolve(state),
        '--port',
        String(port),
        '--kubeconfig',
        kubeconfig,
      ],
      { detached: true, stdio: ['ignore', log, log] },
    );
    child.unref();
    const deadline = Date.now() + 60_000;
    while (Date.now() < deadline && child.exitCode === null) {
      const r = readRunning(state);
      if (r && r.supervisorPid === child.pid && (await ready(r.url))) {
        await waitForOperator(r.url, operator, r);
        console.log(`Started Prometheus (pid ${r.prometheusPid}, log ${p.log}): ${r.url}`);
        return;
      }
      await sleep(500);
    }
    if (child.exitCode === null) process.kill(-(child.pid as number), 'SIGKILL');
    if (attempt === 3) {
      const tail = readFileSync(p.log, 'utf8').trim().split('\n').slice(-5).join('\n  ');
      throw new Error(`Prometheus did not start; the end of ${p.log}:\n  ${tail}`);
    }
  }
}

async function ready(url: string): Promise<boolean> {
  try {
    return (await fetch(`${url}/-/ready`, { signal: AbortSignal.timeout(2000) })).ok;
  } catch {
    return false;
  }
}

async function waitForOperator(url: string, operator: string, r: Running): Promise<void> {
  const deadline = Date.now() + 60_000;
  while (!(await operatorUp(url, operator))) {
    if (!isAlive(r.prometheusPid)) throw new Error('Prometheus exited; see its log');
    if (Date.now() > deadline)
      throw new Error(
        `Prometheus at ${url} did not scrape the operator at ${operator} within 60 s`,
      );
    await sleep(500);
  }
}

async function stop(state: string): Promise<void> {
  const r = readRunning(state);
  if (!r) return;
  const prometheusDir = resolve(paths(state).dir);
  const ours = [
    supervising(state, r) ? r.supervisorPid : 0,
    runs(r.prometheusPid, prometheusDir) ? r.prometheusPid : 0,
  ].filter((pid) => pid > 0);
  for (const pid of ours) process.kill(pid, 'SIGTERM');
  const deadline = Date.now() + 15_000;
  while (ours.some(isAlive) && Date.now() < deadline) await sleep(200);
  for (const pid of ours.filter(isAlive)) process.kill(pid, 'SIGKILL');
  rmSync(paths(state).record, { force: true });
  if (ours.length) console.log(`Stopped Prometheus (pid ${r.prometheusPid})`);
}

interface Target {
  expr: string;
  legendFormat?: string;
}
interface Panel {
  type: string;
  title: string;
  targets?: Target[];
  fieldConfig?: { defaults?: { unit?: string } };
}
interface Sample {
  metric: Record<string, string>;
  value: [number, string];
}

const significant = (v: number) => String(Number(v.toPrecision(3)));

/** A value as the panel's Grafana unit shows it. */
function format(v: number, unit: string | undefined): string {
  switch (unit) {
    case 'percentunit':
      return `${significant(v * 100)}%`;
    case 's':
      return v < 1 ? `${significant(v * 1000)} ms` : `${significant(v)} s`;
    case 'ops':
    case 'reqps':
      return `${significant(v)}/s`;
    default:
      return significant(v);
  }
}

function legend(target: Target, metric: Record<string, string>): string {
  const text = (target.legendFormat ?? '').replace(
    /\{\{\s*(\w+)\s*\}\}/g,
    (_, label: string) => metric[label] ?? '',
  );
  return text.trim() || JSON.stringify(metric);
}

function duration(seconds: number): string {
  const m = Math.floor(seconds / 60);
  return m ? `${m} min ${seconds % 60} s` : `${seconds} s`;
}

interface ActiveTarget {
  scrapePool: string;
  health: string;
  lastScrape: string;
}

/**
 * The active targets, once each that answers has been scraped after this call (at most a few
 * seconds): what happened just before, such as the demo's last predictions, is then in the data.
 */
async function freshScrapes(url: string): Promise<ActiveTarget[]> {
  const since = Date.now();
  const deadline = since + 5000 * SCRAPE_SECONDS;
  for (;;) {
    const { activeTargets } = await api<{ activeTargets: ActiveTarget[] }>(
      url,
      '/targets?state=active',
    );
    const stale = activeTargets.filter(
      (t) => t.health === 'up' && Date.parse(t.lastScrape) < since,
    );
    if (stale.length === 0 || Date.now() > deadline) return activeTargets;
    await sleep(500);
  }
}

async function show(state: string, namespace: string): Promise<void> {
  const r = readRunning(state);
  if (!r || !supervising(state, r) || !(await ready(r.url)))
    throw new Error(
      `The demo's Prometheus is not running (no live record in ${paths(state).record})`,
    );
  const dashboard = JSON.parse(readFileSync(DASHBOARD, 'utf8')) as { panels: Panel[] };
  const missing = SHOWN.filter((title) => !dashboard.panels.some((p) => p.title === title));
  if (missing.length)
    throw new Error(`${DASHBOARD} has no panel titled: ${missing.map((t) => `"${t}"`).join(', ')}`);
  // Grafana's $__rate_interval is a few scrapes; here rates and quantiles span all the demo has
  // scraped, so that requests made minutes ago still show.
  const window = Math.max(60, Math.round((Date.now() - r.startedAt) / 1000));
  const substitute = (expr: string) =>
    expr
      .replaceAll('$namespace', namespace)
      .replaceAll('$job', OPERATOR_JOB)
      .replaceAll('$__rate_interval', `${window}s`);
  const pods = (await freshScrapes(r.url)).filter((t) => t.scrapePool === 'lepton-workloads');
  console.log(
    `Prometheus: ${r.url}  (scraping the operator and ${pods.length} workload pod(s) every ` +
      `${SCRAPE_SECONDS} s; targets: ${r.url}/targets)`,
  );
  console.log(
    `The Grafana dashboard's queries now (namespace ${namespace}; rates and quantiles over the last ` +
      `${duration(window)}, which covers all Prometheus has scraped):`,
  );
  let example = '';
  for (const title of SHOWN) {
    const panel = dashboard.panels.find((p) => p.title === title) as Panel;
    const unit = panel.fieldConfig?.defaults?.unit;
    const lines: { name: string; text: string; zero: boolean }[] = [];
    for (const target of panel.targets ?? []) {
      const expr = substitute(target.expr);
      example ||= expr;
      const data = await api<{ result: Sample[] }>(
        r.url,
        `/query?query=${encodeURIComponent(expr)}`,
      );
      for (const s of data.result) {
        const v = Number(s.value[1]);
        if (Number.isFinite(v))
          lines.push({
            name: legend(target, s.metric),
            text: format(v, unit),
            zero: v === 0,
          });
      }
    }
    // Series with a value first: a rate of 0 says little.
    lines.sort(
      (a, b) => Number(a.zero) - Number(b.zero) || (a.name < b.name ? -1 : a.name > b.name ? 1 : 0),
    );
    const more = lines.length > MAX_SERIES ? `  (and ${lines.length - MAX_SERIES} more)` : '';
    console.log(`  ${title}`);
    console.log(
      lines.length
        ? `    ${lines
            .slice(0, MAX_SERIES)
            .map((l) => `${l.name}: ${l.text}`)
            .join('\n    ')}${more}`
        : '    (no series with a value)',
    );
  }
  console.log(
    `Ask it yourself (the HTTP API):\n  curl -s ${r.url}/api/v1/query --data-urlencode 'query=${example}'`,
  );
  console.log(
    `Grafana (on this machine, as Prometheus listens on 127.0.0.1): add a Prometheus data source with URL ${r.url},\n` +
      `  then Dashboards > New > Import > upload charts/lepton-operator/dashboards/lepton-operator.json and pick that data source;\n` +
      `  set Namespace to ${namespace}.`,
  );
}

async function main(): Promise<void> {
  switch (command) {
    case 'start':
      return start(stateFlag(), flag('operator'), resolve(flag('kubeconfig')));
    case 'supervise':
      return supervise(stateFlag(), Number(flag('port')), flag('kubeconfig'));
    case 'show':
      return show(stateFlag(), flag('namespace'));
    case 'stop':
      return stop(stateFlag());
    default:
      usage();
  }
}

main().catch((err: Error) => {
  console.error(err.message);
  process.exit(1);
});
