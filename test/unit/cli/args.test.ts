// The command line as kubectl users type it: flags before or after the command, kinds by any
// of their names, KIND/NAME references.
import { count, parse } from '../../../src/cli/args.ts';
import { UsageError, kindsOf, objectRef } from '../../../src/cli/kinds.ts';

const commands = {
  list: {
    output: { type: 'string' as const, short: 'o', help: '' },
    'all-namespaces': { type: 'boolean' as const, short: 'A', help: '' },
  },
  logs: {
    follow: { type: 'boolean' as const, short: 'f', help: '' },
    tail: { type: 'string' as const, help: '' },
  },
};

describe('parse', () => {
  it('takes global flags before and after the command, in both spellings', () => {
    const p = parse(['-n', 'ml', 'list', 'tj', '--context=prod', '-A', '-o', 'wide'], commands);
    expect(p).toEqual({
      command: 'list',
      words: ['tj'],
      flags: { namespace: 'ml', context: 'prod', 'all-namespaces': true, output: 'wide' },
    });
  });

  it('refuses a flag of another command, and an unknown one', () => {
    expect(() => parse(['list', '-f'], commands)).toThrow(
      new UsageError('The flag --follow does not apply to "list"'),
    );
    expect(() => parse(['list', '--colour'], commands)).toThrow(UsageError);
  });

  it('reads whole numbers only', () => {
    expect(count(parse(['logs', 'a', '--tail', '20'], commands).flags, 'tail')).toBe(20);
    expect(() => count(parse(['logs', 'a', '--tail', '-1'], commands).flags, 'tail')).toThrow(
      UsageError,
    );
    expect(() => count(parse(['logs', 'a', '--tail=x'], commands).flags, 'tail')).toThrow(
      '--tail takes a whole number, not "x"',
    );
  });
});

describe('kinds and references', () => {
  it.each([
    ['all', ['TrainingJob', 'FederatedRound', 'InferenceService']],
    ['lepton', ['TrainingJob', 'FederatedRound', 'InferenceService']],
    ['tj', ['TrainingJob']],
    ['TrainingJobs', ['TrainingJob']],
    ['fround,infsvc', ['FederatedRound', 'InferenceService']],
    ['inferenceservice.lepton.ai', ['InferenceService']],
  ])('%s', (word, kinds) => {
    expect(kindsOf(word).map((k) => k.kind)).toEqual(kinds);
  });

  it('refuses an unknown kind with the names it knows', () => {
    expect(() => kindsOf('pods')).toThrow(/Unknown kind "pods": use all, trainingjobs \(tj\)/);
  });

  it.each([
    [['mnist'], undefined, 'mnist'],
    [['tj/mnist'], 'TrainingJob', 'mnist'],
    [['infsvc', 'fraud'], 'InferenceService', 'fraud'],
  ])('%j', (words, kind, name) => {
    const ref = objectRef(words);
    expect(ref.kind?.kind).toBe(kind);
    expect(ref.name).toBe(name);
  });

  it.each([
    [[], 'Give the name'],
    [['tj/'], 'No name after'],
    [['pod/x'], 'Unknown kind "pod"'],
    [['tj', 'a', 'b'], 'Unexpected arguments: b'],
  ])('%j is a usage error', (words, message) => {
    expect(() => objectRef(words)).toThrow(message);
  });
});
