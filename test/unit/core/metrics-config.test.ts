import { ConfigError, helpText, parseConfig } from '../../../src/core/config.ts';

const config = (argv: string[], env: NodeJS.ProcessEnv = {}) => {
  const parsed = parseConfig(argv, env);
  if (!('config' in parsed)) throw new Error('expected a configuration');
  return parsed.config;
};

describe('--metrics-secure and --metrics-cert-dir', () => {
  it('§obs are off by default: plain HTTP, no certificate directory', () => {
    expect(config([])).toMatchObject({ metricsSecure: false });
    expect(config([]).metricsCertDir).toBeUndefined();
  });

  it.each<[string, string[], NodeJS.ProcessEnv]>([
    ['the flag', ['--metrics-secure', '--metrics-cert-dir=/certs'], {}],
    ['the variables', [], { LEPTON_METRICS_SECURE: 'true', LEPTON_METRICS_CERT_DIR: '/certs' }],
  ])('§obs are read from %s', (_from, argv, env) => {
    expect(config(argv, env)).toMatchObject({ metricsSecure: true, metricsCertDir: '/certs' });
  });

  it.each<[string, string[], RegExp]>([
    [
      'a certificate directory without secure serving',
      ['--metrics-cert-dir=/certs'],
      /--metrics-cert-dir \(or LEPTON_METRICS_CERT_DIR\): is only used with --metrics-secure=true/,
    ],
    [
      'secure metrics on the probes address',
      ['--metrics-secure', '--metrics-bind-address=:8081', '--health-probe-bind-address=:8081'],
      /--metrics-secure .*apart from --health-probe-bind-address/,
    ],
    [
      'secure metrics with the endpoint disabled',
      ['--metrics-secure', '--metrics-bind-address=0'],
      /--metrics-secure .*needs a metrics endpoint/,
    ],
    ['a value that is no boolean', ['--metrics-secure=maybe'], /want true or false/],
  ])('§obs refuses %s', (_what, argv, message) => {
    expect(() => config(argv)).toThrow(ConfigError);
    expect(() => config(argv)).toThrow(message);
  });

  it('§obs are described in --help with their variables', () => {
    const text = helpText();
    expect(text).toContain('--metrics-secure[=true|false]');
    expect(text).toMatch(/TokenReview.*SubjectAccessReview.*Env: LEPTON_METRICS_SECURE/);
    expect(text).toMatch(
      /--metrics-cert-dir VALUE\n.*tls\.crt and tls\.key.*Env: LEPTON_METRICS_CERT_DIR/,
    );
  });
});
