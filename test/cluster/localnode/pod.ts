// Runs one pod bound to the local node: each container is a process group on this machine. The
// runner writes the pod's Secret volumes, runs the init containers one at a time to completion,
// then the main containers; it keeps the containers' states (waiting, running, terminated,
// restarts), runs probes, honours restartPolicy, and computes the pod's status; the node writes
// that status to the API.
import { type ChildProcess, spawn } from 'node:child_process';
import {
  chmodSync,
  closeSync,
  existsSync,
  mkdirSync,
  openSync,
  readFileSync,
  rmSync,
  statSync,
  writeFileSync,
} from 'node:fs';
import { dirname, join, normalize } from 'node:path';
import { parseQuantity } from '../../../src/scheduling/capacity.ts';
import { resolveImage } from './images.ts';
import type { PodAddress, PodNetwork } from './network.ts';

type Probe = {
  httpGet?: { path?: string; port: number | string; host?: string; scheme?: string };
  exec?: { command: string[] };
  tcpSocket?: { port: number | string };
  initialDelaySeconds?: number;
  periodSeconds?: number;
  timeoutSeconds?: number;
  successThreshold?: number;
  failureThreshold?: number;
};

export interface ContainerSpec {
  name: string;
  image: string;
  command?: string[];
  args?: string[];
  workingDir?: string;
  env?: {
    name: string;
    value?: string;
    valueFrom?: {
      fieldRef?: { fieldPath: string };
      resourceFieldRef?: { containerName?: string; resource: string; divisor?: string | number };
    } & Record<string, unknown>;
  }[];
  envFrom?: unknown[];
  ports?: { name?: string; containerPort: number }[];
  volumeMounts?: { name: string; mountPath: string; subPath?: string; readOnly?: boolean }[];
  readinessProbe?: Probe;
  livenessProbe?: Probe;
  startupProbe?: Probe;
  terminationMessagePath?: string;
  terminationMessagePolicy?: 'File' | 'FallbackToLogsOnError';
  resources?: { limits?: Record<string, string>; requests?: Record<string, string> };
  /** Only on init containers: Always makes it a sidecar, which the local node does not run. */
  restartPolicy?: 'Always';
}

export interface SecretVolumeSource {
  secretName?: string;
  items?: { key: string; path: string; mode?: number }[];
  defaultMode?: number;
  optional?: boolean;
}

export interface PodObject {
  metadata: {
    name: string;
    namespace: string;
    uid: string;
    labels?: Record<string, string>;
    annotations?: Record<string, string>;
    deletionTimestamp?: string;
    deletionGracePeriodSeconds?: number;
  };
  spec: {
    nodeName?: string;
    hostname?: string;
    subdomain?: string;
    serviceAccountName?: string;
    restartPolicy?: 'Always' | 'OnFailure' | 'Never';
    terminationGracePeriodSeconds?: number;
    initContainers?: ContainerSpec[];
    containers: ContainerSpec[];
    volumes?: {
      name: string;
      emptyDir?: object;
      persistentVolumeClaim?: { claimName: string };
      hostPath?: { path: string };
      secret?: SecretVolumeSource;
    }[];
  };
  status?: { conditions?: { type: string; status: string; lastTransitionTime?: string }[] };
}

type State =
  | { waiting: { reason: string; message?: string } }
  | { running: { startedAt: string } }
  | {
      terminated: {
        exitCode: number;
        signal?: number;
        reason: string;
        message?: string;
        startedAt: string;
        finishedAt: string;
      };
    };

interface Container {
  spec: ContainerSpec;
  /** An init container: runs to completion before the next one, never ready, never probed. */
  init: boolean;
  /** Mount path -> folder on this machine, what the process gets as LEPTON_PATH_MAP. */
  pathMap: Record<string, string>;
  proc?: ChildProcess;
  state: State;
  lastState?: State;
  restartCount: number;
  ready: boolean;
  started: boolean;
  /** Probe bookkeeping: consecutive successes and failures. */
  readiness: { ok: number; fail: number };
  liveness: { fail: number };
  timers: NodeJS.Timeout[];
  /** Set when the process exits, so terminate() can wait for it. */
  exited?: Promise<void>;
}

