// Tables as kubectl prints them: upper-case headers, left-aligned columns three spaces apart,
// as wide as their widest cell. Names are never cut (a name is what people copy into the next
// command); free text such as a URI or a message can be given a maximum width and is then
// shortened in the middle, where a path is least telling.
import { sanitizeMessage } from '../engine/messages.ts';

export interface Column {
  header: string;
  /** Cells longer than this are shortened in the middle with `…`. */
  maxWidth?: number;
}

const GAP = '   ';

/** Characters as a terminal shows them: one per code point (the block characters included). */
export const displayWidth = (s: string): number => [...s].length;

/** `s` in at most `max` characters, the middle replaced by `…` when it is longer. */
export function shorten(s: string, max: number): string {
  const chars = [...s];
  if (chars.length <= max) return s;
  if (max <= 1) return '…'.slice(0, max);
  const tail = Math.floor((max - 1) / 2);
  const head = max - 1 - tail;
  return `${chars.slice(0, head).join('')}…${chars.slice(chars.length - tail).join('')}`;
}

/** One line of a cell: control characters and line breaks of user text would break the table. */
const oneLine = (s: string): string => sanitizeMessage(s.replace(/\s*[\r\n]+\s*/g, ' '), 4096);

/** The table as text, one line per row after the header line, each ending in a newline. */
export function renderTable(columns: readonly Column[], rows: readonly string[][]): string {
  const cells = rows.map((row) =>
    columns.map((c, i) => {
      const text = oneLine(row[i] ?? '');
      return c.maxWidth !== undefined ? shorten(text, c.maxWidth) : text;
    }),
  );
  const widths = columns.map((c, i) =>
    Math.max(displayWidth(c.header), ...cells.map((r) => displayWidth(r[i] ?? ''))),
  );
  const line = (r: readonly string[]) =>
    r
      .map((cell, i) => cell + ' '.repeat((widths[i] ?? 0) - displayWidth(cell)))
      .join(GAP)
      .trimEnd();
  return [columns.map((c) => c.header.toUpperCase()), ...cells].map((r) => `${line(r)}\n`).join('');
}
