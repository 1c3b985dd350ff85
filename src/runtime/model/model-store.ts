// Saves and loads TensorFlow.js layers models as a folder of model.json and one weights file,
// through the object store (a local folder, a claim, an http(s) URL to read, an s3:// prefix;
// tfjs-node's file:// handler is absent when tfjs-node is), and computes the digest the
// operator reports for a saved model.
//
// Digest: "sha256:" + the lowercase hex SHA-256 of the bytes of model.json followed by the bytes
// of every weight file it lists, in the order of its weightsManifest (groups, then paths). It
// identifies exactly what a server downloads; lepton.json, next to the model, is not part of it.
import { createHash } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import * as tf from '@tensorflow/tfjs';
import { PermanentError } from '../errors.ts';
import { isHttpUri, isMissingPathError } from '../paths.ts';
import { childUri, isUri, locate, storeFor } from '../storage/index.ts';

export const MODEL_JSON = 'model.json';
export const WEIGHTS_FILE = 'weights.bin';
/** lepton.json, next to a saved model: its metrics and lineage (output.ts ModelCard). */
export const MODEL_CARD = 'lepton.json';

export interface SavedModel {
  /** The folder or URI it was saved to, as given. */
  dir: string;
  digest: string;
  /** Bytes of model.json. */
  modelJsonBytes: number;
  /** Bytes of the weights file. */
  weightBytes: number;
}

/** The artifacts model.save hands to an IOHandler, without writing them anywhere. */
export async function modelArtifacts(
  model: tf.LayersModel,
  opts: { includeOptimizer?: boolean } = {},
): Promise<tf.io.ModelArtifacts> {
  let captured: tf.io.ModelArtifacts | undefined;
  await model.save(
    tf.io.withSaveHandler(async (artifacts) => {
      captured = artifacts;
      return { modelArtifactsInfo: tf.io.getModelArtifactsInfoForJSON(artifacts) };
    }),
    { includeOptimizer: opts.includeOptimizer ?? false },
  );
  if (captured === undefined) throw new Error('The model saved no artifacts');
  return captured;
}

/** The weight data of artifacts as one byte array. */
export function weightBytes(artifacts: tf.io.ModelArtifacts): Uint8Array {
  const data = artifacts.weightData;
  if (data === undefined) return new Uint8Array(0);
  return new Uint8Array(tf.io.concatenateArrayBuffers(data));
}

/** model.json for artifacts whose weights are written to one file named `weightsFile`. */
export function encodeModelJson(
  artifacts: tf.io.ModelArtifacts,
  weightsFile = WEIGHTS_FILE,
): Uint8Array {
  const json: tf.io.ModelJSON = {
    modelTopology: artifacts.modelTopology as tf.io.ModelJSON['modelTopology'],
    format: artifacts.format,
    generatedBy: artifacts.generatedBy,
    convertedBy: artifacts.convertedBy,
    weightsManifest: [{ paths: [weightsFile], weights: artifacts.weightSpecs ?? [] }],
  };
  // Optional fields in the order tfjs writes them, and only when present, as tfjs does.
  if (artifacts.signature != null) json.signature = artifacts.signature;
  if (artifacts.userDefinedMetadata != null)
    json.userDefinedMetadata = artifacts.userDefinedMetadata;
  if (artifacts.modelInitializer != null) json.modelInitializer = artifacts.modelInitializer;
  if (artifacts.initializerSignature != null)
    json.initializerSignature = artifacts.initializerSignature;
  if (artifacts.trainingConfig != null) json.trainingConfig = artifacts.trainingConfig;
  return new TextEncoder().encode(JSON.stringify(json));
}

/** See the top of this file. */
export function modelDigest(modelJson: Uint8Array, weights: readonly Uint8Array[]): string {
  const hash = createHash('sha256').update(modelJson);
  for (const w of weights) hash.update(w);
  return `sha256:${hash.digest('hex')}`;
}

/**
 * Writes artifacts to `location` (a local folder, created if missing, or a writable URI) as
 * model.json and weights.bin. Each file is written atomically, the weights first, so a reader
 * never sees a model.json whose weights are not complete.
 */
