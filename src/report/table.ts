/**
 * Tables for the terminal and for Markdown reports, from the same input: a header row and rows of strings and
 * numbers. Numbers are written with a fixed number of decimals (a column of whole numbers stays whole, so counts
 * print as "12", not "12.000") and right-aligned; text is left-aligned. Non-finite numbers print as "NaN", "inf"
 * and "-inf". Control characters in text cells and headers (names read from files) are escaped (see terminal.ts),
 * and a line break becomes a space, so a cell can never move the cursor or start a new line.
 */
import { BasinError } from '../errors.js';
import { terminalText } from './terminal.js';

/** One line of text for a cell: line breaks become a space, other control characters are escaped. */
function cellText(s: string): string {
  return terminalText(String(s).replace(/\s*[\r\n]+\s*/g, ' '), { singleLine: true });
}

export type TableCell = string | number;
export type TableAlign = 'l' | 'r';

export interface TableOptions {
  /** Alignment per column; default 'r' for columns whose cells are all numbers, else 'l'. */
  align?: readonly TableAlign[];
  /** Decimals for non-integer numbers (default 3). */
  digits?: number;
}

interface Prepared {
  cells: string[][];
  align: TableAlign[];
}

function prepare(headers: readonly string[], rows: readonly (readonly TableCell[])[], options: TableOptions): Prepared {
  if (!Array.isArray(headers) || headers.length === 0) {
    throw new BasinError('invalid_argument', 'a table needs at least one column header', { found: headers });
  }
  if (!Array.isArray(rows)) throw new BasinError('invalid_argument', 'table rows must be an array of arrays', { found: typeof rows });
  const cols = headers.length;
  const digits = options.digits ?? 3;
  if (!Number.isInteger(digits) || digits < 0 || digits > 20) {
    throw new BasinError('invalid_argument', `digits must be an integer in [0, 20], found ${String(digits)}`, {
      expected: '[0, 20]',
      found: digits,
    });
  }
  rows.forEach((row, r) => {
    if (!Array.isArray(row) || row.length !== cols) {
      throw new BasinError('invalid_argument', `table row ${r} has ${Array.isArray(row) ? row.length : 'no'} cells, but there are ${cols} headers`, {
        index: r,
        expected: cols,
        found: Array.isArray(row) ? row.length : typeof row,
      });
    }
    row.forEach((c, k) => {
      if (typeof c !== 'string' && typeof c !== 'number') {
        throw new BasinError('invalid_argument', `table cell [${r}][${k}] is ${typeof c}; cells are strings or numbers`, {
          index: r,
          column: k,
          found: typeof c,
        });
      }
    });
  });
  if (options.align !== undefined) {
    const a = options.align;
    if (!Array.isArray(a) || a.length !== cols || a.some((x) => x !== 'l' && x !== 'r')) {
      throw new BasinError('invalid_argument', `align must give 'l' or 'r' for each of the ${cols} columns`, {
        expected: cols,
        found: a,
      });
    }
  }
  const align: TableAlign[] = [];
  const wholeColumn: boolean[] = [];
  for (let k = 0; k < cols; k++) {
    const column = rows.map((row) => row[k]!);
    const numeric = column.length > 0 && column.every((c) => typeof c === 'number');
    align.push(options.align?.[k] ?? (numeric ? 'r' : 'l'));
    wholeColumn.push(column.every((c) => typeof c !== 'number' || Number.isInteger(c) || !Number.isFinite(c)));
  }
  const cells = rows.map((row: readonly TableCell[]) =>
    row.map((c: TableCell, k: number) => (typeof c === 'number' ? formatNumber(c, wholeColumn[k]! ? 0 : digits) : cellText(c))),
  );
  return { cells, align };
}

function formatNumber(v: number, digits: number): string {
  if (Number.isNaN(v)) return 'NaN';
  if (!Number.isFinite(v)) return v > 0 ? 'inf' : '-inf';
  const s = v.toFixed(digits);
  // -0.000 reads as a sign error; a value that rounds to zero prints without one.
  return /^-0(\.0*)?$/.test(s) ? s.slice(1) : s;
}

/** Display width: code points (so "α" and "—" count one). */
function width(s: string): number {
  let n = 0;
  for (const _ of s) n++;
  return n;
}

function pad(s: string, w: number, align: TableAlign): string {
  const fill = ' '.repeat(Math.max(0, w - width(s)));
  return align === 'r' ? fill + s : s + fill;
}

/**
 * A plain-text table: columns two spaces apart, a dashed rule under the headers, no trailing spaces.
 *
 *     curve      barrier  acc@0.5
 *     -------  ---------  -------
 *     naive        1.443   40.100
 */
export function formatTable(headers: readonly string[], rows: readonly (readonly TableCell[])[], options: TableOptions = {}): string {
  const { cells, align } = prepare(headers, rows, options);
  const heads = headers.map(cellText);
  const widths = heads.map((h, k) => Math.max(width(h), ...cells.map((row) => width(row[k]!))));
  const line = (row: string[]) =>
    row
      .map((c, k) => pad(c, widths[k]!, align[k]!))
      .join('  ')
      .replace(/\s+$/, '');
  return [line(heads), widths.map((w) => '-'.repeat(w)).join('  '), ...cells.map(line)].join('\n') + '\n';
}

function mdCell(s: string): string {
  return s.replace(/\\/g, '\\\\').replace(/\|/g, '\\|');
}

/**
 * The same table as GitHub-flavored Markdown, padded so the source reads as a table too; '|' and '\' in cells are
 * escaped, and the separator row carries the alignment (`---:` right, `:---` left).
 */
export function formatMarkdownTable(headers: readonly string[], rows: readonly (readonly TableCell[])[], options: TableOptions = {}): string {
  const { cells, align } = prepare(headers, rows, options);
  const heads = headers.map((h) => mdCell(cellText(h)));
  const body = cells.map((row) => row.map(mdCell));
  const widths = heads.map((h, k) => Math.max(3, width(h), ...body.map((row) => width(row[k]!))));
  const line = (row: string[]) => `| ${row.map((c, k) => pad(c, widths[k]!, align[k]!)).join(' | ')} |`;
  const rule = `|${widths.map((w, k) => (align[k] === 'r' ? `${'-'.repeat(w + 1)}:` : `:${'-'.repeat(w + 1)}`)).join('|')}|`;
  return [line(heads), rule, ...body.map(line)].join('\n') + '\n';
}
