// The demo's progress lines: follows one object with the project's kubectl and prints a line each
// time its progress changes (epochs of a TrainingJob, trials of a search, rounds of a federated
// campaign, ready replicas of an InferenceService) until it is done, then exits 0; it exits 1 if it
// fails or the deadline passes, printing its conditions.
//
//   node scripts/demo-watch.ts trainingjob NAMESPACE NAME [--timeout SECONDS]
//   node scripts/demo-watch.ts inferenceservice NAMESPACE NAME [--timeout SECONDS]
//
// kubectl is $KUBECTL (default: kubectl on PATH), talking to $KUBECONFIG.
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';

interface Condition {
  type: string;
  status: string;
  reason?: string;
  message?: string;
}
interface Resource {
  kind: string;
  metadata: { name: string; labels?: Record<string, string> };
  spec: Record<string, unknown> & {
    workers?: number;
    federated?: { rounds?: number; participants?: unknown[] };
    tuning?: { numTrials?: number; objectives?: { metric: string }[] };
  };
  status?: Record<string, unknown> & { phase?: string; conditions?: Condition[] };
}
interface Progress {
  epoch?: number;
  epochs?: number;
  loss?: number;
  valAccuracy?: number;
  accuracy?: number;
  samplesPerSecond?: number;
}
interface Trial {
  name: string;
  number: number;
  state: string;
  reason?: string;
  parameters?: Record<string, string>;
  metrics?: Record<string, number>;
}
interface RoundStatus {
  phase?: string;
  accepted?: number;
  quorum?: number;
  dropped?: number;
  participants?: { name: string; state: string }[];
  metrics?: { loss?: number; accuracy?: number };
  epsilonSpent?: number;
}

const [kindArg, namespace, name] = process.argv.slice(2);
const timeoutAt = process.argv.indexOf('--timeout');
const timeoutSeconds = timeoutAt > 0 ? Number(process.argv[timeoutAt + 1]) : 300;
const kinds = ['trainingjob', 'inferenceservice'];
if (!kindArg || !kinds.includes(kindArg) || !namespace || !name || !(timeoutSeconds > 0)) {
  console.error(
    'usage: node scripts/demo-watch.ts trainingjob|inferenceservice NAMESPACE NAME [--timeout SECONDS]',
  );
  process.exit(2);
}
const kind = kindArg;
const kubectl = process.env.KUBECTL ?? 'kubectl';
const run = promisify(execFile);
const started = Date.now();

async function get(what: string, ...args: string[]): Promise<Resource[]> {
  const { stdout } = await run(kubectl, ['get', what, '-n', namespace!, '-o', 'json', ...args], {
    maxBuffer: 64 << 20,
  });
  const parsed = JSON.parse(stdout) as Resource | { items: Resource[] };
  return 'items' in parsed ? parsed.items : [parsed];
}

const num = (v: number | undefined, digits = 3) => (v === undefined ? '-' : v.toFixed(digits));
const elapsed = () => `[${String(Math.round((Date.now() - started) / 1000)).padStart(3)}s]`;

// The last line printed for each subject (the job, a trial, a round): a line is printed only when
// its subject's changes.
const last = new Map<string, string>();
function say(line: string, subject = '') {
  if (last.get(subject) === line) return;
  last.set(subject, line);
  console.log(`  ${elapsed()} ${line}`);
}

function conditions(o: Resource): string {
  return (o.status?.conditions ?? [])
    .map((c) => `${c.type}=${c.status}/${c.reason ?? ''}${c.message ? ` (${c.message})` : ''}`)
    .join('\n    ');
}

// One line for a training job of its own (not a search, not a campaign).
function training(o: Resource): string {
  const s = o.status ?? {};
  const p = (s.progress ?? {}) as Progress;
  const workers = (s.workers ?? {}) as { ready?: number };
  if (p.epoch === undefined)
    return `${s.phase ?? 'Pending'}: ${workers.ready ?? 0} worker(s) ready`;
  return (
    `${s.phase}: epoch ${p.epoch}/${p.epochs ?? '?'}  loss ${num(p.loss)}  ` +
    `accuracy ${num(p.accuracy)}  val-accuracy ${num(p.valAccuracy)}  ` +
    (p.samplesPerSecond ? `${Math.round(p.samplesPerSecond)} samples/s` : '') +
    (s.phase === 'Running' ? ` on ${workers.ready ?? 0} worker(s)` : '')
  );
}

// A parameter value as a person reads it: 0.0146 rather than 0.014584801979922356.
const short = (v: string) =>
  /^-?\d*\.\d+(e-?\d+)?$/.test(v) ? String(Number(Number(v).toPrecision(3))) : v;

