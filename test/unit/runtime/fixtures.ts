// Fluent builders for runtime tests: a TrainingJob spec as the operator passes it, and the iris
// data as a CSV file like the one examples/trainingjob-iris.yaml expects.
import { writeFile } from 'node:fs/promises';
import type { JobSpec, TrainingSpec } from '../../../src/runtime/spec.ts';
import { resolveSpec } from '../../../src/runtime/spec.ts';
import { loadIris } from '../../../src/runtime/data/datasets.ts';

type Model = JobSpec['model'];
type DatasetFields = NonNullable<JobSpec['dataset']>;
type Synthetic = NonNullable<DatasetFields['synthetic']>;
type Hyperparameters = NonNullable<JobSpec['hyperparameters']>;

export class JobSpecBuilder {
  private readonly spec: JobSpec = { model: { preset: 'mlp' } };

  preset(preset: NonNullable<Model['preset']>, fields: Omit<Model, 'preset' | 'uri'> = {}): this {
    this.spec.model = { preset, ...fields };
    return this;
  }

  modelUri(uri: string, freezeLayers?: number): this {
    this.spec.model = { uri, freezeLayers };
    return this;
  }

  synthetic(fields: Synthetic, validationSplit = 0): this {
    this.spec.dataset = { synthetic: fields, validationSplit };
    return this;
  }

  datasetUri(uri: string, fields: Omit<DatasetFields, 'uri' | 'synthetic'> = {}): this {
    this.spec.dataset = { uri, ...fields };
    return this;
  }

  hyperparameters(fields: Hyperparameters): this {
    this.spec.hyperparameters = { ...this.spec.hyperparameters, ...fields };
    return this;
  }

  output(uri: string, quantization?: 'none' | 'float16' | 'uint8'): this {
    this.spec.output = { uri, quantization };
    return this;
  }

  checkpoint(fields: NonNullable<JobSpec['checkpoint']> = {}): this {
    this.spec.checkpoint = fields;
    return this;
  }

  earlyStopping(fields: NonNullable<JobSpec['earlyStopping']>): this {
    this.spec.earlyStopping = fields;
    return this;
  }

  /** The spec as JSON would carry it (LEPTON_JOB_SPEC). */
  raw(): JobSpec {
    return structuredClone(this.spec);
  }

  build(): TrainingSpec {
    return resolveSpec(this.raw(), { jobName: 'test', namespace: 'default' });
  }
}

export const jobSpec = (): JobSpecBuilder => new JobSpecBuilder();

/** Writes iris as CSV with the columns of examples/trainingjob-iris.yaml, label "species". */
export async function writeIrisCsv(path: string): Promise<void> {
  const iris = loadIris();
  const lines = [[...iris.featureNames, 'species'].join(',')];
  for (let i = 0; i < iris.numExamples; i++) {
    const row = Array.from(iris.features.subarray(i * 4, i * 4 + 4), (v) => +v.toFixed(2));
    lines.push([...row, iris.classNames[iris.labels[i]!]].join(','));
  }
  await writeFile(path, `${lines.join('\n')}\n`);
}

/** Largest absolute difference between two lists of weight arrays. */
export function maxDifference(a: readonly Float32Array[], b: readonly Float32Array[]): number {
  if (a.length !== b.length) return Infinity;
  let max = 0;
  a.forEach((x, i) => {
    const y = b[i]!;
    if (x.length !== y.length) max = Infinity;
    else for (let j = 0; j < x.length; j++) max = Math.max(max, Math.abs(x[j]! - y[j]!));
  });
  return max;
}

/** Deterministic values in [-1, 1) (a linear congruential generator), the same on every backend. */
export function randomValues(size: number, seed: number): Float32Array {
  const out = new Float32Array(size);
  let s = seed >>> 0 || 1;
  for (let i = 0; i < size; i++) {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    out[i] = s / 2 ** 31 - 1;
  }
  return out;
}
