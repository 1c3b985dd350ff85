// A client's update as one file, <output>/.federated/updates/<participant>.update:
//
//   "LEPTONFU"              8 bytes, the format's magic
//   header length H         uint32 little-endian
//   header                  H bytes of JSON (UpdateHeader), padded with spaces to a multiple of 4
//   values                  4-byte little-endian values: float32 (an update), or uint32 (an update
//                           masked in Z_2^32, after the quantised weight); the variables one after
//                           the other, as the header's shapes say, in model.getWeights() order
//   signature               64 bytes: Ed25519 over every byte before it, by the participant
//
// Its digest is "sha256:" + the hex SHA-256 of the whole file: the client reports it, the
// operator passes it to the aggregator, the aggregator compares.
import { createHash } from 'node:crypto';
import { endianness } from 'node:os';
import type { KeyObject } from 'node:crypto';
import { type Identity, signBytes, verifyBytes } from './identity.ts';

const MAGIC = Buffer.from('LEPTONFU', 'latin1');
const SIGNATURE_BYTES = 64;
const PREFIX_BYTES = MAGIC.length + 4;

if (endianness() !== 'LE')
  throw new Error('Federated update files are little-endian; this machine is not');

export interface UpdateHeader {
  format: 1;
  /** The round's uid: an update of another round is refused. */
  round: string;
  participant: string;
  /** Training examples the update comes from (FedAvg's weight). */
  samples: number;
  dtype: 'float32' | 'uint32';
  /** The shape of each variable, in model.getWeights() order. */
  shapes: number[][];
  /** weightsDigest of the global model the client trained from. */
  base: string;
  /** What the model was trained on, for an aggregator that builds a round-0 preset. */
  model: { task: string; classNames: string[]; featureNames: string[]; inputShape: number[] };
  /** The client's training metrics of its last epoch. */
  metrics?: { loss?: number; accuracy?: number };
  /** Differential privacy: the update was scaled down to the clipping norm. */
  clipped?: boolean;
  /** Secure aggregation: how the values were quantised and weighted before masking. */
  masking?: MaskingHeader;
}

export interface MaskingHeader {
  /** Values besides the update's: the quantised weight, first (secagg/quantize.ts). */
  extra: number;
  /** The protocol's signed MaskedInput header of these values (secagg/messages.ts). */
  maskedInput: { payload: string; signature: string };
}

export interface DecodedUpdate {
  header: UpdateHeader;
  /** All values, flat (a view of the file's bytes). */
  values: Float32Array | Uint32Array;
}

export function valueCount(shapes: readonly number[][]): number {
  return shapes.reduce((sum, s) => sum + s.reduce((a, b) => a * b, 1), 0);
}

/** Encodes and signs an update; `values` holds exactly valueCount(header.shapes) (+ masking.extra) values. */
export function encodeUpdate(
  header: UpdateHeader,
  values: Float32Array | Uint32Array,
  identity: Identity,
): Buffer {
  const expected = valueCount(header.shapes) + (header.masking?.extra ?? 0);
  if (values.length !== expected)
    throw new Error(`An update of these shapes holds ${expected} values, got ${values.length}`);
  let json = JSON.stringify(header);
  const pad = (4 - ((PREFIX_BYTES + Buffer.byteLength(json)) % 4)) % 4;
  json += ' '.repeat(pad);
  const headerBytes = Buffer.from(json, 'utf8');
  const body = Buffer.alloc(PREFIX_BYTES + headerBytes.length + values.byteLength);
  MAGIC.copy(body, 0);
  body.writeUInt32LE(headerBytes.length, MAGIC.length);
  headerBytes.copy(body, PREFIX_BYTES);
  Buffer.from(values.buffer, values.byteOffset, values.byteLength).copy(
    body,
    PREFIX_BYTES + headerBytes.length,
  );
  return Buffer.concat([body, signBytes(identity, body)]);
}

export class MalformedUpdateError extends Error {
  override readonly name = 'MalformedUpdateError';
}

