// Entry point of workload pods: `node src/runtime/main.ts MODE`, with MODE one of the contract's
// mode names. It only dispatches: each mode (modes/) reads the environment, runs, and returns
// the contract's exit code.
import { FEDERATED_MODES } from '../contract/federated.ts';
import { EXIT, MODES, type Mode } from '../contract/runtime.ts';
import { runAggregate } from './modes/aggregate.ts';
import { runFederatedClient } from './modes/federated-client.ts';
import { runFederatedUnmask } from './modes/federated-unmask.ts';
import { runServe } from './modes/serve.ts';
import { runTrain } from './modes/train.ts';

const RUN: Record<Mode, (env: NodeJS.ProcessEnv) => Promise<number>> = {
  [MODES.train]: runTrain,
  [FEDERATED_MODES.client]: runFederatedClient,
  [FEDERATED_MODES.unmask]: runFederatedUnmask,
  [FEDERATED_MODES.aggregate]: runAggregate,
  [MODES.serve]: runServe,
};

export async function main(argv: string[], env: NodeJS.ProcessEnv): Promise<number> {
  const mode = argv[0];
  if (!isMode(mode)) {
    process.stderr.write(
      `Usage: node src/runtime/main.ts ${Object.values(MODES).join('|')} (got ${mode ?? 'no mode'})\n`,
    );
    return EXIT.permanent;
  }
  return RUN[mode](env);
}

function isMode(mode: string | undefined): mode is Mode {
  return Object.values<string | undefined>(MODES).includes(mode);
}

process.exit(await main(process.argv.slice(2), process.env));
