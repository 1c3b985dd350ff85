// Parses CSV (a header row, RFC 4180 quoting) and JSONL into columns, converting cells to numbers
// as it goes: a large file never exists as a grid of strings, only as one number array per
// numeric column. Every row remembers its file and line, so errors can name them.
import { PermanentError } from '../errors.ts';

export type RawValue = string | number | boolean;

interface Column {
  /** One number per row while every row so far had a number here; undefined after that. */
  values: number[] | undefined;
  /** The first row without a number, and why. */
  problem?: { row: number; message: string };
  /** Cells as read, kept only for the label column. */
  raw?: (RawValue | undefined)[];
  lastRow: number;
}

export class Table {
  private readonly columnsByName = new Map<string, Column>();
  private readonly sources: string[] = [];
  private readonly sourceOfRow: number[] = [];
  private readonly lineOfRow: number[] = [];
  private readonly rawColumn: string;
  private current = -1;
  private setInRow = 0;

  /** `rawColumn` (the label) keeps its cells as read, whatever their type. */
  constructor(rawColumn: string) {
    this.rawColumn = rawColumn;
  }

  get rows(): number {
    return this.lineOfRow.length;
  }

  /** Column names in order of first appearance. */
  get columns(): string[] {
    return [...this.columnsByName.keys()];
  }

  /** "FILE line N" of a row. */
  where(row: number): string {
    return `${this.sources[this.sourceOfRow[row] ?? 0]} line ${this.lineOfRow[row]}`;
  }

  /** The column's values if every row has a number there. */
  numbers(column: string): readonly number[] | undefined {
    return this.columnsByName.get(column)?.values;
  }

  /** Why `column` is not numeric, naming the first row that is not. */
  problem(column: string): string | undefined {
    const p = this.columnsByName.get(column)?.problem;
    return p && `${this.where(p.row)}: ${p.message}`;
  }

  /** The cells of the raw column as read (undefined where a row has none). */
  raw(): readonly (RawValue | undefined)[] {
    return this.columnsByName.get(this.rawColumn)?.raw ?? [];
  }

  startRow(source: string, line: number): void {
    if (this.sources.at(-1) !== source) this.sources.push(source);
    this.current = this.rows;
    this.sourceOfRow.push(this.sources.length - 1);
    this.lineOfRow.push(line);
    this.setInRow = 0;
  }

  /** Sets a cell of the current row: a CSV string, or a JSON value. */
  set(name: string, value: unknown): void {
    const column = this.column(name);
    const row = this.current;
    column.lastRow = row;
    this.setInRow++;
    if (column.raw) column.raw[row] = rawValue(value);
    if (column.values === undefined) return;
    const n = toNumber(value);
    if (typeof n === 'number') column.values.push(n);
    else this.invalidate(column, row, `"${name}" ${n}`);
  }

  endRow(): void {
    if (this.setInRow === this.columnsByName.size) return;
    for (const [name, column] of this.columnsByName) {
      if (column.lastRow !== this.current)
        this.invalidate(column, this.current, `has no value for "${name}"`);
    }
  }

  private column(name: string): Column {
    let column = this.columnsByName.get(name);
    if (column === undefined) {
      column = { values: [], lastRow: -1 };
      if (name === this.rawColumn) column.raw = new Array<RawValue | undefined>(this.current);
      // A column first seen after row 0 has no value in the rows before it.
      if (this.current > 0) {
        column.values = undefined;
        column.problem = { row: 0, message: `has no value for "${name}"` };
      }
      this.columnsByName.set(name, column);
    }
    return column;
  }

  private invalidate(column: Column, row: number, message: string): void {
    column.values = undefined;
    column.problem ??= { row, message };
  }
}

function rawValue(value: unknown): RawValue | undefined {
  if (typeof value === 'string') {
    const t = value.trim();
    return t === '' ? undefined : t;
  }
  if (typeof value === 'number' || typeof value === 'boolean') return value;
  return undefined;
}

