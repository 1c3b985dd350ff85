// `kubectl lepton list KIND|all [NAME]`: a table per kind with progress, loss and traffic.
import { stringify } from 'yaml';
import type { FlagSpecs, Parsed } from './args.ts';
import { str } from './args.ts';
import { CliError, type Session, requireKinds } from './connect.ts';
import { KINDS, type Kind, UsageError, kindsOf } from './kinds.ts';
import { type FederatedRound, type LeptonObject, type TrainingJob, jobMode } from './objects.ts';
import { campaignLosses, tableOf } from './rows.ts';
import { renderTable } from './table.ts';

export const LIST_FLAGS: FlagSpecs = {
  'all-namespaces': { type: 'boolean', short: 'A', help: 'list in every namespace' },
  selector: { type: 'string', short: 'l', value: 'SELECTOR', help: 'label selector (a=b,c!=d)' },
  output: {
    type: 'string',
    short: 'o',
    value: 'FORMAT',
    help: 'wide (more columns), json or yaml (the objects as a v1 List)',
  },
};

export const LIST_HELP = `List TrainingJobs, FederatedRounds and InferenceServices with their progress.

Usage:
  kubectl lepton list (all | trainingjobs | federatedrounds | inferenceservices) [NAME] [flags]
  (get is the same command; kinds also by singular or short name: tj, fround, infsvc)

Columns:
  PROGRESS       epochs done of planned (a training), trials finished of numTrials (a
                 search), rounds committed of planned (a federated campaign)
  LOSS HISTORY   the training loss per epoch (of a campaign: the evaluation loss of each
                 committed round), lowest ▁ to highest █ (· marks a value that was not a
                 number)
  REPORTED       participants of a round whose update is in, of all participants
  ACCEPTED       updates aggregated, of the quorum needed
  TRAFFIC        the split between the model and the canary

Examples:
  kubectl lepton list all -A
  kubectl lepton list tj -n research -o wide
  kubectl lepton get infsvc fraud-model
`;

/** The objects of one kind (in one namespace, or all), optionally one name only. */
async function listKind(
  s: Session,
  kind: Kind,
  selector: string | undefined,
  name: string | undefined,
): Promise<LeptonObject[]> {
  const list = await s.client.listAll<LeptonObject>(kind.rt, {
    namespace: s.allNamespaces ? undefined : s.namespace,
    labelSelector: selector,
    fieldSelector: name ? `metadata.name=${name}` : undefined,
  });
  return list.items;
}

/**
 * The round losses of the federated campaigns among the TrainingJobs found, from the rounds
 * listed with them or, when only TrainingJobs were asked for, listed now.
 */
async function roundLosses(
  s: Session,
  kinds: readonly Kind[],
  found: readonly LeptonObject[][],
): Promise<Map<string, number[]> | undefined> {
  const jobs = found[kinds.findIndex((k) => k.kind === 'TrainingJob')] as TrainingJob[] | undefined;
  if (!jobs?.some((j) => jobMode(j) === 'federated')) return undefined;
  const at = kinds.findIndex((k) => k.kind === 'FederatedRound');
  const rounds =
    at >= 0
      ? found[at]
      : await listKind(
          s,
          KINDS.find((k) => k.kind === 'FederatedRound')!,
          undefined,
          undefined,
        ).catch(() => []);
  return campaignLosses((rounds ?? []) as FederatedRound[]);
}

export async function listCommand(s: Session, p: Parsed, now: number): Promise<string> {
  const [what, name, ...rest] = p.words;
  if (rest.length > 0) throw new UsageError(`Unexpected arguments: ${rest.join(' ')}`);
  const kinds = kindsOf(what);
  const output = str(p.flags, 'output');
  if (output !== undefined && !['wide', 'json', 'yaml'].includes(output))
    throw new UsageError(`--output must be wide, json or yaml, not "${output}"`);
  if (name && kinds.length > 1) throw new UsageError('A NAME needs one kind: list KIND NAME');
  await requireKinds(s, kinds);
  const selector = str(p.flags, 'selector');
  const found = await Promise.all(kinds.map((k) => listKind(s, k, selector, name)));
  const losses = await roundLosses(s, kinds, found);
  if (output === 'json' || output === 'yaml') {
    const doc = { apiVersion: 'v1', kind: 'List', items: found.flat() };
    return output === 'json' ? `${JSON.stringify(doc, null, 2)}\n` : stringify(doc);
  }
  const where = s.allNamespaces ? '' : ` in ${s.namespace} namespace`;
  if (name && found[0]?.length === 0)
    throw new CliError(`${kinds[0]!.kind} "${name}" not found${where}`);
  const tables = kinds
    .map((k, i) => ({ k, items: found[i] ?? [] }))
    .filter((t) => t.items.length > 0)
    .map(({ k, items }) => {
      const sorted = [...items].sort(
        (a, b) =>
          (a.metadata.namespace ?? '').localeCompare(b.metadata.namespace ?? '') ||
          (a.metadata.name ?? '').localeCompare(b.metadata.name ?? ''),
      );
      const t = tableOf(k, sorted, {
        now,
        wide: output === 'wide',
        namespaces: s.allNamespaces,
        qualified: kinds.length > 1,
        campaignLosses: losses,
      });
      return renderTable(t.columns, t.rows);
    });
  if (tables.length === 0) {
    process.stderr.write(`No resources found${where}.\n`);
    return '';
  }
  return tables.join('\n');
}