export interface PodContext {
  nodeName: string;
  hostIP: string;
  address: PodAddress;
  network: PodNetwork;
  /** Folder for this pod: logs, emptyDirs, termination messages. */
  podDir: string;
  /** Folder holding one sub-folder per PersistentVolumeClaim, shared by every pod. */
  claimsDir: string;
  hostsFile: string;
  repoRoot: string;
  /** The data (base64 values) of a Secret in the pod's namespace; undefined when there is none. */
  readSecret: (name: string) => Promise<Record<string, string> | undefined>;
  onChange: () => void;
  log: (msg: string, meta?: Record<string, unknown>) => void;
}

const now = () => new Date().toISOString().replace(/\.\d{3}Z$/, 'Z');
const BACKOFF_BASE_MS = 1000;
const BACKOFF_MAX_MS = 30_000;
const MAX_MESSAGE_BYTES = 4096;
const FALLBACK_LOG_BYTES = 2048;
/** A missing Secret is asked for again after this, doubling up to the maximum (kubelet retries too). */
const SECRET_RETRY_BASE_MS = 500;
const SECRET_RETRY_MAX_MS = 5000;
/**
 * The mode of a Secret's files when the volume has no defaultMode. The API server defaults it to
 * 0644 in every pod it stores, so this applies only to pods that did not come through it.
 */
const SECRET_FILE_MODE = 0o400;

type Problem = { reason: string; message: string };

export class PodRunner {
  readonly pod: PodObject;
  private readonly ctx: PodContext;
  private readonly inits: Container[];
  private readonly containers: Container[];
  private readonly startedAt = now();
  private terminating = false;
  private setupError: Problem | undefined;
  /** Folders of the Secret volumes, by volume name; written before any container starts. */
  private readonly secretDirs = new Map<string, string>();
  private secretsWriting: Promise<unknown> | undefined;
  private secretRetry: NodeJS.Timeout | undefined;
  private secretRetryMs = SECRET_RETRY_BASE_MS;

  constructor(pod: PodObject, ctx: PodContext) {
    this.pod = pod;
    this.ctx = ctx;
    const container = (spec: ContainerSpec, init: boolean): Container => ({
      spec,
      init,
      pathMap: {},
      state: { waiting: { reason: init ? 'PodInitializing' : 'ContainerCreating' } },
      restartCount: 0,
      ready: false,
      started: false,
      readiness: { ok: 0, fail: 0 },
      liveness: { fail: 0 },
      timers: [],
    });
    this.inits = (pod.spec.initContainers ?? []).map((spec) => container(spec, true));
    this.containers = pod.spec.containers.map((spec) => container(spec, false));
    // As a kubelet reports them: the main containers wait for the init containers.
    if (this.inits.length)
      for (const c of this.containers) c.state = { waiting: { reason: 'PodInitializing' } };
  }

  private get all(): Container[] {
    return [...this.inits, ...this.containers];
  }

  start(): void {
    this.setupError = this.refuseSidecars() ?? this.prepareVolumes();
    if (this.setupError) {
      for (const c of this.all) c.state = { waiting: { ...this.setupError } };
      this.ctx.onChange();
      return;
    }
    this.writeSecretsThenStart();
  }

  private refuseSidecars(): Problem | undefined {
    const sidecar = this.inits.find((c) => c.spec.restartPolicy === 'Always');
    if (!sidecar) return undefined;
    return {
      reason: 'CreateContainerConfigError',
      message: `init container ${sidecar.spec.name}: restartPolicy Always (a sidecar) is not supported by the local node`,
    };
  }

