// The seam between the training loop and data-parallel averaging. The loop knows nothing of
// networks: every `everySteps` batches, and at the end of every epoch, it hands its weights to
// a WeightSync and continues with the weights it gets back. The averaging module implements it.
import * as tf from '@tensorflow/tfjs';

export interface WeightSync {
  /** Batches between two syncs; the loop also syncs at the end of every epoch. */
  everySteps: number;
  /**
   * Called with this worker's weights, one flat Float32Array per model weight in the order of
   * model.getWeights(), and the number of examples it trained on since its previous sync.
   * Resolves to the weights to continue with (same count and sizes), e.g. the average over all
   * workers weighted by `samples`. Every worker calls it equally often: all shards give the
   * same number of batches per epoch.
   */
  sync(weights: Float32Array[], samples: number): Promise<Float32Array[]>;
  /** Releases what the sync holds (connections, a server); called once training is over. */
  close?(): Promise<void>;
}

/** Copies of the model's weights, one flat array per weight in model.getWeights() order. */
export function flatWeights(model: tf.LayersModel): Float32Array[] {
  // getWeights returns the variables themselves, and dataSync may return their storage:
  // copy, and never dispose them.
  return model.getWeights().map((w) => Float32Array.from(w.dataSync()));
}

/** Sets the model's weights from flat arrays in model.getWeights() order. */
export function assignFlatWeights(model: tf.LayersModel, weights: readonly Float32Array[]): void {
  const current = model.getWeights();
  if (weights.length !== current.length)
    throw new Error(
      `Got ${weights.length} weight arrays for a model with ${current.length} weights`,
    );
  const tensors = current.map((w, i) => {
    const values = weights[i]!;
    if (values.length !== w.size)
      throw new Error(`Weight ${i} has ${values.length} values; the model needs ${w.size}`);
    return tf.tensor(values, w.shape, w.dtype);
  });
  model.setWeights(tensors);
  tensors.forEach((t) => t.dispose());
}
