// Parses CSV (a header row, RFC 4180 quoting) and JSONL into a Table, one piece of text at a time:
// a file never exists as one string, and its cells go straight into rows of float32 values, never
// into per-column arrays of JS numbers or a grid of strings. Errors name the file and line.
import { PermanentError } from '../errors.ts';
import { DatasetTooLargeError } from './limits.ts';

/** A label as the data has it: a number when it reads as one, else its text. */
export type LabelKey = string | number;

/** A block of rows holds at most this many values (4 MiB), so the slack of the last is small. */
const MAX_BLOCK_VALUES = 1 << 20;
/** Rows of the first block when the number of rows is not known; each further block doubles. */
const FIRST_BLOCK_ROWS = 64;

export interface LabelData {
  /** Per row, the index of its label in `keys`; -1 where the row has none. */
  ids: Int32Array;
  /** The distinct labels in order of first appearance. */
  keys: LabelKey[];
  /** "FILE line N" of the first row without a label. */
  missing?: string;
  /** The first row whose label is not a number. */
  text?: { where: string; key: string };
}

/**
 * The rows read so far. Every column starts out numeric and stops being so at its first row
 * without a number, which it remembers for the error message. Values are kept for the columns
 * known by the end of the first row (a column first seen later lacks a value there, so it is not
 * numeric anyway), `stride` of them per row, in blocks. When the number of rows is known
 * beforehand (`expectedRows`, at least as many as there are), one block holds them all and
 * `features` makes it the features in place: the data are then held once, never twice.
 */
export class Table {
  private readonly rawColumn: string;
  private readonly maxBytes: number;
  private readonly expectedRows: number | undefined;
  private readonly names: string[] = [];
  private readonly indexOfName = new Map<string, number>();
  private readonly numeric: boolean[] = [];
  private readonly problems: (string | undefined)[] = [];
  private lastRow = new Int32Array(16);
  private rawIndex = -1;

  private stride = -1;
  private readonly blocks: Float32Array[] = [];
  private taken = false;
  private rowsInBlock = 0;
  private rowCount = 0;
  /** The values of the row being read, copied into the current block by endRow. */
  private row = new Float32Array(16);

  private labelIds = new Int32Array(FIRST_BLOCK_ROWS);
  private readonly labelIndex = new Map<LabelKey, number>();
  private readonly labelKeys: LabelKey[] = [];
  private rowLabel = -1;
  private missingLabel: string | undefined;
  private textLabel: { where: string; key: string } | undefined;

  private source = '';
  private line = 0;
  private firstWhere = '';
  private setInRow = 0;

  /**
   * `rawColumn` (the label) also keeps its cells as label keys. Reading more than `maxBytes` of
   * float32 values throws a DatasetTooLargeError.
   */
  constructor(rawColumn: string, opts: { maxBytes?: number; expectedRows?: number } = {}) {
    this.rawColumn = rawColumn;
    this.maxBytes = opts.maxBytes ?? Infinity;
    this.expectedRows = opts.expectedRows;
  }

  get rows(): number {
    return this.rowCount;
  }

  /** Column names in order of first appearance. */
  get columns(): string[] {
    return [...this.names];
  }

  /** Whether every row has a number in `column`. */
  isNumeric(column: string): boolean {
    const i = this.indexOfName.get(column);
    return i !== undefined && this.numeric[i]!;
  }

  /** Why `column` is not numeric, naming the first row that is not. */
  problem(column: string): string | undefined {
    const i = this.indexOfName.get(column);
    return i === undefined ? undefined : this.problems[i];
  }

  /** The index of a column, which is added if new. */
  columnIndex(name: string): number {
    const known = this.indexOfName.get(name);
    if (known !== undefined) return known;
    const i = this.names.length;
    this.names.push(name);
    this.indexOfName.set(name, i);
    // A column first seen after row 0 has no value in the rows before it.
    const late = this.rowCount > 0;
    this.numeric.push(!late);
    this.problems.push(late ? `${this.firstWhere}: has no value for "${name}"` : undefined);
    if (name === this.rawColumn) this.rawIndex = i;
    if (i >= this.lastRow.length) this.lastRow = grown(this.lastRow, i + 1);
    this.lastRow[i] = -1;
    if (!late && i >= this.row.length) this.row = grown(this.row, i + 1);
    return i;
  }