/** The cell as a number, or why it is not one. */
function toNumber(value: unknown): number | string {
  if (typeof value === 'number') return Number.isFinite(value) ? value : `is not finite`;
  if (typeof value === 'boolean') return value ? 1 : 0;
  if (typeof value === 'string') {
    const t = value.trim();
    if (t === '') return 'is empty';
    const n = Number(t);
    return Number.isFinite(n) ? n : `is not a number (${JSON.stringify(t.slice(0, 40))})`;
  }
  if (value === null || value === undefined) return 'is empty';
  return 'is not a number';
}

/** Adds the rows of a CSV text (header row first) to `table`. */
export function parseCsv(text: string, source: string, table: Table): void {
  let header: string[] | undefined;
  let pos = text.charCodeAt(0) === 0xfeff ? 1 : 0;
  let line = 1;
  while (pos < text.length) {
    const record = readCsvRecord(text, pos, source, line);
    const recordLine = line;
    pos = record.next;
    line += record.lines;
    const { fields } = record;
    if (fields.length === 1 && fields[0]!.trim() === '') continue;
    if (header === undefined) {
      header = fields.map((f) => f.trim());
      checkHeader(header, source, recordLine);
      continue;
    }
    if (fields.length !== header.length)
      throw new PermanentError(
        `${source} line ${recordLine}: expected ${header.length} fields as in the header, found ${fields.length}`,
      );
    table.startRow(source, recordLine);
    for (let i = 0; i < header.length; i++) table.set(header[i]!, fields[i]);
    table.endRow();
  }
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

/** One record from `pos`: its fields, where the next one starts, and how many lines it spans. */
function readCsvRecord(
  text: string,
  pos: number,
  source: string,
  line: number,
): { fields: string[]; next: number; lines: number } {
  let end = text.indexOf('\n', pos);
  if (end < 0) end = text.length;
  const plain = text.slice(pos, end);
  if (!plain.includes('"')) {
    const content = plain.endsWith('\r') ? plain.slice(0, -1) : plain;
    return { fields: content.split(','), next: end + 1, lines: 1 };
  }
  // A quoted field may hold commas, doubled quotes and line breaks.
  const fields: string[] = [];
  let field = '';
  let lines = 1;
  let i = pos;
  let quoted = false;
  let afterQuote = false;
  for (; i < text.length; i++) {
    const c = text[i]!;
    if (quoted) {
      if (c === '"') {
        if (text[i + 1] === '"') {
          field += '"';
          i++;
        } else {
          quoted = false;
          afterQuote = true;
        }
      } else {
        if (c === '\n') lines++;
        field += c;
      }
    } else if (c === ',') {
      fields.push(field);
      field = '';
      afterQuote = false;
    } else if (c === '\n') {
      break;
    } else if (c === '"' && field.trim() === '' && !afterQuote) {
      quoted = true;
      field = '';
    } else if (c !== '\r' && !(afterQuote && (c === ' ' || c === '\t'))) {
      if (afterQuote)
        throw new PermanentError(`${source} line ${line}: unexpected "${c}" after a quoted field`);
      field += c;
    }
  }
  if (quoted) throw new PermanentError(`${source} line ${line}: a quoted field is never closed`);
  fields.push(field);
  return { fields, next: i + 1, lines };
}

/** Adds the rows of a JSONL text (one JSON object per line) to `table`. */
export function parseJsonl(text: string, source: string, table: Table): void {
  let pos = text.charCodeAt(0) === 0xfeff ? 1 : 0;
  let line = 0;
  while (pos < text.length) {
    line++;
    let end = text.indexOf('\n', pos);
    if (end < 0) end = text.length;
    const content = text.slice(pos, end).trim();
    pos = end + 1;
    if (content === '') continue;
    let value: unknown;
    try {
      value = JSON.parse(content);
    } catch (err) {
      throw new PermanentError(`${source} line ${line}: not JSON (${(err as Error).message})`);
    }
    if (value === null || typeof value !== 'object' || Array.isArray(value))
      throw new PermanentError(`${source} line ${line}: not a JSON object`);
    table.startRow(source, line);
    for (const [key, cell] of Object.entries(value)) table.set(key, cell);
    table.endRow();
  }
}
