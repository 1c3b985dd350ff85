import { createPrivateKey } from 'node:crypto';
import { mkdir, readFile, readdir, rm, writeFile } from 'node:fs/promises';
import { dirname } from 'node:path';
import { EXIT } from '../../../../src/contract/runtime.ts';
import {
  type AcceptedUpdate,
  REJECTION_REASONS,
  SERVER_STATE_FILE,
} from '../../../../src/contract/federated.ts';
import { decodeServerState } from '../../../../src/runtime/aggregation/strategies.ts';
import { initBackend } from '../../../../src/runtime/backend.ts';
import type { ClientReport } from '../../../../src/contract/federated.ts';
import type { Identity } from '../../../../src/runtime/federated/identity.ts';
import {
  type UpdateHeader,
  decodeUpdate,
  encodeUpdate,
  fileDigest,
} from '../../../../src/runtime/federated/update-file.ts';
import { digestOfFolder, loadModel } from '../../../../src/runtime/model/model-store.ts';
import { flatWeights } from '../../../../src/runtime/train/weight-sync.ts';
import { maxDifference } from '../fixtures.ts';
import { type Logged, Round, acceptedOf, newKeys, reportOf, resultOf } from './harness.ts';

// The modes pick their backend as a pod does; run concurrently in one process, they would race to
// initialise it (and one could fall back to cpu under another's wasm tensors), so it starts once.
beforeAll(() => initBackend());

const rounds: Round[] = [];
afterAll(() => Promise.all(rounds.map((r) => r.remove())));

async function round(name: string, opts: Parameters<typeof Round.create>[1] = {}): Promise<Round> {
  const r = await Round.create(name, opts);
  rounds.push(r);
  return r;
}

describe('federated rounds, client and aggregator modes', () => {
  it('§runtime a FedAvg round end to end: three clients report, the aggregator writes the model and its digest', async () => {
    const r = await round('fedavg');
    // site-a runs as its pod would, in a process of its own: it must build the same preset (the
    // aggregator refuses an update from other starting weights).
    const exits = await Promise.all([
      r.clientProcess('site-a'),
      ...r.participants.slice(1).map((p) => r.client(p)),
    ]);
    for (const e of exits) expect(e).toMatchObject({ code: EXIT.ok });
    const reports = exits.map(reportOf);
    expect(reports.map((x) => x.participant)).toEqual(r.participants);
    expect(reports.reduce((n, x) => n + x.samples, 0)).toBe(240);
    const agg = await r.aggregate(acceptedOf(reports));
    expect(agg.code).toBe(EXIT.ok);
    const result = resultOf(agg);
    expect(result.accepted).toEqual(r.participants);
    expect(result.rejected).toEqual([]);
    expect(result.model).toEqual({ uri: r.outputUri, digest: await digestOfFolder(r.outputDir) });
    expect(result.metrics.accuracy).toBeGreaterThan(0.5);
    expect(await readdir(r.outputDir)).not.toContain('.federated');
  });
});

function flipByte(bytes: Buffer, at: number): void {
  bytes.writeUInt8(bytes.readUInt8(at) ^ 0xff, at);
}

/** The saved global model's weights. */
async function weightsOf(r: Round): Promise<Float32Array[]> {
  const model = await loadModel(r.outputDir);
  return flatWeights(model);
}

/** Runs every participant's client and returns the reports. */
async function train(r: Round): Promise<ClientReport[]> {
  const exits = await Promise.all(r.participants.map((p) => r.client(p)));
  for (const e of exits) expect(e).toMatchObject({ code: EXIT.ok });
  return exits.map(reportOf);
}

/** The aggregator and the given survivors' unmask containers, side by side as in the pods. */
async function aggregateSecurely(r: Round, accepted: ClientReport[], unmaskers: string[]) {
  const [agg, ...unmasked] = await Promise.all([
    r.aggregate(acceptedOf(accepted)),
    ...unmaskers.map((p) => r.unmask(p)),
  ]);
  return { agg: agg!, unmasked };
}

