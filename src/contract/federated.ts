// The federated side of the operator-runtime contract: what a FederatedRound's client and
// aggregator pods receive, where they meet (the round's folder in the model store), and what
// they report back (termination messages). Imports nothing.
//
// One round, as the pods see it:
//   1. Every participant's client pod (mode federated-client) loads the global model, trains on
//      its own data, and writes its update (local weights minus global weights) to
//      <output>/.federated/updates/<participant>.update, signed with its identity key. Its
//      termination message is a ClientReport. The operator marks it Reported.
//      With secure aggregation the client first agrees on keys with the other participants
//      through <output>/.federated/secagg/, writes a masked update, and reports from its init
//      container (`train`); its main container (mode federated-unmask) then waits to answer the
//      aggregator's unmask request, which needs live survivors (Bonawitz et al. 2017, round 3).
//   2. Once the quorum has reported (see the FederatedRound CRD), the operator writes the accepted
//      set to the status and creates the aggregator pod (mode aggregate) with that set in
//      LEPTON_FEDERATED_ACCEPTED. The aggregator verifies each update against its signature and
//      the digest its participant reported, aggregates, evaluates, writes the new global model to
//      <output>/ atomically, and ends with an AggregatorResult termination message.

export const FEDERATED_MODES = {
  client: 'federated-client',
  unmask: 'federated-unmask',
  aggregate: 'aggregate',
} as const;

/** Environment variables of federated pods (besides ENV.jobName, namespace, port, pathMap). */
export const FEDERATED_ENV = {
  /** JSON of ClientSpec (client and unmask containers) or AggregatorSpec (the aggregator). */
  spec: 'LEPTON_ROUND_SPEC',
  /** The participant this client pod is (spec.participants[].name). */
  participant: 'LEPTON_PARTICIPANT',
  /** JSON of AcceptedUpdate[]: the updates the aggregator must combine (aggregator only). */
  accepted: 'LEPTON_FEDERATED_ACCEPTED',
  /** JSON object: signer name (a participant, or AGGREGATOR) -> Ed25519 public key (base64 SPKI DER). */
  peers: 'LEPTON_FEDERATED_PEERS',
} as const;

/** The signer name of the aggregator in FEDERATED_ENV.peers. */
export const AGGREGATOR = '@aggregator';

/** Where the pod's identity Secret is mounted; it holds only this pod's private key. */
export const IDENTITY_MOUNT = '/var/run/lepton/identity';
/** The key of the identity Secret (and the file name under IDENTITY_MOUNT): PKCS#8 PEM. */
export const IDENTITY_KEY_FILE = 'signing.pem';

/** The round's working folder, relative to the round's output directory. */
export const ROUND_FOLDER = '.federated';
/** Relative to the output directory: the server optimiser's state, read by the next round. */
export const SERVER_STATE_FILE = 'server-state.bin';

/** Names of the containers of federated pods. */
export const FEDERATED_CONTAINERS = { train: 'train', unmask: 'unmask', aggregate: 'aggregate' };

type Json = Record<string, unknown>;

/** What a client container reads (the round's spec, narrowed to what one participant needs). */
export interface ClientSpec {
  /** The round's name and uid: every signed message carries them, so none replays elsewhere. */
  round: { name: string; uid: string; number: number };
  /** The global model: {uri} or a preset (seeded by localTraining.seed: every client builds the same). */
  model: Json;
  /** This participant's dataset (the other sites' data stay theirs). */
  dataset: Json;
  localTraining: Json;
  aggregation: { strategy: string; params?: Json };
  privacy?: {
    secureAggregation?: Json & { threshold: number };
    differentialPrivacy?: Json;
  };
  /** Every participant, in spec order (the secure-aggregation roster). */
  participants: string[];
  /** The round's output directory: the model store folder the pods share. */
  output: { uri: string };
  /** Updates the round needs; a client with secure aggregation waits for at most this many peers. */
  quorum: number;
  /** When the round's deadline passes (RFC 3339); clients give up waiting for peers then. */
  deadline: string;
}

/** What the aggregator reads. */
export interface AggregatorSpec {
  round: { name: string; uid: string; number: number };
  model: Json;
  /** As the clients': the seed builds a round-0 preset as they built it, the loss evaluates. */
  localTraining?: Json;
  aggregation: { strategy: string; params?: Json };
  privacy?: ClientSpec['privacy'];
  participants: string[];
  evaluationDataset?: Json;
  output: { uri: string; quantization?: string };
  quorum: number;
  /** When the aggregator gives up waiting for unmask shares (RFC 3339). */
  deadline: string;
}

/** One update the operator accepted: the participant and what it reported. */
export interface AcceptedUpdate {
  name: string;
  /** sha256:HEX of the update file, as the client reported it. */
  digest: string;
  samples: number;
}

/** A client's termination message on success. */
export interface ClientReport {
  participant: string;
  samples: number;
  loss?: number;
  accuracy?: number;
  /** L2 norm of the update before clipping; absent with secure aggregation. */
  updateNorm?: number;
  update: { digest: string; bytes: number };
}

/** The reasons of RejectedUpdate. */
export const REJECTION_REASONS = {
  /** No update file, or (secure aggregation) not in the sum the survivors' shares unmask. */
  missing: 'UpdateMissing',
  /** Not what the participant signed and reported: bad signature, or another digest. */
  badSignature: 'BadSignature',
  /** Another round's, or not of the global model's shapes, dtype or starting weights. */
  incompatible: 'IncompatibleUpdate',
} as const;

/** A participant whose update the aggregator did not use, and why (CamelCase reason). */
export interface RejectedUpdate {
  name: string;
  reason: string;
  message: string;
}

/** The aggregator's termination message on success. */
export interface AggregatorResult {
  model: { uri: string; digest: string };
  metrics: {
    loss?: number;
    accuracy?: number;
    trainLoss?: number;
    trainAccuracy?: number;
    clippedFraction?: number;
    aggregationSeconds?: number;
  };
  /** Participants whose updates are in the model. */
  accepted: string[];
  rejected: RejectedUpdate[];
  /** Bytes of updates read. */
  bytes: number;
}
