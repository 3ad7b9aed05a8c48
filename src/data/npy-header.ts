/**
 * The header dictionary of a NumPy .npy file, read as the Python literal it is (NumPy format spec, versions 1.0,
 * 2.0 and 3.0): `{'descr': '<f4', 'fortran_order': False, 'shape': (8, 784), }` followed by padding spaces and a
 * final newline. A small strict parser, not regular expressions: a key name inside another value's string (a
 * decoy `'descr'`) is just text, and anything numpy's own reader would refuse is refused here too.
 *
 * Grammar (whitespace = space, tab, CR, LF between tokens):
 *   dict   := '{' [entry (',' entry)* [',']] '}'        exactly the keys descr, fortran_order, shape, once each
 *   entry  := string ':' value
 *   value  := string | 'True' | 'False' | tuple
 *   tuple  := '(' ')' | '(' int ',' ')' | '(' int (',' int)+ [','] ')'
 *   int    := '0' | [1-9][0-9]* , optionally followed by 'L' (written by Python 2)
 *   string := '…' | "…" with the escapes \\ \' \" \n \r \t \0 \xHH \uHHHH
 */

import { q } from '../errors.js';

/** The three fields of a header, as written. */
export interface NpyHeaderDict {
  readonly descr: string;
  readonly fortranOrder: boolean;
  readonly shape: readonly number[];
}

/** Why a header text is not a valid header dict: a short phrase with the character position. */
export class NpyHeaderSyntaxError extends Error {}

type Value = { kind: 'str'; value: string } | { kind: 'bool'; value: boolean } | { kind: 'tuple'; value: number[] };

const KEYS = ['descr', 'fortran_order', 'shape'] as const;

class Parser {
  private pos = 0;
  constructor(private readonly text: string) {}

  fail(what: string): never {
    const near = q(this.text.slice(this.pos, this.pos + 20));
    throw new NpyHeaderSyntaxError(`${what} at character ${this.pos} of the header (near ${near})`);
  }

  ws(): void {
    while (this.pos < this.text.length && ' \t\r\n'.includes(this.text[this.pos]!)) this.pos++;
  }

  peek(): string | undefined {
    return this.text[this.pos];
  }

  expect(c: string, what: string): void {
    this.ws();
    if (this.text[this.pos] !== c) this.fail(`expected ${what}`);
    this.pos++;
  }

  /** Consume `c` (after whitespace) when it is next; true when it was. */
  accept(c: string): boolean {
    this.ws();
    if (this.text[this.pos] === c) {
      this.pos++;
      return true;
    }
    return false;
  }

  dict(): Map<string, Value> {
    const out = new Map<string, Value>();
    this.expect('{', "the header dict's opening '{'");
    if (this.accept('}')) return out;
    for (;;) {
      this.ws();
      const keyAt = this.pos;
      const key = this.string();
      this.expect(':', "':' after a key");
      const value = this.value();
      if (out.has(key)) {
        this.pos = keyAt;
        this.fail(`key ${q(key)} appears twice`);
      }
      out.set(key, value);
      if (this.accept('}')) return out;
      this.expect(',', "',' or '}' after a value");
      if (this.accept('}')) return out;
    }
  }

  value(): Value {
    this.ws();
    const c = this.peek();
    if (c === "'" || c === '"') return { kind: 'str', value: this.string() };
    if (c === '(') return { kind: 'tuple', value: this.tuple() };
    for (const [word, value] of [['True', true], ['False', false]] as const) {
      if (this.text.startsWith(word, this.pos) && !/[A-Za-z0-9_]/.test(this.text[this.pos + word.length] ?? '')) {
        this.pos += word.length;
        return { kind: 'bool', value };
      }
    }
    if (c === '[' || c === '{') this.fail('a list or dict value (structured dtypes are not supported)');
    return this.fail('expected a string, True, False or a tuple');
  }

