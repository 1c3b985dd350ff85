// The large number arrays of a JSON request body (V2 `data`, V1 `instances` or `inputs`), read
// straight from its bytes into Float32Arrays. JSON.parse spends most of a request's parsing on
// them (about 0.15 ms for 784 numbers here), and the protocols then copy them once more; this
// reads each number once. The rest of the body (names, shapes, parameters) still goes through
// JSON.parse, with each array cut out and a placeholder string in its place.
//
// It is exact or it declines: a number with at most 15 significant digits and no exponent is
// correctly rounded by one division (as JSON.parse rounds it), a longer one is accepted only when
// its float32 cannot depend on the last digits, and anything else goes through Number(). Anything
// it does not expect (ragged or empty arrays, other values among the numbers, the placeholder's
// own text in the body) leaves that array or the whole body to JSON.parse, and a protocol that
// finds the result does not fit parses the body again the ordinary way, for its usual errors.

/** The body's number arrays, cut out, and the body parsed with a placeholder for each. */
export interface ScannedJson {
  value: unknown;
  arrays: readonly NumberArray[];
}

/** One array of numbers, nested as `dims` (rectangular), its values row-major as float32. */
export interface NumberArray {
  values: Float32Array;
  dims: readonly number[];
}

/** Fewer numbers than this are left to JSON.parse (a V2 shape, say): nothing to gain. */
export const MIN_VALUES = 16;

/** Deeper nesting than any tensor has; it bounds the scanner's state. */
const MAX_DEPTH = 32;

// A placeholder is NUL and the array's index, as a JSON string; a body that spells NUL itself
// is not scanned, so that no string of the request can be taken for an array.
const ESCAPED_NUL = '\\u0000';

const QUOTE = 0x22;
const BACKSLASH = 0x5c;
const OPEN = 0x5b;
const CLOSE = 0x5d;
const COMMA = 0x2c;
const MINUS = 0x2d;
const PLUS = 0x2b;
const DOT = 0x2e;
const ZERO = 0x30;
const NINE = 0x39;
const LOWER_E = 0x65;
const UPPER_E = 0x45;
const END = -1;

/** 10^0 to 10^22: the powers of ten that a double holds exactly. */
const POW10 = Array.from({ length: 23 }, (_, k) => Number(`1e${k}`));

/**
 * A number of up to 19 digits accumulated in a double is off by at most ten roundings, about
 * 2^-50 of its value; a float32 that stays the same this much (and more) either side of it is
 * the float32 of the exact decimal.
 */
const SLACK = 2 ** -46;

/** Values of the array being scanned; grown to the largest body seen (bounded by its limit). */
let scratch = new Float32Array(1024);

/**
 * The body parsed, with its arrays of at least `minValues` numbers as NumberArrays; undefined
 * when it has none or cannot be scanned (JSON.parse it then). Throws what JSON.parse throws.
 */
export function parseWithNumberArrays(
  body: Buffer,
  minValues = MIN_VALUES,
): ScannedJson | undefined {
  if (body.indexOf(ESCAPED_NUL) >= 0) return undefined;
  // Each value takes two bytes at least (a digit, then a comma or bracket).
  const capacity = (body.length >> 1) + 1;
  if (scratch.length < capacity) scratch = new Float32Array(capacity);
  const arrays: NumberArray[] = [];
  let text = '';
  let copied = 0;
  const n = body.length;
  let i = 0;
  while (i < n) {
    const c = body[i]!;
    if (c === QUOTE) {
      i = stringEnd(body, i);
      if (i < 0) return undefined;
    } else if (c === OPEN) {
      const scan = scanArray(body, i);
      if (typeof scan === 'number') {
        // Only brackets, numbers and commas lay between: resume where it stopped.
        i = scan;
        continue;
      }
      if (scan.count >= minValues) {
        text += `${body.toString('utf8', copied, i)}"${ESCAPED_NUL}${arrays.length}"`;
        arrays.push({ values: scratch.slice(0, scan.count), dims: scan.dims });
        copied = scan.end;
      }
      i = scan.end;
    } else i++;
  }
  if (arrays.length === 0) return undefined;
  text += body.toString('utf8', copied, n);
  return { value: JSON.parse(text), arrays };
}

/** The NumberArray a parsed value stands for, if it is a placeholder. */
export function numberArrayOf(value: unknown, scanned: ScannedJson): NumberArray | undefined {
  if (typeof value !== 'string' || value.charCodeAt(0) !== 0) return undefined;
  return scanned.arrays[Number(value.slice(1))];
}

