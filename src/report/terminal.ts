/**
 * Text that is safe to print on a terminal. Names read from files (tensor, node and data keys, external
 * locations, paths) can carry control characters: `ESC[2K` erases a line, `CR` moves to its start, bidi controls
 * reorder what the reader sees. Every line basin prints goes through one of these functions, as defence in depth
 * behind `q()` (src/errors.ts), which escapes names where messages are built.
 */

/** C0 controls except TAB and LF, DEL, C1 controls, line/paragraph separators and bidi controls. */
const UNSAFE = /[\u0000-\u0008\u000b-\u001f\u007f-\u009f\u2028\u2029\u200e\u200f\u202a-\u202e\u2066-\u2069]/g;
/** The same, plus LF and TAB: for text that must stay on one line. */
const UNSAFE_LINE = /[\u0000-\u001f\u007f-\u009f\u2028\u2029\u200e\u200f\u202a-\u202e\u2066-\u2069]/g;

function hex(c: string): string {
  const code = c.charCodeAt(0);
  return code <= 0xff ? `\\x${code.toString(16).padStart(2, '0')}` : `\\u${code.toString(16).padStart(4, '0')}`;
}

/**
 * Escape every control character as `\xNN` / `\uNNNN`. Newlines and tabs that basin puts in its own multi-line
 * output are kept unless `singleLine` is set (error messages are one line: a newline in one is escaped too).
 * Backslashes are left as they are (q() has already escaped those inside names).
 */
export function terminalText(text: string, { singleLine = false }: { singleLine?: boolean } = {}): string {
  return String(text).replace(singleLine ? UNSAFE_LINE : UNSAFE, hex);
}

/**
 * JSON for the terminal: JSON.stringify escapes C0 controls itself, but not DEL, C1 controls, U+2028/9 or bidi
 * controls; those are written as `\uNNNN` escapes, which read back as the same string.
 */
export function terminalJson(value: unknown): string {
  return JSON.stringify(value, null, 2).replace(UNSAFE, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`);
}