  startRow(source: string, line: number): void {
    this.source = source;
    this.line = line;
    if (this.rowCount === 0) this.firstWhere = this.where();
    this.setInRow = 0;
    this.rowLabel = -1;
  }

  /** Sets a cell of the current row to a JSON value (or a CSV string). */
  set(name: string, value: unknown): void {
    const col = this.columnIndex(name);
    this.setInRow++;
    this.lastRow[col] = this.rowCount;
    if (col === this.rawIndex) this.setLabel(labelKeyOf(value));
    if (!this.numeric[col]) return;
    const n = toNumber(value);
    if (typeof n === 'number') this.row[col] = n;
    else this.invalidate(col, `"${name}" ${n}`);
  }

  /** Sets cell `col` of the current row to the CSV text text[start, end). */
  setText(col: number, text: string, start: number, end: number): void {
    this.setInRow++;
    this.lastRow[col] = this.rowCount;
    if (col === this.rawIndex) this.setLabel(labelKeyOf(text.slice(start, end)));
    if (!this.numeric[col]) return;
    const n = numberIn(text, start, end);
    if (typeof n === 'number') this.row[col] = n;
    else this.invalidate(col, `"${this.names[col]}" ${n}`);
  }

  endRow(): void {
    const row = this.rowCount;
    if (this.setInRow !== this.names.length) {
      for (let c = 0; c < this.names.length; c++)
        if (this.lastRow[c] !== row) this.invalidate(c, `has no value for "${this.names[c]}"`);
    }
    if (this.rowLabel < 0) this.missingLabel ??= this.where();
    if (this.stride < 0) this.stride = this.names.length;
    const bytes = (row + 1) * (this.stride + 1) * 4;
    if (bytes > this.maxBytes)
      throw new DatasetTooLargeError(
        { source: this.source, line: this.line },
        row + 1,
        this.stride,
        this.maxBytes,
      );
    this.blockForRow().set(this.row.subarray(0, this.stride), this.rowsInBlock * this.stride);
    this.rowsInBlock++;
    if (row >= this.labelIds.length) this.labelIds = grown(this.labelIds, row + 1);
    this.labelIds[row] = this.rowLabel;
    this.rowCount++;
  }

  /**
   * The values of `columns` (numeric ones), row after row. Moves them within the table's only
   * block when it can (the columns in the table's order), so it can be called once.
   */
  features(columns: string[]): Float32Array {
    if (this.taken) throw new Error('The rows of this table were already taken');
    this.taken = true;
    const cols = columns.map((name) => this.indexOfName.get(name)!);
    const f = cols.length;
    const stride = this.stride;
    const n = this.rowCount;
    // Usually the features are one run of columns (all but a first or last label column).
    const first = cols[0] ?? 0;
    const run = cols.every((c, j) => c === first + j);
    const only = this.blocks.length === 1 ? this.blocks[0]! : undefined;
    if (only && cols.every((c, j) => j === 0 || c > cols[j - 1]!)) {
      // Value j of row r moves from r * stride + cols[j] to r * f + j, never later: in place.
      if (run)
        for (let r = 0; r < n; r++)
          only.copyWithin(r * f, r * stride + first, r * stride + first + f);
      else
        for (let r = 0; r < n; r++)
          for (let j = 0; j < f; j++) only[r * f + j] = only[r * stride + cols[j]!]!;
      this.blocks.length = 0;
      return only.subarray(0, n * f);
    }
    const out = new Float32Array(n * f);
    let i = 0;
    for (const block of this.blocks) {
      const rows = Math.min(block.length / stride, this.rowCount - i);
      if (run && f === stride) out.set(block.subarray(0, rows * stride), i * f);
      else if (run)
        for (let r = 0; r < rows; r++)
          out.set(block.subarray(r * stride + first, r * stride + first + f), (i + r) * f);
      else
        for (let r = 0; r < rows; r++)
          for (let j = 0; j < f; j++) out[(i + r) * f + j] = block[r * stride + cols[j]!]!;
      i += rows;
    }
    return out;
  }

