// The command line: `kubectl lepton [flags] COMMAND [args] [flags]`, flags anywhere as kubectl
// allows (kubectl hands a plugin every word after its name). Each command declares its own flags;
// the global ones (kubeconfig, context, namespace) are accepted by all.
import { parseArgs } from 'node:util';
import { UsageError } from './kinds.ts';

export interface FlagSpec {
  type: 'string' | 'boolean';
  short?: string;
  help: string;
  /** The value's placeholder in help (string flags). */
  value?: string;
}

export type FlagSpecs = Record<string, FlagSpec>;

export const GLOBAL_FLAGS: FlagSpecs = {
  kubeconfig: {
    type: 'string',
    value: 'PATH',
    help: 'kubeconfig file (default: KUBECONFIG, ~/.kube/config)',
  },
  context: { type: 'string', value: 'NAME', help: 'kubeconfig context to use' },
  namespace: {
    type: 'string',
    short: 'n',
    value: 'NS',
    help: "namespace (default: the context's)",
  },
  help: { type: 'boolean', short: 'h', help: 'show help' },
};

export interface Parsed {
  command: string | undefined;
  words: string[];
  flags: Record<string, string | boolean | undefined>;
}

/**
 * Parses `argv` against the union of every command's flags, then checks that the flags given
 * belong to the command found (the first word), so a flag may stand before or after it.
 */
export function parse(argv: readonly string[], commands: Record<string, FlagSpecs>): Parsed {
  const all: FlagSpecs = { ...GLOBAL_FLAGS };
  for (const specs of Object.values(commands)) Object.assign(all, specs);
  const options = Object.fromEntries(
    Object.entries(all).map(([name, f]) => [
      name,
      { type: f.type, ...(f.short ? { short: f.short } : {}) },
    ]),
  );
  let values: Record<string, string | boolean | undefined>;
  let positionals: string[];
  try {
    ({ values, positionals } = parseArgs({
      args: [...argv],
      options,
      allowPositionals: true,
      strict: true,
    }) as { values: Record<string, string | boolean | undefined>; positionals: string[] });
  } catch (err) {
    throw new UsageError((err as Error).message.replace(/\. To specify a positional.*$/s, ''));
  }
  const [command, ...words] = positionals;
  const own = command !== undefined ? commands[command] : undefined;
  if (own) {
    for (const name of Object.keys(values)) {
      if (!(name in GLOBAL_FLAGS) && !(name in own))
        throw new UsageError(`The flag --${name} does not apply to "${command}"`);
    }
  }
  return { command, words, flags: values };
}

/** A string flag's value, or undefined. */
export const str = (flags: Parsed['flags'], name: string): string | undefined => {
  const v = flags[name];
  return typeof v === 'string' ? v : undefined;
};

/** A non-negative integer flag's value, or undefined; anything else is a usage error. */
export function count(flags: Parsed['flags'], name: string): number | undefined {
  const v = str(flags, name);
  if (v === undefined) return undefined;
  if (!/^\d+$/.test(v)) throw new UsageError(`--${name} takes a whole number, not "${v}"`);
  return Number(v);
}

/** The flags of a command as help lines. */
export function flagHelp(specs: FlagSpecs): string {
  const lines = Object.entries(specs).map(([name, f]) => {
    const left = `${f.short ? `-${f.short}, ` : '    '}--${name}${f.value ? ` ${f.value}` : ''}`;
    return { left, help: f.help };
  });
  const width = Math.max(...lines.map((l) => l.left.length));
  return lines.map((l) => `  ${l.left.padEnd(width)}   ${l.help}\n`).join('');
}
