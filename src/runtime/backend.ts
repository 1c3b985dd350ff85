// Picks the fastest TensorFlow.js backend this pod has. tfjs-node(-gpu) are optional packages
// with a native libtensorflow that is often absent, so each candidate is imported dynamically
// and skipped when it fails; cpu is always there.
import * as tf from '@tensorflow/tfjs';
import { registerWasmTrainingKernels } from './kernels/conv-backprop.ts';

export const BACKENDS = ['tfjs-node-gpu', 'tfjs-node', 'wasm', 'cpu'] as const;
export type BackendName = (typeof BACKENDS)[number];

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

/**
 * Initialises the first backend that loads, trying `prefer` first, then tfjs-node-gpu,
 * tfjs-node, wasm and cpu. Returns the name of the one in use (one of BACKENDS).
 */
export async function initBackend(prefer?: string): Promise<BackendName> {
  if (prefer !== undefined && !isBackendName(prefer))
    throw new Error(`Unknown backend "${prefer}" (known: ${BACKENDS.join(', ')})`);
  // Without prod mode tfjs prints advice to install tfjs-node on stdout-like channels; the
  // backend in use is reported through /progress and the metrics instead.
  tf.enableProdMode();
  const order = prefer ? [prefer, ...BACKENDS.filter((b) => b !== prefer)] : [...BACKENDS];
  const failures: string[] = [];
  for (const name of order) {
    const candidate = CANDIDATES[name];
    try {
      // A variable specifier keeps TypeScript from resolving optional packages at build time.
      if (candidate.module !== undefined) await import(candidate.module);
      // After the import, which registers the wasm backend's own kernels over ours.
      registerWasmTrainingKernels();
      if (await tf.setBackend(candidate.registered)) {
        await tf.ready();
        return name;
      }
      failures.push(`${name}: did not initialise`);
    } catch (err) {
      failures.push(`${name}: ${(err as Error).message.split('\n')[0]}`);
    }
  }
  throw new Error(`No TensorFlow.js backend could start (${failures.join('; ')})`);
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
 * lacks one. tfjs moves the model's weights over when they are next used.
 */
export async function backendForTraining(
  current: string,
  model: tf.LayersModel,
): Promise<{ backend: string; missing: string[] }> {
  const missing = missingTrainingKernels(model);
  if (missing.length === 0) return { backend: current, missing };
  await tf.setBackend(CANDIDATES.cpu.registered);
  return { backend: 'cpu', missing };
}