  labels(): LabelData {
    return {
      ids: this.labelIds.subarray(0, this.rowCount),
      keys: this.labelKeys,
      missing: this.missingLabel,
      text: this.textLabel,
    };
  }

  private where(): string {
    return `${this.source} line ${this.line}`;
  }

  private setLabel(key: LabelKey | undefined): void {
    if (key === undefined) return;
    let id = this.labelIndex.get(key);
    if (id === undefined) {
      id = this.labelKeys.length;
      this.labelKeys.push(key);
      this.labelIndex.set(key, id);
    }
    this.rowLabel = id;
    if (typeof key === 'string') this.textLabel ??= { where: this.where(), key };
  }

  private invalidate(col: number, message: string): void {
    if (!this.numeric[col]) return;
    this.numeric[col] = false;
    this.problems[col] ??= `${this.where()}: ${message}`;
  }

  /** The block the next row goes into, a new one when the last is full. */
  private blockForRow(): Float32Array {
    const last = this.blocks.at(-1);
    const stride = Math.max(this.stride, 1);
    if (last !== undefined && this.rowsInBlock < last.length / stride) return last;
    let rows: number;
    if (last === undefined && this.expectedRows !== undefined)
      // No larger than the limit allows: a file beyond it fails when its rows reach it.
      rows = Math.min(this.expectedRows, Math.floor(this.maxBytes / ((stride + 1) * 4)) + 1);
    else {
      const previous = last === undefined ? 0 : last.length / stride;
      rows = Math.min(Math.max(FIRST_BLOCK_ROWS, previous * 2), MAX_BLOCK_VALUES / stride);
    }
    rows = Math.max(1, Math.floor(rows));
    const block = new Float32Array(rows * stride);
    this.blocks.push(block);
    this.rowsInBlock = 0;
    return block;
  }
}

function grown<T extends Float32Array | Int32Array>(array: T, atLeast: number): T {
  const next = new (array.constructor as new (n: number) => T)(Math.max(atLeast, array.length * 2));
  next.set(array);
  return next;
}

/** The label key of a cell; undefined for an empty one. */
export function labelKeyOf(value: unknown): LabelKey | undefined {
  let raw: string | number | boolean;
  if (typeof value === 'string') {
    raw = value.trim();
    if (raw === '') return undefined;
  } else if (typeof value === 'number' || typeof value === 'boolean') raw = value;
  else return undefined;
  const asNumber = typeof raw === 'number' ? raw : typeof raw === 'string' ? Number(raw) : NaN;
  return Number.isFinite(asNumber) ? asNumber : String(raw);
}

/** The cell as a number, or why it is not one. */
function toNumber(value: unknown): number | string {
  if (typeof value === 'number') return Number.isFinite(value) ? value : `is not finite`;
  if (typeof value === 'boolean') return value ? 1 : 0;
  if (typeof value === 'string') return numberIn(value, 0, value.length);
  if (value === null || value === undefined) return 'is empty';
  return 'is not a number';
}

/** Whitespace that String.prototype.trim removes, in its ASCII part. */
function isAsciiSpace(c: number): boolean {
  return c === 32 || (c >= 9 && c <= 13);
}

/**
 * The number in text[start, end) (whitespace around it ignored), or why there is none. Plain
 * integers, as pixels are, are read from the characters; anything else goes through Number(),
 * whose rounding the result must match.
 */
function numberIn(text: string, start: number, end: number): number | string {
  let a = start;
  let b = end;
  while (a < b && isAsciiSpace(text.charCodeAt(a))) a++;
  while (b > a && isAsciiSpace(text.charCodeAt(b - 1))) b--;
  if (a === b) return 'is empty';
  let i = a;
  const sign = text.charCodeAt(i);
  if (sign === 45 || sign === 43) i++;
  if (i < b && b - i <= 15) {
    let v = 0;
    for (; i < b; i++) {
      const d = text.charCodeAt(i) - 48;
      if (d < 0 || d > 9) break;
      v = v * 10 + d;
    }
    if (i === b) return sign === 45 ? -v : v;
  }
  const t = text.slice(a, b).trim();
  if (t === '') return 'is empty';
  const n = Number(t);
  return Number.isFinite(n) ? n : `is not a number (${JSON.stringify(t.slice(0, 40))})`;
}

