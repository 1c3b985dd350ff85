// How the clients of a round decide a set without an aggregator to decide it (the aggregator pod
// only starts once the updates are in): who takes part, who advertised keys in time (U1), who
// shared secrets in time (U2). Each client writes its own signed entry; the first client that has
// waited long enough (every candidate's entry is there, or the window has passed with at least
// `min` of them) builds the decision from the entries it saw and creates the decision file
// exclusively. Every client then takes that file, whoever wrote it: one file in one store, so all
// see the same set (the consistency Bonawitz et al.'s active-adversary variant gets from a round
// of its own). The decision carries the entries themselves, each signed by its sender, so its
// readers check every one of them again and its writer can only leave entries out, never forge.
import type { KeyObject } from 'node:crypto';
import { PermanentError } from '../errors.ts';
import { BadMessageError, type Identity, openMessage, signMessage } from './identity.ts';
import { type Waiting, createOnce, poll, readIfPresent } from './store.ts';

/** One step's decision, as its readers see it. */
export interface Decided {
  /** In the order of the round's participants. */
  members: string[];
}

export interface Stage<D extends Decided> {
  /** Names the step in messages: "roster", "keys", "sharers". */
  name: string;
  /** Who may be in the set, in order: the participants, or the members of the previous set. */
  candidates: readonly string[];
  entryPath(candidate: string): string;
  decisionPath: string;
  /** Throws when an entry is not a valid one of `candidate` (then it does not count). */
  checkEntry(candidate: string, text: string): void;
  /** Fewest members the set may have: the secure-aggregation threshold. */
  min: number;
  /** The decision's text from the valid entries seen (in candidate order). */
  build(entries: ReadonlyMap<string, string>): string;
  /**
   * The decision in `text`; undefined when it is not whole yet (a file system without hard links
   * shows it half written), a PermanentError when it is invalid (it cannot be replaced).
   */
  read(text: string): D | undefined;
}

export interface Timing {
  /** How long to wait for every candidate before going on with at least `min`. */
  windowMs: number;
  waiting: Waiting;
}

/** Waits for the step's decision, writing it if this client gets there first. */
export async function decide<D extends Decided>(stage: Stage<D>, timing: Timing): Promise<D> {
  const now = timing.waiting.now ?? Date.now;
  const windowEnds = Math.min(now() + timing.windowMs, timing.waiting.deadline);
  let seen = new Map<string, string>();
  const decided = await poll(async () => {
    const existing = await readDecision(stage);
    if (existing) return existing;
    seen = await validEntries(stage);
    const everyone = seen.size === stage.candidates.length;
    if (!everyone && (now() < windowEnds || seen.size < stage.min)) return undefined;
    await createOnce(stage.decisionPath, stage.build(seen));
    // Whether this client created it or lost the race to another, the file is the decision.
    return readDecision(stage);
  }, timing.waiting);
  if (decided) return decided;
  const missing = stage.candidates.filter((c) => !seen.has(c));
  throw new PermanentError(
    `Secure aggregation (${stage.name}): ${seen.size} of ${stage.candidates.length} participants were in by the deadline, it needs ${stage.min} (missing: ${missing.join(', ')})`,
  );
}

/** The step's decision once its file is there and whole. */
export async function readDecision<D extends Decided>(
  stage: Pick<Stage<D>, 'decisionPath' | 'read'>,
): Promise<D | undefined> {
  const text = await readIfPresent(stage.decisionPath);
  return text === undefined ? undefined : stage.read(text.toString('utf8'));
}

async function validEntries<D extends Decided>(stage: Stage<D>): Promise<Map<string, string>> {
  const found = new Map<string, string>();
  for (const candidate of stage.candidates) {
    const text = (await readIfPresent(stage.entryPath(candidate)))?.toString('utf8');
    if (text === undefined) continue;
    try {
      stage.checkEntry(candidate, text);
      found.set(candidate, text);
    } catch {
      // Not (yet) a valid entry of this candidate: half written, a forgery, or a leftover.
    }
  }
  return found;
}

/** A decision of our own making: the signed entries of the members, signed by its writer. */
export interface SignedSet extends Decided {
  writer: string;
  entries: Map<string, string>;
}

interface SignedSetBody {
  round: string;
  stage: string;
  members: string[];
  entries: Record<string, string>;
}

const SIGNED_SET = 'SecAggSet';

/** build and read for a step whose decision is a SignedSet. */
export function signedSet(
  stage: Pick<Stage<SignedSet>, 'name' | 'candidates' | 'decisionPath' | 'checkEntry' | 'min'>,
  round: string,
  peers: ReadonlyMap<string, KeyObject>,
  identity?: Identity,
): Pick<Stage<SignedSet>, 'build' | 'read'> {
  const where = `${stage.decisionPath}`;
  return {
    build: (entries) => {
      if (identity === undefined) throw new Error(`Only a participant writes ${where}`);
      const members = stage.candidates.filter((c) => entries.has(c));
      const body: SignedSetBody = {
        round,
        stage: stage.name,
        members,
        entries: Object.fromEntries(members.map((m) => [m, entries.get(m)!])),
      };
      return signMessage(identity, SIGNED_SET, body);
    },
    read: (text) => {
      let opened;
      try {
        opened = openMessage<SignedSetBody>(text, SIGNED_SET, peers, stage.candidates);
      } catch (err) {
        if (err instanceof BadMessageError && /not JSON/.test(err.message)) return undefined;
        throw new PermanentError(`${where}: ${(err as Error).message}`);
      }
      const { body, signer } = opened;
      if (body.round !== round || body.stage !== stage.name)
        throw new PermanentError(`${where} is the ${body.stage} of round ${body.round}`);
      const members = stage.candidates.filter((c) => body.members.includes(c));
      if (members.length !== body.members.length)
        throw new PermanentError(`${where} (by ${signer}) lists unknown or repeated members`);
      if (members.length < stage.min)
        throw new PermanentError(
          `${where} (by ${signer}) lists ${members.length} members, fewer than ${stage.min}`,
        );
      const entries = new Map<string, string>();
      for (const m of members) {
        const entry = body.entries[m];
        try {
          if (typeof entry !== 'string') throw new Error('it is missing');
          stage.checkEntry(m, entry);
        } catch (err) {
          throw new PermanentError(
            `${where} (by ${signer}) carries a bad entry of ${m}: ${(err as Error).message}`,
          );
        }
        entries.set(m, entry);
      }
      return { writer: signer, members, entries };
    },
  };
}
