// What the HTTP server needs of a loaded model: its tensors' names, types and shapes, and a
// function that predicts one batch. The server (protocols, batching) knows nothing of tfjs; the
// model loader (model.ts) implements this over a tfjs layers or graph model.

/** Open Inference Protocol datatypes the runtime accepts (tfjs has float32, int32 and bool). */
export type Datatype = 'FP32' | 'INT32' | 'BOOL';

export interface TensorSpec {
  name: string;
  datatype: Datatype;
  /** Shape with the batch dimension first, -1 for any size (the batch dimension always is). */
  shape: number[];
}

/** One batch: for each input (in `inputs` order), rows × per-row values, row-major. */
export interface Batch {
  rows: number;
  inputs: (Float32Array | Int32Array | Uint8Array)[];
}

export interface Prediction {
  /** For each output (in `outputs` order), rows × per-row values, row-major. */
  outputs: (Float32Array | Int32Array | Uint8Array)[];
}

export interface Predictor {
  readonly inputs: readonly TensorSpec[];
  readonly outputs: readonly TensorSpec[];
  /** Predicts a batch; rows are independent, so a batch of requests equals them one by one. */
  predict(batch: Batch): Promise<Prediction>;
  dispose(): void;
}
