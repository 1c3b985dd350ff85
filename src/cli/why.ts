// `kubectl lepton why NAME` (also `describe`): reads the object, its pods and the Events about
// them, and says why it is where it is (src/cli/explain.ts).
import type { KubeClient } from '../core/client.ts';
import type { ResourceType } from '../core/resources.ts';
import type { Parsed } from './args.ts';
import type { Session } from './connect.ts';
import { type CoreEvent, explain } from './explain.ts';
import { podsOf } from './pods.ts';
import { resolve } from './resolve.ts';

export const WHY_HELP = `Explain why an object is in its phase: why a job is queued (the admission
verdict: which GPUs it waits for), why it failed (the failure, the pods' termination
messages), what a round waits for, why a service does not answer; with its conditions,
pods and recent Events.

Usage:
  kubectl lepton why [KIND/]NAME
  (describe is the same command)

Examples:
  kubectl lepton why mnist
  kubectl lepton why fround/campaign-round-2 -n research
`;

/** core/v1 Events, which carry the events.k8s.io/v1 ones too and select by involvedObject. */
const CORE_EVENTS: ResourceType = {
  group: '',
  version: 'v1',
  plural: 'events',
  kind: 'Event',
  namespaced: true,
};

/** Pods whose Events are read besides the object's (the rest would be one request each). */
const MAX_PODS_WITH_EVENTS = 8;

async function eventsAbout(
  client: KubeClient,
  namespace: string,
  uids: readonly string[],
): Promise<CoreEvent[]> {
  const lists = await Promise.all(
    uids.map((uid) =>
      client.list<CoreEvent & { metadata: object }>(CORE_EVENTS, {
        namespace,
        fieldSelector: `involvedObject.uid=${uid}`,
      }),
    ),
  );
  return lists.flatMap((l) => l.items);
}

export async function whyCommand(s: Session, p: Parsed, now: number): Promise<string> {
  const { kind, obj } = await resolve(s, p.words, 'why');
  const pods = await podsOf(s.client, kind, obj);
  const uids = [obj, ...pods.slice(0, MAX_PODS_WITH_EVENTS)]
    .map((o) => o.metadata.uid)
    .filter((u): u is string => Boolean(u));
  // Events are evidence, not the answer: a user who may not list them still gets the rest.
  const events = await eventsAbout(s.client, s.namespace, uids).catch(() => []);
  return explain({ kind, obj, pods, events, now });
}