export async function writeArtifacts(
  location: string,
  artifacts: tf.io.ModelArtifacts,
  env: NodeJS.ProcessEnv = process.env,
): Promise<SavedModel> {
  const weights = weightBytes(artifacts);
  const modelJson = encodeModelJson(artifacts);
  const { store, uri: base } = locate(location, env);
  await store.write(childUri(base, WEIGHTS_FILE), weights);
  await store.write(childUri(base, MODEL_JSON), modelJson);
  return {
    dir: location,
    digest: modelDigest(modelJson, [weights]),
    modelJsonBytes: modelJson.byteLength,
    weightBytes: weights.byteLength,
  };
}

/** Writes file `name` of the model folder `location` atomically (e.g. its lepton.json). */
export async function writeBeside(
  location: string,
  name: string,
  data: Uint8Array | string,
  env: NodeJS.ProcessEnv = process.env,
): Promise<void> {
  const { store, uri: base } = locate(location, env);
  await store.write(childUri(base, name), data);
}

export async function saveModel(
  model: tf.LayersModel,
  location: string,
  opts: { includeOptimizer?: boolean } = {},
  env: NodeJS.ProcessEnv = process.env,
): Promise<SavedModel> {
  return writeArtifacts(location, await modelArtifacts(model, opts), env);
}

export interface LoadedArtifacts {
  artifacts: tf.io.ModelArtifacts;
  digest: string;
}

/**
 * Reads a saved model: `location` is a local folder or model.json path, or a URI (file://,
 * pvc://, http(s)://, s3://) of model.json or of the folder holding it.
 */
export async function loadArtifacts(
  location: string,
  env: NodeJS.ProcessEnv = process.env,
): Promise<LoadedArtifacts> {
  const isLocation = isUri(location);
  const base = location.replace(/\/+$/, '');
  const jsonLocation = base.endsWith('.json') ? base : `${base}/${MODEL_JSON}`;
  const read = (where: string): Promise<Uint8Array> =>
    isLocation ? storeFor(where, env).read(where) : readLocal(where, location);
  const resolveWeights = (path: string): string =>
    isHttpUri(jsonLocation)
      ? new URL(path, jsonLocation).toString()
      : `${jsonLocation.slice(0, jsonLocation.lastIndexOf('/'))}/${path}`;

  const modelJson = await read(jsonLocation);
  let parsed: tf.io.ModelJSON;
  try {
    parsed = JSON.parse(new TextDecoder().decode(modelJson)) as tf.io.ModelJSON;
  } catch (err) {
    throw new PermanentError(`${jsonLocation} is not JSON: ${(err as Error).message}`);
  }
  if (parsed === null || typeof parsed !== 'object' || parsed.modelTopology === undefined)
    throw new PermanentError(
      `${jsonLocation} is not a TensorFlow.js model.json (no modelTopology)`,
    );
  const files: Uint8Array[] = [];
  const artifacts = await tf.io.getModelArtifactsForJSON(parsed, async (manifest) => {
    const specs: tf.io.WeightsManifestEntry[] = [];
    for (const group of manifest) {
      specs.push(...group.weights);
      for (const path of group.paths) files.push(await read(resolveWeights(path)));
    }
    return [specs, tf.io.concatenateArrayBuffers(files.map(toArrayBuffer))];
  });
  return { artifacts, digest: modelDigest(modelJson, files) };
}

async function readLocal(path: string, location: string): Promise<Buffer> {
  try {
    return await readFile(path);
  } catch (err) {
    if (isMissingPathError(err))
      throw new PermanentError(`Cannot read model ${location}: ${(err as Error).message}`);
    throw err;
  }
}

function toArrayBuffer(bytes: Uint8Array): ArrayBuffer {
  return bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength) as ArrayBuffer;
}

/** Loads a saved model as is (training config included, so it comes back compiled if it was). */
export async function loadModel(
  location: string,
  env: NodeJS.ProcessEnv = process.env,
): Promise<tf.LayersModel> {
  const { artifacts } = await loadArtifacts(location, env);
  return tf.loadLayersModel(tf.io.fromMemory(artifacts));
}

/** An IOHandler for model.save(...) and tf.loadLayersModel(...) on a local folder. */
export function folderHandler(dir: string): tf.io.IOHandler {
  return {
    save: async (artifacts) => {
      await writeArtifacts(dir, artifacts);
      return { modelArtifactsInfo: tf.io.getModelArtifactsInfoForJSON(artifacts) };
    },
    load: async () => (await loadArtifacts(dir)).artifacts,
  };
}

/** The digest of the model saved in local folder `dir`, from its files. */
export async function digestOfFolder(dir: string): Promise<string> {
  return (await loadArtifacts(dir)).digest;
}
