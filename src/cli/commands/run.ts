import type { Command, Option } from 'commander';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { action, log, out } from '../common.js';
import { COMMANDS } from './index.js';
import { makeProgram } from '../program.js';
import { BasinError, q } from '../../errors.js';
import { withProvenance } from '../../io/provenance.js';
import { isStdinFile } from '../stdin-input.js';
import { parseRecipe, type RecipeStep, type RecipeValue } from '../../recipe/recipe.js';

export function register(program: Command): void {
  program
    .command('run')
    .description('run a recipe: a YAML file naming a basin command (or several steps), its files and its options; every output records the recipe')
    .argument('<recipe>', 'recipe file (.yaml / .yml / .json), or - for standard input (paths then relative to the working folder)')
    .option('--dry-run', 'check the recipe and print the command lines it runs, without running them')
    .action(
      action(async (path_: string, o: { dryRun?: boolean }) => {
        const fromStdin = isStdinFile(path_);
        const file = fromStdin ? '-' : path_; // as messages and provenance name it
        let text: string;
        try {
          text = await readFile(path_, 'utf8');
        } catch {
          throw new BasinError('file_not_found', `recipe ${q(file)} does not exist or cannot be read`, { file });
        }
        const recipe = parseRecipe(text, file);
        // every step is checked (command known, options known) before the first one runs
        const planned: { step: RecipeStep; program: Command; argv: string[] }[] = [];
        for (const [i, step] of recipe.steps.entries()) {
          const where = recipe.steps.length > 1 ? `steps[${i}]` : 'command';
          if (step.command === 'run' || !(step.command in COMMANDS)) {
            throw new BasinError('recipe_invalid', `recipe ${q(file)}: ${where} ${q(step.command)} is not a basin command (known: ${Object.keys(COMMANDS).filter((c) => c !== 'run').join(', ')})`, { file, found: step.command });
          }
          const p = makeProgram();
          (await COMMANDS[step.command]!()).register(p);
          const sub = p.commands.find((c) => c.name() === step.command)!;
          planned.push({ step, program: p, argv: [step.command, ...step.args, ...optionArgv(step, sub, file, where)] });
        }
        const dir = fromStdin ? process.cwd() : path.dirname(path.resolve(path_)); // stdin: paths relative to the working folder
        if (o.dryRun) {
          for (const p of planned) out(`(cd ${shellWord(dir)} && basin ${p.argv.map(shellWord).join(' ')})\n`);
          return;
        }
        const cwd = process.cwd();
        process.chdir(dir); // paths in a recipe are relative to its folder
        try {
          for (const [i, p] of planned.entries()) {
            if (planned.length > 1) log(`step ${i + 1}/${planned.length}: basin ${p.argv.join(' ')}`);
            await withProvenance({ recipe: recipe.document, recipeFile: fromStdin ? '-' : path.basename(file) }, () => p.program.parseAsync(['node', 'basin', ...p.argv]));
            if (process.exitCode) {
              if (i + 1 < planned.length) log(`step ${i + 1} failed: the ${planned.length - i - 1} later step(s) were not run`);
              return;
            }
          }
        } finally {
          process.chdir(cwd);
        }
      }),
    );
}

/**
 * A step's options as command-line arguments, each looked up among the command's options (by long name, kebab-case
 * or camelCase): a flag for `true`, nothing for `false`, one comma-separated value for a list, or the option
 * repeated for options that collect repeats (their default is a list).
 */
function optionArgv(step: RecipeStep, cmd: Command, file: string, where: string): string[] {
  const byName = new Map<string, Option>();
  for (const opt of cmd.options) {
    if (!opt.long) continue;
    byName.set(opt.long.slice(2), opt);
    byName.set(opt.attributeName(), opt);
  }
  const argv: string[] = [];
  for (const [name, value] of step.options) {
    const opt = byName.get(name);
    if (!opt) {
      const known = cmd.options.filter((x) => x.long && !x.negate).map((x) => x.long!.slice(2));
      throw new BasinError('recipe_invalid', `recipe ${q(file)}: ${where} ${q(step.command)} has no option ${q(name)} (its options: ${known.join(', ')})`, { file, found: name });
    }
    const takesValue = opt.required || opt.optional;
    if (!takesValue) {
      if (typeof value !== 'boolean') throw new BasinError('recipe_invalid', `recipe ${q(file)}: option ${q(name)} of ${q(step.command)} is a flag: write true or false`, { file, found: name });
      if (value) argv.push(opt.long!);
      continue;
    }
    if (typeof value === 'boolean') throw new BasinError('recipe_invalid', `recipe ${q(file)}: option ${q(name)} of ${q(step.command)} takes a value, not ${value}`, { file, found: name });
    const list = Array.isArray(value) ? (value as readonly (string | number)[]) : [value as Exclude<RecipeValue, readonly unknown[]>];
    if (Array.isArray(value) && Array.isArray(opt.defaultValue)) for (const v of list) argv.push(opt.long!, String(v));
    else argv.push(opt.long!, list.map(String).join(','));
  }
  return argv;
}

function shellWord(s: string): string {
  return /^[\w@%+=:,./-]+$/.test(s) ? s : `'${s.replace(/'/g, `'\\''`)}'`;
}
