// Authenticated /metrics over HTTPS, as controller-runtime's secure metrics serving
// (filters.WithAuthenticationAndAuthorization) does it: the caller's bearer token is checked
// with a TokenReview and its user authorized with a SubjectAccessReview for the non-resource
// URL (get /metrics), so access is granted by RBAC (a ClusterRole with nonResourceURLs
// ["/metrics"] and verbs ["get"]). Answers are cached for a short while per token, so a
// Prometheus scraping every few seconds costs the API server two requests a minute.
import { createHash, createPrivateKey, generateKeyPairSync, randomBytes, sign } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { isIP } from 'node:net';
import { join } from 'node:path';
import type { KubeClient } from './client.ts';
import { type Clock, realClock } from './clock.ts';
import type { SecureServing } from './health.ts';
import type { ResourceType } from './resources.ts';

const TokenReview: ResourceType = {
  group: 'authentication.k8s.io',
  version: 'v1',
  plural: 'tokenreviews',
  kind: 'TokenReview',
  namespaced: false,
};

const SubjectAccessReview: ResourceType = {
  group: 'authorization.k8s.io',
  version: 'v1',
  plural: 'subjectaccessreviews',
  kind: 'SubjectAccessReview',
  namespaced: false,
};

/** How long a verdict is reused: an allowed token a minute, a refused one 10 s (RBAC may change). */
const ALLOWED_TTL_MS = 60_000;
const DENIED_TTL_MS = 10_000;
/** Tokens remembered at most; the oldest verdict goes first. */
const CACHE_SIZE = 1024;
/** The self-signed certificate's lifetime. */
const SELF_SIGNED_DAYS = 365;

export interface Verdict {
  /** 200 allowed, 401 no or invalid token, 403 authenticated but not authorized. */
  code: 200 | 401 | 403;
  message: string;
}

interface TokenReviewStatus {
  authenticated?: boolean;
  error?: string;
  user?: { username?: string; uid?: string; groups?: string[]; extra?: Record<string, string[]> };
}

interface SubjectAccessReviewStatus {
  allowed?: boolean;
  denied?: boolean;
  reason?: string;
}

export class MetricsAuthorizer {
  private readonly client: KubeClient;
  private readonly clock: Clock;
  private readonly path: string;
  /** Verdicts by sha256 of the token (the token itself is not kept), oldest first. */
  private readonly cache = new Map<string, { verdict: Verdict; expires: number }>();

  constructor(opts: { client: KubeClient; clock?: Clock; path?: string }) {
    this.client = opts.client;
    this.clock = opts.clock ?? realClock;
    this.path = opts.path ?? '/metrics';
  }

  /**
   * The verdict for a request's Authorization header. An API error is thrown (the caller
   * answers 500) and not cached, so the next scrape asks again.
   */
  async check(authorization: string | undefined): Promise<Verdict> {
    const m = /^Bearer\s+(\S+)\s*$/i.exec(authorization ?? '');
    if (!m) return { code: 401, message: 'a bearer token is required' };
    const token = m[1] as string;
    const key = createHash('sha256').update(token).digest('hex');
    const now = this.clock.now();
    const hit = this.cache.get(key);
    if (hit && hit.expires > now) return hit.verdict;
    this.cache.delete(key);
    const verdict = await this.review(token);
    if (this.cache.size >= CACHE_SIZE) {
      const oldest = this.cache.keys().next().value;
      if (oldest !== undefined) this.cache.delete(oldest);
    }
    const ttl = verdict.code === 200 ? ALLOWED_TTL_MS : DENIED_TTL_MS;
    this.cache.set(key, { verdict, expires: now + ttl });
    return verdict;
  }

  private async review(token: string): Promise<Verdict> {
    const tr = await this.client.create<{
      metadata: Record<string, never>;
      status?: TokenReviewStatus;
    }>(TokenReview, {
      apiVersion: 'authentication.k8s.io/v1',
      kind: 'TokenReview',
      metadata: {},
      spec: { token },
    } as never);
    const user = tr.status?.user;
    if (!tr.status?.authenticated || !user?.username)
      return { code: 401, message: `the token was not accepted${reason(tr.status?.error)}` };
    const sar = await this.client.create<{
      metadata: Record<string, never>;
      status?: SubjectAccessReviewStatus;
    }>(SubjectAccessReview, {
      apiVersion: 'authorization.k8s.io/v1',
      kind: 'SubjectAccessReview',
      metadata: {},
      spec: {
        user: user.username,
        uid: user.uid,
        groups: user.groups,
        extra: user.extra,
        nonResourceAttributes: { path: this.path, verb: 'get' },
      },
    } as never);
    if (sar.status?.allowed && !sar.status.denied) return { code: 200, message: 'ok' };
    return {
      code: 403,
      message: `${user.username} may not get ${this.path}${reason(sar.status?.reason)}`,
    };
  }
}

function reason(text: string | undefined): string {
  return text ? `: ${text}` : '';
}

export interface ServingCertificate {
  cert: string;
  key: string;
  /** Where it came from, for the start-up log. */
  source: string;
}

/** tls.crt and tls.key of `dir` (a mounted kubernetes.io/tls Secret), with an error naming the file. */
export function loadCertificate(dir: string): ServingCertificate {
  const read = (file: string) => {
    const path = join(dir, file);
    try {
      return readFileSync(path, 'utf8');
    } catch (err) {
      throw new Error(`Cannot read the metrics certificate ${path}: ${(err as Error).message}`);
    }
  };
  const cert = read('tls.crt');
  const key = read('tls.key');
  try {
    createPrivateKey(key);
  } catch (err) {
    throw new Error(`${join(dir, 'tls.key')} is not a PEM private key: ${(err as Error).message}`);
  }
  return { cert, key, source: dir };
}

