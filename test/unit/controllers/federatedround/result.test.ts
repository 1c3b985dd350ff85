// What a round's pods say in their termination messages, read strictly: a client's report must
// name its own participant and a sha256 digest of its update; the aggregator's result must name a
// model inside the round's output and only participants the operator accepted.
import {
  parseAggregatorResult,
  parseClientReport,
} from '../../../../src/controllers/federatedround/result.ts';
import { DIGEST, MODEL_DIGEST, outputOf, report, result } from './builders.ts';

const OUT = outputOf('r');

describe('§round a client’s report', () => {
  it('§round a report of our runtime is taken with its metrics and digest', () => {
    const v = parseClientReport(report('a', 120, { updateNorm: 3.5 }), 'a', OUT);
    expect(v).toEqual({
      ok: true,
      report: {
        participant: 'a',
        samples: 120,
        loss: 0.5,
        accuracy: 0.8,
        updateNorm: 3.5,
        update: { digest: DIGEST, bytes: 1024 },
      },
    });
  });

  it('§round loss, accuracy and updateNorm are optional (secure aggregation reports no norm)', () => {
    const v = parseClientReport(report('a', 0, { loss: undefined, accuracy: undefined }), 'a', OUT);
    expect(v).toEqual({
      ok: true,
      report: { participant: 'a', samples: 0, update: { digest: DIGEST, bytes: 1024 } },
    });
  });

  it('§round fields the status has no place for do not come through', () => {
    const v = parseClientReport(report('a', 1, { extra: 'x'.repeat(10_000) }), 'a', OUT);
    expect(v.ok && Object.keys(v.report)).not.toContain('extra');
  });

  it.each([
    ['no message', undefined, /missing or not JSON/],
    ['a blank message', '  \n', /missing or not JSON/],
    ['a message that is not JSON', 'Killed', /missing or not JSON/],
    ['a JSON array', '[1]', /missing or not JSON/],
    ['another participant', report('b', 10), /names participant b, not a/],
    ['no participant', report('a', 10, { participant: undefined }), /names participant undefined/],
    ['a fractional sample count', report('a', 1.5), /sample count/],
    ['a negative sample count', report('a', -3), /sample count/],
    ['a sample count that is a string', report('a', 10, { samples: '10' }), /sample count/],
    ['a loss that is not a number', report('a', 10, { loss: 'low' }), /loss or accuracy/],
    ['an accuracy that is not finite', report('a', 10, { accuracy: null }), /loss or accuracy/],
    ['a negative updateNorm', report('a', 10, { updateNorm: -1 }), /updateNorm/],
    ['no update', report('a', 10, { update: undefined }), /sha256 digest/],
    [
      'a digest of another hash',
      report('a', 10, { update: { digest: `md5:${'a'.repeat(32)}`, bytes: 1 } }),
      /sha256 digest/,
    ],
    [
      'a digest in upper case',
      report('a', 10, { update: { digest: DIGEST.toUpperCase(), bytes: 1 } }),
      /sha256 digest/,
    ],
    [
      'a digest one character short',
      report('a', 10, { update: { digest: DIGEST.slice(0, -1), bytes: 1 } }),
      /sha256 digest/,
    ],
    ['no update size', report('a', 10, { update: { digest: DIGEST } }), /no update size/],
  ])('§round a report with %s is invalid', (_case, message, why) => {
    const v = parseClientReport(message, 'a', OUT);
    expect(v.ok).toBe(false);
    if (!v.ok) expect(v.message).toMatch(why);
  });

  it('§round the name a forged report gives is cut short and cleaned before it reaches the status', () => {
    const v = parseClientReport(report(`\u0007${'x'.repeat(500)}`, 1), 'a', OUT);
    expect(v.ok).toBe(false);
    if (v.ok) return;
    expect(v.message).not.toContain('\u0007');
    expect(v.message.length).toBeLessThan(200);
  });
});

