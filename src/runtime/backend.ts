// Picks the fastest TensorFlow.js backend this pod has. tfjs-node(-gpu) are optional packages
// with a native libtensorflow that is often absent, so each candidate is imported dynamically
// and skipped when it fails; cpu is always there.
import * as tf from '@tensorflow/tfjs';

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
