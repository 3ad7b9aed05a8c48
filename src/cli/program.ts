/** The commander program every `basin` invocation parses with (main.ts, and each step of `basin run`). */
import { Command } from 'commander';
import { terminalText } from '../report/terminal.js';
import { BASIN_VERSION } from '../io/provenance.js';
import { setCommandOptions } from './terminal-options.js';

export function makeProgram(): Command {
  return (
    new Command('basin')
      .description('weight-space surgery on trained networks: align, merge, interpolate ONNX and safetensors models')
      .version(BASIN_VERSION)
      .showHelpAfterError()
      // reports record every option the command ran with, defaults included (cli/common.ts writeReport)
      .hook('preAction', (_program, action) => setCommandOptions(action.opts()))
      // commander's own errors (unknown option, missing argument) in basin's form, with the user's text escaped
      .configureOutput({
        outputError: (str, write) => write(`basin: error [invalid_argument]: ${terminalText(str.replace(/^error:\s*/, '').trimEnd(), { singleLine: true })}\n`),
      })
  );
}