describe('secure aggregation over the round folder', () => {
  // The quantisation step of Σ n·x (secagg/quantize.ts: maxWeight · 2c / T per update, stochastic
  // rounding is off by less than one step), over Σ n, for each of the K updates.
  const tolerance = (reports: ClientReport[]): number => {
    const maxWeight = Math.max(...reports.map((x) => x.samples));
    const total = reports.reduce((n, x) => n + x.samples, 0);
    return (reports.length * maxWeight * 2 * 8) / 2 ** 22 / total + 1e-6;
  };

  it('§runtime secure aggregation end to end: the model equals plain FedAvg to the quantisation step', async () => {
    const plain = await round('plain');
    const plainReports = await train(plain);
    expect((await plain.aggregate(acceptedOf(plainReports))).code).toBe(EXIT.ok);

    const secure = await round('secure', { secure: true, threshold: 2 });
    const reports = await train(secure);
    for (const report of reports) expect(report.updateNorm).toBeUndefined();
    const masked = decodeUpdate(await readFile(secure.updatePath('site-a')));
    expect(masked.header.dtype).toBe('uint32');
    const { agg, unmasked } = await aggregateSecurely(secure, reports, secure.participants);
    expect(agg.code).toBe(EXIT.ok);
    for (const u of unmasked) expect(u.code).toBe(EXIT.ok);
    expect(unmasked.some((u) => /answered the unmask request/.test(u.message))).toBe(true);
    const result = resultOf(agg);
    expect(result.accepted).toEqual(secure.participants);
    expect(reports.map((x) => x.samples)).toEqual(plainReports.map((x) => x.samples));
    expect(maxDifference(await weightsOf(secure), await weightsOf(plain))).toBeLessThan(
      tolerance(reports),
    );
  });

  it('§runtime secure aggregation recovers a client that dropped after masking', async () => {
    const plain = await round('plain-two');
    const plainReports = (await train(plain)).slice(0, 2);
    expect((await plain.aggregate(acceptedOf(plainReports))).code).toBe(EXIT.ok);

    const secure = await round('dropout', { secure: true, threshold: 2 });
    // site-c masked and wrote its update, then was lost: the operator accepts a and b only, and
    // site-c's pod never answers; its pairwise masks come out of a's and b's shares of its key.
    const reports = (await train(secure)).slice(0, 2);
    const { agg } = await aggregateSecurely(secure, reports, ['site-a', 'site-b']);
    expect(agg.code).toBe(EXIT.ok);
    expect(resultOf(agg).accepted).toEqual(['site-a', 'site-b']);
    expect(maxDifference(await weightsOf(secure), await weightsOf(plain))).toBeLessThan(
      tolerance(reports),
    );
  });
});

