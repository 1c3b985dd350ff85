// kubectl lepton: the kubectl plugin of the Lepton operator (bin/kubectl-lepton runs this file).
// kubectl finds any executable named kubectl-* on PATH and hands it the words after the plugin's
// name, so `kubectl lepton list all -A` runs `kubectl-lepton list all -A`.
import { main } from './run.ts';

// A reader that goes away (`| head`) ends the output, not the program with a stack trace.
process.stdout.on('error', (err: NodeJS.ErrnoException) => {
  if (err.code === 'EPIPE') process.exit(0);
  throw err;
});

process.exitCode = await main(process.argv.slice(2));
