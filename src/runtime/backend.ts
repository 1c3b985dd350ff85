// The TensorFlow.js backend of a pod: the one spec.runtime.backend names, or with auto the
// fastest this pod has. tfjs-node(-gpu) are optional packages with a native libtensorflow that is
// often absent, so each candidate is imported dynamically and skipped (auto) or reported (a named
// choice) when it fails; cpu is always there.
import * as tf from '@tensorflow/tfjs';
import { PermanentError } from './errors.ts';
import { registerWasmMatMulKernels } from './kernels/batch-matmul.ts';
import { registerWasmTrainingKernels } from './kernels/conv-backprop.ts';
import type { TrainingSpec } from './spec.ts';

export const BACKENDS = ['tfjs-node-gpu', 'tfjs-node', 'wasm', 'cpu'] as const;
export type BackendName = (typeof BACKENDS)[number];
/** spec.runtime.backend: auto tries BACKENDS in order. */
export type BackendChoice = 'auto' | BackendName;

interface Candidate {
  /** Module that registers the backend when imported, if any. */
  module?: string;
  /** Name under which tfjs registers it. */
  registered: string;
}

const CANDIDATES: Record<BackendName, Candidate> = {
  'tfjs-node-gpu': { module: '@tensorflow/tfjs-node-gpu', registered: 'tensorflow' },
  'tfjs-node': { module: '@tensorflow/tfjs-node', registered: 'tensorflow' },
  wasm: { module: '@tensorflow/tfjs-backend-wasm', registered: 'wasm' },
  cpu: { registered: 'cpu' },
};

export function isBackendName(name: string): name is BackendName {
  return (BACKENDS as readonly string[]).includes(name);
}

/** The backend a training spec asks for (spec.runtime.backend), auto when it names none. */
export function backendChoice(spec: TrainingSpec): BackendChoice {
  return spec.runtime?.backend ?? 'auto';
}

/**
 * Initialises the backend `choice` names, or with auto the first of BACKENDS that starts.
 * Returns the name of the one in use. A named backend that is not installed or does not start
 * is a PermanentError naming the backends that are present: the pod will not change by retrying.
 */
export async function initBackend(choice: string = 'auto'): Promise<BackendName> {
  if (choice !== 'auto' && !isBackendName(choice))
    throw new PermanentError(`Unknown backend "${choice}" (known: auto, ${BACKENDS.join(', ')})`);
  // Without prod mode tfjs prints advice to install tfjs-node on stdout-like channels; the
  // backend in use is reported through /progress and the metrics instead.
  tf.enableProdMode();
  if (choice !== 'auto') {
    const started = await start(choice);
    if (started.ok) return choice;
    const available = (await availableBackends()).join(', ');
    throw new PermanentError(
      started.notInstalled
        ? `${choice} is not installed here; available: ${available}`
        : `${choice} did not start (${started.reason}); available: ${available}`,
    );
  }
  const failures: string[] = [];
  for (const name of BACKENDS) {
    const started = await start(name);
    if (started.ok) return name;
    failures.push(`${name}: ${started.reason}`);
  }
  throw new Error(`No TensorFlow.js backend could start (${failures.join('; ')})`);
}

type Started = { ok: true } | { ok: false; notInstalled: boolean; reason: string };

async function start(name: BackendName): Promise<Started> {
  const candidate = CANDIDATES[name];
  try {
    // A variable specifier keeps TypeScript from resolving optional packages at build time.
    if (candidate.module !== undefined) await import(candidate.module);
    // After the import, which registers the wasm backend's own kernels over ours.
    registerWasmTrainingKernels();
    registerWasmMatMulKernels();
    if (await tf.setBackend(candidate.registered)) {
      await tf.ready();
      return { ok: true };
    }
    return { ok: false, notInstalled: false, reason: 'did not initialise' };
  } catch (err) {
    const notInstalled = candidate.module !== undefined && isModuleNotFound(err, candidate.module);
    return { ok: false, notInstalled, reason: (err as Error).message.split('\n')[0] ?? '' };
  }
}

