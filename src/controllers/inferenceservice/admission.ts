// GPU replicas of InferenceServices go through the one admission ledger that training jobs and
// federated rounds use, so a service and a job never count the same free GPU. A service holds,
// per variant, the replicas its Deployment asks for (one more while a surge replica rolls out),
// less those already bound to a node (which the ledger's capacity view counts). To grow, it asks
// the ledger for the replicas it lacks; when fewer fit, it takes as many as do. Serving replicas
// never queue ahead of jobs: a service that cannot grow keeps what it has and asks again.
import type { Variant } from '../../contract/serving.ts';
import type { Cache } from '../../core/informer.ts';
import { keyOf } from '../../core/resources.ts';
import {
  type PodObject,
  type PodSet,
  GPU_PRODUCT_LABEL,
  holds,
  podAmounts,
} from '../../scheduling/capacity.ts';
import type {
  AdmissionLedger,
  Admittable,
  Verdict,
  WorkloadSource,
} from '../../scheduling/ledger.ts';
import { type InferenceService, VARIANT_LABEL, gpuOf } from './builders.ts';

/** How long a grant counts before the Deployment in the cache must show it. */
const GRANT_MS = 60_000;

export interface Holding {
  predictor: number;
  canary: number;
}

export interface GrowResult {
  replicas: number;
  /** The ledger's verdict when it refused some of the replicas asked for. */
  refused?: Verdict;
}

export interface ServingAdmissionOptions {
  ledger: AdmissionLedger;
  services: Cache<InferenceService>;
  pods: Cache<PodObject>;
  /** What each variant's Deployment asks for now (replicas, plus one while a surge rolls). */
  holding: (s: InferenceService) => Holding;
  now: () => number;
  wake: (key: string) => void;
}

export class ServingAdmission {
  private readonly grants = new Map<string, { holding: Holding; until: number }>();

  private readonly o: ServingAdmissionOptions;

  constructor(opts: ServingAdmissionOptions) {
    this.o = opts;
  }

  source(): WorkloadSource {
    return {
      kind: 'InferenceService',
      list: () => {
        const out: Admittable[] = [];
        for (const s of this.o.services.list()) {
          if (gpuOf(s).count === 0 || s.metadata.deletionTimestamp) continue;
          const held = this.held(s);
          const sets = (['predictor', 'canary'] as const)
            .map((v) => this.podSet(s, v, held[v] - this.bound(s, v)))
            .filter((p) => p.count > 0);
          if (sets.length > 0) out.push(this.admittable(s, sets));
        }
        return out;
      },
      wake: (namespace, name) => this.o.wake(keyOf({ namespace, name })),
    };
  }

  /**
   * Admits up to `want` replicas of a GPU variant that holds `current` now (`surge`: one more pod
   * during the rollout). Shrinking needs nothing; growing takes as many as fit.
   */
  grow(s: InferenceService, v: Variant, current: number, want: number, surge: boolean): GrowResult {
    const extra = surge ? 1 : 0;
    if (gpuOf(s).count === 0 || want <= current) {
      this.grant(s, v, want + extra);
      return { replicas: want };
    }
    const bound = this.bound(s, v);
    let refused: Verdict | undefined;
    for (let n = want; n > current; n--) {
      const verdict = this.o.ledger.admit(
        this.admittable(s, this.withOther(s, v, this.podSet(s, v, Math.max(0, n + extra - bound)))),
      );
      if (verdict.admitted) {
        this.grant(s, v, n + extra);
        return { replicas: n, ...(refused ? { refused } : {}) };
      }
      refused ??= verdict;
    }
    this.grant(s, v, current + extra);
    return { replicas: current, ...(refused ? { refused } : {}) };
  }

  /** Whether one more replica (a surge) fits now; the grant is taken when it does. */
  trySurge(s: InferenceService, v: Variant, replicas: number): Verdict | undefined {
    if (gpuOf(s).count === 0) return undefined;
    const verdict = this.o.ledger.admit(
      this.admittable(
        s,
        this.withOther(s, v, this.podSet(s, v, Math.max(0, replicas + 1 - this.bound(s, v)))),
      ),
    );
    if (verdict.admitted) this.grant(s, v, replicas + 1);
    return verdict;
  }

  forget(uid: string): void {
    this.grants.delete(uid);
  }

  /**
   * The set asked for, with what the service's other variant holds and has not placed yet: the
   * ledger leaves a workload's own holdings out of what others hold, so both must be asked for
   * together or the two variants could be promised the same GPU.
   */
  private withOther(s: InferenceService, v: Variant, set: PodSet): PodSet[] {
    const other: Variant = v === 'predictor' ? 'canary' : 'predictor';
    const unplaced = this.held(s)[other] - this.bound(s, other);
    return unplaced > 0 ? [set, this.podSet(s, other, unplaced)] : [set];
  }

  private grant(s: InferenceService, v: Variant, n: number): void {
    const uid = s.metadata.uid ?? '';
    const now = this.o.now();
    const g = this.grants.get(uid);
    const holding = g && g.until > now ? { ...g.holding } : { predictor: 0, canary: 0 };
    holding[v] = n;
    this.grants.set(uid, { holding, until: now + GRANT_MS });
  }

  /** What the Deployments ask for, or a fresh grant the cache does not show yet, the larger. */
  private held(s: InferenceService): Holding {
    const fromDeployments = this.o.holding(s);
    const g = this.grants.get(s.metadata.uid ?? '');
    if (!g || g.until < this.o.now()) return fromDeployments;
    return {
      predictor: Math.max(fromDeployments.predictor, g.holding.predictor),
      canary: Math.max(fromDeployments.canary, g.holding.canary),
    };
  }

  /** Pods of the variant bound to a node and not ended: the capacity view counts them already. */
  private bound(s: InferenceService, v: Variant): number {
    let n = 0;
    for (const p of this.o.pods.list(s.metadata.namespace)) {
      const l = p.metadata.labels ?? {};
      if (l['lepton.ai/inferenceservice'] === s.metadata.name && l[VARIANT_LABEL] === v && holds(p))
        n++;
    }
    return n;
  }

  private podSet(s: InferenceService, v: Variant, count: number): PodSet {
    const gpu = gpuOf(s);
    const requests = podAmounts({
      metadata: {},
      spec: {
        containers: [
          {
            resources: {
              limits: { [gpu.resource]: String(gpu.count) },
              requests: {
                ...(s.spec.resources?.cpu !== undefined
                  ? { cpu: String(s.spec.resources.cpu) }
                  : {}),
                ...(s.spec.resources?.memory !== undefined
                  ? { memory: String(s.spec.resources.memory) }
                  : {}),
              },
            },
          },
        ],
      },
    } as PodObject);
    const { pods: _one, ...perPod } = requests;
    return {
      name: v,
      count,
      requests: perPod,
      nodeSelector: gpu.product ? { [GPU_PRODUCT_LABEL]: gpu.product } : {},
      tolerations: [{ key: gpu.resource, operator: 'Exists', effect: 'NoSchedule' }],
      podLabels: { [VARIANT_LABEL]: v },
    };
  }

  private admittable(s: InferenceService, podSets: PodSet[]): Admittable {
    return {
      uid: s.metadata.uid ?? '',
      namespace: s.metadata.namespace ?? '',
      name: s.metadata.name ?? '',
      kind: 'InferenceService',
      creationTimestamp: s.metadata.creationTimestamp ?? '',
      priorityClassName: s.spec.priorityClassName,
      podSets,
      // It holds what its Deployments ask for; it is never queued ahead of anyone.
      state: 'admitted',
    };
  }
}