/** Takes a text piece by piece; `end` after the last piece. */
export interface TextReader {
  push(text: string): void;
  end(): void;
}

/**
 * What the CSV and JSONL readers share: the text not yet consumed is kept until the next piece
 * completes it, and a byte order mark at the very start is dropped. A reader consumes whole
 * records of `buf` and says where it stopped.
 */
abstract class RecordReader implements TextReader {
  protected readonly source: string;
  protected readonly table: Table;
  /** The start of a record that the pieces so far do not complete. */
  private pending = '';
  private started = false;

  constructor(source: string, table: Table) {
    this.source = source;
    this.table = table;
  }

  push(text: string): void {
    this.feed(text, false);
  }

  end(): void {
    this.feed('', true);
  }

  private feed(text: string, final: boolean): void {
    let buf = this.pending.length > 0 ? this.pending + text : text;
    if (!this.started) {
      if (buf.length === 0 && !final) return;
      if (buf.charCodeAt(0) === 0xfeff) buf = buf.slice(1);
      this.started = true;
    }
    const pos = this.consume(buf, final);
    this.pending = pos < buf.length ? buf.slice(pos) : '';
  }

  /**
   * Consumes the whole records of `buf` (with `final`, the last one also without its newline)
   * and returns the position of the first character not consumed.
   */
  protected abstract consume(buf: string, final: boolean): number;
}

const QUOTE = 34;
const NEWLINE = 10;
const CR = 13;
const COMMA = 44;

/** Adds the rows of a CSV text (header row first), given in pieces, to a table. */
export class CsvReader extends RecordReader {
  /** The line the text not yet consumed starts on. */
  private line = 1;
  private header: string[] | undefined;
  /** The table's column of each header field, set at the first row. */
  private columns: number[] | undefined;

  protected consume(buf: string, final: boolean): number {
    let pos = 0;
    // The next quote at or after pos (-1: none left), so that a file without quotes is scanned once.
    let quote = -2;
    while (pos < buf.length) {
      let newline = buf.indexOf('\n', pos);
      if (newline < 0) {
        if (!final) break;
        newline = buf.length;
      }
      if (quote !== -1 && quote < pos) quote = buf.indexOf('"', pos);
      if (quote === -1 || quote >= newline) {
        this.plainRecord(buf, pos, newline);
        this.line++;
        pos = newline + 1;
        continue;
      }
      const record = readQuotedRecord(buf, pos, final, this.source, this.line);
      if (record === undefined) break;
      this.record(record.fields, this.line);
      this.line += record.lines;
      pos = record.next;
    }
    return pos;
  }

  /** A record without quotes: buf[start, end), `end` being its newline or the end of the text. */
  private plainRecord(buf: string, start: number, end: number): void {
    if (end > start && buf.charCodeAt(end - 1) === CR) end--;
    const header = this.header;
    const comma = buf.indexOf(',', start);
    if (header === undefined || comma < 0 || comma >= end) {
      this.record(buf.slice(start, end).split(','), this.line);
      return;
    }
    this.table.startRow(this.source, this.line);
    const columns = (this.columns ??= header.map((name) => this.table.columnIndex(name)));
    let a = start;
    let i = 0;
    for (;;) {
      let b = buf.indexOf(',', a);
      if (b < 0 || b > end) b = end;
      if (i === header.length) this.wrongCount(countFields(buf, start, end));
      this.table.setText(columns[i]!, buf, a, b);
      i++;
      if (b === end) break;
      a = b + 1;
    }
    if (i !== header.length) this.wrongCount(i);
    this.table.endRow();
  }

  private record(fields: string[], line: number): void {
    if (fields.length === 1 && fields[0]!.trim() === '') return;
    if (this.header === undefined) {
      this.header = fields.map((f) => f.trim());
      checkHeader(this.header, this.source, line);
      return;
    }
    if (fields.length !== this.header.length) this.wrongCount(fields.length, line);
    this.table.startRow(this.source, line);
    const columns = (this.columns ??= this.header.map((name) => this.table.columnIndex(name)));
    for (let i = 0; i < fields.length; i++) {
      const field = fields[i]!;
      this.table.setText(columns[i]!, field, 0, field.length);
    }
    this.table.endRow();
  }

