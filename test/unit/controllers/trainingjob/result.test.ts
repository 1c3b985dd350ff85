import { withinOutput } from '../../../../src/controllers/spec-checks.ts';
import { parseProgress, parseResult } from '../../../../src/controllers/trainingjob/result.ts';
import { sanitizeMessage } from '../../../../src/engine/messages.ts';

const digest = `sha256:${'a'.repeat(64)}`;
const result = (over: Record<string, unknown> = {}) =>
  JSON.stringify({
    model: { uri: 'pvc://models/iris', digest },
    metrics: { loss: 0.1, accuracy: 0.9 },
    epochs: 3,
    backend: 'wasm',
    ...over,
  });

describe("the chief's result, read strictly", () => {
  it('takes a result that fits the status schema, under spec.output.uri', () => {
    expect(parseResult(result(), 'pvc://models/iris')).toEqual({
      ok: true,
      result: {
        model: { uri: 'pvc://models/iris', digest },
        metrics: { loss: 0.1, accuracy: 0.9 },
        epochs: 3,
        backend: 'wasm',
      },
    });
  });

  it.each([
    [
      '§3 a short digest',
      result({ model: { uri: 'pvc://models/iris', digest: 'sha256:ab' } }),
      'InvalidResult',
    ],
    ['§3 a URI that is an object', result({ model: { uri: { a: 1 }, digest } }), 'InvalidResult'],
    ['§3 epochs that are not an integer', result({ epochs: 1.5 }), 'InvalidResult'],
    ['§3 a metric that is a string', result({ metrics: { loss: 'low' } }), 'InvalidResult'],
    ['§3 a backend too long for the status', result({ backend: 'x'.repeat(65) }), 'InvalidResult'],
    ['§3 text that is not JSON', 'done!', 'InvalidResult'],
    [
      '§2 a model URI outside spec.output.uri',
      result({ model: { uri: 'https://evil.example/m', digest } }),
      'UntrustedModelURI',
    ],
    [
      '§2 a sibling that shares the prefix',
      result({ model: { uri: 'pvc://models/iris-evil', digest } }),
      'UntrustedModelURI',
    ],
  ])('refuses %s', (_case, message, reason) => {
    expect(parseResult(message, 'pvc://models/iris')).toMatchObject({ ok: false, reason });
  });

  it('takes no message at all as no result (a chief that is not our runtime)', () => {
    expect(parseResult('', 'pvc://models/iris')).toEqual({ ok: true, result: undefined });
  });

  it('§2 a job without spec.output may name no model', () => {
    expect(parseResult(result({ model: { uri: '', digest: '' } }), undefined)).toMatchObject({
      ok: true,
    });
    expect(parseResult(result(), undefined)).toMatchObject({
      ok: false,
      reason: 'UntrustedModelURI',
    });
  });

  it('compares path segments, not string prefixes', () => {
    expect(withinOutput('pvc://m/a/b', 'pvc://m/a/')).toBe(true);
    expect(withinOutput('pvc://m/ab', 'pvc://m/a')).toBe(false);
  });
});

describe('progress and messages', () => {
  it('drops a /progress answer that does not fit the status', () => {
    expect(parseProgress({ epoch: 1, epochs: 3, loss: 0.5, backend: 'cpu' })).toMatchObject({
      epoch: 1,
      loss: 0.5,
    });
    expect(parseProgress({ epoch: '1', epochs: 3 })).toBeUndefined();
    expect(parseProgress({ epoch: 1, epochs: 3, samplesPerSecond: -1 })).toBeUndefined();
  });

  it('§4 replaces control characters and cuts long messages', () => {
    expect(sanitizeMessage('a\u0000b\u001bc\td\ne')).toBe('a\ufffdb\ufffdc\td\ne');
    expect(sanitizeMessage('x'.repeat(2000))).toHaveLength(1024);
  });
});
