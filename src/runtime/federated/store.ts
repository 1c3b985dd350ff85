// The round's folder in the model store, <output>/.federated/, where the pods of a round meet:
// no pod talks to another over the network, each writes its own files and reads the others'.
//
//   .federated/updates/<participant>.update      a client's update (update-file.ts)
// and, with secure aggregation (secagg-client.ts), each step a client's entry and the set the
// clients agreed (agreement.ts), written once:
//   .federated/secagg/advertise/<participant>.json   it takes part, with its sample count
//   .federated/secagg/roster.json                 who does (and so the largest sample count)
//   .federated/secagg/keys/<participant>.json     its AdvertiseKeys (X25519 public keys)
//   .federated/secagg/keys.json                   U1: who advertised keys in time
//   .federated/secagg/shares/<participant>.json   its ShareKeys (secret shares, encrypted per peer)
//   .federated/secagg/sharers.json                U2: who shared in time
//   .federated/secagg/unmask-request.json         the aggregator's UnmaskRequest (survivors, dropped)
//   .federated/secagg/unmask/<participant>.json   a survivor's UnmaskResponse (written once)
//
// Files appear whole: each is written under a temporary name and renamed, and the files that
// settle a question (roster, sharers, request, answers) are created exclusively, so the first
// writer wins and nobody can replace them.
import { randomBytes } from 'node:crypto';
import { link, mkdir, open, readFile, rename, rm, unlink, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { setTimeout as delay } from 'node:timers/promises';
import { ROUND_FOLDER } from '../../contract/federated.ts';
import { localPath } from '../paths.ts';

const UPDATE_SUFFIX = '.update';

/** How often a pod looks at the store for what it waits for. */
export const POLL_MS = 250;

export interface RoundStore {
  /** The round's output directory on this machine. */
  outputDir: string;
  root: string;
  updatesDir: string;
  secaggDir: string;
  update(participant: string): string;
  advertise(participant: string): string;
  roster: string;
  keys(participant: string): string;
  keysAgreement: string;
  shares(participant: string): string;
  sharers: string;
  unmaskRequest: string;
  unmaskDir: string;
  unmaskResponse(participant: string): string;
}

export function roundStore(outputUri: string, env: NodeJS.ProcessEnv): RoundStore {
  const outputDir = localPath(outputUri, env);
  const root = join(outputDir, ROUND_FOLDER);
  const updatesDir = join(root, 'updates');
  const secaggDir = join(root, 'secagg');
  // Participant names are DNS labels (the CRD says so); refuse anything that could leave the folder.
  const file = (dir: string, name: string, ext: string): string => {
    if (!/^[A-Za-z0-9][A-Za-z0-9._-]*$/.test(name) || name.includes('..'))
      throw new Error(`"${name}" cannot name a file in the round's folder`);
    return join(dir, `${name}${ext}`);
  };
  return {
    outputDir,
    root,
    updatesDir,
    secaggDir,
    update: (p) => file(updatesDir, p, UPDATE_SUFFIX),
    advertise: (p) => file(join(secaggDir, 'advertise'), p, '.json'),
    roster: join(secaggDir, 'roster.json'),
    keys: (p) => file(join(secaggDir, 'keys'), p, '.json'),
    keysAgreement: join(secaggDir, 'keys.json'),
    shares: (p) => file(join(secaggDir, 'shares'), p, '.json'),
    sharers: join(secaggDir, 'sharers.json'),
    unmaskRequest: join(secaggDir, 'unmask-request.json'),
    unmaskDir: join(secaggDir, 'unmask'),
    unmaskResponse: (p) => file(join(secaggDir, 'unmask'), p, '.json'),
  };
}

function temporaryName(path: string): string {
  return join(dirname(path), `.${randomBytes(6).toString('hex')}.tmp`);
}

/** Writes `data` to `path` under a temporary name, then renames it (replacing what was there). */
export async function writeWhole(path: string, data: Uint8Array | string): Promise<void> {
  await mkdir(dirname(path), { recursive: true });
  const tmp = temporaryName(path);
  await writeFile(tmp, data);
  await rename(tmp, path);
}

/**
 * Creates `path` with `data` unless it exists; true when this call created it. A hard link of a
 * complete temporary file is both exclusive and atomic; on a file system without hard links an
 * exclusive open ('wx') is, and readers retry a file they catch half written.
 */
export async function createOnce(
  path: string,
  data: Uint8Array | string,
  opts: { createFolder?: boolean } = {},
): Promise<boolean> {
  if (opts.createFolder ?? true) await mkdir(dirname(path), { recursive: true });
  const tmp = temporaryName(path);
  await writeFile(tmp, data);
  try {
    await link(tmp, path);
    return true;
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'EEXIST') return false;
    if (code !== 'EPERM' && code !== 'ENOTSUP' && code !== 'EOPNOTSUPP') throw err;
  } finally {
    await unlink(tmp).catch(() => undefined);
  }
  let handle;
  try {
    handle = await open(path, 'wx');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'EEXIST') return false;
    throw err;
  }
  try {
    await handle.writeFile(data);
  } finally {
    await handle.close();
  }
  return true;
}

export async function createFolder(path: string): Promise<void> {
  await mkdir(path, { recursive: true });
}

/** The file's text, or undefined when it does not exist (yet). */
export async function readIfPresent(path: string): Promise<Buffer | undefined> {
  try {
    return await readFile(path);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw err;
  }
}

export async function removeFolder(path: string): Promise<void> {
  await rm(path, { recursive: true, force: true });
}

/** A round's waits: until when, how often to look, and what stops them. */
export interface Waiting {
  /** Epoch milliseconds. */
  deadline: number;
  /** Between two looks at the store; the store has no notifications (it may be NFS). */
  pollMs: number;
  signal?: AbortSignal;
  now?: () => number;
}

/**
 * Calls `look` until it returns a value or `deadline` passes (then undefined). `look` is called
 * once more at the deadline, so what arrived just in time counts.
 */
export async function poll<T>(
  look: () => Promise<T | undefined>,
  waiting: Waiting,
  deadline = waiting.deadline,
): Promise<T | undefined> {
  const now = waiting.now ?? Date.now;
  for (;;) {
    waiting.signal?.throwIfAborted();
    const found = await look();
    if (found !== undefined) return found;
    const left = deadline - now();
    if (left <= 0) return undefined;
    await delay(Math.min(waiting.pollMs, left), undefined, { signal: waiting.signal });
  }
}
