// The shape of a streamed (data-lake) dataset, between the part that finds and checks the files
// (lake.ts: listing, Hive partitions, Parquet footers, the schema check, lineage) and the part
// that turns it into training batches with bounded memory (stream.ts).
import type { Task } from '../spec.ts';

export interface DataFileIdentity {
  /** Path below the dataset's URI, e.g. "date=2026-11-30/part-0.parquet". */
  key: string;
  size: number;
  /** S3 or http ETag, else "sha256:<hex>" of the bytes. */
  version: string;
}

/** What identifies the exact data a model was trained on. */
export interface DatasetIdentity {
  uri: string;
  /** "sha256:" over the sorted lines `key\tsize\tversion\n` of the files. */
  digest: string;
  rows: number;
  bytes: number;
  files: DataFileIdentity[];
}

/** A unit of reading: one row group of one file. */
export interface Piece {
  /** Index into LakeDataset.files. */
  file: number;
  rowGroup: number;
  rows: number;
  /** Index of the piece's first row in the dataset's canonical order (files by key, row groups in order). */
  firstRow: number;
}

/** Rows of a piece (or part of one) as float32, ready for batches. */
export interface PieceRows {
  /** rows × numFeatures values, row-major. */
  features: Float32Array;
  /** Per row: the class index (classification, of LakeDataset.classNames) or the target value. */
  labels: Float32Array;
  rows: number;
}

export interface LakeDataset {
  uri: string;
  files: { uri: string; key: string; size: number; partitions: Record<string, string> }[];
  pieces: Piece[];
  totalRows: number;
  featureNames: string[];
  labelColumn: string;
  task: Task;
  /** Class index -> label as in the data (sorted as the in-memory loader sorts them); [] for regression. */
  classNames: string[];
  numFeatures: number;
  numClasses: number;
  identity: DatasetIdentity;
  /**
   * Rows [start, end) of `piece` (0 <= start < end <= piece.rows), reading only the projected
   * columns of its row group with ranged reads. A null label or a non-numeric value found here is a
   * PermanentError naming the file, row group and column.
   */
  readPiece(piece: Piece, start: number, end: number, signal?: AbortSignal): Promise<PieceRows>;
}
