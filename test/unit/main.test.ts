// The operator's command line, as a person meets it: --help, --version, and a bad flag; and what
// its start loads.
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const main = join(dirname(fileURLToPath(import.meta.url)), '..', '..', 'src', 'main.ts');
const run = (...args: string[]) =>
  spawnSync(process.execPath, [main, ...args], { encoding: 'utf8', env: {} });

describe('lepton-operator command line', () => {
  it('explains every flag with --help and exits 0', () => {
    const r = run('--help');
    expect(r.status).toBe(0);
    expect(r.stdout).toContain('Usage: lepton-operator [flags]');
    expect(r.stdout).toMatch(/--leader-elect\[=true\|false\]\n\s+Elect a leader/);
  });

  it('prints its version', () => {
    expect(run('--version').stdout.trim()).toMatch(/^\d+\.\d+\.\d+$/);
  });

  it('exits 2 with a message naming a bad flag, without connecting anywhere', () => {
    const r = run('--kube-api-qps=fast');
    expect(r.status).toBe(2);
    expect(r.stderr).toContain('--kube-api-qps (or LEPTON_KUBE_API_QPS): invalid value "fast"');
  });

  it.each([
    [['--retry-period=0s'], '--retry-period (or LEPTON_RETRY_PERIOD): must be at least 100ms'],
    [
      ['--lease-duration=500ms', '--renew-deadline=400ms', '--retry-period=300ms'],
      '--lease-duration (or LEPTON_LEASE_DURATION): must be a whole number of seconds',
    ],
  ])(
    '§5 refuses lease flags %j at start-up: exit 2, the flag named, no stack trace',
    (args, message) => {
      const r = run(...args);
      expect(r.status).toBe(2);
      expect(r.stderr).toContain(`lepton-operator: ${message}`);
      expect(r.stderr).not.toMatch(/^\s+at /m);
      expect(r.stderr.trim().split('\n')).toHaveLength(1);
    },
  );

  it('§perf loads neither client-node nor undici: every module of the start-up graph is cheap', () => {
    // A resolve hook lists every module the process loads; at exit, the built-ins it compiled.
    const dir = mkdtempSync(join(tmpdir(), 'lepton-main-'));
    const hook = join(dir, 'hook.mjs');
    writeFileSync(
      hook,
      `import { registerHooks } from 'node:module';
      const loaded = [];
      registerHooks({ resolve(specifier, context, next) {
        const r = next(specifier, context); loaded.push(r.url); return r; } });
      process.on('exit', () => process.stderr.write(JSON.stringify({ loaded,
        builtins: process.moduleLoadList }) + '\\n'));`,
    );
    try {
      const r = spawnSync(process.execPath, ['--import', hook, main, '--help'], {
        encoding: 'utf8',
        env: {},
      });
      expect(r.status).toBe(0);
      const { loaded, builtins } = JSON.parse(r.stderr.trim().split('\n').pop() ?? '{}') as {
        loaded: string[];
        builtins: string[];
      };
      expect(loaded.some((u) => u.endsWith('/src/core/manager.ts'))).toBe(true);
      // client-node's index brings every generated API model (about 70 MB of resident memory);
      // an import of node:http, the undici bundled in Node (its lazy http.WebSocket).
      expect(
        loaded.filter((u) => /node_modules\/(@kubernetes\/client-node|undici)\//.test(u)),
      ).toEqual([]);
      expect(builtins.filter((m) => m.includes('undici'))).toEqual([]);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
