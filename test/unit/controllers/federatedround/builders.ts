// Fluent builders of what the round planner reads, in the style of test/unit/engine/builders.ts:
//   round('r').participants('a', 'b', 'c').quorum(2).training(0).obj()
//   clientPod('r', 'a').reported(report('a', 10)).obj()
//   aggregatorPod('r').succeeded(result('r', ['a', 'b'])).obj()
// The shapes are the ones the kwok integration test (test/integration/federatedround.test.ts)
// sees on a cluster: role and participant labels, the `train` container's termination message.
import { FEDERATED_CONTAINERS } from '../../../../src/contract/federated.ts';
import type { KubeObject } from '../../../../src/core/resources.ts';
import {
  type FederatedRound,
  PARTICIPANT_LABEL,
  type Participant,
  type ParticipantStatus,
  ROLES,
  type RoundStatus,
  identitySecret,
  signers,
} from '../../../../src/controllers/federatedround/builders.ts';
import { JOB_NAME_LABEL, ROLE_LABEL } from '../../../../src/engine/labels.ts';
import type { ContainerState, Pod } from '../../../../src/engine/pods.ts';

export const T0 = Date.parse('2026-12-01T10:00:00Z');
export const at = (secondsAfterT0: number): string =>
  new Date(T0 + secondsAfterT0 * 1000).toISOString().replace(/\.\d{3}Z$/, 'Z');

export const DIGEST = `sha256:${'ab'.repeat(32)}`;
export const MODEL_DIGEST = `sha256:${'cd'.repeat(32)}`;
export const outputOf = (name: string) => `file:///var/lib/lepton/${name}`;

class RoundBuilder {
  private readonly r: FederatedRound;

  constructor(name: string) {
    this.r = {
      apiVersion: 'lepton.ai/v1alpha1',
      kind: 'FederatedRound',
      metadata: {
        name,
        namespace: 'ns',
        uid: `uid-${name}`,
        generation: 1,
        creationTimestamp: at(0),
      },
      spec: {
        model: { preset: 'mlp', hiddenUnits: [8] },
        participants: [],
        timeoutSeconds: 120,
        localTraining: { epochs: 1 },
        output: { uri: outputOf(name) },
      } as unknown as FederatedRound['spec'],
    };
  }

  private status(patch: Partial<RoundStatus>): this {
    this.r.status = { ...this.r.status, ...patch };
    return this;
  }

  participants(...names: string[]): this {
    this.r.spec.participants = names.map((name, i) => ({
      name,
      dataset: { synthetic: { generator: 'blobs', seed: i + 1 } },
    })) as Participant[];
    return this;
  }

  /** Where participant `name` runs: its site's node selector and tolerations. */
  site(name: string, placement: Pick<Participant, 'nodeSelector' | 'tolerations'>): this {
    const p = this.r.spec.participants.find((x) => x.name === name);
    if (!p) throw new Error(`no participant ${name}: call participants() first`);
    Object.assign(p, placement);
    return this;
  }

  quorum(n: number): this {
    this.r.spec.minParticipants = n;
    return this;
  }

  timeout(seconds: number): this {
    this.r.spec.timeoutSeconds = seconds;
    return this;
  }

  waitAfterQuorum(seconds: number): this {
    this.r.spec.waitAfterQuorumSeconds = seconds;
    return this;
  }

  secure(): this {
    this.r.spec.privacy = { ...this.r.spec.privacy, secureAggregation: {} };
    return this;
  }

  differentialPrivacy(noiseMultiplier: number, delta = 1e-5): this {
    this.r.spec.privacy = {
      ...this.r.spec.privacy,
      differentialPrivacy: { clippingNorm: 1, noiseMultiplier, delta },
    };
    return this;
  }

  /** Admitted by the engine `since` seconds after T0 (the deadline counts from startTime). */
  training(since = 0): this {
    return this.status({
      phase: 'Training',
      startTime: at(since),
      conditions: [
        {
          type: 'Admitted',
          status: 'True',
          reason: 'GangAdmitted',
          message: '',
          lastTransitionTime: at(since),
          observedGeneration: 1,
        },
      ],
    });
  }

  quorumAt(secondsAfterT0: number): this {
    return this.status({ quorumTime: at(secondsAfterT0) });
  }

  aggregating(): this {
    return this.status({ phase: 'Aggregating' });
  }

  /** What an earlier reconcile wrote of participant `name`. */
  stored(
    name: string,
    state: ParticipantStatus['state'],
    extra: Partial<ParticipantStatus> = {},
  ): this {
    const rest = (this.r.status?.participants ?? []).filter((p) => p.name !== name);
    return this.status({
      participants: [
        ...rest,
        { name, state, pod: `${this.r.metadata.name}-client-${name}`, ...extra },
      ],
    });
  }

  /** A participant whose report was read: its digest and sample count. */
  reported(name: string, samples: number, digest = DIGEST): this {
    return this.stored(name, 'Reported', {
      samples,
      updateDigest: digest,
      reportTime: at(5),
    } as Partial<ParticipantStatus>);
  }

  obj(): FederatedRound {
    return structuredClone(this.r);
  }
}

export const round = (name: string): RoundBuilder => new RoundBuilder(name);

type Status = NonNullable<Pod['status']> & {
  initContainerStatuses?: { name?: string; state?: ContainerState }[];
  containerStatuses?: { name?: string; ready?: boolean; state?: ContainerState }[];
};
export type RoundPod = Pod & { status?: Status };