/** The index after the string that starts at `start`, or -1 when it does not end. */
function stringEnd(b: Buffer, start: number): number {
  let from = start + 1;
  for (;;) {
    const q = b.indexOf(QUOTE, from);
    if (q < 0) return -1;
    let k = q - 1;
    while (b[k] === BACKSLASH) k--;
    // An even run of backslashes escapes itself, not the quote.
    if ((q - 1 - k) % 2 === 0) return q + 1;
    from = q + 1;
  }
}

interface Scan {
  /** The index after the closing bracket. */
  end: number;
  count: number;
  dims: number[];
}

/**
 * The array at `start` when it holds only numbers, nested rectangularly, into scratch; otherwise
 * the index where it stopped being one.
 */
function scanArray(b: Buffer, start: number): Scan | number {
  const dims: number[] = [-1];
  const counts: number[] = [0];
  let depth = 1;
  let leafDepth = 0;
  let count = 0;
  let i = start + 1;
  for (;;) {
    i = skipSpace(b, i);
    if (b[i] === OPEN) {
      if (depth === leafDepth || depth === MAX_DEPTH) return i;
      depth++;
      counts[depth - 1] = 0;
      if (dims.length < depth) dims.push(-1);
      i++;
      continue;
    }
    if (leafDepth === 0) leafDepth = depth;
    else if (depth !== leafDepth) return i;
    const end = readNumber(b, i, count);
    if (end < 0) return i;
    count++;
    counts[depth - 1]!++;
    i = end;
    for (;;) {
      i = skipSpace(b, i);
      const c = b[i];
      if (c === COMMA) {
        i++;
        break;
      }
      if (c !== CLOSE) return i;
      const length = counts[depth - 1]!;
      const expected = dims[depth - 1]!;
      if (expected === -1) dims[depth - 1] = length;
      else if (expected !== length) return i;
      depth--;
      i++;
      if (depth === 0) return { end: i, count, dims: dims.slice(0, leafDepth) };
      counts[depth - 1]!++;
    }
  }
}

function skipSpace(b: Buffer, i: number): number {
  for (;;) {
    const c = b[i];
    if (c !== 0x20 && c !== 0x0a && c !== 0x0d && c !== 0x09) return i;
    i++;
  }
}

const isDigit = (c: number): boolean => c >= ZERO && c <= NINE;

/**
 * The JSON number at `start` (exactly JSON's grammar) into scratch[k] as float32; returns the
 * index after it, or -1 when there is none.
 */
function readNumber(b: Buffer, start: number, k: number): number {
  let p = start;
  let c = b[p] ?? END;
  const negative = c === MINUS;
  if (negative) c = b[++p] ?? END;
  let m = 0;
  let digits = 0;
  let scale = 0;
  if (c === ZERO) {
    c = b[++p] ?? END;
    if (isDigit(c)) return -1;
  } else if (isDigit(c)) {
    do {
      m = m * 10 + (c - ZERO);
      digits++;
      c = b[++p] ?? END;
    } while (isDigit(c));
  } else return -1;
  if (c === DOT) {
    c = b[++p] ?? END;
    if (!isDigit(c)) return -1;
    do {
      // Leading zeros of a fraction are not significant digits.
      if (m !== 0 || c !== ZERO) digits++;
      m = m * 10 + (c - ZERO);
      scale++;
      c = b[++p] ?? END;
    } while (isDigit(c));
  }
  let exponent = false;
  if (c === LOWER_E || c === UPPER_E) {
    exponent = true;
    c = b[++p] ?? END;
    if (c === PLUS || c === MINUS) c = b[++p] ?? END;
    if (!isDigit(c)) return -1;
    do c = b[++p] ?? END;
    while (isDigit(c));
  }
  if (!exponent && scale <= 22) {
    // Both exact below 2^53 (15 digits), so the one division rounds as JSON.parse does.
    const v = m / POW10[scale]!;
    if (digits <= 15) {
      scratch[k] = negative ? -v : v;
      return p;
    }
    const f = Math.fround(v);
    const slack = v * SLACK;
    if (digits <= 19 && Math.fround(v - slack) === f && Math.fround(v + slack) === f) {
      scratch[k] = negative ? -f : f;
      return p;
    }
  }
  scratch[k] = Number(b.latin1Slice(start, p));
  return p;
}
