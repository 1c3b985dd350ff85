// A federated round on one machine, as the operator would set it up: an identity key per pod
// (mounted through LEPTON_PATH_MAP, as the local node does), the round's spec in each pod's
// environment, a temporary folder as the model store (claim "models"), and synthetic blobs split
// among the participants. The modes run in this process, each with its own environment.
import { spawn } from 'node:child_process';
import { generateKeyPairSync } from 'node:crypto';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  type AcceptedUpdate,
  AGGREGATOR,
  type AggregatorResult,
  type AggregatorSpec,
  type ClientReport,
  type ClientSpec,
  FEDERATED_ENV,
  FEDERATED_MODES,
  IDENTITY_MOUNT,
} from '../../../../src/contract/federated.ts';
import { ENV } from '../../../../src/contract/runtime.ts';
import { initBackend } from '../../../../src/runtime/backend.ts';
import { runAggregator } from '../../../../src/runtime/federated/aggregator.ts';
import { loadIdentity } from '../../../../src/runtime/federated/identity.ts';
import { parseAggregatorEnv, parsePeers } from '../../../../src/runtime/federated/spec.ts';
import type { RuntimeLog } from '../../../../src/runtime/log.ts';
import { runAggregate } from '../../../../src/runtime/modes/aggregate.ts';
import { runFederatedClient } from '../../../../src/runtime/modes/federated-client.ts';
import { runFederatedUnmask } from '../../../../src/runtime/modes/federated-unmask.ts';

export interface Exit {
  code: number;
  /** The termination message. */
  message: string;
  /** A child process's log, to tell why it failed. */
  stderr?: string;
}

export interface Logged {
  message: string;
  meta?: Record<string, unknown>;
}

export interface RoundOptions {
  participants?: string[];
  strategy?: string;
  params?: Record<string, unknown>;
  secure?: boolean;
  threshold?: number;
  differentialPrivacy?: { clippingNorm: number; noiseMultiplier: number };
  quorum?: number;
  epochs?: number;
  samples?: number;
  optimizer?: string;
  learningRate?: number;
  evaluation?: boolean;
  /** The global model to start from (a previous round's output); a preset when absent. */
  modelUri?: string;
  /** The preset's hidden layers (an mlp of one layer of 8 unless given). */
  hiddenUnits?: number[];
  /** Every participant's dataset, instead of its part of the synthetic blobs. */
  datasetUri?: string;
}

export interface Keys {
  /** base64 SPKI DER, as FEDERATED_ENV.peers holds them. */
  publicKey: string;
  pem: string;
}

export function newKeys(): Keys {
  const { publicKey, privateKey } = generateKeyPairSync('ed25519');
  return {
    publicKey: publicKey.export({ format: 'der', type: 'spki' }).toString('base64'),
    pem: privateKey.export({ format: 'pem', type: 'pkcs8' }).toString(),
  };
}

export class Round {
  readonly dir: string;
  readonly name: string;
  readonly participants: string[];
  readonly keys = new Map<string, Keys>();
  private readonly opts: RoundOptions;

  private constructor(dir: string, name: string, opts: RoundOptions) {
    this.dir = dir;
    this.name = name;
    this.opts = opts;
    this.participants = opts.participants ?? ['site-a', 'site-b', 'site-c'];
  }

  static async create(name: string, opts: RoundOptions = {}): Promise<Round> {
    const round = new Round(await mkdtemp(join(tmpdir(), `lepton-fed-${name}-`)), name, opts);
    for (const pod of [...round.participants, AGGREGATOR]) {
      const keys = newKeys();
      round.keys.set(pod, keys);
      await round.writeKey(pod, keys.pem);
    }
    return round;
  }

  /** Replaces a pod's mounted private key (the peers keep the public key they had). */
  async writeKey(pod: string, pem: string): Promise<void> {
    await mkdir(join(this.dir, 'identity', pod), { recursive: true });
    await writeFile(join(this.dir, 'identity', pod, 'signing.pem'), pem);
  }

  get outputUri(): string {
    return `pvc://models/${this.name}`;
  }

  /** A store shared with an earlier round (a campaign's rounds write to one claim). */
  static async after(previous: Round, name: string, opts: RoundOptions): Promise<Round> {
    const round = new Round(previous.dir, name, opts);
    for (const [pod, keys] of previous.keys) round.keys.set(pod, keys);
    return round;
  }

  /** The output folder on this machine. */
  get outputDir(): string {
    return join(this.dir, 'models', this.name);
  }

  updatePath(participant: string): string {
    return join(this.outputDir, '.federated', 'updates', `${participant}.update`);
  }

  private common() {
    const o = this.opts;
    const secure = o.secure ? { secureAggregation: { threshold: o.threshold ?? 2 } } : {};
    const dp = o.differentialPrivacy ? { differentialPrivacy: o.differentialPrivacy } : {};
    return {
      round: { name: this.name, uid: `uid-${this.name}`, number: 0 },
      model: o.modelUri
        ? { uri: o.modelUri }
        : { preset: 'mlp', hiddenUnits: o.hiddenUnits ?? [8] },
      localTraining: {
        epochs: o.epochs ?? 3,
        batchSize: 16,
        optimizer: o.optimizer ?? 'sgd',
        learningRate: o.learningRate ?? 0.1,
        seed: 7,
      },
      aggregation: { strategy: o.strategy ?? 'FedAvg', ...(o.params ? { params: o.params } : {}) },
      ...(o.secure || o.differentialPrivacy ? { privacy: { ...secure, ...dp } } : {}),
      participants: this.participants,
      output: { uri: this.outputUri },
      quorum: o.quorum ?? 2,
      deadline: new Date(Date.now() + 60_000).toISOString(),
    };
  }