  /**
   * Volumes become folders: emptyDir and secret per pod, a claim per claim name, hostPath as
   * itself. Secret volumes get their files later (writeSecrets), as they need the API.
   */
  private prepareVolumes(): Problem | undefined {
    const dirs: Record<string, string> = {};
    for (const v of this.pod.spec.volumes ?? []) {
      if (v.emptyDir) dirs[v.name] = join(this.ctx.podDir, 'volumes', v.name);
      else if (v.persistentVolumeClaim) {
        dirs[v.name] = join(
          this.ctx.claimsDir,
          this.pod.metadata.namespace,
          v.persistentVolumeClaim.claimName,
        );
      } else if (v.hostPath) dirs[v.name] = v.hostPath.path;
      else if (v.secret) {
        dirs[v.name] = join(this.ctx.podDir, 'volumes', v.name);
        this.secretDirs.set(v.name, dirs[v.name] as string);
      } else {
        return {
          reason: 'CreateContainerConfigError',
          message: `volume ${v.name}: the local node supports emptyDir, persistentVolumeClaim, hostPath and secret volumes only`,
        };
      }
      // A Secret's folder is readable by this machine's user only, like a kubelet's tmpfs.
      mkdirSync(dirs[v.name] as string, { recursive: true, ...(v.secret ? { mode: 0o700 } : {}) });
    }
    for (const c of this.all) {
      for (const m of c.spec.volumeMounts ?? []) {
        const dir = dirs[m.name];
        if (!dir)
          return {
            reason: 'CreateContainerConfigError',
            message: `volumeMount ${m.mountPath} of container ${c.spec.name}: no volume named ${m.name}`,
          };
        const target = m.subPath ? join(dir, m.subPath) : dir;
        // A subPath of a Secret volume names a file (a key), not a folder to create.
        if (!this.secretDirs.has(m.name)) mkdirSync(target, { recursive: true });
        c.pathMap[m.mountPath] = target;
      }
    }
    return undefined;
  }

  /**
   * Writes every Secret volume, then starts the first init container (or the main containers).
   * A Secret that cannot be read keeps the containers waiting, and is asked for again.
   */
  private writeSecretsThenStart(): void {
    const writing = this.writeSecrets().catch((err: Error): Problem => ({
      reason: 'CreateContainerConfigError',
      message: `reading the pod's Secrets failed: ${err.message}`,
    }));
    this.secretsWriting = writing;
    void writing.then((problem) => {
      this.secretsWriting = undefined;
      if (this.terminating) return;
      if (!problem) {
        this.startNext(undefined);
        return;
      }
      const next = this.inits.length ? this.inits.slice(0, 1) : this.containers;
      for (const c of next) c.state = { waiting: { ...problem } };
      this.ctx.onChange();
      this.secretRetry = setTimeout(() => this.writeSecretsThenStart(), this.secretRetryMs);
      this.secretRetryMs = Math.min(SECRET_RETRY_MAX_MS, this.secretRetryMs * 2);
    });
  }

  /** Reads every Secret first, so that a missing one leaves no volume half written. */
  private async writeSecrets(): Promise<Problem | undefined> {
    const files: { path: string; data: Buffer; mode: number }[] = [];
    for (const v of this.pod.spec.volumes ?? []) {
      const source = v.secret;
      const dir = this.secretDirs.get(v.name);
      if (!source || !dir) continue;
      const name = source.secretName ?? '';
      const data = await this.ctx.readSecret(name);
      if (!data) {
        if (source.optional) continue;
        return {
          reason: 'CreateContainerConfigError',
          message: `volume ${v.name}: secret "${name}" not found`,
        };
      }
      const mode = source.defaultMode ?? SECRET_FILE_MODE;
      const items: NonNullable<SecretVolumeSource['items']> =
        source.items ?? Object.keys(data).map((key) => ({ key, path: key }));
      for (const item of items) {
        const value = data[item.key];
        if (value === undefined) {
          if (source.optional) continue;
          return {
            reason: 'CreateContainerConfigError',
            message: `volume ${v.name}: couldn't find key ${item.key} in Secret ${this.pod.metadata.namespace}/${name}`,
          };
        }
        // The API server refuses absolute paths and '..' in items; checked again, as a file
        // outside the volume would outlive the pod.
        const rel = normalize(item.path);
        if (rel.startsWith('..') || rel.startsWith('/'))
          return {
            reason: 'CreateContainerConfigError',
            message: `volume ${v.name}: item path ${item.path} leaves the volume`,
          };
        files.push({
          path: join(dir, rel),
          data: Buffer.from(value, 'base64'),
          mode: item.mode ?? mode,
        });
      }
    }
    for (const f of files) {
      mkdirSync(dirname(f.path), { recursive: true });
      writeFileSync(f.path, f.data, { mode: f.mode });
      // writeFileSync's mode applies only to a new file.
      chmodSync(f.path, f.mode);
    }
    return undefined;
  }

  /** After `done` (an init container that completed, or nothing yet): the next init container, or the main ones. */
  private startNext(done: Container | undefined): void {
    if (this.terminating) return;
    const next = this.inits[done ? this.inits.indexOf(done) + 1 : 0];
    if (next) {
      this.startContainer(next);
      return;
    }
    for (const c of this.containers) this.startContainer(c);
  }

