// Issue 11 §bounded: the training thread's V8 heap follows the pod's memory limit (the operator's
// LEPTON_MEMORY_LIMIT from the downward API, else the cgroup's), and so does the dataset limit.
import { totalmem } from 'node:os';
import { ENV } from '../../../../src/contract/runtime.ts';
import { datasetLimit, podMemory } from '../../../../src/runtime/data/limits.ts';
import { trainingHeapLimits } from '../../../../src/runtime/train/thread.ts';

const MiB = 2 ** 20;

describe('§bounded the heap of the training thread', () => {
  it('is half of the pod memory for the old generation, 16 MiB for the young one', () => {
    expect(trainingHeapLimits({ [ENV.memoryLimit]: String(512 * MiB) })).toEqual({
      maxOldGenerationSizeMb: 256,
      maxYoungGenerationSizeMb: 16,
    });
    // Never under 64 MiB, whatever the limit.
    expect(
      trainingHeapLimits({ [ENV.memoryLimit]: String(32 * MiB) })?.maxOldGenerationSizeMb,
    ).toBe(64);
  });

  it('is V8 default without a known limit (no variable, no cgroup limit on this machine)', () => {
    const cgroup = process.constrainedMemory();
    // In a container with a memory limit the cgroup's figure is the limit: nothing to check here.
    if (cgroup > 0 && cgroup < totalmem()) return;
    expect(podMemory({})).toBeUndefined();
    expect(trainingHeapLimits({})).toBeUndefined();
    expect(trainingHeapLimits({ [ENV.memoryLimit]: 'lots' })).toBeUndefined();
  });

  it('gives the dataset limit a quarter of the same memory', () => {
    const limit = datasetLimit({ [ENV.memoryLimit]: String(400 * MiB) });
    expect(limit.bytes).toBe(100 * MiB);
    expect(limit.reason).toMatch(/a quarter of the pod's 400\.0 MiB/);
  });
});
