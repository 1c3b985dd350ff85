import {
  type Envelope,
  SecAggRefusedError,
  generateIdentity,
  sign,
} from '../../../../src/runtime/secagg/index.ts';
import { aggregator, client, resign, runUntilMasked, runUntilUnmask, setup } from './fixtures.ts';

const zeros = (s: ReturnType<typeof setup>) =>
  new Map(s.ids.map((id) => [id, new Float32Array(8)]));
const ones = (s: ReturnType<typeof setup>) => new Map(s.ids.map((id) => [id, 1]));

describe('secure aggregation: what a client refuses to answer', () => {
  const s = setup(4, { threshold: 3 });
  const aggregatorSigns = (payload: string) => sign(payload, s.aggregatorIdentity.privateKey);

  it.each([
    {
      name: 'a request for both shares of one peer',
      survivors: ['site-a', 'site-b', 'site-c', 'site-d'],
      dropped: ['site-d'],
      reason: /asks for both shares of site-d \(listed as a survivor and as dropped\)/,
    },
    {
      name: 'a request that lists the client itself as dropped',
      survivors: ['site-a', 'site-c', 'site-d'],
      dropped: ['site-b'],
      reason: /lists site-b itself as dropped/,
    },
    {
      name: 'a request with fewer than t survivors',
      survivors: ['site-b', 'site-c'],
      dropped: ['site-a', 'site-d'],
      reason: /lists 2 survivors .* fewer than the threshold 3/,
    },
    {
      name: 'a request that leaves out a peer whose shares it holds',
      survivors: ['site-a', 'site-b', 'site-c'],
      dropped: [],
      reason: /does not say whether site-d survived/,
    },
    {
      name: 'a request naming someone off the roster',
      survivors: ['site-a', 'site-b', 'site-c', 'site-d', 'mallory'],
      dropped: [],
      reason: /survivors lists "mallory", not a participant/,
    },
  ])('§secagg a client refuses $name', ({ survivors, dropped, reason }) => {
    const run = runUntilUnmask(s, zeros(s), ones(s), { respond: [] });
    const forged = resign(
      run.request,
      (p) => Object.assign(p, { survivors, dropped }),
      aggregatorSigns,
    );
    const siteB = run.clients.get('site-b')!;
    expect(() => siteB.unmask(forged)).toThrow(SecAggRefusedError);
    expect(() => siteB.unmask(forged)).toThrow(reason);
    // Refusing it did not spend the client's one answer: the honest request still gets it.
    expect(() => siteB.unmask(run.request)).not.toThrow();
  });

  it('§secagg a client answers one unmask request only: a second, different one is refused (the same one again gets the same answer)', () => {
    const run = runUntilUnmask(s, zeros(s), ones(s), { respond: [] });
    const siteB = run.clients.get('site-b')!;
    const answer = siteB.unmask(run.request);
    expect(siteB.unmask(run.request)).toEqual(answer);
    // Having given b_d's share, it must not now give s_d's too.
    const second = resign(
      run.request,
      (p) => Object.assign(p, { survivors: ['site-a', 'site-b', 'site-c'], dropped: ['site-d'] }),
      aggregatorSigns,
    );
    expect(() => siteB.unmask(second)).toThrow(/already answered a different UnmaskRequest/);
  });

  it('§secagg a client masks its input once: a second input under the same masks is refused', () => {
    const run = runUntilUnmask(s, zeros(s), ones(s), { respond: [] });
    const siteA = run.clients.get('site-a')!;
    expect(() => siteA.maskInput(run.shareSet, new Float32Array(8).fill(1), 1)).toThrow(
      /already masked its input/,
    );
  });
});

