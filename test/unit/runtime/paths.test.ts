import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ENV, PVC_MOUNT_ROOT } from '../../../src/contract/runtime.ts';
import { PermanentError } from '../../../src/runtime/errors.ts';
import {
  localPath,
  mapPath,
  parsePathMap,
  pvcMountPath,
  readUri,
} from '../../../src/runtime/paths.ts';

const withMap = (map: Record<string, string>): NodeJS.ProcessEnv => ({
  [ENV.pathMap]: JSON.stringify(map),
});

describe('pvcMountPath', () => {
  it('mounts claim CLAIM under the contract root', () => {
    expect(pvcMountPath('datasets')).toBe(`${PVC_MOUNT_ROOT}/datasets`);
    expect(pvcMountPath('datasets')).toBe('/mnt/pvc/datasets');
  });
});

describe('localPath', () => {
  it.each([
    ['pvc://datasets/iris/iris.csv', {}, '/mnt/pvc/datasets/iris/iris.csv'],
    ['pvc://models', {}, '/mnt/pvc/models'],
    ['pvc://models/iris/', {}, '/mnt/pvc/models/iris'],
    ['pvc://models/a%20b.csv', {}, '/mnt/pvc/models/a b.csv'],
    ['pvc://models/../../etc/passwd', {}, '/mnt/pvc/models/etc/passwd'],
    ['file:///data/x.csv', {}, '/data/x.csv'],
    [
      'pvc://datasets/iris/iris.csv',
      { '/mnt/pvc/datasets': '/srv/claims/ns/datasets' },
      '/srv/claims/ns/datasets/iris/iris.csv',
    ],
    ['pvc://datasets', { '/mnt/pvc/datasets/': '/srv/d' }, '/srv/d'],
    // A mount of /mnt/pvc/data is no parent of /mnt/pvc/datasets.
    ['pvc://datasets/x', { '/mnt/pvc/data': '/srv/wrong' }, '/mnt/pvc/datasets/x'],
    // The longest mount path wins.
    [
      'pvc://models/iris/v1/model.json',
      { '/mnt/pvc': '/srv/all', '/mnt/pvc/models': '/srv/models' },
      '/srv/models/iris/v1/model.json',
    ],
    ['file:///scratch/out', { '/scratch': '/tmp/pod-1/scratch' }, '/tmp/pod-1/scratch/out'],
  ])('%s with map %j -> %s', (uri, map, expected) => {
    expect(localPath(uri, withMap(map))).toBe(expected);
  });

  it.each(['https://example.com/x.csv', 's3://bucket/x', 'pvc:///no-claim'])(
    'rejects %s as not local',
    (uri) => {
      expect(() => localPath(uri, {})).toThrow(PermanentError);
    },
  );
});

describe('parsePathMap', () => {
  it('reads nothing from an unset variable', () => {
    expect(parsePathMap(undefined)).toEqual({});
  });

  it.each(['not json', '[1]', '{"/a": 1}'])('rejects %s as a permanent error', (json) => {
    expect(() => parsePathMap(json)).toThrow(PermanentError);
  });

  it('leaves paths outside every mount alone', () => {
    expect(mapPath('/etc/hosts', { '/mnt/pvc/a': '/srv/a' })).toBe('/etc/hosts');
  });
});

describe('readUri', () => {
  let dir: string;
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'lepton-paths-'));
    await writeFile(join(dir, 'hello.txt'), 'hello');
  });
  afterAll(() => rm(dir, { recursive: true, force: true }));

  it('reads a pvc file through the path map', async () => {
    const env = withMap({ '/mnt/pvc/data': dir });
    expect((await readUri('pvc://data/hello.txt', env)).toString()).toBe('hello');
  });

  it('reports a missing file as a permanent error naming the URI', async () => {
    const env = withMap({ '/mnt/pvc/data': dir });
    await expect(readUri('pvc://data/missing.txt', env)).rejects.toThrow(
      /pvc:\/\/data\/missing\.txt/,
    );
    await expect(readUri('pvc://data/missing.txt', env)).rejects.toBeInstanceOf(PermanentError);
  });
});

describe('readUri over http', () => {
  const server = createServer((req, res) => {
    const status = Number(req.url?.slice(1)) || 200;
    res.writeHead(status).end(status === 200 ? 'f,label\n1,a\n' : 'no');
  });
  let base: string;
  beforeAll(async () => {
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });
  afterAll(() => new Promise((resolve) => server.close(resolve)));

  it('GETs the body', async () => {
    expect((await readUri(`${base}/data.csv`)).toString()).toBe('f,label\n1,a\n');
  });

  it.each([
    [404, true],
    [403, true],
    [503, false],
    [429, false],
  ])('an answer %i is permanent: %s', async (status, permanent) => {
    const err = await readUri(`${base}/${status}`).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(Error);
    expect(err instanceof PermanentError).toBe(permanent);
    expect((err as Error).message).toContain(`answered ${status}`);
  });
});

describe('readUri of an unreachable dataset', () => {
  it('§4 says the URL without credentials and the cause, not "fetch failed"', async () => {
    // A port that was free a moment ago: nothing listens there.
    const server = createServer();
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    const { port } = server.address() as AddressInfo;
    await new Promise((r) => server.close(r));
    const err = await readUri(`http://127.0.0.1:${port}/data.csv`).catch((e: Error) => e);
    expect((err as Error).message).toBe(
      `GET http://127.0.0.1:${port}/data.csv failed: ECONNREFUSED: connect ECONNREFUSED 127.0.0.1:${port}`,
    );
    const withPassword = await readUri(`http://user:secret@127.0.0.1:${port}/d.csv`).catch(
      (e: Error) => e,
    );
    expect((withPassword as Error).message).toMatch(
      /^GET http:\/\/127\.0\.0\.1:\d+\/d\.csv failed: /,
    );
    expect((withPassword as Error).message).not.toContain('secret');
  });
});
