// What the training loop calls every `everySteps` batches. A copy of the interface in
// src/runtime/weight-sync.ts (written alongside), kept structurally identical so that either
// can stand for the other.

export interface WeightSync {
  everySteps: number;
  /**
   * Submits this worker's weights (each variable flattened) and the number of examples it
   * trained on since the last sync; resolves to the average to load back.
   */
  sync(weights: Float32Array[], samples: number): Promise<Float32Array[]>;
  close(): Promise<void>;
}