/** Parses an update file; throws a MalformedUpdateError when it is not one. */
export function decodeUpdate(file: Uint8Array): DecodedUpdate {
  const bytes = Buffer.from(file.buffer, file.byteOffset, file.byteLength);
  if (bytes.length < PREFIX_BYTES + SIGNATURE_BYTES || !bytes.subarray(0, 8).equals(MAGIC))
    throw new MalformedUpdateError('not an update file (no LEPTONFU magic)');
  const headerLength = bytes.readUInt32LE(MAGIC.length);
  const dataStart = PREFIX_BYTES + headerLength;
  const dataEnd = bytes.length - SIGNATURE_BYTES;
  if (dataStart > dataEnd || (dataEnd - dataStart) % 4 !== 0 || dataStart % 4 !== 0)
    throw new MalformedUpdateError('its header length does not fit the file');
  let header: UpdateHeader;
  try {
    header = JSON.parse(bytes.subarray(PREFIX_BYTES, dataStart).toString('utf8')) as UpdateHeader;
  } catch (err) {
    throw new MalformedUpdateError(`its header is not JSON: ${(err as Error).message}`);
  }
  if (header === null || typeof header !== 'object' || header.format !== 1)
    throw new MalformedUpdateError('its header is not of format 1');
  if (
    !Array.isArray(header.shapes) ||
    !header.shapes.every((s) => Array.isArray(s) && s.every((d) => Number.isInteger(d) && d >= 0))
  )
    throw new MalformedUpdateError('its header has no valid shapes');
  const count = (dataEnd - dataStart) / 4;
  const expected = valueCount(header.shapes) + (header.masking?.extra ?? 0);
  if (count !== expected)
    throw new MalformedUpdateError(`it holds ${count} values, its shapes say ${expected}`);
  // A view needs 4-byte alignment in memory; copy when the buffer does not give it.
  const data =
    (bytes.byteOffset + dataStart) % 4 === 0
      ? bytes.subarray(dataStart, dataEnd)
      : Buffer.from(bytes.subarray(dataStart, dataEnd));
  let values: Float32Array | Uint32Array;
  if (header.dtype === 'float32') values = new Float32Array(data.buffer, data.byteOffset, count);
  else if (header.dtype === 'uint32') values = new Uint32Array(data.buffer, data.byteOffset, count);
  else
    throw new MalformedUpdateError(`its dtype "${String(header.dtype)}" is not float32 or uint32`);
  return { header, values };
}

/** Whether the file ends with `key`'s signature of the rest, read before anything is parsed. */
export function signedBy(file: Uint8Array, key: KeyObject): boolean {
  if (file.length < SIGNATURE_BYTES) return false;
  const end = file.length - SIGNATURE_BYTES;
  return verifyBytes(key, file.subarray(0, end), file.subarray(end));
}

export function fileDigest(bytes: Uint8Array): string {
  return `sha256:${createHash('sha256').update(bytes).digest('hex')}`;
}

/** The digest of a model's weights as flat float32 arrays: which global model an update is from. */
export function weightsDigest(weights: readonly Float32Array[]): string {
  const hash = createHash('sha256');
  for (const w of weights) hash.update(new Uint8Array(w.buffer, w.byteOffset, w.byteLength));
  return `sha256:${hash.digest('hex')}`;
}

/** Splits flat values into one array per variable (views, no copy). */
export function splitVariables(values: Float32Array, shapes: readonly number[][]): Float32Array[] {
  const out: Float32Array[] = [];
  let offset = 0;
  for (const shape of shapes) {
    const n = shape.reduce((a, b) => a * b, 1);
    out.push(values.subarray(offset, offset + n));
    offset += n;
  }
  return out;
}

/** Concatenates variables into one flat array. */
export function joinVariables(weights: readonly Float32Array[]): Float32Array {
  const out = new Float32Array(weights.reduce((n, w) => n + w.length, 0));
  let offset = 0;
  for (const w of weights) {
    out.set(w, offset);
    offset += w.length;
  }
  return out;
}