  private containerDir(c: Container): string {
    return join(this.ctx.podDir, c.spec.name);
  }

  logFile(name: string, restart?: number): string {
    const c = this.all.find((x) => x.spec.name === name);
    return join(this.ctx.podDir, name, `${restart ?? c?.restartCount ?? 0}.log`);
  }

  /**
   * A container's resource as the downward API gives it: limits.* or requests.* (cpu, memory,
   * ephemeral-storage) of the named container, divided by divisor and rounded up, as kubelet does.
   */
  private resourceValue(
    c: Container,
    ref: { containerName?: string; resource: string; divisor?: string | number },
  ): string | undefined {
    const container =
      ref.containerName === undefined
        ? c.spec
        : [...(this.pod.spec.initContainers ?? []), ...this.pod.spec.containers].find(
            (x) => x.name === ref.containerName,
          );
    const m = /^(limits|requests)\.(.+)$/.exec(ref.resource);
    if (!container || !m) return undefined;
    const quantity = container.resources?.[m[1] as 'limits' | 'requests']?.[m[2]!];
    if (quantity === undefined) return undefined;
    const divisor = parseQuantity(ref.divisor ?? 1) || 1;
    return String(Math.ceil(parseQuantity(quantity) / divisor));
  }

  private fieldValue(path: string): string {
    const { metadata, spec } = this.pod;
    const label = /^metadata\.(labels|annotations)\['(.+)'\]$/.exec(path);
    if (label)
      return (
        (label[1] === 'labels' ? metadata.labels : metadata.annotations)?.[label[2] ?? ''] ?? ''
      );
    const fields: Record<string, string | undefined> = {
      'metadata.name': metadata.name,
      'metadata.namespace': metadata.namespace,
      'metadata.uid': metadata.uid,
      'spec.nodeName': this.ctx.nodeName,
      'spec.serviceAccountName': spec.serviceAccountName,
      'status.podIP': this.ctx.address.ip,
      'status.podIPs': this.ctx.address.ip,
      'status.hostIP': this.ctx.hostIP,
      'status.hostIPs': this.ctx.hostIP,
    };
    return fields[path] ?? '';
  }

  private environment(c: Container): Record<string, string> | { error: string } {
    if (c.spec.envFrom?.length) return { error: 'envFrom is not supported by the local node' };
    const env: Record<string, string> = {
      PATH: process.env.PATH ?? '/usr/bin:/bin',
      HOME: process.env.HOME ?? '/root',
      HOSTNAME: this.pod.spec.hostname ?? this.pod.metadata.name,
      LEPTON_POD_IP: this.ctx.address.ip,
      LEPTON_NODE_NAME: this.ctx.nodeName,
      LEPTON_PATH_MAP: JSON.stringify(c.pathMap),
      LEPTON_HOSTS_FILE: this.ctx.hostsFile,
      LEPTON_TERMINATION_LOG: join(this.containerDir(c), 'termination-log'),
    };
    for (const e of c.spec.env ?? []) {
      if (e.value !== undefined)
        env[e.name] = e.value.replace(
          /\$\(([A-Za-z_][A-Za-z0-9_]*)\)/g,
          (m, v: string) => env[v] ?? m,
        );
      else if (e.valueFrom?.fieldRef) env[e.name] = this.fieldValue(e.valueFrom.fieldRef.fieldPath);
      else if (e.valueFrom?.resourceFieldRef) {
        const value = this.resourceValue(c, e.valueFrom.resourceFieldRef);
        if (value === undefined)
          return {
            error: `env ${e.name}: resourceFieldRef names no limit or request the local node knows`,
          };
        env[e.name] = value;
      } else if (e.valueFrom)
        return {
          error: `env ${e.name}: only value, fieldRef and resourceFieldRef are supported by the local node`,
        };
      else env[e.name] = '';
    }
    return env;
  }

