// Random search: each parameter drawn independently from its own distribution. It is also
// TPE's start-up sampler, so its draws depend only on the stream it is given (TPE's first
// trials are random search's own).
import {
  type Assignment,
  type Draws,
  type ParameterSpec,
  type SearchSpace,
  numericDomain,
  type ParameterValue,
} from './space.ts';

export function sampleRandom(params: ParameterSpec[], draws: Draws): Assignment {
  const out: Assignment = {};
  for (const p of params) out[p.name] = sampleOne(p.space, draws);
  return out;
}

/** One value: uniform over the domain's internal interval, then rounded or quantized back. */
function sampleOne(space: SearchSpace, draws: Draws): ParameterValue {
  if (space.kind === 'categorical') {
    return space.choices[
      Math.min(space.choices.length - 1, Math.floor(draws.uniform() * space.choices.length))
    ]!;
  }
  const d = numericDomain(space);
  return d.toValue(d.low + draws.uniform() * (d.high - d.low));
}
