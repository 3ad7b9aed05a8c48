/**
 * Options every command takes, handled before commander parses (so they may stand anywhere on the line):
 * `-q/--quiet` (only warnings, errors and results), `--verbose` (also the stack of an internal error), and who
 * owns stdout: when `--report -` or `-o -` sends a document to stdout, tables and summaries go to stderr instead.
 * `NO_COLOR` needs nothing: basin never writes color, and a progress bar is drawn only on a terminal
 * (`TERM=dumb` gets plain lines).
 */
export type Verbosity = 'quiet' | 'normal' | 'verbose';

const state: { verbosity: Verbosity; stdoutTaken: boolean; options: Record<string, unknown> | undefined } = { verbosity: 'normal', stdoutTaken: false, options: undefined };

export function verbosity(): Verbosity {
  return state.verbosity;
}

/** Whether a document (a report, a model) is being written to stdout: then tables go to stderr. */
export function stdoutTaken(): boolean {
  return state.stdoutTaken;
}

/**
 * Take the global options out of `argv` (the arguments after the script) and remember them; returns the rest.
 * `--` ends option scanning, as everywhere.
 */
export function takeTerminalOptions(argv: readonly string[]): string[] {
  const rest: string[] = [];
  let options = true;
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    if (a === '--') options = false;
    if (options && (a === '-q' || a === '--quiet')) state.verbosity = 'quiet';
    else if (options && a === '--verbose') state.verbosity = 'verbose';
    else {
      if (options && (((a === '--report' || a === '-o' || a === '--out') && argv[i + 1] === '-') || a === '--report=-' || a === '--out=-')) state.stdoutTaken = true;
      rest.push(a);
    }
  }
  return rest;
}

/** Remember the running command's options, defaults included (main.ts sets it from commander's preAction hook). */
export function setCommandOptions(options: Record<string, unknown>): void {
  state.options = options;
}

/** The running command's options, defaults included, as reports record them. */
export function commandOptions(): Record<string, unknown> | undefined {
  return state.options;
}
