import {
  ConfigError,
  helpText,
  parseConfig,
  parseDuration,
  type OperatorConfig,
} from '../../../src/core/config.ts';

function config(argv: string[], env: Record<string, string> = {}): OperatorConfig {
  const parsed = parseConfig(argv, env);
  if (!('config' in parsed)) throw new Error('expected a config');
  return parsed.config;
}

describe('parseConfig', () => {
  it('has controller-runtime-like defaults', () => {
    expect(config([])).toMatchObject({
      namespaces: [],
      metricsBindAddress: ':8080',
      healthProbeBindAddress: ':8081',
      leaderElect: true,
      leaseDurationMs: 15_000,
      renewDeadlineMs: 10_000,
      retryPeriodMs: 2_000,
      concurrency: 4,
      logLevel: 'info',
    });
  });

  it('reads flags, falls back to environment variables, and lets flags win', () => {
    const c = config(['--namespaces=a,b', '--concurrency', '8', '--leader-elect=false'], {
      LEPTON_CONCURRENCY: '2',
      LEPTON_LOG_LEVEL: 'debug',
      LEPTON_LEASE_DURATION: '30s',
      LEPTON_RENEW_DEADLINE: '20s',
    });
    expect(c).toMatchObject({
      namespaces: ['a', 'b'],
      concurrency: 8,
      leaderElect: false,
      logLevel: 'debug',
      leaseDurationMs: 30_000,
    });
  });

  it('accepts a bare boolean flag', () => {
    expect(config(['--leader-elect', '--concurrency=1']).leaderElect).toBe(true);
  });

  it.each([
    [['--concurrency=two'], /--concurrency .*invalid value "two"/],
    [['--log-level=verbose'], /--log-level .*want error, warn, info or debug/],
    [['--lease-duration=soon'], /--lease-duration .*not a duration/],
    [['--renew-deadline=20s'], /--renew-deadline must be shorter than --lease-duration/],
    [['--no-such-flag'], /Unknown option '--no-such-flag'/],
  ])('rejects %j with a message naming the flag', (argv, message) => {
    expect(() => parseConfig(argv, {})).toThrow(ConfigError);
    expect(() => parseConfig(argv, {})).toThrow(message);
  });

  it('returns help and version requests', () => {
    expect(parseConfig(['--help'], {})).toEqual({ help: true });
    expect(parseConfig(['--version'], {})).toEqual({ version: true });
  });
});

describe('helpText', () => {
  it('documents every flag with its environment variable', () => {
    const text = helpText();
    for (const flag of [
      '--kubeconfig',
      '--namespaces',
      '--leader-elect',
      '--kube-api-qps',
      '--runtime-image',
      '--log-level',
      '--concurrency',
    ]) {
      expect(text).toContain(flag);
    }
    expect(text).toContain('LEPTON_NAMESPACES');
  });
});

describe('parseDuration', () => {
  it.each([
    ['500ms', 500],
    ['15s', 15_000],
    ['10m', 600_000],
    ['1h', 3_600_000],
    ['2', 2_000],
    ['1.5s', 1_500],
  ])('%s is %d ms', (text, ms) => {
    expect(parseDuration(text)).toBe(ms);
  });
});
