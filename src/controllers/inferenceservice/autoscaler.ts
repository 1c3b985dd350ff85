// The replicas a predictor needs, from its replicas' own counters (as Knative's autoscaler reads
// its queue-proxies; this cluster has no metrics-server, and raw KServe has no custom metrics).
// Pure over a window of samples: total demand (requests in flight, or requests per second, summed
// over the replicas) per scrape. The rules are Knative's KPA, simplified:
//   - desired = ceil(mean demand over the stable window / target per replica);
//   - panic: when the last tenth of the window already needs twice the ready replicas, scale to
//     that at once, and do not scale down while it lasts;
//   - scale-down: the highest recommendation of the last scaleDownDelay, and at most halving the
//     replicas in one step (a removed replica drains first, so no request is dropped);
//   - no decision until the window holds samples covering a tenth of it (after an operator
//     restart the window is empty: the replicas stay as they are).

export interface Sample {
  /** When it was taken (ms). */
  t: number;
  /** Total demand over the replicas in the interval that ended at t. */
  demand: number;
  /** Replicas that answered the scrape. */
  replicas: number;
}

export interface AutoscalerSettings {
  min: number;
  max: number;
  /** Demand one replica should carry. */
  target: number;
  windowMs: number;
  scaleDownDelayMs: number;
}

export interface Recommendation {
  desired: number;
  /** Mean demand per current replica over the window, for status and messages. */
  perReplica: number;
  panic: boolean;
  /** False when the window is too empty to decide (desired is then the current count). */
  decided: boolean;
}

/** Fraction of the window that is the panic window (Knative's default 10 %). */
const PANIC_FRACTION = 0.1;
/** Panic when the panic window needs this many times the ready replicas (Knative's 200 %). */
const PANIC_THRESHOLD = 2;
/** At most this factor fewer replicas per step (Knative's max-scale-down-rate). */
const MAX_SCALE_DOWN_RATE = 2;

export class Autoscaler {
  private samples: Sample[] = [];
  /** Recommendations (before the scale-down delay), for the delay's maximum. */
  private history: { t: number; desired: number }[] = [];
  private panicUntil = 0;
  /** When this autoscaler made its first decision. */
  private since: number | undefined;

  add(sample: Sample): void {
    this.samples.push(sample);
  }

  recommend(now: number, current: number, s: AutoscalerSettings): Recommendation {
    const clamp = (n: number) => Math.min(s.max, Math.max(s.min, n));
    this.samples = this.samples.filter((x) => x.t > now - s.windowMs);
    const stable = this.samples;
    const panicStart = now - s.windowMs * PANIC_FRACTION;
    const panicSamples = stable.filter((x) => x.t > panicStart);
    const covered = stable.length > 0 ? now - Math.min(...stable.map((x) => x.t)) : 0;
    if (stable.length === 0 || (covered < s.windowMs * PANIC_FRACTION && stable.length < 2))
      return { desired: clamp(current), perReplica: 0, panic: false, decided: false };
    const mean = (xs: Sample[]) => xs.reduce((a, x) => a + x.demand, 0) / xs.length;
    const stableDemand = mean(stable);
    const panicDemand = panicSamples.length > 0 ? mean(panicSamples) : stableDemand;
    const wantStable = Math.ceil(stableDemand / s.target - 1e-9);
    const wantPanic = Math.ceil(panicDemand / s.target - 1e-9);
    const ready = Math.max(1, stable.at(-1)?.replicas ?? current);
    if (wantPanic / ready >= PANIC_THRESHOLD) this.panicUntil = now + s.windowMs;
    const panic = now < this.panicUntil;
    let desired = panic ? Math.max(current, wantPanic, wantStable) : wantStable;
    this.history = this.history.filter((h) => h.t > now - s.scaleDownDelayMs);
    // Until this autoscaler has decided for a whole delay (a first decision, e.g. after a
    // restart), the recommendations it did not see are taken as the current replicas, so a
    // scale-down still waits the delay.
    if (this.since === undefined) {
      this.since = now;
      if (s.scaleDownDelayMs > 0) this.history.push({ t: now, desired: current });
    }
    this.history.push({ t: now, desired });
    if (desired < current) {
      desired = Math.max(desired, ...this.history.map((h) => h.desired));
      desired = Math.max(desired, Math.ceil(current / MAX_SCALE_DOWN_RATE));
    }
    return {
      desired: clamp(desired),
      perReplica: stableDemand / Math.max(1, current),
      panic,
      decided: true,
    };
  }
}
