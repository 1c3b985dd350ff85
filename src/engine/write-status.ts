// Step 7 of a reconcile for the small reconcilers that run no pods (a schedule, a campaign): the
// status built, its Events, in the engine's order. The final Event goes before the status that
// ends the object, so a leader that dies in between records it again at worst, never loses it.
import type { KubeClient } from '../core/client.ts';
import type { EventRecorder } from '../core/events.ts';
import type { ResourceType } from '../core/resources.ts';
import { applyStatus } from '../core/status.ts';
import { recordAcceptance } from './acceptance.ts';
import { type StatusBuilder, isFinished, phaseChanged, phaseEvent } from './status.ts';
import type { WorkloadObject } from './workload.ts';

export async function writeStatus(
  o: { client: KubeClient; events: EventRecorder; resource: ResourceType },
  obj: WorkloadObject,
  b: StatusBuilder,
): Promise<void> {
  const status = b.status;
  const before = obj.status?.phase;
  const changed = phaseChanged(before, status.phase);
  const finishing = changed && isFinished(status.phase);
  const record = (e: { type: 'Normal' | 'Warning'; reason: string; message: string }) =>
    o.events.record(obj, e.type, e.reason, e.message);
  if (finishing) await record(phaseEvent(status));
  await applyStatus(o.client, o.resource, obj, status);
  await recordAcceptance(o.events, obj, status);
  if (changed && !finishing) await record(phaseEvent(status));
  for (const e of b.events) await record(e);
}