// A line per trial and state, and the counts.
function search(o: Resource) {
  const t = (o.status?.tuning ?? {}) as {
    counts?: Record<string, number>;
    trials?: Trial[];
    summary?: string;
  };
  for (const trial of t.trials ?? []) {
    const params = Object.entries(trial.parameters ?? {})
      .map(([k, v]) => `${k.split('.').pop()}=${short(v)}`)
      .join(' ');
    // The objectives, once the trial is over.
    const over = !['Pending', 'Running'].includes(trial.state);
    const metrics = (over ? (o.spec.tuning?.objectives ?? []) : [])
      .filter(({ metric }) => trial.metrics?.[metric] !== undefined)
      .map(({ metric }) => `${metric} ${num(trial.metrics?.[metric])}`)
      .join(' ');
    const why = trial.reason ? ` (${trial.reason})` : '';
    say(
      `trial ${trial.number} ${trial.state}${why}: ${params}${metrics ? `  ${metrics}` : ''}`,
      trial.name,
    );
  }
  const c = t.counts ?? {};
  say(
    `trials: ${c.created ?? 0}/${o.spec.tuning?.numTrials ?? '?'} created, ${c.running ?? 0} running, ` +
      `${c.succeeded ?? 0} succeeded, ${c.pruned ?? 0} pruned, ${c.failed ?? 0} failed` +
      (t.summary ? `  (${t.summary})` : ''),
  );
}

// A line per round and state: round N of M, its phase, participants and, once done, its metrics.
function campaign(o: Resource, rounds: Resource[]) {
  const total = o.spec.federated?.rounds ?? '?';
  const mine = rounds
    .filter((r) => r.metadata.labels?.['lepton.ai/campaign'] === o.metadata.name)
    .map((r) => ({ r, n: Number((r.spec as { round?: number }).round ?? 0) }))
    .sort((a, b) => a.n - b.n);
  for (const { r, n } of mine) {
    const s = (r.status ?? {}) as RoundStatus;
    const states = new Map<string, number>();
    for (const p of s.participants ?? []) states.set(p.state, (states.get(p.state) ?? 0) + 1);
    const who = [...states].map(([state, count]) => `${count} ${state}`).join(', ');
    const done =
      s.phase === 'Succeeded'
        ? `  ${s.accepted}/${s.quorum} updates aggregated, global model loss ${num(s.metrics?.loss)} ` +
          `accuracy ${num(s.metrics?.accuracy)}` +
          (s.epsilonSpent !== undefined ? ` epsilon ${num(s.epsilonSpent)}` : '')
        : '';
    say(
      `round ${n + 1} of ${total} (${r.metadata.name}): ${s.phase ?? 'Pending'}${who ? `: ${who}` : ''}${done}`,
      r.metadata.name,
    );
  }
}

// The training loss of every epoch as a sparkline, from status.progress.history.
function curve(o: Resource) {
  const loss = ((o.status?.progress ?? {}) as { history?: { loss?: number[] } }).history?.loss;
  if (!loss || loss.length < 2) return;
  const lo = Math.min(...loss);
  const span = Math.max(...loss) - lo || 1;
  const bars = '▁▂▃▄▅▆▇█';
  const line = loss.map((v) => bars[Math.round(((v - lo) / span) * (bars.length - 1))]).join('');
  console.log(`  loss by epoch: ${line}  (${num(loss[0])} → ${num(loss[loss.length - 1])})`);
}

function serving(o: Resource): string {
  const s = o.status ?? {};
  const ready = (s.conditions ?? []).find((c) => c.type === 'Ready');
  return (
    `${s.phase ?? 'Pending'}: ${s.readyReplicas ?? 0}/${o.spec.minReplicas ?? 1} replicas ready` +
    (ready && ready.status !== 'True' ? ` (${ready.reason})` : '')
  );
}

// Done (true), failed (an error) or not yet (false).
function finished(o: Resource): boolean {
  const s = o.status ?? {};
  if (s.phase === 'Failed') throw new Error(`${o.kind} ${name} failed:\n    ${conditions(o)}`);
  if (kind === 'inferenceservice')
    return (s.conditions ?? []).some((c) => c.type === 'Ready' && c.status === 'True');
  return s.phase === 'Succeeded';
}

async function main() {
  for (;;) {
    let o: Resource | undefined;
    try {
      if (kind === 'trainingjob') {
        const all = await get('trainingjobs,federatedrounds');
        o = all.find((x) => x.kind === 'TrainingJob' && x.metadata.name === name);
        if (o?.spec.federated)
          campaign(
            o,
            all.filter((x) => x.kind === 'FederatedRound'),
          );
        else if (o?.spec.tuning) search(o);
        else if (o) say(training(o));
      } else {
        [o] = await get(`inferenceservice/${name}`);
        if (o) say(serving(o));
      }
    } catch (err) {
      // The API server or kubectl may hiccup on a loaded machine; the deadline still holds.
      const { stderr, message } = err as { stderr?: string; message: string };
      say(`(kubectl get failed: ${(stderr?.trim() || message).split('\n')[0]})`);
    }
    if (o && finished(o)) {
      if (kind === 'trainingjob' && !o.spec.federated && !o.spec.tuning) curve(o);
      return;
    }
    if (Date.now() - started > timeoutSeconds * 1000) {
      throw new Error(
        `${kind} ${name} was not done after ${timeoutSeconds} s` +
          (o ? `:\n    ${conditions(o)}` : ': it does not exist'),
      );
    }
    await new Promise((ok) => setTimeout(ok, 1000));
  }
}

main().catch((err: Error) => {
  console.error(`  ${err.message}`);
  process.exit(1);
});
