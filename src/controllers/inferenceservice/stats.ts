// Reads the serving counters of a variant's ready replicas (GET /stats on each pod) and turns two
// reads of a pod into the demand it carried in between: mean requests in flight (the integral's
// difference over the time between them) and requests per second. The previous read of each pod
// is kept in memory only; after a restart the first read of a pod counts its requests in flight.
import { SERVING_ENDPOINTS, SERVING_PORT, type ServingStats } from '../../contract/serving.ts';
import { getJson } from '../../core/http-get.ts';

export interface ReplicaDemand {
  concurrency: number;
  rps: number;
  /** The model the replica reports it serves. */
  digest?: string;
}

export type FetchStats = (ip: string) => Promise<ServingStats | undefined>;

export async function fetchStats(ip: string): Promise<ServingStats | undefined> {
  try {
    return parseStats(
      await getJson(`http://${ip}:${SERVING_PORT}${SERVING_ENDPOINTS.stats}`, 1000),
    );
  } catch {
    return undefined;
  }
}

/** The fields the autoscaler needs, or undefined when the answer is not ServingStats. */
export function parseStats(v: unknown): ServingStats | undefined {
  if (v === null || typeof v !== 'object') return undefined;
  const o = v as Record<string, unknown>;
  const num = (k: string) =>
    typeof o[k] === 'number' && Number.isFinite(o[k]) && (o[k] as number) >= 0;
  if (
    !num('requestsTotal') ||
    !num('inFlight') ||
    !num('concurrencySecondsTotal') ||
    !num('uptimeSeconds')
  )
    return undefined;
  return v as ServingStats;
}

interface Last {
  requests: number;
  concurrencySeconds: number;
  uptime: number;
}

export class DemandReader {
  private readonly last = new Map<string, Last>();
  private readonly fetch: FetchStats;

  constructor(fetch: FetchStats = fetchStats) {
    this.fetch = fetch;
  }

  /** Demand of each pod (uid → demand) that answered; pods no longer asked about are forgotten. */
  async read(pods: { uid: string; ip: string }[]): Promise<Map<string, ReplicaDemand>> {
    const out = new Map<string, ReplicaDemand>();
    const answers = await Promise.all(pods.map((p) => this.fetch(p.ip)));
    const asked = new Set(pods.map((p) => p.uid));
    for (const uid of this.last.keys()) if (!asked.has(uid)) this.last.delete(uid);
    pods.forEach((p, i) => {
      const s = answers[i];
      if (!s) return;
      const prev = this.last.get(p.uid);
      this.last.set(p.uid, {
        requests: s.requestsTotal,
        concurrencySeconds: s.concurrencySecondsTotal,
        uptime: s.uptimeSeconds,
      });
      const dt = prev ? s.uptimeSeconds - prev.uptime : 0;
      // A first read, or a restarted process (its counters went back): what is in flight now.
      const fresh =
        !prev ||
        dt <= 0 ||
        s.requestsTotal < prev.requests ||
        s.concurrencySecondsTotal < prev.concurrencySeconds;
      out.set(p.uid, {
        concurrency: fresh
          ? s.inFlight
          : (s.concurrencySecondsTotal - prev.concurrencySeconds) / dt,
        rps: fresh ? 0 : (s.requestsTotal - prev.requests) / dt,
        ...(s.model?.digest ? { digest: s.model.digest } : {}),
      });
    });
    return out;
  }
}