  private startContainer(c: Container): void {
    if (this.terminating) return;
    const image = resolveImage(c.spec.image, c.spec.command, c.spec.args, this.ctx.repoRoot);
    if (!image.ok) {
      c.state = { waiting: { reason: image.reason, message: image.message } };
      this.ctx.onChange();
      return;
    }
    const env = this.environment(c);
    if ('error' in env) {
      c.state = { waiting: { reason: 'CreateContainerConfigError', message: env.error } };
      this.ctx.onChange();
      return;
    }
    mkdirSync(this.containerDir(c), { recursive: true });
    // Each run writes its own termination message; a restart must not report the last one's.
    rmSync(join(this.containerDir(c), 'termination-log'), { force: true });
    const cwd = this.workingDir(c);
    const logPath = this.logFile(c.spec.name, c.restartCount);
    const fd = openSync(logPath, 'a');
    const startedAt = now();
    let proc: ChildProcess;
    try {
      // Its own process group, so that stopping the container stops everything it started.
      const { command, args } = this.ctx.network.wrap(
        this.ctx.address,
        image.entrypoint.command,
        image.entrypoint.args,
      );
      proc = spawn(command, args, { cwd, env, detached: true, stdio: ['ignore', fd, fd] });
    } finally {
      closeSync(fd);
    }
    c.proc = proc;
    c.state = { running: { startedAt } };
    c.started = true;
    c.ready = !c.init && !c.spec.readinessProbe;
    c.readiness = { ok: 0, fail: 0 };
    c.liveness = { fail: 0 };
    let spawnError: Error | undefined;
    proc.on('error', (err) => (spawnError = err));
    c.exited = new Promise((resolve) => {
      proc.on('close', (code, signal) => {
        this.onExit(c, startedAt, code, signal, spawnError);
        resolve();
      });
    });
    if (!c.init) this.startProbes(c);
    this.ctx.log(c.init ? 'Started init container' : 'Started container', {
      container: c.spec.name,
      pid: proc.pid,
      command: image.entrypoint.command,
    });
    this.ctx.onChange();
  }

  private workingDir(c: Container): string {
    const dir = c.spec.workingDir;
    if (!dir) return this.containerDir(c);
    const mapped = this.mapPath(c, dir);
    if (mapped !== dir || existsSync(dir)) return mapped;
    const local = join(this.containerDir(c), 'workdir', dir);
    mkdirSync(local, { recursive: true });
    return local;
  }

  /** A path as c's process must open it: mount paths map to their folders, others are unchanged. */
  private mapPath(c: Container, path: string): string {
    const mounts = Object.keys(c.pathMap).sort((a, b) => b.length - a.length);
    for (const m of mounts) {
      if (path === m || path.startsWith(`${m}/`))
        return join(c.pathMap[m] as string, path.slice(m.length));
    }
    return path;
  }

  private terminationMessage(c: Container, failed: boolean): string | undefined {
    const file = join(this.containerDir(c), 'termination-log');
    let message = '';
    if (existsSync(file)) message = readFileSync(file, 'utf8').slice(0, MAX_MESSAGE_BYTES);
    if (!message && failed && c.spec.terminationMessagePolicy === 'FallbackToLogsOnError') {
      const log = this.logFile(c.spec.name, c.restartCount);
      if (existsSync(log)) {
        const size = statSync(log).size;
        const text = readFileSync(log, 'utf8');
        message = text
          .slice(Math.max(0, size - FALLBACK_LOG_BYTES))
          .split('\n')
          .slice(-80)
          .join('\n');
      }
    }
    return message || undefined;
  }

  private onExit(
    c: Container,
    startedAt: string,
    code: number | null,
    signal: NodeJS.Signals | null,
    spawnError?: Error,
  ): void {
    for (const t of c.timers.splice(0)) clearTimeout(t);
    c.proc = undefined;
    c.ready = false;
    const signalNumber = signal
      ? (({ SIGTERM: 15, SIGKILL: 9, SIGINT: 2 } as Record<string, number>)[signal] ?? 1)
      : undefined;
    const exitCode = spawnError ? 128 : (code ?? 128 + (signalNumber ?? 0));
    const failed = exitCode !== 0;
    let message = this.terminationMessage(c, failed);
    if (spawnError)
      message = `failed to start ${c.spec.command?.[0] ?? c.spec.image}: ${spawnError.message}`;
    c.state = {
      terminated: {
        exitCode,
        ...(signalNumber ? { signal: signalNumber } : {}),
        reason: spawnError ? 'StartError' : failed ? 'Error' : 'Completed',
        ...(message ? { message } : {}),
        startedAt,
        finishedAt: now(),
      },
    };
    this.ctx.log(c.init ? 'Init container exited' : 'Container exited', {
      container: c.spec.name,
      exitCode,
      signal,
    });
    const policy = this.pod.spec.restartPolicy ?? 'Always';
    if (c.init) {
      // An init container runs until it succeeds (Always and OnFailure alike); under Never its
      // failure fails the pod (status() reads it from its state).
      if (!failed) this.startNext(c);
      else if (!this.terminating && policy !== 'Never') this.restartLater(c);
    } else if (!this.terminating && (policy === 'Always' || (policy === 'OnFailure' && failed))) {
      this.restartLater(c);
    }
    this.ctx.onChange();
  }