/**
 * A self-signed ECDSA P-256 certificate for `hosts` (DNS names and IP addresses), valid from now
 * for a year: what controller-runtime generates when no certificate is given. Scrapers then
 * skip verification (Prometheus: tls_config.insecure_skip_verify) or are given a real one.
 */
export function selfSignedCertificate(hosts: string[], now = new Date()): ServingCertificate {
  const { publicKey, privateKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  const name = seq(set(seq(oid('2.5.4.3'), tlv(0x0c, Buffer.from('lepton-operator-metrics')))));
  const ecdsaSha256 = seq(oid('1.2.840.10045.4.3.2'));
  const notAfter = new Date(now.getTime() + SELF_SIGNED_DAYS * 86_400_000);
  const altNames = hosts.map((h) =>
    isIP(h) ? tlv(0x87, ipBytes(h)) : tlv(0x82, Buffer.from(h, 'ascii')),
  );
  const extensions = tlv(
    0xa3,
    seq(
      seq(oid('2.5.29.17'), tlv(0x04, seq(...altNames))),
      // basicConstraints, critical, CA:FALSE; extendedKeyUsage serverAuth.
      seq(oid('2.5.29.19'), tlv(0x01, Buffer.from([0xff])), tlv(0x04, seq())),
      seq(oid('2.5.29.37'), tlv(0x04, seq(oid('1.3.6.1.5.5.7.3.1')))),
    ),
  );
  const serial = randomBytes(16);
  serial[0] = (serial[0] as number) & 0x7f; // positive
  const tbs = seq(
    tlv(0xa0, tlv(0x02, Buffer.from([2]))), // version 3
    tlv(0x02, serial),
    ecdsaSha256,
    name,
    seq(time(now), time(notAfter)),
    name,
    publicKey.export({ type: 'spki', format: 'der' }),
    extensions,
  );
  const signature = sign('sha256', tbs, privateKey);
  const der = seq(tbs, ecdsaSha256, tlv(0x03, Buffer.concat([Buffer.from([0]), signature])));
  const b64 = der.toString('base64').replace(/(.{64})/g, '$1\n');
  return {
    cert: `-----BEGIN CERTIFICATE-----\n${b64.trimEnd()}\n-----END CERTIFICATE-----\n`,
    key: privateKey.export({ type: 'pkcs8', format: 'pem' }).toString(),
    source: `self-signed for ${hosts.join(', ')}`,
  };
}

// DER encoding (X.690), the few types a certificate needs.
function tlv(tag: number, body: Buffer): Buffer {
  const n = body.length;
  const len =
    n < 0x80
      ? Buffer.from([n])
      : n < 0x100
        ? Buffer.from([0x81, n])
        : Buffer.from([0x82, n >> 8, n & 0xff]);
  return Buffer.concat([Buffer.from([tag]), len, body]);
}

const seq = (...parts: Buffer[]) => tlv(0x30, Buffer.concat(parts));
const set = (...parts: Buffer[]) => tlv(0x31, Buffer.concat(parts));

function oid(dotted: string): Buffer {
  const [a, b, ...rest] = dotted.split('.').map(Number) as number[];
  const bytes = [40 * (a as number) + (b as number)];
  for (const v of rest) {
    const chunk = [v & 0x7f];
    for (let x = v >> 7; x > 0; x >>= 7) chunk.unshift((x & 0x7f) | 0x80);
    bytes.push(...chunk);
  }
  return tlv(0x06, Buffer.from(bytes));
}

/** UTCTime (YYMMDDHHMMSSZ) until 2049, GeneralizedTime after, as RFC 5280 requires. */
function time(d: Date): Buffer {
  const iso = d.toISOString().replace(/[-:T]/g, '').slice(0, 14);
  return d.getUTCFullYear() < 2050
    ? tlv(0x17, Buffer.from(`${iso.slice(2)}Z`))
    : tlv(0x18, Buffer.from(`${iso}Z`));
}

function ipBytes(ip: string): Buffer {
  if (isIP(ip) === 4) return Buffer.from(ip.split('.').map(Number));
  const [head = '', tail = ''] = ip.split('::');
  const groups = (s: string) => (s ? s.split(':') : []);
  const h = groups(head);
  const t = groups(tail);
  const all = ip.includes('::') ? [...h, ...Array(8 - h.length - t.length).fill('0'), ...t] : h;
  return Buffer.from(all.flatMap((g) => [parseInt(g, 16) >> 8, parseInt(g, 16) & 0xff]));
}

/**
 * What serveEndpoints needs for --metrics-secure: the certificate (from --metrics-cert-dir, else
 * self-signed for this host) and the token check. Undefined when metrics are plain HTTP.
 */
export function secureServing(
  config: { metricsSecure: boolean; metricsCertDir?: string },
  client: KubeClient,
  hostname: string,
): SecureServing | undefined {
  if (!config.metricsSecure) return undefined;
  const { cert, key } = config.metricsCertDir
    ? loadCertificate(config.metricsCertDir)
    : selfSignedCertificate([hostname, 'localhost', '127.0.0.1', '::1']);
  const authorizer = new MetricsAuthorizer({ client });
  return { cert, key, authorize: (h) => authorizer.check(h) };
}
