// The serving mode's part of the contract: what the operator puts in an InferenceService's pods
// and what it reads back from them. Imports nothing (see runtime.ts).

/** The runtime's serving mode: `node src/runtime/main.ts serve`. */
export const SERVING_MODE = 'serve';

export const SERVING_ENV = {
  /** The ServingSpec below, as JSON. */
  spec: 'LEPTON_SERVING_SPEC',
} as const;

/** Port of the serving HTTP server (protocols, health, /stats, /metrics); the Service's target. */
export const SERVING_PORT = 8080;

/** The port the InferenceService's Service exposes (KServe's Standard mode uses 80 too). */
export const SERVICE_PORT = 80;

/** Paths the operator uses; the protocols' own paths are KServe V1 and Open Inference V2. */
export const SERVING_ENDPOINTS = {
  /** Liveness: the process answers. */
  live: '/v2/health/live',
  /** Readiness: the model is loaded, checked and warmed up, and the pod is not draining. */
  ready: '/v2/health/ready',
  /** ServingStats as JSON, scraped by the operator's autoscaler. */
  stats: '/stats',
  metrics: '/metrics',
} as const;

/** The header every response carries: which variant answered (`predictor` or `canary`). */
export const VARIANT_HEADER = 'x-lepton-variant';

export type ModelFormat = 'tfjs-layers' | 'tfjs-graph';
export type Variant = 'predictor' | 'canary';

export interface BatcherSpec {
  /** Most instances (rows) in one batch. */
  maxBatchSize: number;
  /** Longest a request waits for its batch to fill. */
  maxLatencyMs: number;
  /** Most instances waiting; beyond it a request is refused at once with 503 and Retry-After. */
  maxQueueSize: number;
}

export interface ServingSpec {
  /** The model's name in URLs (/v1/models/NAME, /v2/models/NAME): the InferenceService's name. */
  modelName: string;
  variant: Variant;
  /** model.json or the folder holding it: pvc://CLAIM/PATH, file:///PATH or http(s)://. */
  modelUri: string;
  format: ModelFormat;
  /** sha256:HEX the operator expects; a model with another digest fails to load (permanent). */
  digest?: string;
  quantization: 'none' | 'float16' | 'uint8';
  /** Absent: every request is predicted on its own, as it arrives. */
  batcher?: BatcherSpec;
  /** Largest request body accepted; larger ones get 413. */
  maxRequestBytes: number;
  /** After SIGTERM: keep answering for this long (endpoints take time to drop the pod), then drain. */
  drainSeconds: number;
  /**
   * Only on the predictor, when a canary exists: this share of the requests it receives is sent
   * on to the canary's pods (the headless Service `host`, every address it resolves to).
   */
  canary?: { host: string; port: number; trafficPercent: number };
}

/** GET /stats: counters since the process started, so the operator computes rates from two reads. */
export interface ServingStats {
  /** Requests answered, any status, forwarded ones included. */
  requestsTotal: number;
  /** Requests being handled now, waiting in the batcher included. */
  inFlight: number;
  /** The integral of inFlight over time, in seconds: (difference / interval) = mean concurrency. */
  concurrencySecondsTotal: number;
  /** Seconds since the process started (monotonic), the time base of the two counters above. */
  uptimeSeconds: number;
  ready: boolean;
  draining: boolean;
  model?: { uri: string; digest: string; format: ModelFormat; loadSeconds: number };
  /** Requests sent on to the canary, and those kept because no canary address answered. */
  canaryForwardedTotal?: number;
  canaryFallbackTotal?: number;
}

/** Termination-message prefixes (the reason before the first colon) the operator reports. */
export const SERVING_FAILURES = {
  modelLoadFailed: 'ModelLoadFailed',
  digestMismatch: 'ModelDigestMismatch',
  invalidSpec: 'InvalidServingSpec',
} as const;