  private restartLater(c: Container): void {
    c.lastState = c.state;
    const delay = Math.min(BACKOFF_MAX_MS, BACKOFF_BASE_MS * 2 ** c.restartCount);
    c.state = {
      waiting: {
        reason: 'CrashLoopBackOff',
        message: `back-off ${delay / 1000}s restarting container ${c.spec.name}`,
      },
    };
    c.restartCount++;
    c.timers.push(setTimeout(() => this.startContainer(c), delay));
  }

  private startProbes(c: Container): void {
    const schedule = (probe: Probe, onResult: (ok: boolean) => void) => {
      const period = (probe.periodSeconds ?? 10) * 1000;
      const tick = async () => {
        if (!c.proc || this.terminating) return;
        const ok = await this.runProbe(c, probe);
        if (!c.proc || this.terminating) return;
        onResult(ok);
        c.timers.push(setTimeout(tick, period));
      };
      c.timers.push(setTimeout(tick, (probe.initialDelaySeconds ?? 0) * 1000));
    };
    const readiness = c.spec.readinessProbe;
    if (readiness) {
      schedule(readiness, (ok) => {
        const r = c.readiness;
        if (ok) {
          r.ok++;
          r.fail = 0;
        } else {
          r.fail++;
          r.ok = 0;
        }
        const next = ok
          ? c.ready || r.ok >= (readiness.successThreshold ?? 1)
          : c.ready && r.fail < (readiness.failureThreshold ?? 3);
        if (next !== c.ready) {
          c.ready = next;
          this.ctx.onChange();
        }
      });
    }
    const liveness = c.spec.livenessProbe;
    if (liveness) {
      schedule(liveness, (ok) => {
        c.liveness.fail = ok ? 0 : c.liveness.fail + 1;
        if (c.liveness.fail >= (liveness.failureThreshold ?? 3) && c.proc?.pid) {
          this.ctx.log('Liveness probe failed; killing the container', { container: c.spec.name });
          killGroup(c.proc.pid, 'SIGKILL');
        }
      });
    }
  }

  private resolvePort(c: Container, port: number | string): number {
    if (typeof port === 'number') return port;
    return c.spec.ports?.find((p) => p.name === port)?.containerPort ?? Number(port);
  }

  private async runProbe(c: Container, probe: Probe): Promise<boolean> {
    const timeoutMs = (probe.timeoutSeconds ?? 1) * 1000;
    if (probe.httpGet) {
      const { path = '/', host = this.ctx.address.ip, scheme = 'HTTP' } = probe.httpGet;
      const url = `${scheme.toLowerCase()}://${host}:${this.resolvePort(c, probe.httpGet.port)}${path}`;
      try {
        const res = await fetch(url, { signal: AbortSignal.timeout(timeoutMs) });
        await res.arrayBuffer();
        return res.status >= 200 && res.status < 400;
      } catch {
        return false;
      }
    }
    if (probe.exec) {
      const [cmd, ...rest] = probe.exec.command;
      const env = this.environment(c);
      if (!cmd || 'error' in env) return false;
      const { command, args } = this.ctx.network.wrap(this.ctx.address, cmd, rest);
      return new Promise((resolve) => {
        const p = spawn(command, args, { env, cwd: this.workingDir(c), stdio: 'ignore' });
        const timer = setTimeout(() => p.kill('SIGKILL'), timeoutMs);
        p.on('error', () => resolve(false));
        p.on('close', (code) => {
          clearTimeout(timer);
          resolve(code === 0);
        });
      });
    }
    if (probe.tcpSocket) {
      const { connect } = await import('node:net');
      return new Promise((resolve) => {
        const s = connect({
          host: this.ctx.address.ip,
          port: this.resolvePort(c, probe.tcpSocket?.port ?? 0),
          timeout: timeoutMs,
        });
        s.on('connect', () => (s.destroy(), resolve(true)));
        s.on('error', () => resolve(false));
        s.on('timeout', () => (s.destroy(), resolve(false)));
      });
    }
    return true;
  }

