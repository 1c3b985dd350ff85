// Pure builders of what a FederatedRound owns: one client pod per participant, placed at its
// site; one aggregator pod once a quorum reported; and one identity Secret per pod (an Ed25519
// key the operator generates for this round, so that only participants can sign updates). The
// locked-down pod skeleton is the engine's (src/engine/pod.ts).
import { createPublicKey, generateKeyPairSync } from 'node:crypto';
import type { IFederatedRound } from '../../api/generated/lepton.ai/v1alpha1/FederatedRound.ts';
import {
  AGGREGATOR,
  type AcceptedUpdate,
  type AggregatorSpec,
  type ClientSpec,
  FEDERATED_CONTAINERS,
  FEDERATED_ENV,
  FEDERATED_MODES,
  IDENTITY_KEY_FILE,
  IDENTITY_MOUNT,
} from '../../contract/federated.ts';
import { DEFAULT_PORT, ENDPOINTS, ENV } from '../../contract/runtime.ts';
import { type KubeObject, ownerReference } from '../../core/resources.ts';
import {
  JOB_NAME_LABEL,
  MANAGED_BY_LABEL,
  MANAGED_BY_VALUE,
  ROLE_LABEL,
} from '../../engine/labels.ts';
import { type ContainerInput, lockedDownPod } from '../../engine/pod.ts';

export type FederatedRound = IFederatedRound & KubeObject & { apiVersion: string; kind: string };
export type Participant = FederatedRound['spec']['participants'][number];
export type RoundStatus = NonNullable<FederatedRound['status']>;
export type ParticipantStatus = NonNullable<RoundStatus['participants']>[number];

export const PARTICIPANT_LABEL = 'lepton.ai/participant';
export const ROLES = { client: 'client', aggregator: 'aggregator' } as const;

export interface BuildOptions {
  runtimeImage: string;
  runtimeGpuImage: string;
}

const DEFAULT_GPU_RESOURCE = 'nvidia.com/gpu';

/** Updates the round needs: minParticipants, or every participant. */
export function quorumOf(r: FederatedRound): number {
  return r.spec.minParticipants ?? r.spec.participants.length;
}

export function secureAggregation(r: FederatedRound): boolean {
  return r.spec.privacy?.secureAggregation !== undefined;
}

/**
 * Shares needed to rebuild a participant's secrets: a majority of the roster, and at least the
 * quorum (an aggregate of fewer updates is refused anyway). A majority is what keeps a set of
 * colluding participants below it from unmasking the others (Bonawitz et al. 2017, §4).
 */
export function thresholdOf(r: FederatedRound): number {
  const n = r.spec.participants.length;
  return Math.min(n, Math.max(quorumOf(r), Math.floor(n / 2) + 1, 2));
}

export const clientPodName = (r: FederatedRound, p: string) => `${r.metadata.name}-client-${p}`;
export const aggregatorPodName = (r: FederatedRound) => `${r.metadata.name}-aggregator`;
/** Distinct from every client's (`-id-<participant>`), whatever the participants are named. */
export const identitySecretName = (r: FederatedRound, signer: string) =>
  signer === AGGREGATOR ? `${r.metadata.name}-aggregator-id` : `${r.metadata.name}-id-${signer}`;

/** Every signer of the round: the participants in spec order, then the aggregator. */
export function signers(r: FederatedRound): string[] {
  return [...r.spec.participants.map((p) => p.name), AGGREGATOR];
}

/** A new identity Secret for `signer`: an Ed25519 private key that only its pod mounts. */
export function identitySecret(r: FederatedRound, signer: string): KubeObject {
  const { privateKey } = generateKeyPairSync('ed25519');
  const pem = privateKey.export({ type: 'pkcs8', format: 'pem' }).toString();
  return {
    apiVersion: 'v1',
    kind: 'Secret',
    metadata: {
      name: identitySecretName(r, signer),
      namespace: r.metadata.namespace,
      labels: {
        [MANAGED_BY_LABEL]: MANAGED_BY_VALUE,
        [JOB_NAME_LABEL]: r.metadata.name ?? '',
        [ROLE_LABEL]: 'identity',
      },
      ownerReferences: [ownerReference(r)],
    },
    type: 'Opaque',
    data: { [IDENTITY_KEY_FILE]: Buffer.from(pem).toString('base64') },
  } as KubeObject;
}