describe('secure aggregation: messages from outside the round', () => {
  it('§secagg a message signed by a key not on the roster is refused', () => {
    const s = setup(3, { threshold: 2 });
    const intruder = generateIdentity();
    const run = runUntilUnmask(s, zeros(s), ones(s), { mask: ['site-a', 'site-b'], respond: [] });
    const masked = run.masked.get('site-b')!.message;
    const intruderSigns = (payload: string) => sign(payload, intruder.privateKey);

    // A pod that is not a participant, under a name of its own…
    const asMallory = resign(masked.envelope, (p) => (p.from = 'mallory'), intruderSigns);
    expect(() =>
      run.aggregator.receiveMaskedInput({ envelope: asMallory, vector: masked.vector }),
    ).toThrow(/Refused MaskedInput from "mallory": the sender is not on the roster/);
    // …or under a participant's name (site-c, which has not sent its update yet).
    const asSiteC = resign(masked.envelope, (p) => (p.from = 'site-c'), intruderSigns);
    expect(() =>
      run.aggregator.receiveMaskedInput({ envelope: asSiteC, vector: masked.vector }),
    ).toThrow(/the signature does not verify against the sender's key on the roster/);

    // The same at round 0: the intruder's advert does not make it into U1.
    const advert = client(s, 'site-a').advertiseKeys();
    const intruderAdvert = resign(advert, (p) => (p.from = 'site-c'), intruderSigns);
    const built = aggregator(s).buildKeyRoster([
      client(s, 'site-a').advertiseKeys(),
      client(s, 'site-b').advertiseKeys(),
      intruderAdvert,
    ]);
    expect(built.refused.map((e) => e.message)).toEqual([
      expect.stringMatching(/Refused AdvertiseKeys from "site-c": the signature does not verify/),
    ]);

    // A participant cannot pose as the aggregator and ask for shares.
    const siteASigns = (payload: string) => sign(payload, s.identities.get('site-a')!.privateKey);
    const fromSiteA = resign(run.request, (p) => (p.from = 'site-a'), siteASigns);
    expect(() => run.clients.get('site-b')!.unmask(fromSiteA)).toThrow(
      /only the aggregator sends it/,
    );
    const posing = resign(run.request, () => undefined, siteASigns);
    expect(() => run.clients.get('site-b')!.unmask(posing)).toThrow(/signature does not verify/);
  });

  it('§secagg a message for another round, or made with another configuration, is refused', () => {
    const s = setup(3, { threshold: 2 });
    const nextRound = setup(3, { threshold: 2, roundId: 'fround-a/uid-2' }, s);
    const otherThreshold = setup(3, { threshold: 3 }, s);
    const agg = aggregator(s);
    const built = agg.buildKeyRoster([
      client(s, 'site-a').advertiseKeys(),
      client(s, 'site-b').advertiseKeys(),
      client(nextRound, 'site-c').advertiseKeys(),
      client(otherThreshold, 'site-c').advertiseKeys(),
    ]);
    expect(built.refused.map((e) => e.message)).toEqual([
      expect.stringMatching(
        /from "site-c": it is for round "fround-a\/uid-2", this is round "fround-a\/uid-1"/,
      ),
      expect.stringMatching(/from "site-c": it was made with a different configuration/),
    ]);
    // A masked input replayed from another round, signed by the same participant key.
    const other = runUntilUnmask(nextRound, zeros(s), ones(s), { respond: [] });
    const run = runUntilUnmask(s, zeros(s), ones(s), { mask: ['site-a', 'site-b'], respond: [] });
    expect(() => run.aggregator.receiveMaskedInput(other.masked.get('site-c')!.message)).toThrow(
      /it is for round "fround-a\/uid-2"/,
    );
  });
});

describe('secure aggregation: tampering', () => {
  const s = setup(3, { threshold: 2 });
  const siteBSigns = (payload: string) => sign(payload, s.identities.get('site-b')!.privateKey);

  type Shares = { to: string; ciphertext: string }[];
  const sharesOf = (e: Envelope) => (JSON.parse(e.payload) as { shares: Shares }).shares;

  /** site-b's ShareKeys with its ciphertext for site-a replaced, re-signed by site-b. */
  function withCiphertextForA(replace: (ofB: Shares, all: Envelope[]) => string) {
    const clients = new Map(s.ids.map((id) => [id, client(s, id)]));
    const agg = aggregator(s);
    const roster = agg.buildKeyRoster(s.ids.map((id) => clients.get(id)!.advertiseKeys())).message;
    agg.acceptKeyRoster(roster);
    const shareKeys = s.ids.map((id) => clients.get(id)!.shareKeys(roster));
    shareKeys[1] = resign(
      shareKeys[1]!,
      (p) => {
        const shares = p.shares as Shares;
        shares[0]!.ciphertext = replace(shares, shareKeys);
      },
      siteBSigns,
    );
    const shareSet = agg.buildShareSet(shareKeys).message;
    return { siteA: clients.get('site-a')!, shareSet };
  }

  it.each([
    {
      name: 'one bit flipped',
      replace: (ofB: Shares) => {
        const bytes = Buffer.from(ofB[0]!.ciphertext, 'base64');
        bytes[20]! ^= 1;
        return bytes.toString('base64');
      },
    },
    {
      name: "site-c's ciphertext passed off as site-a's",
      replace: (ofB: Shares) => ofB[1]!.ciphertext,
    },
    {
      // The a-b channel has one key for both directions: only the associated data (sender,
      // recipient) tells site-a's own message to site-b from one that site-b sent it.
      name: "site-a's own ciphertext for site-b reflected back to it",
      replace: (_: Shares, all: Envelope[]) => sharesOf(all[0]!)[0]!.ciphertext,
    },
  ])('§secagg a tampered share ciphertext is refused ($name)', ({ replace }) => {
    const { siteA, shareSet } = withCiphertextForA(replace);
    expect(() => siteA.maskInput(shareSet, new Float32Array(8), 1)).toThrow(
      /the ciphertext from site-b fails authentication/,
    );
  });

  it('§secagg a ciphertext changed by anyone but its sender breaks the signature and is left out', () => {
    const clients = new Map(s.ids.map((id) => [id, client(s, id)]));
    const agg = aggregator(s);
    const roster = agg.buildKeyRoster(s.ids.map((id) => clients.get(id)!.advertiseKeys())).message;
    agg.acceptKeyRoster(roster);
    const shareKeys: Envelope[] = s.ids.map((id) => clients.get(id)!.shareKeys(roster));
    const payload = JSON.parse(shareKeys[1]!.payload) as { shares: { ciphertext: string }[] };
    payload.shares[0]!.ciphertext = Buffer.alloc(76).toString('base64');
    shareKeys[1] = { payload: JSON.stringify(payload), signature: shareKeys[1]!.signature };
    const built = agg.buildShareSet(shareKeys);
    expect(built.refused.map((e) => e.message)).toEqual([
      expect.stringMatching(/Refused ShareKeys from "site-b": the signature does not verify/),
    ]);
    expect(JSON.parse(built.message.payload).shareKeys).toHaveLength(2);
  });

  it('§secagg a masked vector changed after signing is refused', () => {
    const run = runUntilMasked(s, zeros(s), ones(s));
    const { envelope, vector } = run.masked.get('site-a')!.message;
    const changed = Uint32Array.from(vector);
    changed[3] = (changed[3]! + 1) >>> 0;
    expect(() => run.aggregator.receiveMaskedInput({ envelope, vector: changed })).toThrow(
      /the vector does not match its signed digest/,
    );
    expect(() =>
      run.aggregator.receiveMaskedInput({ envelope, vector: vector.subarray(1) }),
    ).toThrow(/its vector has 8 elements \(header: 9\), expected 9/);
    expect(run.aggregator.receiveMaskedInput({ envelope, vector })).toBe('site-a');
  });

  it('§secagg a masked input after the unmask request, from a participant it counts as dropped, is refused', () => {
    const run = runUntilMasked(s, zeros(s), ones(s));
    run.aggregator.receiveMaskedInput(run.masked.get('site-a')!.message);
    run.aggregator.receiveMaskedInput(run.masked.get('site-b')!.message);
    expect(JSON.parse(run.aggregator.unmaskRequest().payload).dropped).toEqual(['site-c']);
    expect(() => run.aggregator.receiveMaskedInput(run.masked.get('site-c')!.message)).toThrow(
      /arrived after the unmask request, which counts site-c as dropped/,
    );
  });
});