describe('the aggregator refuses updates it cannot trust or use', () => {
  let r: Round;
  let reports: ClientReport[];
  const files = new Map<string, Buffer>();
  beforeAll(async () => {
    r = await round('checks');
    reports = await train(r);
    for (const p of r.participants) files.set(p, await readFile(r.updatePath(p)));
  });
  // The aggregator removes the round folder when it succeeds: every case starts from the files
  // the clients wrote.
  beforeEach(async () => {
    for (const [p, bytes] of files) {
      await mkdir(dirname(r.updatePath(p)), { recursive: true });
      await writeFile(r.updatePath(p), bytes);
    }
  });

  const identity = (name: string, pem: string): Identity => ({
    name,
    privateKey: createPrivateKey(pem),
  });
  /** site-b's update with its header or values changed, signed by `signer`. */
  const forged = (
    change: (header: UpdateHeader, values: Float32Array) => [UpdateHeader, Float32Array],
    signer: Identity,
  ): Buffer => {
    const { header, values } = decodeUpdate(files.get('site-b')!);
    const [h, v] = change(structuredClone(header), Float32Array.from(values as Float32Array));
    return encodeUpdate(h, v, signer);
  };

  it('§runtime a tampered update is rejected (BadSignature) and the others are aggregated', async () => {
    const bytes = Buffer.from(files.get('site-b')!);
    flipByte(bytes, bytes.length - 100);
    await writeFile(r.updatePath('site-b'), bytes);
    const agg = await r.aggregate(acceptedOf(reports));
    expect(agg.code).toBe(EXIT.ok);
    const result = resultOf(agg);
    expect(result.accepted).toEqual(['site-a', 'site-c']);
    expect(result.rejected).toEqual([
      expect.objectContaining({ name: 'site-b', reason: REJECTION_REASONS.badSignature }),
    ]);
  });

  it("§runtime an update signed by a key that is not its participant's is rejected", async () => {
    const rogue = identity('site-b', newKeys().pem);
    const file = forged((h, v) => [h, v.map((x) => x * 100)], rogue);
    await writeFile(r.updatePath('site-b'), file);
    // Even with the digest the forger would need the operator to hold, the signature decides.
    const accepted = acceptedOf(reports).map((a) =>
      a.name === 'site-b' ? { ...a, digest: fileDigest(file) } : a,
    );
    const result = resultOf(await r.aggregate(accepted));
    expect(result.rejected).toEqual([
      {
        name: 'site-b',
        reason: REJECTION_REASONS.badSignature,
        message: "the update file is not signed by site-b's key",
      },
    ]);
  });

  it.each([
    [
      'of another shape',
      (h: UpdateHeader, v: Float32Array): [UpdateHeader, Float32Array] => [
        { ...h, shapes: [[v.length - 3], [3]] },
        v,
      ],
      /variables are shaped/,
    ],
    [
      'of another dtype',
      (h: UpdateHeader, v: Float32Array): [UpdateHeader, Float32Array] => [
        { ...h, dtype: 'uint32' },
        v,
      ],
      /values are uint32, the round needs float32/,
    ],
    [
      'of another round',
      (h: UpdateHeader, v: Float32Array): [UpdateHeader, Float32Array] => [
        { ...h, round: 'uid-an-earlier-round' },
        v,
      ],
      /update of round uid-an-earlier-round/,
    ],
  ])('§runtime an update %s is rejected (IncompatibleUpdate)', async (_name, change, message) => {
    const file = forged(change, identity('site-b', r.keys.get('site-b')!.pem));
    await writeFile(r.updatePath('site-b'), file);
    const accepted = acceptedOf(reports).map((a) =>
      a.name === 'site-b' ? { ...a, digest: fileDigest(file) } : a,
    );
    const result = resultOf(await r.aggregate(accepted));
    expect(result.accepted).toEqual(['site-a', 'site-c']);
    expect(result.rejected).toEqual([
      expect.objectContaining({ name: 'site-b', reason: REJECTION_REASONS.incompatible }),
    ]);
    expect(result.rejected[0]!.message).toMatch(message);
  });

  it('§runtime below the quorum the aggregator fails permanently, naming who was rejected and why', async () => {
    await rm(r.updatePath('site-a'));
    const bytes = Buffer.from(files.get('site-c')!);
    flipByte(bytes, 200);
    await writeFile(r.updatePath('site-c'), bytes);
    const agg = await r.aggregate(acceptedOf(reports));
    expect(agg.code).toBe(EXIT.permanent);
    expect(agg.message).toMatch(/1 usable updates, the quorum is 2/);
    expect(agg.message).toMatch(/site-a \(UpdateMissing/);
    expect(agg.message).toMatch(/site-c \(BadSignature/);
  });
});

describe('FedAvg and the server optimisers add the updates one at a time', () => {
  // Both ways of combining a round, on the same update files: the streamed sum (θ_t + Σ n_k Δ_k /
  // Σ n_k from an UpdateAccumulator) and aggregateRound over every local model held at once.
  // Float32 rounding differs between the two (θ_k is rounded before it is averaged in the
  // held way only), by a few units in the last place of weights of order 1.
  const TOLERANCE = 1e-5;

  const signer = (r: Round, name: string): Identity => ({
    name,
    privateKey: createPrivateKey(r.keys.get(name)!.pem),
  });

  /**
   * Trains the round and gives site-a's update another sample count (re-signed with its key),
   * so that FedAvg's weights n_k / n differ between the participants.
   */
  async function trainUnequal(
    r: Round,
  ): Promise<{ accepted: AcceptedUpdate[]; files: Map<string, Buffer> }> {
    const reports = await train(r);
    const { header, values } = decodeUpdate(await readFile(r.updatePath('site-a')));
    const samples = 5 * header.samples;
    await writeFile(
      r.updatePath('site-a'),
      encodeUpdate({ ...header, samples }, values, signer(r, 'site-a')),
    );
    const files = new Map<string, Buffer>();
    for (const p of r.participants) files.set(p, await readFile(r.updatePath(p)));
    const accepted = acceptedOf(reports).map((a) =>
      a.name === 'site-a' ? { ...a, samples, digest: fileDigest(files.get('site-a')!) } : a,
    );
    return { accepted, files };
  }

  /** Puts the update files back: the aggregator removes the round folder when it succeeds. */
  async function restore(r: Round, files: Map<string, Buffer>): Promise<void> {
    for (const [p, bytes] of files) {
      await mkdir(dirname(r.updatePath(p)), { recursive: true });
      await writeFile(r.updatePath(p), bytes);
    }
  }

  const streamedOf = (logged: Logged[]): unknown =>
    logged.find((l) => l.message === 'Combined the updates')?.meta?.streamed;

  async function serverStateOf(r: Round, strategy: 'FedAdam'): Promise<Float32Array[]> {
    const bytes = await readFile(`${r.outputDir}/${SERVER_STATE_FILE}`);
    const shape = (await weightsOf(r)).map((w) => w.length);
    return decodeServerState(bytes, { strategy, shape }).flat();
  }

  it.each(['FedAvg', 'FedAdam'] as const)(
    '§runtime %s streamed gives the model (and server state) of the round with every update held',
    async (strategy) => {
      const r = await round(`stream-${strategy.toLowerCase()}`, { strategy, evaluation: false });
      const { accepted, files } = await trainUnequal(r);

      const held = await r.aggregator(accepted, { holdEveryUpdate: true });
      expect(streamedOf(held.logged)).toBe(false);
      const heldWeights = await weightsOf(r);
      const heldState = strategy === 'FedAdam' ? await serverStateOf(r, strategy) : [];

      await restore(r, files);
      const streamed = await r.aggregator(accepted);
      expect(streamedOf(streamed.logged)).toBe(true);
      expect(streamed.result.accepted).toEqual(r.participants);
      expect(streamed.result.rejected).toEqual([]);
      expect(streamed.result.bytes).toBe(held.result.bytes);
      expect(maxDifference(await weightsOf(r), heldWeights)).toBeLessThan(TOLERANCE);
      if (strategy === 'FedAdam')
        expect(maxDifference(await serverStateOf(r, strategy), heldState)).toBeLessThan(TOLERANCE);
    },
  );

  it('§runtime a rejected update in the middle of the stream contributes nothing, as in the held round', async () => {
    const r = await round('stream-rejected', { evaluation: false });
    const { accepted, files } = await trainUnequal(r);
    // FedAvg of site-a and site-c alone, their weights n_k / (n_a + n_c).
    const others = accepted.filter((a) => a.name !== 'site-b');
    expect((await r.aggregator(others)).result.accepted).toEqual(['site-a', 'site-c']);
    const withoutB = await weightsOf(r);

    const tampered = Buffer.from(files.get('site-b')!);
    flipByte(tampered, tampered.length - 100);
    const withTampered = new Map([...files, ['site-b', tampered]]);
    const runs = [];
    for (const holdEveryUpdate of [true, false]) {
      await restore(r, withTampered);
      const { result, logged } = await r.aggregator(accepted, { holdEveryUpdate });
      expect(streamedOf(logged)).toBe(!holdEveryUpdate);
      runs.push({ result, weights: await weightsOf(r) });
    }
    const [held, streamed] = runs;
    expect(streamed!.result.accepted).toEqual(['site-a', 'site-c']);
    expect(streamed!.result.rejected).toEqual(held!.result.rejected);
    expect(streamed!.result.rejected).toEqual([
      expect.objectContaining({ name: 'site-b', reason: REJECTION_REASONS.badSignature }),
    ]);
    // The same two updates added with the same weights: the same bits.
    expect(maxDifference(streamed!.weights, withoutB)).toBe(0);
    expect(maxDifference(streamed!.weights, held!.weights)).toBeLessThan(TOLERANCE);
  });
});
