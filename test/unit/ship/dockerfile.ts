// A small reader of our Dockerfile: global ARGs, stages (FROM ... AS), and per stage the
// instructions the tests need (COPY, RUN, ENV, USER, WORKDIR, EXPOSE, ENTRYPOINT, CMD), with what
// a stage inherits from the stage it is built FROM. Enough for the one file it reads, not all of
// the Dockerfile syntax (no heredocs, no escape directive, no ONBUILD).

export interface Instruction {
  keyword: string;
  args: string;
  /** 1-based line where the instruction starts. */
  line: number;
}

export interface Stage {
  name: string | undefined;
  /** The image or stage name after FROM, with global ARGs substituted. */
  from: string;
  instructions: Instruction[];
}

export interface Copy {
  from: string | undefined;
  sources: string[];
  dest: string;
}

/** An exec-form ENTRYPOINT or CMD (a JSON array), or the shell form as written. */
export type Command = { exec: string[] } | { shell: string };

export class Dockerfile {
  readonly globalArgs: Record<string, string>;
  readonly stages: Stage[];

  constructor(text: string) {
    const { globalArgs, stages } = parse(text);
    this.globalArgs = globalArgs;
    this.stages = stages;
  }

  stage(name: string): Stage {
    const stage = this.stages.find((s) => s.name === name);
    if (!stage)
      throw new Error(
        `The Dockerfile has no stage "${name}" (stages: ${this.stages.map((s) => s.name ?? '(unnamed)').join(', ')})`,
      );
    return stage;
  }

  /** The stage, preceded by the stages it is built FROM, oldest first. */
  lineage(name: string): Stage[] {
    const chain: Stage[] = [];
    for (let s: Stage | undefined = this.stage(name); s;) {
      if (chain.includes(s)) throw new Error(`Stage ${name} is built FROM itself`);
      chain.unshift(s);
      const base: string = s.from;
      s = this.stages.find((x) => x.name === base);
    }
    return chain;
  }

  /** The external image a stage starts from, through the stages it is built FROM. */
  baseImage(name: string): string {
    return this.lineage(name)[0]?.from ?? '';
  }

  private last(name: string, keyword: string): Instruction | undefined {
    return this.lineage(name)
      .flatMap((s) => s.instructions)
      .filter((i) => i.keyword === keyword)
      .at(-1);
  }

  /** USER of the stage as written, inherited from the stages it is built FROM. */
  user(name: string): string | undefined {
    return this.last(name, 'USER')?.args;
  }

  entrypoint(name: string): Command | undefined {
    const i = this.last(name, 'ENTRYPOINT');
    return i && command(i);
  }

  cmd(name: string): Command | undefined {
    const i = this.last(name, 'CMD');
    return i && command(i);
  }

  workdir(name: string): string | undefined {
    return this.last(name, 'WORKDIR')?.args;
  }

  env(name: string): Record<string, string> {
    const env: Record<string, string> = {};
    for (const i of this.lineage(name).flatMap((s) => s.instructions))
      if (i.keyword === 'ENV') Object.assign(env, envPairs(i));
    return env;
  }

  expose(name: string): number[] {
    return this.lineage(name)
      .flatMap((s) => s.instructions)
      .filter((i) => i.keyword === 'EXPOSE')
      .flatMap((i) => i.args.split(/\s+/).map((p) => Number(p.replace(/\/tcp$/, ''))));
  }

  /** COPY instructions of the stage itself (not inherited: they are its own build steps). */
  copies(name: string): Copy[] {
    return this.stage(name)
      .instructions.filter((i) => i.keyword === 'COPY')
      .map(copy);
  }

  runs(name: string): string[] {
    return this.stage(name)
      .instructions.filter((i) => i.keyword === 'RUN')
      .map((i) => i.args);
  }
}

function parse(text: string): { globalArgs: Record<string, string>; stages: Stage[] } {
  const globalArgs: Record<string, string> = {};
  const stages: Stage[] = [];
  for (const i of instructions(text)) {
    if (i.keyword === 'FROM') {
      const words = i.args.split(/\s+/).filter((w) => !w.startsWith('--'));
      const [image, as, name, ...rest] = words;
      if (!image || (as !== undefined && (as.toUpperCase() !== 'AS' || !name)) || rest.length)
        throw new Error(`Dockerfile line ${i.line}: cannot read "FROM ${i.args}"`);
      stages.push({ name, from: substitute(image, globalArgs, i.line), instructions: [] });
    } else if (stages.length === 0) {
      if (i.keyword !== 'ARG')
        throw new Error(`Dockerfile line ${i.line}: ${i.keyword} before the first FROM`);
      const [key, value = ''] = splitOnce(i.args, '=');
      globalArgs[key] = value;
    } else stages.at(-1)?.instructions.push(i);
  }
  return { globalArgs, stages };
}

/** Instructions with their continuation lines joined; comments and blank lines dropped. */
function instructions(text: string): Instruction[] {
  const out: Instruction[] = [];
  let pending: { text: string; line: number } | undefined;
  text.split('\n').forEach((raw, n) => {
    const line = raw.trim();
    if (line.startsWith('#') || line === '') return;
    const continued = line.endsWith('\\');
    const part = continued ? line.slice(0, -1).trim() : line;
    pending = pending
      ? { ...pending, text: `${pending.text} ${part}` }
      : { text: part, line: n + 1 };
    if (continued) return;
    const [keyword = '', args = ''] = splitOnce(pending.text, ' ');
    out.push({ keyword: keyword.toUpperCase(), args: args.trim(), line: pending.line });
    pending = undefined;
  });
  if (pending)
    throw new Error(`Dockerfile line ${pending.line}: the last instruction ends with \\`);
  return out;
}

function splitOnce(text: string, sep: string): [string, string?] {
  const at = text.indexOf(sep);
  return at < 0 ? [text] : [text.slice(0, at), text.slice(at + sep.length)];
}

function substitute(word: string, args: Record<string, string>, line: number): string {
  return word.replace(
    /\$\{(\w+)\}|\$(\w+)/g,
    (_m, a: string | undefined, b: string | undefined) => {
      const key = a ?? b ?? '';
      const value = args[key];
      if (value === undefined)
        throw new Error(`Dockerfile line ${line}: ARG ${key} is not declared`);
      return value;
    },
  );
}

function command(i: Instruction): Command {
  if (!i.args.startsWith('[')) return { shell: i.args };
  const parsed: unknown = JSON.parse(i.args);
  if (!Array.isArray(parsed) || !parsed.every((w) => typeof w === 'string'))
    throw new Error(`Dockerfile line ${i.line}: ${i.keyword} is not a JSON array of strings`);
  return { exec: parsed };
}

function envPairs(i: Instruction): Record<string, string> {
  const pairs: Record<string, string> = {};
  for (const word of i.args.match(/\S+="[^"]*"|\S+/g) ?? []) {
    const [key, value] = splitOnce(word, '=');
    if (value === undefined)
      throw new Error(`Dockerfile line ${i.line}: write ENV as KEY=value (got "${word}")`);
    pairs[key] = value.replace(/^"(.*)"$/, '$1');
  }
  return pairs;
}

function copy(i: Instruction): Copy {
  const words = i.args.split(/\s+/);
  const flags = words.filter((w) => w.startsWith('--'));
  const paths = words.filter((w) => !w.startsWith('--'));
  const dest = paths.pop();
  if (!dest || paths.length === 0)
    throw new Error(`Dockerfile line ${i.line}: COPY needs a source and a destination`);
  const from = flags.find((f) => f.startsWith('--from='))?.slice('--from='.length);
  return { from, sources: paths, dest };
}
