// The three kinds as people name them on the command line: plural, singular, short name or kind,
// as `kubectl get` accepts them (the names of crds/*.yaml), and `KIND/NAME` references.
import { type ResourceType, Resources } from '../core/resources.ts';

export type KindName = 'TrainingJob' | 'FederatedRound' | 'InferenceService';

export interface Kind {
  kind: KindName;
  rt: ResourceType;
  singular: string;
  short: string;
}

export const KINDS: readonly Kind[] = [
  { kind: 'TrainingJob', rt: Resources.TrainingJob, singular: 'trainingjob', short: 'tj' },
  {
    kind: 'FederatedRound',
    rt: Resources.FederatedRound,
    singular: 'federatedround',
    short: 'fround',
  },
  {
    kind: 'InferenceService',
    rt: Resources.InferenceService,
    singular: 'inferenceservice',
    short: 'infsvc',
  },
];

const names = (k: Kind) => [
  k.rt.plural,
  k.singular,
  k.short,
  `${k.rt.plural}.${k.rt.group}`,
  `${k.singular}.${k.rt.group}`,
];

/** The kind a word names (any of its names, any case), or undefined. */
export function kindNamed(word: string): Kind | undefined {
  const w = word.toLowerCase();
  return KINDS.find((k) => names(k).includes(w));
}

/** All accepted spellings, for help and error messages. */
export const KIND_WORDS = KINDS.map((k) => `${k.rt.plural} (${k.short})`).join(', ');

export class UsageError extends Error {
  override readonly name = 'UsageError';
}

/** The kinds a `list` argument names: one kind, `all`, or the category `lepton`. */
export function kindsOf(word: string | undefined): readonly Kind[] {
  if (word === undefined || word === 'all' || word === 'lepton') return KINDS;
  const kinds = word.split(',').map((w) => {
    const k = kindNamed(w);
    if (!k) throw new UsageError(`Unknown kind "${w}": use all, ${KIND_WORDS}`);
    return k;
  });
  return [...new Set(kinds)];
}

export interface ObjectRef {
  /** Undefined when only a name was given: the caller looks in every kind it accepts. */
  kind?: Kind;
  name: string;
}

/** `NAME`, `KIND/NAME` or `KIND NAME` (the words after the command), as kubectl reads them. */
export function objectRef(words: readonly string[]): ObjectRef {
  const [first, second, ...rest] = words;
  if (first === undefined) throw new UsageError('Give the name of an object (NAME or KIND/NAME)');
  if (rest.length > 0) throw new UsageError(`Unexpected arguments: ${rest.join(' ')}`);
  const slash = first.indexOf('/');
  if (slash >= 0) {
    if (second !== undefined) throw new UsageError(`Unexpected argument: ${second}`);
    const kind = kindNamed(first.slice(0, slash));
    const name = first.slice(slash + 1);
    if (!kind) throw new UsageError(`Unknown kind "${first.slice(0, slash)}": use ${KIND_WORDS}`);
    if (!name) throw new UsageError(`No name after "${first}"`);
    return { kind, name };
  }
  if (second === undefined) return { name: first };
  const kind = kindNamed(first);
  if (!kind) throw new UsageError(`Unknown kind "${first}": use ${KIND_WORDS}`);
  return { kind, name: second };
}