class RoundPodBuilder {
  private readonly pod: RoundPod;
  private readonly role: string;
  private secureMode = false;

  constructor(roundName: string, participant?: string) {
    this.role = participant === undefined ? ROLES.aggregator : ROLES.client;
    this.pod = {
      apiVersion: 'v1',
      kind: 'Pod',
      metadata: {
        name:
          participant === undefined
            ? `${roundName}-aggregator`
            : `${roundName}-client-${participant}`,
        namespace: 'ns',
        uid: `pod-${roundName}-${participant ?? 'aggregator'}`,
        creationTimestamp: at(1),
        labels: {
          [JOB_NAME_LABEL]: roundName,
          [ROLE_LABEL]: this.role,
          ...(participant === undefined ? {} : { [PARTICIPANT_LABEL]: participant }),
        },
        ownerReferences: [
          {
            apiVersion: 'lepton.ai/v1alpha1',
            kind: 'FederatedRound',
            name: roundName,
            uid: `uid-${roundName}`,
            controller: true,
          },
        ],
      },
      spec: { nodeName: 'n0' },
      status: { phase: 'Pending' },
    };
  }

  private get main(): string {
    if (this.role === ROLES.aggregator) return FEDERATED_CONTAINERS.aggregate;
    return this.secureMode ? FEDERATED_CONTAINERS.unmask : FEDERATED_CONTAINERS.train;
  }

  /**
   * A client pod of a round with secure aggregation: `train` is its init container and the main
   * container (`unmask`) runs on after it reported. Call before the state methods.
   */
  secure(): this {
    this.secureMode = true;
    return this;
  }

  /** The `train` container in `state`, with the pod phase the kubelet shows for it. */
  private train(state: ContainerState, phase: string): this {
    if (this.secureMode) {
      const ended = state.terminated !== undefined;
      const ok = ended && state.terminated?.exitCode === 0;
      this.pod.status = {
        // Init containers run while the pod is Pending; after them the main container runs.
        phase: ok ? 'Running' : ended ? 'Failed' : phase === 'Running' ? 'Pending' : phase,
        initContainerStatuses: [{ name: FEDERATED_CONTAINERS.train, state }],
        containerStatuses: [
          {
            name: FEDERATED_CONTAINERS.unmask,
            state: ok
              ? { running: { startedAt: at(6) } }
              : { waiting: { reason: 'PodInitializing' } },
          },
        ],
      };
      return this;
    }
    this.pod.status = { phase, containerStatuses: [{ name: this.main, state }] };
    return this;
  }

  running(): this {
    return this.train({ running: { startedAt: at(2) } }, 'Running');
  }

  waiting(reason: string, message = ''): this {
    return this.train({ waiting: { reason, message } }, 'Pending');
  }

  unscheduled(message = '0/4 nodes are available'): this {
    this.pod.spec = {};
    this.pod.status = {
      phase: 'Pending',
      conditions: [{ type: 'PodScheduled', status: 'False', reason: 'Unschedulable', message }],
    };
    return this;
  }

  /** Exit 0 with `message` as the termination message (a report, or the aggregator's result). */
  succeeded(message?: string): this {
    return this.train({ terminated: { exitCode: 0, message } }, 'Succeeded');
  }

  reported(message: string): this {
    return this.succeeded(message);
  }

  exited(exitCode: number, message?: string, reason = 'Error'): this {
    return this.train({ terminated: { exitCode, reason, message } }, 'Failed');
  }

  deleting(): this {
    this.pod.metadata.deletionTimestamp = at(5);
    return this;
  }

  obj(): RoundPod {
    return structuredClone(this.pod);
  }
}

export const clientPod = (roundName: string, participant: string): RoundPodBuilder =>
  new RoundPodBuilder(roundName, participant);
export const aggregatorPod = (roundName: string): RoundPodBuilder => new RoundPodBuilder(roundName);

/** A client's termination message; `patch` overrides or removes (undefined) fields. */
export function report(participant: string, samples: number, patch: Record<string, unknown> = {}) {
  return JSON.stringify({
    participant,
    samples,
    loss: 0.5,
    accuracy: 0.8,
    update: { digest: DIGEST, bytes: 1024 },
    ...patch,
  });
}

/** The aggregator's termination message for round `name`. */
export function result(
  name: string,
  accepted: string[],
  patch: Record<string, unknown> = {},
): string {
  return JSON.stringify({
    model: { uri: outputOf(name), digest: MODEL_DIGEST },
    metrics: { loss: 0.4, accuracy: 0.85, aggregationSeconds: 0.02 },
    accepted,
    rejected: [],
    bytes: 1024 * accepted.length,
    ...patch,
  });
}

/** Every signer's identity Secret, as the operator creates them (ours: owner reference, label). */
export function identities(r: FederatedRound): KubeObject[] {
  return signers(r).map((s) => identitySecret(r, s));
}

/**
 * A Secret with an identity's name, our labels and a valid key, created by someone else: without
 * the round's controller reference (labels anyone can set).
 */
export function foreign(secret: KubeObject): KubeObject {
  const copy = structuredClone(secret);
  delete copy.metadata.ownerReferences;
  return copy;
}

export const envOf = (pod: KubeObject, container = 0): Record<string, string> => {
  const spec = (
    pod as unknown as { spec: { containers: { env?: { name: string; value?: string }[] }[] } }
  ).spec;
  return Object.fromEntries(
    (spec.containers[container]?.env ?? []).map((e) => [e.name, e.value ?? '']),
  );
};
