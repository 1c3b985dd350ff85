// Records events.k8s.io/v1 Events about our objects, as `kubectl describe` and `kubectl events`
// show them. Best effort: a failed Event never fails a reconcile. The same event for the same
// object is recorded once per window, so a reconcile that repeats itself does not flood etcd.
import type { Logger } from 'winston';
import type { KubeClient } from './client.ts';
import type { Clock } from './clock.ts';
import { microTime } from './leader.ts';
import { type KubeObject, Resources } from './resources.ts';

export type EventType = 'Normal' | 'Warning';

export interface EventRecorderOptions {
  client: KubeClient;
  controller: string;
  instance: string;
  logger: Logger;
  clock: Clock;
  dedupeWindowMs?: number;
}

export class EventRecorder {
  private readonly o: EventRecorderOptions;
  private readonly recent = new Map<string, number>();

  constructor(opts: EventRecorderOptions) {
    this.o = opts;
  }

  async record(
    obj: KubeObject,
    type: EventType,
    reason: string,
    message: string,
    action = reason,
  ): Promise<void> {
    const now = this.o.clock.now();
    const window = this.o.dedupeWindowMs ?? 10 * 60_000;
    const dedupeKey = `${obj.metadata.uid}\u0000${type}\u0000${reason}\u0000${message}`;
    const last = this.recent.get(dedupeKey);
    if (last !== undefined && now - last < window) return;
    const { namespace = 'default', name = '', uid, resourceVersion } = obj.metadata;
    try {
      await this.o.client.create(Resources.Event, {
        apiVersion: 'events.k8s.io/v1',
        kind: 'Event',
        metadata: {
          namespace,
          name: `${name}.${now.toString(16)}${Math.floor(Math.random() * 0xfff).toString(16)}`,
        },
        eventTime: microTime(now),
        type,
        reason,
        action,
        note: message.slice(0, 1024),
        reportingController: this.o.controller,
        reportingInstance: this.o.instance,
        regarding: {
          apiVersion: obj.apiVersion,
          kind: obj.kind,
          namespace,
          name,
          uid,
          resourceVersion,
        },
      } as KubeObject);
      // Remembered only once recorded, so a failed attempt does not silence the next one.
      this.recent.set(dedupeKey, now);
      if (this.recent.size > 10_000) this.prune(now, window);
    } catch (err) {
      this.o.logger.warn('Failed to record an Event', {
        namespace,
        name,
        reason,
        error: (err as Error).message,
      });
    }
  }

  private prune(now: number, window: number): void {
    for (const [k, t] of this.recent) if (now - t >= window) this.recent.delete(k);
  }
}
