import type { Command } from 'commander';
import { action, outJson, parseChoice } from '../common.js';
import { openCheckpoint } from '../../io/checkpoint.js';
import { mlpSpec } from '../../spec/mlp.js';
import { PermutationSpec } from '../../spec/spec.js';
import { shapesOf } from '../../align/align-checkpoints.js';

export function register(program: Command): void {
  program
    .command('spec')
    .description('print the permutation spec of a checkpoint, to edit and pass back with --spec')
    .argument('<checkpoint>', '.safetensors file or sharded index.json')
    .requiredOption('--arch <arch>', "architecture to derive the spec for ('mlp')", parseChoice('--arch', ['mlp']))
    .action(
      action(async (path: string, o: { arch: string }) => {
        const ck = await openCheckpoint(path);
        try {
          const shapes = shapesOf(ck);
          const json = mlpSpec(shapes, path);
          const spec = PermutationSpec.fromJson(json, shapes, '--arch mlp');
          outJson(spec.toJson());
        } finally {
          await ck.close();
        }
      }),
    );
}