  string(): string {
    const quote = this.peek();
    if (quote !== "'" && quote !== '"') this.fail('expected a quoted string');
    this.pos++;
    let out = '';
    for (;;) {
      const c = this.text[this.pos];
      if (c === undefined || c === '\n' || c === '\r') this.fail('unterminated string');
      this.pos++;
      if (c === quote) return out;
      if (c !== '\\') {
        out += c;
        continue;
      }
      const e = this.text[this.pos++];
      const simple: Record<string, string> = { '\\': '\\', "'": "'", '"': '"', n: '\n', r: '\r', t: '\t', '0': '\0' };
      if (e !== undefined && e in simple) out += simple[e];
      else if (e === 'x' || e === 'u') {
        const n = e === 'x' ? 2 : 4;
        const hex = this.text.slice(this.pos, this.pos + n);
        if (!new RegExp(`^[0-9a-fA-F]{${n}}$`).test(hex)) this.fail(`bad \\${e} escape`);
        out += String.fromCharCode(parseInt(hex, 16));
        this.pos += n;
      } else {
        this.pos--;
        this.fail('unknown escape in a string');
      }
    }
  }

  tuple(): number[] {
    this.expect('(', "'('");
    const out: number[] = [];
    if (this.accept(')')) return out;
    for (;;) {
      out.push(this.int());
      if (this.accept(')')) {
        // Python: (3) is the int 3, not a tuple; a one-element tuple needs its comma.
        if (out.length === 1) {
          this.pos--;
          this.fail("a one-element shape needs a trailing comma, as in (3,)");
        }
        return out;
      }
      this.expect(',', "',' or ')' in the shape tuple");
      if (this.accept(')')) return out;
    }
  }

  int(): number {
    this.ws();
    const m = /^(0|[1-9][0-9]*)L?(?![0-9A-Za-z_.])/.exec(this.text.slice(this.pos, this.pos + 40));
    if (!m) return this.fail('expected a non-negative integer dimension');
    const v = Number(m[1]);
    if (!Number.isSafeInteger(v)) this.fail(`dimension ${m[1]} is too large`);
    this.pos += m[0].length;
    return v;
  }

  /** After the dict: only padding spaces, ending in one newline. */
  end(): void {
    const rest = this.text.slice(this.pos);
    if (!/^[ \t\r\n]*$/.test(rest)) this.fail('unexpected text after the header dict');
    if (!rest.endsWith('\n')) this.fail('the header does not end with a newline');
  }
}

/**
 * Parse the header text (the bytes after the length field, decoded) into its three fields. Throws
 * NpyHeaderSyntaxError saying what was wrong and where: a syntax error, a missing, extra or repeated key, or a
 * field of the wrong kind (descr a string, fortran_order True/False, shape a tuple of non-negative integers).
 */
export function parseNpyHeaderDict(text: string): NpyHeaderDict {
  const p = new Parser(text);
  const d = p.dict();
  p.end();
  const extra = [...d.keys()].filter((k) => !(KEYS as readonly string[]).includes(k));
  if (extra.length > 0) throw new NpyHeaderSyntaxError(`unexpected key ${q(extra[0]!)} (a header holds exactly 'descr', 'fortran_order' and 'shape')`);
  for (const k of KEYS) if (!d.has(k)) throw new NpyHeaderSyntaxError(`key '${k}' is missing`);
  const descr = d.get('descr')!;
  const fortran = d.get('fortran_order')!;
  const shape = d.get('shape')!;
  if (descr.kind !== 'str') throw new NpyHeaderSyntaxError(`'descr' must be a dtype string such as '<f4' (structured dtypes are not supported)`);
  if (fortran.kind !== 'bool') throw new NpyHeaderSyntaxError(`'fortran_order' must be True or False`);
  if (shape.kind !== 'tuple') throw new NpyHeaderSyntaxError(`'shape' must be a tuple of non-negative integers`);
  return { descr: descr.value, fortranOrder: fortran.value, shape: shape.value };
}