  private wrongCount(found: number, line = this.line): never {
    throw new PermanentError(
      `${this.source} line ${line}: expected ${this.header!.length} fields as in the header, found ${found}`,
    );
  }
}

function countFields(buf: string, start: number, end: number): number {
  let n = 1;
  for (let i = start; i < end; i++) if (buf.charCodeAt(i) === COMMA) n++;
  return n;
}

function checkHeader(header: string[], source: string, line: number): void {
  const seen = new Set<string>();
  for (const [i, name] of header.entries()) {
    if (name === '')
      throw new PermanentError(`${source} line ${line}: header column ${i + 1} has no name`);
    if (seen.has(name))
      throw new PermanentError(`${source} line ${line}: header names column "${name}" twice`);
    seen.add(name);
  }
}

/**
 * The record from `pos` whose first line holds a quote: its fields, where the next record starts
 * and how many lines it spans; undefined when the text ends before the record does and more may
 * follow. A quoted field may hold commas, doubled quotes and line breaks.
 */
function readQuotedRecord(
  text: string,
  pos: number,
  final: boolean,
  source: string,
  line: number,
): { fields: string[]; next: number; lines: number } | undefined {
  const fields: string[] = [];
  let field = '';
  let lines = 1;
  let quoted = false;
  let afterQuote = false;
  let i = pos;
  for (; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (quoted) {
      if (c === QUOTE) {
        if (i + 1 === text.length && !final) return undefined;
        if (text.charCodeAt(i + 1) === QUOTE) {
          field += '"';
          i++;
        } else {
          quoted = false;
          afterQuote = true;
        }
      } else {
        if (c === NEWLINE) lines++;
        field += text[i];
      }
    } else if (c === COMMA) {
      fields.push(field);
      field = '';
      afterQuote = false;
    } else if (c === NEWLINE) {
      break;
    } else if (c === QUOTE && field.trim() === '' && !afterQuote) {
      quoted = true;
      field = '';
    } else if (c !== CR && !(afterQuote && (c === 32 || c === 9))) {
      if (afterQuote)
        throw new PermanentError(
          `${source} line ${line}: unexpected "${text[i]}" after a quoted field`,
        );
      field += text[i];
    }
  }
  if (i === text.length && !final) return undefined;
  if (quoted) throw new PermanentError(`${source} line ${line}: a quoted field is never closed`);
  fields.push(field);
  return { fields, next: i + 1, lines };
}

/** Adds the rows of a JSONL text (one JSON object per line), given in pieces, to a table. */
export class JsonlReader extends RecordReader {
  private line = 0;

  protected consume(buf: string, final: boolean): number {
    let pos = 0;
    while (pos < buf.length) {
      let end = buf.indexOf('\n', pos);
      if (end < 0) {
        if (!final) break;
        end = buf.length;
      }
      this.object(buf.slice(pos, end).trim(), ++this.line);
      pos = end + 1;
    }
    return pos;
  }

  private object(content: string, line: number): void {
    if (content === '') return;
    let value: unknown;
    try {
      value = JSON.parse(content);
    } catch (err) {
      throw new PermanentError(`${this.source} line ${line}: not JSON (${(err as Error).message})`);
    }
    if (value === null || typeof value !== 'object' || Array.isArray(value))
      throw new PermanentError(`${this.source} line ${line}: not a JSON object`);
    this.table.startRow(this.source, line);
    for (const [key, cell] of Object.entries(value)) this.table.set(key, cell);
    this.table.endRow();
  }
}

/** Adds the rows of a whole CSV text (header row first) to `table`. */
export function parseCsv(text: string, source: string, table: Table): void {
  const reader = new CsvReader(source, table);
  reader.push(text);
  reader.end();
}

/** Adds the rows of a whole JSONL text (one JSON object per line) to `table`. */
export function parseJsonl(text: string, source: string, table: Table): void {
  const reader = new JsonlReader(source, table);
  reader.push(text);
  reader.end();
}