/**
 * Public keys by Secret object: every reconcile of a round reads every signer's key, and the cache
 * replaces an object when it changes, so a PEM is parsed once per version, not per reconcile.
 */
const publicKeys = new WeakMap<KubeObject, string | undefined>();

/** The public key (base64 SPKI DER) of an identity Secret, or undefined when it holds none. */
export function publicKeyOf(secret: KubeObject): string | undefined {
  if (publicKeys.has(secret)) return publicKeys.get(secret);
  const key = parsePublicKey(secret);
  publicKeys.set(secret, key);
  return key;
}

function parsePublicKey(secret: KubeObject): string | undefined {
  const data = (secret as { data?: Record<string, string> }).data?.[IDENTITY_KEY_FILE];
  if (!data) return undefined;
  try {
    const key = createPublicKey(Buffer.from(data, 'base64').toString());
    return key.export({ type: 'spki', format: 'der' }).toString('base64');
  } catch {
    return undefined;
  }
}

function gpuOf(r: FederatedRound, p?: Participant) {
  const gpu = p ? (p.resources?.gpu ?? r.spec.resources?.gpu) : undefined;
  return {
    count: gpu?.count ?? 0,
    product: gpu?.product,
    resource: gpu?.resourceName ?? DEFAULT_GPU_RESOURCE,
  };
}

function deadlineOf(r: FederatedRound, from: string | undefined, now: number): string {
  const start = from ? Date.parse(from) : now;
  return new Date(start + (r.spec.timeoutSeconds ?? 3600) * 1000).toISOString();
}

function aggregationOf(r: FederatedRound): ClientSpec['aggregation'] {
  const a = r.spec.aggregation;
  return { strategy: a?.strategy ?? 'FedAvg', ...(a?.params ? { params: { ...a.params } } : {}) };
}

function roundRef(r: FederatedRound) {
  return { name: r.metadata.name ?? '', uid: r.metadata.uid ?? '', number: r.spec.round ?? 0 };
}

function privacyOf(r: FederatedRound): ClientSpec['privacy'] {
  const p = r.spec.privacy;
  if (!p) return undefined;
  return {
    ...(p.secureAggregation
      ? { secureAggregation: { ...p.secureAggregation, threshold: thresholdOf(r) } }
      : {}),
    ...(p.differentialPrivacy ? { differentialPrivacy: { ...p.differentialPrivacy } } : {}),
  };
}

function commonEnv(r: FederatedRound, peers: Record<string, string>) {
  return [
    { name: ENV.jobName, value: r.metadata.name ?? '' },
    { name: ENV.namespace, value: r.metadata.namespace ?? '' },
    { name: ENV.port, value: String(DEFAULT_PORT) },
    { name: FEDERATED_ENV.peers, value: JSON.stringify(peers) },
  ];
}

function container(
  name: string,
  mode: string,
  image: string,
  env: { name: string; value: string }[],
): ContainerInput {
  return {
    name,
    image,
    args: [mode],
    env,
    ports: [{ name: 'http', containerPort: DEFAULT_PORT }],
    readiness: { path: ENDPOINTS.readyz, port: DEFAULT_PORT },
  };
}

export function clientSpec(r: FederatedRound, p: Participant, now: number): ClientSpec {
  return {
    round: roundRef(r),
    model: { ...r.spec.model },
    dataset: { ...p.dataset },
    localTraining: { ...r.spec.localTraining },
    aggregation: aggregationOf(r),
    privacy: privacyOf(r),
    participants: r.spec.participants.map((x) => x.name),
    output: { uri: r.spec.output.uri },
    quorum: quorumOf(r),
    deadline: deadlineOf(r, r.status?.startTime, now),
  };
}