describe('§round the aggregator’s result', () => {
  it('§round a result inside the output, of accepted participants, is taken', () => {
    const v = parseAggregatorResult(
      result('r', ['a', 'c'], {
        metrics: { loss: 0.4, accuracy: 0.85, clippedFraction: 0.25, bogus: 'x' },
        rejected: [{ name: 'b', reason: 'BadSignature', message: 'not what b signed' }],
        bytes: 4096,
      }),
      OUT,
      ['a', 'b', 'c'],
    );
    expect(v).toEqual({
      ok: true,
      result: {
        model: { uri: OUT, digest: MODEL_DIGEST },
        metrics: { loss: 0.4, accuracy: 0.85, clippedFraction: 0.25 },
        accepted: ['a', 'c'],
        rejected: [{ name: 'b', reason: 'BadSignature', message: 'not what b signed' }],
        bytes: 4096,
      },
    });
  });

  it.each([
    ['the output itself', OUT, OUT],
    ['the output itself, the spec with a trailing slash', OUT, `${OUT}/`],
    ['a folder under the output', `${OUT}/global`, OUT],
  ])('§round a model at %s is inside the output', (_case, uri, base) => {
    const v = parseAggregatorResult(
      result('r', ['a'], { model: { uri, digest: MODEL_DIGEST } }),
      base,
      ['a'],
    );
    expect(v.ok).toBe(true);
  });

  it('§round a rejection reason that is not CamelCase becomes Rejected; its message is cleaned', () => {
    const v = parseAggregatorResult(
      result('r', ['a'], {
        rejected: [{ name: 'b', reason: 'bad reason; rm -rf', message: 'x\u0000y' }],
      }),
      OUT,
      ['a', 'b'],
    );
    expect(v.ok && v.result.rejected).toEqual([
      { name: 'b', reason: 'Rejected', message: 'x\ufffdy' },
    ]);
  });

  it('§round bytes that are not an integer count as 0', () => {
    const v = parseAggregatorResult(result('r', ['a'], { bytes: 'many' }), OUT, ['a']);
    expect(v.ok && v.result.bytes).toBe(0);
  });

  it.each<[string, string | undefined, 'InvalidResult' | 'UntrustedModelURI', RegExp]>([
    ['no message', undefined, 'InvalidResult', /missing or not JSON/],
    ['no model', result('r', ['a'], { model: undefined }), 'InvalidResult', /names no model/],
    [
      'a model digest of another hash',
      result('r', ['a'], { model: { uri: OUT, digest: 'sha1:00' } }),
      'InvalidResult',
      /sha256 digest of the model/,
    ],
    [
      'a model in another folder',
      result('r', ['a'], { model: { uri: 'file:///var/lib/lepton/other', digest: MODEL_DIGEST } }),
      'UntrustedModelURI',
      /outside spec.output.uri \(file:\/\/\/var\/lib\/lepton\/other\)/,
    ],
    [
      'a model beside the output sharing its prefix',
      result('r', ['a'], { model: { uri: `${OUT}2`, digest: MODEL_DIGEST } }),
      'UntrustedModelURI',
      /outside spec.output.uri/,
    ],
    [
      'a model on another scheme',
      result('r', ['a'], { model: { uri: 'https://evil.example/m', digest: MODEL_DIGEST } }),
      'UntrustedModelURI',
      /outside spec.output.uri/,
    ],
    [
      'metrics that are not an object',
      result('r', ['a'], { metrics: [0.4] }),
      'InvalidResult',
      /metrics that are not an object/,
    ],
    [
      'a loss that is not a number',
      result('r', ['a'], { metrics: { loss: 'NaN' } }),
      'InvalidResult',
      /loss that is not a number/,
    ],
    [
      'a clippedFraction above 1',
      result('r', ['a'], { metrics: { clippedFraction: 1.5 } }),
      'InvalidResult',
      /clippedFraction outside \[0, 1\]/,
    ],
    [
      'a participant the operator did not accept',
      result('r', ['a', 'x']),
      'InvalidResult',
      /did not accept/,
    ],
    [
      'accepted that is not a list',
      result('r', ['a'], { accepted: 'a' }),
      'InvalidResult',
      /did not accept/,
    ],
    [
      'a rejection of an unknown participant',
      result('r', ['a'], { rejected: [{ name: 'x', reason: 'UpdateMissing' }] }),
      'InvalidResult',
      /rejects an unknown participant/,
    ],
    ['no accepted update', result('r', []), 'InvalidResult', /aggregated no update/],
  ])('§round a result with %s is refused', (_case, message, reason, why) => {
    const v = parseAggregatorResult(message, OUT, ['a', 'b']);
    expect(v).toMatchObject({ ok: false, reason });
    if (!v.ok) expect(v.message).toMatch(why);
  });
});