  /** The blobs every participant holds a part of (the same generator seed everywhere). */
  private synthetic() {
    return {
      generator: 'blobs',
      samples: this.opts.samples ?? 240,
      classes: 3,
      features: 4,
      seed: 3,
    };
  }

  clientSpec(participant: string): ClientSpec {
    const index = this.participants.indexOf(participant);
    return {
      ...this.common(),
      dataset: this.opts.datasetUri
        ? { uri: this.opts.datasetUri }
        : {
            synthetic: this.synthetic(),
            partition: { count: this.participants.length, index, seed: 1 },
          },
    };
  }

  aggregatorSpec(): AggregatorSpec {
    const common = this.common();
    return {
      ...common,
      ...(this.opts.evaluation === false
        ? {}
        : { evaluationDataset: { synthetic: { ...this.synthetic(), seed: 3 } } }),
      output: { uri: this.outputUri },
    };
  }

  peers(): Record<string, string> {
    return Object.fromEntries([...this.keys].map(([pod, k]) => [pod, k.publicKey]));
  }

  env(pod: string, extra: NodeJS.ProcessEnv = {}): NodeJS.ProcessEnv {
    return {
      [ENV.jobName]: this.name,
      [ENV.namespace]: 'default',
      [ENV.port]: '0',
      [ENV.terminationLog]: join(this.dir, `${pod}.termination-log`),
      [ENV.pathMap]: JSON.stringify({
        '/mnt/pvc/models': join(this.dir, 'models'),
        [IDENTITY_MOUNT]: join(this.dir, 'identity', pod),
        '/tmp/lepton-secagg': join(this.dir, 'pod-tmp', pod),
      }),
      [FEDERATED_ENV.peers]: JSON.stringify(this.peers()),
      ...extra,
    };
  }

  async client(participant: string): Promise<Exit> {
    const env = this.env(participant, {
      [FEDERATED_ENV.participant]: participant,
      [FEDERATED_ENV.spec]: JSON.stringify(this.clientSpec(participant)),
    });
    return this.exit(participant, await runFederatedClient(env));
  }

  /** The client as the pod runs it: `node src/runtime/main.ts federated-client`. */
  async clientProcess(participant: string): Promise<Exit> {
    const env = this.env(participant, {
      PATH: process.env.PATH,
      HOME: process.env.HOME,
      [FEDERATED_ENV.participant]: participant,
      [FEDERATED_ENV.spec]: JSON.stringify(this.clientSpec(participant)),
    });
    const child = spawn(process.execPath, ['src/runtime/main.ts', FEDERATED_MODES.client], {
      cwd: process.cwd(),
      env,
      stdio: ['ignore', 'ignore', 'pipe'],
    });
    let stderr = '';
    child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    const code = await new Promise<number | null>((resolve) => child.on('close', resolve));
    return { ...(await this.exit(participant, code ?? -1)), stderr };
  }

  async unmask(participant: string): Promise<Exit> {
    const env = this.env(participant, {
      [FEDERATED_ENV.participant]: participant,
      [FEDERATED_ENV.spec]: JSON.stringify(this.clientSpec(participant)),
    });
    return this.exit(participant, await runFederatedUnmask(env));
  }

  async aggregate(accepted: AcceptedUpdate[]): Promise<Exit> {
    const env = this.env(AGGREGATOR, {
      [FEDERATED_ENV.spec]: JSON.stringify(this.aggregatorSpec()),
      [FEDERATED_ENV.accepted]: JSON.stringify(accepted),
    });
    return this.exit(AGGREGATOR, await runAggregate(env));
  }

  /**
   * The aggregator without its pod (no termination message, errors thrown), so that a test can
   * pass it options the environment does not carry, and read what it logged.
   */
  async aggregator(
    accepted: AcceptedUpdate[],
    options: { holdEveryUpdate?: boolean } = {},
  ): Promise<{ result: AggregatorResult; logged: Logged[] }> {
    const env = this.env(AGGREGATOR, {
      [FEDERATED_ENV.spec]: JSON.stringify(this.aggregatorSpec()),
      [FEDERATED_ENV.accepted]: JSON.stringify(accepted),
    });
    const peers = parsePeers(env[FEDERATED_ENV.peers]);
    const logged: Logged[] = [];
    const log: RuntimeLog = {
      info: (message, meta) => logged.push({ message, meta }),
      warn: (message, meta) => logged.push({ message, meta }),
    };
    const result = await runAggregator({
      config: parseAggregatorEnv(env),
      identity: await loadIdentity(AGGREGATOR, peers, env),
      peers,
      backend: await initBackend(),
      env,
      log,
      waiting: { pollMs: 10 },
      ...options,
    });
    return { result, logged };
  }

  private async exit(pod: string, code: number): Promise<Exit> {
    const message = await readFile(join(this.dir, `${pod}.termination-log`), 'utf8').catch(
      () => '',
    );
    return { code, message };
  }

  async remove(): Promise<void> {
    await rm(this.dir, { recursive: true, force: true });
  }
}

export function reportOf(exit: Exit): ClientReport {
  return JSON.parse(exit.message) as ClientReport;
}

export function resultOf(exit: Exit): AggregatorResult {
  return JSON.parse(exit.message) as AggregatorResult;
}

/** What the operator passes the aggregator for these clients' reports. */
export function acceptedOf(reports: ClientReport[]): AcceptedUpdate[] {
  return reports.map((r) => ({ name: r.participant, digest: r.update.digest, samples: r.samples }));
}