/** One participant's pod: trains at its site; with secure aggregation it stays to unmask. */
export function clientPod(
  r: FederatedRound,
  p: Participant,
  peers: Record<string, string>,
  opts: BuildOptions,
  now: number,
): KubeObject {
  const gpu = gpuOf(r, p);
  const image = r.spec.image ?? (gpu.count > 0 ? opts.runtimeGpuImage : opts.runtimeImage);
  const env = [
    ...commonEnv(r, peers),
    { name: FEDERATED_ENV.participant, value: p.name },
    { name: FEDERATED_ENV.spec, value: JSON.stringify(clientSpec(r, p, now)) },
  ];
  const train = container(FEDERATED_CONTAINERS.train, FEDERATED_MODES.client, image, env);
  // With secure aggregation a client's secrets must outlive its training to answer the
  // aggregator's unmask request: training is then the init container (its exit is the report),
  // and the main container waits to unmask (its keys pass through the pod's own /tmp).
  const secure = secureAggregation(r);
  const resources = p.resources ?? r.spec.resources;
  return lockedDownPod({
    owner: r,
    name: clientPodName(r, p.name),
    labels: {
      [JOB_NAME_LABEL]: r.metadata.name ?? '',
      [ROLE_LABEL]: ROLES.client,
      [PARTICIPANT_LABEL]: p.name,
    },
    template: r.spec.podTemplate,
    uris: [r.spec.model.uri, (p.dataset as { uri?: string }).uri, r.spec.output.uri],
    gpu,
    cpu: resources?.cpu,
    memory: resources?.memory,
    priorityClassName: r.spec.priorityClassName,
    schedulerName: r.spec.schedulerName,
    placement: { nodeSelector: p.nodeSelector, tolerations: p.tolerations },
    secrets: [{ secretName: identitySecretName(r, p.name), mountPath: IDENTITY_MOUNT }],
    ...(secure
      ? {
          // The API server refuses probes on init containers (they are not sidecars).
          initContainers: [{ ...train, readiness: undefined }],
          container: container(FEDERATED_CONTAINERS.unmask, FEDERATED_MODES.unmask, image, env),
        }
      : { container: train }),
  });
}

export function aggregatorSpec(r: FederatedRound, now: number): AggregatorSpec {
  return {
    round: roundRef(r),
    model: { ...r.spec.model },
    // The seed and loss: the aggregator rebuilds round 0's preset as the clients did.
    localTraining: { ...r.spec.localTraining },
    aggregation: aggregationOf(r),
    privacy: privacyOf(r),
    participants: r.spec.participants.map((x) => x.name),
    ...(r.spec.evaluationDataset ? { evaluationDataset: { ...r.spec.evaluationDataset } } : {}),
    output: { uri: r.spec.output.uri, quantization: r.spec.output.quantization },
    quorum: quorumOf(r),
    // From the aggregator's creation: the time it has to gather unmask shares and combine.
    deadline: deadlineOf(r, undefined, now),
  };
}

/** The aggregator: combines exactly the accepted updates (it needs no GPU). */
export function aggregatorPod(
  r: FederatedRound,
  accepted: AcceptedUpdate[],
  peers: Record<string, string>,
  opts: BuildOptions,
  now: number,
): KubeObject {
  const env = [
    ...commonEnv(r, peers),
    { name: FEDERATED_ENV.spec, value: JSON.stringify(aggregatorSpec(r, now)) },
    { name: FEDERATED_ENV.accepted, value: JSON.stringify(accepted) },
  ];
  return lockedDownPod({
    owner: r,
    name: aggregatorPodName(r),
    labels: { [JOB_NAME_LABEL]: r.metadata.name ?? '', [ROLE_LABEL]: ROLES.aggregator },
    template: r.spec.podTemplate,
    uris: [
      r.spec.model.uri,
      (r.spec.evaluationDataset as { uri?: string } | undefined)?.uri,
      r.spec.output.uri,
    ],
    gpu: { count: 0, resource: DEFAULT_GPU_RESOURCE },
    cpu: r.spec.resources?.cpu,
    memory: r.spec.resources?.memory,
    priorityClassName: r.spec.priorityClassName,
    secrets: [{ secretName: identitySecretName(r, AGGREGATOR), mountPath: IDENTITY_MOUNT }],
    container: container(
      FEDERATED_CONTAINERS.aggregate,
      FEDERATED_MODES.aggregate,
      r.spec.image ?? opts.runtimeImage,
      env,
    ),
  });
}

/** The round's pod sets for admission: one per participant (each has its own placement). */
export function participantGpu(r: FederatedRound, p: Participant) {
  return gpuOf(r, p);
}
