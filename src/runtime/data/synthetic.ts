// The built-in generators of spec.dataset.synthetic. The same spec (seed included) gives the same
// examples in every pod, which is what lets data-parallel workers shard them without sharing.
import type { Dataset } from './datasets.ts';
import { PermanentError } from '../errors.ts';
import { type Rng, createRng, gaussian } from '../random.ts';
import type { SyntheticSpec, Task } from '../spec.ts';

/** Generates the examples; example i belongs to class i mod classes. */
export function generateSynthetic(spec: SyntheticSpec, task: Task): Dataset {
  const rng = createRng(spec.seed);
  const n = spec.samples;
  if (spec.generator === 'linear') {
    if (task === 'classification')
      throw new PermanentError(
        'spec.dataset.synthetic: the linear generator makes regression targets; set spec.model.task: regression',
      );
    return linear(spec, rng);
  }
  const classes = spec.generator === 'moons' || spec.generator === 'xor' ? 2 : spec.classes;
  const f = spec.generator === 'blobs' ? spec.features : 2;
  const features = new Float32Array(n * f);
  const labels = new Float32Array(n);
  const point = POINT[spec.generator](spec, rng);
  for (let i = 0; i < n; i++) {
    const label = i % classes;
    const x = point(label, classes);
    for (let j = 0; j < f; j++) features[i * f + j] = x[j]! + spec.noise * gaussian(rng);
    labels[i] = label;
  }
  const classNames = Array.from({ length: classes }, (_, k) => String(k));
  return {
    features,
    labels,
    numExamples: n,
    numFeatures: f,
    numClasses: task === 'classification' ? classes : 0,
    classNames: task === 'classification' ? classNames : [],
    featureNames: featureNames(f),
    task,
  };
}

type PointOf = (label: number, classes: number) => number[];

const POINT: Record<
  Exclude<SyntheticSpec['generator'], 'linear'>,
  (s: SyntheticSpec, r: Rng) => PointOf
> = {
  // Cluster centres uniform in [-2, 2]^features: separable at the default noise, overlapping
  // from a noise of about 1.
  blobs: (spec, rng) => {
    const centres = Array.from({ length: spec.classes }, () =>
      Array.from({ length: spec.features }, () => 4 * rng() - 2),
    );
    return (label) => centres[label]!;
  },
  // Two interleaved half circles (scikit-learn's make_moons).
  moons: (_spec, rng) => (label) => {
    const t = Math.PI * rng();
    return label === 0 ? [Math.cos(t), Math.sin(t)] : [1 - Math.cos(t), 0.5 - Math.sin(t)];
  },
  // One arm per class, each turning once around the origin as its radius grows to 1.
  spirals: (_spec, rng) => (label, classes) => {
    const r = rng();
    const angle = (2 * Math.PI * label) / classes + 2 * Math.PI * r;
    return [r * Math.cos(angle), r * Math.sin(angle)];
  },
  // Uniform in [-1, 1]^2; the class is whether the two coordinates have different signs.
  xor: (_spec, rng) => (label) => {
    for (;;) {
      const x = 2 * rng() - 1;
      const y = 2 * rng() - 1;
      if ((x > 0 !== y > 0 ? 1 : 0) === label) return [x, y];
    }
  },
};

/** y = w.x + b + noise, with w and b drawn from the seed and x standard normal. */
function linear(spec: SyntheticSpec, rng: Rng): Dataset {
  const n = spec.samples;
  const f = spec.features;
  const w = Array.from({ length: f }, () => gaussian(rng));
  const b = gaussian(rng);
  const features = new Float32Array(n * f);
  const labels = new Float32Array(n);
  for (let i = 0; i < n; i++) {
    let y = b;
    for (let j = 0; j < f; j++) {
      const x = gaussian(rng);
      features[i * f + j] = x;
      y += w[j]! * x;
    }
    labels[i] = y + spec.noise * gaussian(rng);
  }
  return {
    features,
    labels,
    numExamples: n,
    numFeatures: f,
    numClasses: 0,
    classNames: [],
    featureNames: featureNames(f),
    task: 'regression',
  };
}

function featureNames(n: number): string[] {
  return Array.from({ length: n }, (_, j) => `x${j}`);
}
