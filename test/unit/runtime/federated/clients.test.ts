import { readFile, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { FEDERATED_ENV, SERVER_STATE_FILE } from '../../../../src/contract/federated.ts';
import { EXIT } from '../../../../src/contract/runtime.ts';
import { decodeServerState } from '../../../../src/runtime/aggregation/strategies.ts';
import { initBackend } from '../../../../src/runtime/backend.ts';
import { runClient } from '../../../../src/runtime/federated/client.ts';
import { loadIdentity } from '../../../../src/runtime/federated/identity.ts';
import { parseClientEnv, parsePeers } from '../../../../src/runtime/federated/spec.ts';
import { noLog } from '../../../../src/runtime/log.ts';
import { loadModel } from '../../../../src/runtime/model/model-store.ts';
import { flatWeights } from '../../../../src/runtime/train/weight-sync.ts';
import { buildPreset } from '../../../../src/runtime/model/models.ts';
import { Round, type RoundOptions, acceptedOf, newKeys, reportOf, resultOf } from './harness.ts';

// See rounds.test.ts: one backend for the modes that run side by side in this process.
beforeAll(() => initBackend());

const rounds: Round[] = [];
afterAll(() => Promise.all(rounds.map((r) => r.remove())));

async function round(name: string, opts: RoundOptions = {}): Promise<Round> {
  const r = await Round.create(name, opts);
  rounds.push(r);
  return r;
}

/** A client through runClient, with its own key-exchange window (the mode waits 30 s). */
async function clientWithWindow(r: Round, participant: string, windowMs: number) {
  const env = r.env(participant, {
    [FEDERATED_ENV.participant]: participant,
    [FEDERATED_ENV.spec]: JSON.stringify(r.clientSpec(participant)),
  });
  const config = parseClientEnv(env);
  const peers = parsePeers(env[FEDERATED_ENV.peers]);
  return runClient({
    config,
    identity: await loadIdentity(participant, peers, env),
    peers,
    backend: 'cpu',
    env,
    log: noLog,
    waiting: { pollMs: 20 },
    keyExchangeWindowMs: windowMs,
  });
}

describe('federated clients', () => {
  it('§runtime FedProx keeps the local model closer to the global one than FedAvg on the same data', async () => {
    const common: RoundOptions = { epochs: 4, learningRate: 0.2 };
    const fedavg = await round('prox-off', common);
    const fedprox = await round('prox-on', {
      ...common,
      strategy: 'FedProx',
      params: { proximalMu: 1 },
    });
    const [plain, proximal] = await Promise.all([
      fedavg.client('site-a'),
      fedprox.client('site-a'),
    ]);
    expect(plain.code).toBe(EXIT.ok);
    expect(proximal.code).toBe(EXIT.ok);
    const [a, b] = [reportOf(plain), reportOf(proximal)];
    expect(a.samples).toBe(b.samples);
    expect(b.updateNorm!).toBeLessThan(0.8 * a.updateNorm!);
    expect(b.updateNorm!).toBeGreaterThan(0);
  });

  it('§runtime differential privacy: clients clip their updates, the aggregator reports the clipped fraction', async () => {
    const clippingNorm = 0.05;
    const r = await round('dp', { differentialPrivacy: { clippingNorm, noiseMultiplier: 0 } });
    const exits = await Promise.all(r.participants.map((p) => r.client(p)));
    const reports = exits.map(reportOf);
    for (const report of reports) expect(report.updateNorm!).toBeGreaterThan(clippingNorm);
    const agg = await r.aggregate(acceptedOf(reports));
    expect(agg.code).toBe(EXIT.ok);
    expect(resultOf(agg).metrics.clippedFraction).toBe(1);
    // With no noise, the new model is the global one plus the mean of updates of norm S.
    const global = flatWeights(
      buildPreset(
        { preset: 'mlp', hiddenUnits: [8] },
        { inputShape: [4], numClasses: 3, task: 'classification' },
        { seed: 7 },
      ),
    );
    const next = flatWeights(await loadModel(r.outputDir));
    let squares = 0;
    next.forEach((w, v) => w.forEach((x, j) => (squares += (x - global[v]![j]!) ** 2)));
    expect(Math.sqrt(squares)).toBeLessThanOrEqual(clippingNorm * 1.0001);
    expect(Math.sqrt(squares)).toBeGreaterThan(clippingNorm / 10);
  });

  it('§runtime a client without its signing key exits permanently, and one with another key too', async () => {
    const r = await round('keys');
    await rm(join(r.dir, 'identity', 'site-a', 'signing.pem'));
    const missing = await r.client('site-a');
    expect(missing.code).toBe(EXIT.permanent);
    expect(missing.message).toMatch(/^No signing key at .*signing\.pem/);
    await r.writeKey('site-b', newKeys().pem);
    const other = await r.client('site-b');
    expect(other.code).toBe(EXIT.permanent);
    expect(other.message).toMatch(/is not the one LEPTON_FEDERATED_PEERS lists for "site-b"/);
  });

  it('§runtime with secure aggregation a client that comes after the roster was decided is refused', async () => {
    const r = await round('late', { secure: true, threshold: 2 });
    // a and b wait no longer than it takes to see each other; c comes once the roster is out.
    const early = await Promise.all(['site-a', 'site-b'].map((p) => clientWithWindow(r, p, 0)));
    expect(early.map((x) => x.participant)).toEqual(['site-a', 'site-b']);
    await expect(clientWithWindow(r, 'site-c', 0)).rejects.toThrow(
      /site-c is not on the secure-aggregation roster/,
    );
  });
});

describe('federated rounds in a campaign', () => {
  it('§runtime a server optimiser keeps its state beside the model, and the next round goes on from it', async () => {
    const first = await round('adam-0', { strategy: 'FedAdam' });
    const reports = await Promise.all(first.participants.map((p) => first.client(p)));
    expect((await first.aggregate(acceptedOf(reports.map(reportOf)))).code).toBe(EXIT.ok);
    const shape = flatWeights(await loadModel(first.outputDir)).map((w) => w.length);
    const stepOf = async (r: Round): Promise<number> => {
      const bytes = await readFile(join(r.outputDir, SERVER_STATE_FILE));
      const state = decodeServerState(bytes, { strategy: 'FedAdam', shape });
      return state.at(-1)![0]![0]!;
    };
    expect(await stepOf(first)).toBe(1);

    const second = await Round.after(first, 'adam-1', {
      strategy: 'FedAdam',
      modelUri: first.outputUri,
    });
    const next = await Promise.all(second.participants.map((p) => second.client(p)));
    const agg = await second.aggregate(acceptedOf(next.map(reportOf)));
    expect(agg.code).toBe(EXIT.ok);
    expect(resultOf(agg).accepted).toEqual(second.participants);
    expect(await stepOf(second)).toBe(2);
  });

  it('§runtime a client whose dataset cannot be read exits permanently', async () => {
    const r = await round('no-data', { datasetUri: 'file:///nonexistent/lepton/site.csv' });
    const exit = await r.client('site-a');
    expect(exit.code).toBe(EXIT.permanent);
    expect(exit.message).toMatch(/Dataset file:\/\/\/nonexistent\/lepton\/site\.csv not found/);
  });
});
