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

  // client-go's NewLeaderElector rules, plus the whole seconds the Lease stores. Before, a 0 s
  // retry period made two replicas send hundreds of Lease GETs a second, and sub-second leases
  // made every leader step down at once and exit, in a loop.
  it.each<[string, string[], RegExp, Record<string, string>?]>([
    [
      'a 0s retry period (a hot loop of Lease reads)',
      ['--retry-period=0s'],
      /^--retry-period \(or LEPTON_RETRY_PERIOD\): must be at least 100ms \(got 0ms\)/,
    ],
    [
      'a 50ms retry period',
      ['--lease-duration=1s', '--renew-deadline=800ms', '--retry-period=50ms'],
      /^--retry-period \(or LEPTON_RETRY_PERIOD\): must be at least 100ms/,
    ],
    [
      'a sub-second lease duration, naming the whole seconds of the Lease',
      ['--lease-duration=500ms', '--renew-deadline=400ms', '--retry-period=300ms'],
      /^--lease-duration \(or LEPTON_LEASE_DURATION\): must be a whole number of seconds, at least 1s \(got 500ms\): the Lease stores leaseDurationSeconds in whole seconds/,
    ],
    [
      'a lease duration that is not whole seconds',
      ['--lease-duration=1500ms', '--renew-deadline=1s', '--retry-period=200ms'],
      /^--lease-duration .*must be a whole number of seconds/,
    ],
    ['a 0s lease duration', ['--lease-duration=0s'], /^--lease-duration .*at least 1s/],
    [
      'a 0s renew deadline',
      ['--renew-deadline=0s'],
      /^--renew-deadline \(or LEPTON_RENEW_DEADLINE\): must be at least 500ms \(got 0ms\)/,
    ],
    [
      'a renew deadline as long as the lease',
      ['--lease-duration=10s'],
      /--renew-deadline must be shorter than --lease-duration/,
    ],
    [
      'a renew deadline not above 1.2 times the retry period',
      ['--renew-deadline=2400ms', '--retry-period=2s'],
      /--renew-deadline must be more than 1.2 times --retry-period/,
    ],
    [
      'a bad value from the environment, naming the variable',
      [],
      /^--retry-period \(or LEPTON_RETRY_PERIOD\): must be at least 100ms/,
      { LEPTON_RETRY_PERIOD: '0' },
    ],
  ])('§5 refuses %s as client-go does', (_case, argv, message, env = {}) => {
    expect(() => parseConfig(argv, env)).toThrow(ConfigError);
    expect(() => parseConfig(argv, env)).toThrow(message);
  });

  it.each([
    [
      'the defaults',
      [],
      { leaseDurationMs: 15_000, renewDeadlineMs: 10_000, retryPeriodMs: 2_000 },
    ],
    [
      'the shortest lease: 1s, renewed within 800ms, retried every 200ms',
      ['--lease-duration=1s', '--renew-deadline=800ms', '--retry-period=200ms'],
      { leaseDurationMs: 1_000, renewDeadlineMs: 800, retryPeriodMs: 200 },
    ],
    [
      'lease flags that are ignored because leader election is off',
      ['--leader-elect=false', '--retry-period=0s'],
      { leaderElect: false, retryPeriodMs: 0 },
    ],
  ])('§5 accepts %s', (_case, argv, expected) => {
    expect(config(argv)).toMatchObject(expected);
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
