// Grid search: every combination of the parameters' values, trial n taking point n of one
// fixed enumeration (the first parameter varies slowest, like nested loops written in the
// order of the spec). Trial n's point is computed from n alone, without the history, so a
// restarted operator and a retried reconcile give the same point to the same trial.
import { type Assignment, type ParameterSpec, axis } from './space.ts';

/** Grid point `number` (0-based). Throws past the end: the caller stops at gridSize trials. */
export function gridPoint(params: ParameterSpec[], number: number): Assignment {
  const axes = params.map((p) => {
    const a = axis(p.space);
    if (a === undefined)
      throw new Error(
        `Grid search cannot enumerate parameter ${p.name}: a Float range needs a step`,
      );
    return a;
  });
  const size = axes.reduce((n, a) => n * a.size, 1);
  if (!Number.isInteger(number) || number < 0 || number >= size) {
    throw new Error(`Grid point ${number} does not exist: the grid has ${size} points`);
  }
  // Mixed radix, the last parameter the fastest digit.
  const out: Assignment = {};
  let rest = number;
  for (let i = params.length - 1; i >= 0; i--) {
    const a = axes[i]!;
    out[params[i]!.name] = a.at(rest % a.size);
    rest = Math.floor(rest / a.size);
  }
  return orderLike(params, out);
}

/** The assignment with keys in spec order (the loop above fills them backwards). */
function orderLike(params: ParameterSpec[], values: Assignment): Assignment {
  return Object.fromEntries(params.map((p) => [p.name, values[p.name]!]));
}
