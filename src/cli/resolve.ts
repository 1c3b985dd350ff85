// The object a command is about: `KIND/NAME`, `KIND NAME`, or a bare NAME looked up in every
// kind the command accepts (it must name exactly one object).
import { isNotFound } from '../core/client.ts';
import { CliError, type Session, requireKinds } from './connect.ts';
import { KINDS, type Kind, UsageError, objectRef } from './kinds.ts';
import type { LeptonObject } from './objects.ts';

export interface Resolved {
  kind: Kind;
  obj: LeptonObject;
}

export async function resolve(
  s: Session,
  words: readonly string[],
  command: string,
  accepted: readonly Kind[] = KINDS,
): Promise<Resolved> {
  const ref = objectRef(words);
  if (ref.kind && !accepted.includes(ref.kind)) {
    throw new UsageError(
      `${command} works on ${accepted.map((k) => k.rt.plural).join(', ')}, not ${ref.kind.rt.plural}`,
    );
  }
  const kinds = ref.kind ? [ref.kind] : accepted;
  await requireKinds(s, kinds);
  const found = await Promise.all(
    kinds.map(async (kind) => {
      try {
        const obj = await s.client.get<LeptonObject>(kind.rt, s.namespace, ref.name);
        return { kind, obj };
      } catch (err) {
        if (isNotFound(err)) return undefined;
        throw err;
      }
    }),
  );
  const hits = found.filter((f): f is Resolved => f !== undefined);
  const what = kinds.map((k) => k.kind).join(' or ');
  if (hits.length === 0)
    throw new CliError(`No ${what} named "${ref.name}" in namespace ${s.namespace}`);
  if (hits.length > 1) {
    throw new CliError(
      `"${ref.name}" names ${hits.map((h) => `a ${h.kind.kind}`).join(' and ')} in namespace ${s.namespace}: say which, e.g. ${hits[0]!.kind.singular}/${ref.name}`,
    );
  }
  return hits[0]!;
}
