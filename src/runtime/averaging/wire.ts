// The binary body of an averaging request or answer: a little-endian header, the length of each
// variable, then the raw float32 values of every variable back to back. A model of P parameters
// costs 4·P bytes plus 40 + 4·V. Neither side copies the values on little-endian hosts: encoding
// hands out views of the weights, and decoding returns views of the body when it is 4-byte
// aligned (it is when the receiver reads the body into a buffer of its own).
//
//   offset  size  field
//        0     4  magic "LWAV"
//        4     4  format version (1)
//        8     4  rank of the sender
//       12     4  round
//       16     4  V, the number of variables
//       20     4  reserved, 0 (keeps the f64 fields 8-byte aligned)
//       24     8  samples since the last sync (f64: counts may pass 2^32 in federated rounds)
//       32     8  step: (round + 1) · everySteps of the sender (f64, a safe integer)
//       40   4·V  number of float32 values of each variable (u32)
//   40+4·V  4·ΣL  the values, variable after variable
import { endianness } from 'node:os';

export interface WeightsMessage {
  rank: number;
  round: number;
  step: number;
  samples: number;
  weights: Float32Array[];
}

type MessageHeader = Omit<WeightsMessage, 'weights'>;

export class WireError extends Error {
  override readonly name = 'WireError';
}

const MAGIC = 0x5641574c; // "LWAV" read as a little-endian u32
const VERSION = 1;
const FIXED_BYTES = 40;
const U32_MAX = 0xffffffff;
// Float32Array views over the payload are only correct when the host's byte order is the wire's.
const LITTLE_ENDIAN_HOST = endianness() === 'LE';

export function headerByteLength(variables: number): number {
  return FIXED_BYTES + 4 * variables;
}

/** The size of the whole message for variables of these lengths. */
export function messageByteLength(lengths: readonly number[]): number {
  let values = 0;
  for (const n of lengths) values += n;
  return headerByteLength(lengths.length) + 4 * values;
}

/**
 * The message as a list of chunks to write one after the other: the header, then the bytes of
 * each variable. On little-endian hosts the chunks are views of `weights` (nothing is copied), so
 * the arrays must not change until the chunks are written.
 */
export function encode(message: WeightsMessage): Uint8Array[] {
  const lengths = message.weights.map((w) => w.length);
  const header = new Uint8Array(headerByteLength(lengths.length));
  writeHeader(header, message, lengths);
  const chunks: Uint8Array[] = [header];
  for (const w of message.weights) {
    if (LITTLE_ENDIAN_HOST) {
      chunks.push(new Uint8Array(w.buffer, w.byteOffset, w.byteLength));
    } else {
      const bytes = new Uint8Array(w.byteLength);
      const view = new DataView(bytes.buffer);
      for (let i = 0; i < w.length; i++) view.setFloat32(4 * i, w[i]!, true);
      chunks.push(bytes);
    }
  }
  return chunks;
}

/** Parses and checks a whole message; throws a WireError saying what is wrong. */
export function decode(bytes: Uint8Array): WeightsMessage {
  if (bytes.byteLength < FIXED_BYTES) {
    throw new WireError(`Message of ${bytes.byteLength} bytes is shorter than its header`);
  }
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  if (view.getUint32(0, true) !== MAGIC) throw new WireError('Not a weights message (bad magic)');
  const version = view.getUint32(4, true);
  if (version !== VERSION) {
    throw new WireError(`Unsupported weights message version ${version} (expected ${VERSION})`);
  }
  const rank = view.getUint32(8, true);
  const round = view.getUint32(12, true);
  const variables = view.getUint32(16, true);
  if (view.getUint32(20, true) !== 0) throw new WireError('Reserved header field is not 0');
  const samples = view.getFloat64(24, true);
  const step = view.getFloat64(32, true);
  if (!(Number.isFinite(samples) && samples >= 0)) {
    throw new WireError(`Sample count ${samples} is not a finite number >= 0`);
  }
  if (!(Number.isSafeInteger(step) && step >= 0)) {
    throw new WireError(`Step ${step} is not an integer >= 0`);
  }
  const headerBytes = headerByteLength(variables);
  if (bytes.byteLength < headerBytes) {
    throw new WireError(
      `Message of ${bytes.byteLength} bytes is too short for the lengths of ${variables} variables`,
    );
  }
  const lengths: number[] = [];
  for (let v = 0; v < variables; v++) lengths.push(view.getUint32(FIXED_BYTES + 4 * v, true));
  const expected = messageByteLength(lengths);
  if (bytes.byteLength !== expected) {
    throw new WireError(
      `Message has ${bytes.byteLength} bytes but its header describes ${expected} ` +
        `(${variables} variables)`,
    );
  }
  return { rank, round, step, samples, weights: payloadViews(bytes, headerBytes, lengths) };
}

function writeHeader(bytes: Uint8Array, header: MessageHeader, lengths: readonly number[]): void {
  const u32 = (name: string, n: number) => {
    if (!(Number.isInteger(n) && n >= 0 && n <= U32_MAX)) {
      throw new RangeError(`Weights message ${name} ${n} is not a 32-bit unsigned integer`);
    }
    return n;
  };
  if (!(Number.isFinite(header.samples) && header.samples >= 0)) {
    throw new RangeError(`Sample count ${header.samples} is not a finite number >= 0`);
  }
  if (!(Number.isSafeInteger(header.step) && header.step >= 0)) {
    throw new RangeError(`Step ${header.step} is not an integer >= 0`);
  }
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  view.setUint32(0, MAGIC, true);
  view.setUint32(4, VERSION, true);
  view.setUint32(8, u32('rank', header.rank), true);
  view.setUint32(12, u32('round', header.round), true);
  view.setUint32(16, u32('variable count', lengths.length), true);
  view.setUint32(20, 0, true);
  view.setFloat64(24, header.samples, true);
  view.setFloat64(32, header.step, true);
  lengths.forEach((n, v) => view.setUint32(FIXED_BYTES + 4 * v, u32('variable length', n), true));
}

/** Float32Arrays over the payload: views when the host allows, copies otherwise. */
function payloadViews(
  bytes: Uint8Array,
  offset: number,
  lengths: readonly number[],
): Float32Array[] {
  const weights: Float32Array[] = [];
  let at = bytes.byteOffset + offset;
  for (const n of lengths) {
    if (!LITTLE_ENDIAN_HOST) {
      const view = new DataView(bytes.buffer, at, 4 * n);
      const w = new Float32Array(n);
      for (let i = 0; i < n; i++) w[i] = view.getFloat32(4 * i, true);
      weights.push(w);
    } else if (at % 4 === 0) {
      weights.push(new Float32Array(bytes.buffer, at, n));
    } else {
      weights.push(new Float32Array(bytes.buffer.slice(at, at + 4 * n)));
    }
    at += 4 * n;
  }
  return weights;
}
