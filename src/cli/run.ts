// The commands of kubectl lepton and how one invocation runs: parse, connect, run, and an exit
// code with the error said plainly (src/cli/main.ts is the program).
import { type FlagSpecs, GLOBAL_FLAGS, type Parsed, flagHelp, parse, str } from './args.ts';
import {
  PROMOTE_FLAGS,
  PROMOTE_HELP,
  ROLLBACK_FLAGS,
  ROLLBACK_HELP,
  promoteCommand,
  rollbackCommand,
} from './canary.ts';
import { type Session, connect, describeError } from './connect.ts';
import { UsageError } from './kinds.ts';
import { LIST_FLAGS, LIST_HELP, listCommand } from './list.ts';
import { LOGS_FLAGS, LOGS_HELP, logsCommand } from './logs.ts';
import { WHY_HELP, whyCommand } from './why.ts';

interface Command {
  flags: FlagSpecs;
  help: string;
  summary: string;
  run(s: Session, p: Parsed): Promise<string | void>;
}

const COMMANDS: Record<string, Command> = {
  list: {
    flags: LIST_FLAGS,
    help: LIST_HELP,
    summary: 'list TrainingJobs, FederatedRounds, InferenceServices with progress and loss',
    run: (s, p) => listCommand(s, p, Date.now()),
  },
  why: {
    flags: {},
    help: WHY_HELP,
    summary: 'explain why an object is queued, failed, waiting or not ready',
    run: (s, p) => whyCommand(s, p, Date.now()),
  },
  logs: {
    flags: LOGS_FLAGS,
    help: LOGS_HELP,
    summary: "print (or follow, -f) the log of a job's chief pod",
    run: (s, p) => logsCommand(s, p, process.stdout),
  },
  promote: {
    flags: PROMOTE_FLAGS,
    help: PROMOTE_HELP,
    summary: "make an InferenceService's canary its model",
    run: promoteCommand,
  },
  rollback: {
    flags: ROLLBACK_FLAGS,
    help: ROLLBACK_HELP,
    summary: "remove an InferenceService's canary (or set its traffic to 0)",
    run: rollbackCommand,
  },
};

const ALIASES: Record<string, string> = { get: 'list', ls: 'list', describe: 'why' };

function mainHelp(): string {
  const width = Math.max(...Object.keys(COMMANDS).map((c) => c.length));
  return `kubectl lepton: see and steer the Lepton operator's TrainingJobs, FederatedRounds and
InferenceServices.

Usage:
  kubectl lepton COMMAND [args] [flags]

Commands:
${Object.entries(COMMANDS)
  .map(([name, c]) => `  ${name.padEnd(width)}   ${c.summary}`)
  .join('\n')}
  (get and describe are list and why)

Flags of every command:
${flagHelp(GLOBAL_FLAGS)}
It uses kubectl's configuration: KUBECONFIG or ~/.kube/config, its current context and
namespace. "kubectl lepton COMMAND --help" shows a command's flags.
`;
}

const commandHelp = (c: Command) =>
  `${c.help}${Object.keys(c.flags).length ? `\nFlags:\n${flagHelp(c.flags)}` : ''}\nGlobal flags:\n${flagHelp(GLOBAL_FLAGS)}`;

/** Runs one invocation; returns the exit code (0 done, 1 failed, 2 bad usage). */
export async function main(argv: readonly string[]): Promise<number> {
  const flagsOf = Object.fromEntries(
    [
      ...Object.entries(COMMANDS),
      ...Object.entries(ALIASES).map(([a, c]) => [a, COMMANDS[c]!] as const),
    ].map(([name, c]) => [name, c.flags]),
  );
  let session: Session | undefined;
  try {
    const p = parse(argv, flagsOf);
    const name = p.command === 'help' ? p.words[0] : p.command;
    const command = name !== undefined ? COMMANDS[ALIASES[name] ?? name] : undefined;
    if (p.command === 'help' || p.flags.help === true || p.command === undefined) {
      if (name !== undefined && !command) throw new UsageError(`Unknown command "${name}"`);
      process.stdout.write(command ? commandHelp(command) : mainHelp());
      return 0;
    }
    if (!command)
      throw new UsageError(
        `Unknown command "${p.command}": use ${Object.keys(COMMANDS).join(', ')}`,
      );
    session = connect({
      kubeconfig: str(p.flags, 'kubeconfig'),
      context: str(p.flags, 'context'),
      namespace: str(p.flags, 'namespace'),
      allNamespaces: p.flags['all-namespaces'] === true,
    });
    const out = await command.run(session, p);
    if (out) process.stdout.write(out);
    return 0;
  } catch (err) {
    if (err instanceof UsageError) {
      process.stderr.write(`error: ${err.message}\nSee 'kubectl lepton --help'.\n`);
      return 2;
    }
    process.stderr.write(`error: ${describeError(err, session)}\n`);
    return 1;
  }
}
