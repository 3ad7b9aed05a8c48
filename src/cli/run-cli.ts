/**
 * The CLI after `--version`: parse `argv` (the arguments after the script, as process.argv.slice(2)), run one
 * command, print its errors as one line each (never a stack). Shared by main.ts (the `basin` command) and
 * snapshot-entry.ts (the same, started from a V8 start-up snapshot).
 */
export async function runCli(argv: readonly string[]): Promise<void> {
  // onnxruntime-node 1.30's Linux build keeps usage telemetry: every process that creates a session opens a SQLite
  // queue in ~/.cache/Microsoft/DeveloperTools/.onnxruntime (measured here: 3280 queued events, 2.8 MB after a day
  // of tests, since nothing could be uploaded offline) and writes to it at exit (~240 writes and 200 lock calls per
  // `basin align`). basin is an offline tool: its CLI turns that off unless ORT_DISABLE_TELEMETRY is already set
  // (ORT_DISABLE_TELEMETRY=0 keeps onnxruntime's default). Read when onnxruntime creates its environment, after this.
  process.env['ORT_DISABLE_TELEMETRY'] ??= '1';
  // Commands that run models or the matrix engine: onnxruntime's one-time set-up starts on a worker thread now, beside
  // the module loading and model reading that come first (engine/runtime-warmup.ts).
  const { COMMANDS, RUNTIME_COMMANDS } = await import('./commands/index.js');
  const requested = argv.find((a) => !['-q', '--quiet', '--verbose'].includes(a));
  // The thread starts when a core is spare; BASIN_WARMUP_THREAD=1 always starts it, =0 never.
  const warmThreads = process.env['BASIN_WARMUP_THREAD'];
  let settle = async (): Promise<void> => undefined;
  if (requested !== undefined && RUNTIME_COMMANDS.has(requested) && warmThreads !== '0') {
    const warmup = await import('../engine/runtime-warmup.js');
    if (warmup.warmRuntimeInBackground({ always: warmThreads === '1' })) settle = () => warmup.settleWarmup();
  }
  const { makeProgram } = await import('./program.js');
  const { printError } = await import('./common.js');
  const { runtimeLoadError } = await import('./runtime-check.js');
  const { withProvenance } = await import('../io/provenance.js');
  const { takeTerminalOptions } = await import('./terminal-options.js');
  const { takeStdinInput } = await import('./stdin-input.js');
  const { takeStdoutOutput } = await import('./stdout-output.js');

  // Anything that escapes a command (a stray rejection, a throw in a callback) still prints one line, never a stack.
  process.on('uncaughtException', (e) => {
    printError(e);
    process.exit(1);
  });
  process.on('unhandledRejection', (e) => {
    printError(e);
    process.exit(1);
  });

  const program = makeProgram();
  // Load only the command being run; all of them for help and for anything unknown.
  const names = requested && requested in COMMANDS ? [requested] : Object.keys(COMMANDS);
  try {
    for (const name of names) (await COMMANDS[name]!()).register(program);
  } catch (e) {
    // A command's modules failed to load: onnxruntime-node's native runtime missing is the user-fixable case.
    printError(runtimeLoadError(e) ?? e);
    process.exit(1);
  }
  try {
    // Option parsers run inside commander's parser: a bad value's BasinError surfaces here.
    // every output of the command records basin's version and this command line (io/provenance.ts)
    const args = await takeStdinInput(takeTerminalOptions(argv)); // -q/--quiet, --verbose; who owns stdout; `-` reads stdin
    const stdout = takeStdoutOutput(args); // -o -: the model goes to stdout once written
    await withProvenance({ command: argv }, () => program.parseAsync(stdout?.argv ?? args, { from: 'user' }));
    await stdout?.finish(!process.exitCode);
  } catch (e) {
    printError(e);
  }
  await settle(); // never exit while the warm-up worker is inside onnxruntime's native set-up
}