  /**
   * SIGTERM to every container (an init container too), SIGKILL after the grace period; resolves
   * when all are gone and the pod's Secret files are removed.
   */
  async terminate(graceSeconds: number): Promise<void> {
    this.terminating = true;
    clearTimeout(this.secretRetry);
    const running = this.all.filter((c) => c.proc?.pid);
    for (const c of this.all) for (const t of c.timers.splice(0)) clearTimeout(t);
    for (const c of running) killGroup(c.proc?.pid as number, 'SIGTERM');
    const kill = setTimeout(() => {
      for (const c of running) if (c.proc?.pid) killGroup(c.proc.pid, 'SIGKILL');
    }, graceSeconds * 1000);
    await Promise.all(running.map((c) => c.exited));
    clearTimeout(kill);
    // A write in flight would otherwise put files back after they are removed.
    await this.secretsWriting;
    for (const dir of this.secretDirs.values()) rmSync(dir, { recursive: true, force: true });
    this.ctx.onChange();
  }

  /** Process group ids of the running containers (for the node's record of what it started). */
  pids(): number[] {
    return this.all.map((c) => c.proc?.pid).filter((p): p is number => p !== undefined);
  }

  /** The pod status as a kubelet would report it. */
  status(): Record<string, unknown> {
    const cs = this.containers;
    const policy = this.pod.spec.restartPolicy ?? 'Always';
    const terminated = (c: Container) => ('terminated' in c.state ? c.state.terminated : undefined);
    const pendingInits = this.inits.filter((c) => terminated(c)?.exitCode !== 0);
    const initFailed =
      policy === 'Never' && this.inits.some((c) => (terminated(c)?.exitCode ?? 0) !== 0);
    let phase = 'Pending';
    if (initFailed) {
      phase = 'Failed';
    } else if (pendingInits.length) {
      phase = 'Pending';
    } else if (cs.every((c) => terminated(c))) {
      const allOk = cs.every((c) => terminated(c)?.exitCode === 0);
      phase = allOk ? 'Succeeded' : 'Failed';
      if (policy === 'Always') phase = 'Running';
    } else if (cs.every((c) => c.started)) {
      phase = 'Running';
    }
    const ready = cs.every((c) => c.ready && 'running' in c.state);
    const cond = (type: string, ok: boolean, reason?: string, message?: string) => ({
      type,
      status: ok ? 'True' : 'False',
      ...(reason && !ok ? { reason } : {}),
      ...(message && !ok ? { message } : {}),
    });
    const initialized = this.setupError
      ? cond('Initialized', false, this.setupError.reason)
      : cond(
          'Initialized',
          pendingInits.length === 0,
          'ContainersNotInitialized',
          `containers with incomplete status: [${pendingInits.map((c) => c.spec.name).join(' ')}]`,
        );
    const containerStatus = (c: Container) => ({
      name: c.spec.name,
      image: c.spec.image,
      imageID: '',
      containerID: c.proc?.pid ? `local://${c.proc.pid}` : undefined,
      ready: c.ready && 'running' in c.state,
      started: 'running' in c.state,
      restartCount: c.restartCount,
      state: c.state,
      lastState: c.lastState ?? {},
    });
    return {
      phase,
      hostIP: this.ctx.hostIP,
      hostIPs: [{ ip: this.ctx.hostIP }],
      podIP: this.ctx.address.ip,
      podIPs: [{ ip: this.ctx.address.ip }],
      startTime: this.startedAt,
      conditions: [
        initialized,
        cond('ContainersReady', ready, 'ContainersNotReady'),
        cond(
          'Ready',
          ready,
          phase === 'Succeeded' || phase === 'Failed' ? 'PodCompleted' : 'ContainersNotReady',
        ),
      ],
      ...(this.inits.length ? { initContainerStatuses: this.inits.map(containerStatus) } : {}),
      containerStatuses: cs.map(containerStatus),
    };
  }
}

export function killGroup(pid: number, signal: NodeJS.Signals): void {
  try {
    process.kill(-pid, signal);
  } catch {
    // already gone
  }
}