/** The backends whose package loads here, in the order of BACKENDS. */
async function availableBackends(): Promise<BackendName[]> {
  const available: BackendName[] = [];
  for (const name of BACKENDS) {
    const module = CANDIDATES[name].module;
    try {
      if (module !== undefined) await import(module);
      available.push(name);
    } catch {
      // Absent or broken: not one to offer.
    }
  }
  return available;
}

/**
 * Whether `module` itself is missing: Node names it, or a file inside its own folder (npm leaves
 * an empty folder behind for an optional dependency whose install failed), not a dependency of it.
 */
function isModuleNotFound(err: unknown, module: string): boolean {
  const e = err as NodeJS.ErrnoException;
  if (e.code !== 'ERR_MODULE_NOT_FOUND') return false;
  const missing = /^Cannot find (?:package|module) '([^']+)'/.exec(e.message)?.[1];
  if (missing === undefined) return false;
  if (missing === module) return true;
  const inside = missing.split(`/node_modules/${module}/`);
  return inside.length === 2 && !(inside[1] ?? '').includes('/node_modules/');
}

/**
 * Kernels that training a layer of a class needs and that a backend may lack: the wasm backend
 * has no depthwise convolution gradients (kernels/conv-backprop.ts adds the Conv2D ones).
 */
const GRADIENT_KERNELS: Record<string, readonly string[]> = {
  Conv1D: ['Conv2DBackpropFilter', 'Conv2DBackpropInput'],
  Conv2D: ['Conv2DBackpropFilter', 'Conv2DBackpropInput'],
  Conv2DTranspose: ['Conv2DBackpropFilter', 'Conv2D'],
  DepthwiseConv2D: ['DepthwiseConv2dNativeBackpropFilter', 'DepthwiseConv2dNativeBackpropInput'],
  SeparableConv2D: [
    'DepthwiseConv2dNativeBackpropFilter',
    'DepthwiseConv2dNativeBackpropInput',
    'Conv2DBackpropFilter',
    'Conv2DBackpropInput',
  ],
  Conv3D: ['Conv3DBackpropFilterV2', 'Conv3DBackpropInputV2'],
  MaxPooling1D: ['MaxPoolGrad'],
  MaxPooling2D: ['MaxPoolGrad'],
  AveragePooling1D: ['AvgPoolGrad'],
  AveragePooling2D: ['AvgPoolGrad'],
  MaxPooling3D: ['MaxPool3DGrad'],
  AveragePooling3D: ['AvgPool3DGrad'],
};

/** Gradient kernels the active backend lacks for training `model`. */
export function missingTrainingKernels(model: tf.LayersModel): string[] {
  const backend = tf.getBackend();
  const needed = new Set(model.layers.flatMap((l) => GRADIENT_KERNELS[l.getClassName()] ?? []));
  return [...needed].filter((kernel) => tf.getKernel(kernel, backend) === undefined);
}

/**
 * The backend to train `model` on: `current`, or cpu (which has every kernel) when `current`
 * lacks one and the spec left the choice to auto. tfjs moves the model's weights over when they
 * are next used. A backend the spec names explicitly is kept or fails: moving silently would
 * train somewhere else than asked, usually far slower.
 */
export async function backendForTraining(
  current: string,
  model: tf.LayersModel,
  spec?: TrainingSpec,
): Promise<{ backend: string; missing: string[] }> {
  const missing = missingTrainingKernels(model);
  if (missing.length === 0) return { backend: current, missing };
  const choice = spec === undefined ? 'auto' : backendChoice(spec);
  if (choice !== 'auto')
    throw new PermanentError(
      `spec.runtime.backend is ${choice}, which lacks the gradient kernels this model needs (${missing.join(', ')}); set it to auto or cpu`,
    );
  await tf.setBackend(CANDIDATES.cpu.registered);
  return { backend: 'cpu', missing };
}
