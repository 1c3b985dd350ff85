import { X509Certificate } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CONTROLLER_RUNTIME_ALIASES, OperatorMetrics } from '../../../src/core/metrics.ts';
import { loadCertificate, selfSignedCertificate } from '../../../src/core/secure-metrics.ts';

/** The sample lines of `name` (and its _bucket/_sum/_count), with the name cut off. */
function samples(text: string, name: string): string[] {
  return text
    .split('\n')
    .filter((l) => l.startsWith(name) && /^(_bucket|_sum|_count)?[{ ]/.test(l.slice(name.length)))
    .map((l) => l.slice(name.length));
}

const fresh = () => new OperatorMetrics({ processMetrics: false });

describe("controller-runtime's metric names", () => {
  it.each(Object.entries(CONTROLLER_RUNTIME_ALIASES))(
    '§obs %s repeats %s sample for sample',
    async (alias, source) => {
      const m = fresh();
      const q = m.queueMetrics('trainingjob');
      q.add();
      q.latency(0.02);
      q.workDuration(0.2);
      m.reconcileTotal.inc({ controller: 'trainingjob', result: 'success' });
      m.reconcileTime.startTimer({ controller: 'trainingjob' })();
      m.reconcileTime.startTimer({ controller: 'trainingjob' });
      m.activeWorkers.inc({ controller: 'trainingjob' });
      m.maxConcurrentReconciles.set({ controller: 'trainingjob' }, 4);
      const text = await m.registry.metrics();
      const ours = samples(text, source);
      expect(ours.length).toBeGreaterThan(0);
      // Gauges of work in progress move between two reads; compare their label sets only.
      const strip = (ls: string[]) =>
        /unfinished|longest/.test(source) ? ls.map((l) => l.split(' ')[0]) : ls;
      expect(strip(samples(text, alias))).toEqual(strip(ours));
      expect(text).toContain(`# TYPE ${alias} `);
    },
  );

  it('§obs a controller starts with its error and result counters at 0, as controller-runtime initialises them', async () => {
    const m = fresh();
    m.queueMetrics('federatedround');
    const text = await m.registry.metrics();
    expect(text).toContain(
      'controller_runtime_reconcile_errors_total{controller="federatedround"} 0\n',
    );
    for (const result of ['success', 'error', 'terminal_error', 'requeue_after'])
      expect(text).toContain(
        `lepton_reconcile_total{controller="federatedround",result="${result}"} 0\n`,
      );
    expect(text).toContain('workqueue_retries_total{name="federatedround"} 0\n');
  });

  it('§obs unfinished work and the longest-running reconcile cover the reconciles still running, and drop them when they end', async () => {
    const m = fresh();
    const endA = m.reconcileTime.startTimer({ controller: 'c' });
    await new Promise((r) => setTimeout(r, 30));
    m.reconcileTime.startTimer({ controller: 'c' });
    const value = async (name: string) => {
      const line = (await m.registry.metrics())
        .split('\n')
        .find((l) => l.startsWith(`${name}{name="c"} `));
      return Number(line?.split(' ')[1]);
    };
    const longest = await value('lepton_workqueue_longest_running_processor_seconds');
    const unfinished = await value('lepton_workqueue_unfinished_work_seconds');
    expect(longest).toBeGreaterThanOrEqual(0.025);
    expect(unfinished).toBeGreaterThan(longest);
    endA();
    expect(await value('lepton_workqueue_longest_running_processor_seconds')).toBeLessThan(0.025);
  });
});

describe('the metrics serving certificate', () => {
  it('§obs a self-signed certificate names the hosts given, verifies with its own key and lasts a year', () => {
    const now = new Date('2026-06-01T00:00:00Z');
    const c = selfSignedCertificate(['metrics.lepton-system.svc', '127.0.0.1', '::1'], now);
    const x = new X509Certificate(c.cert);
    expect(x.verify(x.publicKey)).toBe(true);
    expect(x.checkHost('metrics.lepton-system.svc')).toBe('metrics.lepton-system.svc');
    expect(x.checkIP('127.0.0.1')).toBe('127.0.0.1');
    expect(x.checkIP('::1')).toBe('::1');
    expect(x.checkHost('other.example')).toBeUndefined();
    expect(new Date(x.validFrom).getTime()).toBe(now.getTime());
    expect(new Date(x.validTo).getTime()).toBe(now.getTime() + 365 * 86_400_000);
    expect(x.ca).toBe(false);
  });

  it('§obs a certificate directory without tls.key, or with a key that is no key, is refused with the file named', () => {
    const dir = mkdtempSync(join(tmpdir(), 'lepton-cert-'));
    try {
      const c = selfSignedCertificate(['localhost']);
      writeFileSync(join(dir, 'tls.crt'), c.cert);
      expect(() => loadCertificate(dir)).toThrow(`${join(dir, 'tls.key')}`);
      writeFileSync(join(dir, 'tls.key'), 'garbage');
      expect(() => loadCertificate(dir)).toThrow(/tls\.key is not a PEM private key/);
      writeFileSync(join(dir, 'tls.key'), c.key);
      expect(loadCertificate(dir)).toMatchObject({ cert: c.cert, key: c.key, source: dir });
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
