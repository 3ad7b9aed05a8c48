/**
 * A generator of malformed and hostile ONNX inputs: each case builds its files in a fresh folder (and, for
 * escapes, in a sibling folder "outside" the model's) and says what basin must do with them: fail at load or at
 * session creation with a named error (`code`) whose message names the given things, or load and compute the
 * model's function exactly (checked against a reference computed here, not by basin).
 *
 * The model is a small Gemm MLP, x [n, 4] → Gemm(w1 [8, 4], b1) → Relu → Gemm(w2 [3, 8], b2) → y [n, 3], with
 * w1 stored as external data (`w1.bin`, 128 bytes) unless a case says otherwise.
 */
import { execFileSync } from 'node:child_process';
import { copyFileSync, linkSync, mkdirSync, symlinkSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import * as onnx from '../../src/onnx/proto.js';
import type { BasinErrorCode } from '../../src/errors.js';
import { GraphBuilder } from '../../src/onnx/build.js';
import { Tensor } from '../../src/tensor/tensor.js';

type IModelProto = onnx.ModelProto;

/** Shown inside names read from files: erase the line, return the cursor, print a fake success line. */
export const ESCAPE = '\x1b[2K\rwrote FAKE.onnx\x1b[8m';

export const FIELD = new URL('../../../../shared/field/', import.meta.url).pathname;

function values(n: number, seed: number): Float32Array {
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) out[i] = Math.round(Math.sin(seed * 100 + i * 1.7) * 64) / 64; // exact in float32
  return out;
}

export const W1 = new Tensor([8, 4], values(32, 1));
export const B1 = new Tensor([8], values(8, 2));
export const W2 = new Tensor([3, 8], values(24, 3));
export const B2 = new Tensor([3], values(3, 4));

/** The MLP's output, computed in float64 from the weights above (independent of basin and onnxruntime). */
export function reference(x: Float32Array, n: number): Float64Array {
  const y = new Float64Array(n * 3);
  for (let r = 0; r < n; r++) {
    const h = new Float64Array(8);
    for (let j = 0; j < 8; j++) {
      let s = B1.data[j]!;
      for (let k = 0; k < 4; k++) s += x[r * 4 + k]! * W1.data[j * 4 + k]!;
      h[j] = Math.max(0, s);
    }
    for (let j = 0; j < 3; j++) {
      let s = B2.data[j]!;
      for (let k = 0; k < 8; k++) s += h[k]! * W2.data[j * 8 + k]!;
      y[r * 3 + j] = s;
    }
  }
  return y;
}

/** Little-endian float32 bytes of w1, as its external file holds them. */
export function w1Bytes(): Uint8Array {
  return new Uint8Array(W1.data.slice().buffer);
}

export interface MlpOptions {
  /** w1's external data (default location `w1.bin`); `null` stores w1 in raw_data. */
  external?: { location: string; offset?: number; writeLength?: boolean } | null;
  w1Name?: string;
  gemmName?: string;
  opset?: number;
}

export function mlp({ external = { location: 'w1.bin' }, w1Name = 'w1', gemmName = 'gemm1', opset = 17 }: MlpOptions = {}): GraphBuilder {
  const g = new GraphBuilder(opset);
  g.input('x', ['n', 4]);
  if (external) g.externalInitializer(w1Name, W1, external);
  else g.initializer(w1Name, W1);
  g.initializer('b1', B1).initializer('w2', W2).initializer('b2', B2);
  g.node('Gemm', ['x', w1Name, 'b1'], ['h'], { transB: 1 }, { name: gemmName });
  g.node('Relu', ['h'], ['r'], {}, { name: 'relu' });
  g.node('Gemm', ['r', 'w2', 'b2'], ['y'], { transB: 1 }, { name: 'gemm2' });
  g.output('y', ['n', 3]);
  return g;
}

/** Write a model (builder, proto or bytes) as `dir/model.onnx`; returns its path. */
export function writeModel(dir: string, model: GraphBuilder | IModelProto | Uint8Array, name = 'model.onnx'): string {
  const file = path.join(dir, name);
  const bytes = model instanceof Uint8Array ? model : model instanceof GraphBuilder ? model.encode() : onnx.encodeModel(model);
  writeFileSync(file, bytes);
  return file;
}

/** The MLP with w1 external, its data written as `dir/<dataName>` unless `dataName` is null. */
function extModel(dir: string, location: string, dataName: string | null = location, opts: MlpOptions = {}): string {
  if (dataName !== null) writeFileSync(path.join(dir, dataName), w1Bytes());
  return writeModel(dir, mlp({ ...opts, external: { location } }));
}

/** The proto of the MLP with its w1 external-data entries replaced. */
function withExternalData(entries: { key: string; value: string }[]): IModelProto {
  const p = mlp().proto();
  p.graph!.initializer[0]!.externalData = entries.map((e) => onnx.create(onnx.StringStringEntryProtoSchema, e));
  return p;
}

/** A file of `n` bytes that must never reach an output (the "secret"). */
export function secret(dir: string, n = 512, name = 'secret.bin'): string {
  const f = path.join(dir, name);
  writeFileSync(f, new Uint8Array(n).fill(0x53));
  return f;
}

export type Stage = 'load' | 'session';

export interface Expectation {
  readonly code: BasinErrorCode;
  /** Texts the message must contain (the file, tensor, node or location at fault, as printed). */
  readonly names: readonly string[];
}

export interface OnnxCase {
  readonly name: string;
  /** Where it must fail: loading the file, or creating an onnxruntime session for it. */
  readonly stage: Stage;
  /** A named error, or 'ok': the model loads and computes the MLP's function exactly. */
  readonly expect: Expectation | 'ok';
  /** Create the case's files: `dir` is the model's (empty) folder, `outside` a sibling folder. Returns the model. */
  make(dir: string, outside: string): string;
}

const fail = (code: BasinErrorCode, ...names: string[]): Expectation => ({ code, names });

function mkfifo(p: string): void {
  execFileSync('mkfifo', [p]);
}

/** Every case; names are unique. */
export function onnxCases(): OnnxCase[] {
  const cases: OnnxCase[] = [
    // --- external data that leaves the model's folder ---------------------------------------------------------
    {
      name: 'ext: location is a symlink to a file outside the folder',
      stage: 'load',
      expect: fail('unsafe_path', 'w1', 'w1.bin'),
      make: (dir, outside) => {
        symlinkSync(secret(outside), path.join(dir, 'w1.bin'));
        return extModel(dir, 'w1.bin', null);
      },
    },
    {
      name: 'ext: the field file rel-onnx-ext-symlink.onnx with its .bin a symlink outside',
      stage: 'load',
      expect: fail('unsafe_path', 'layers.1.weight', 'rel-onnx-ext-symlink.bin'),
      make: (dir, outside) => {
        const m = path.join(dir, 'rel-onnx-ext-symlink.onnx');
        copyFileSync(path.join(FIELD, 'rel-onnx-ext-symlink.onnx'), m);
        symlinkSync(secret(outside, 4096), path.join(dir, 'rel-onnx-ext-symlink.bin'));
        return m;
      },
    },
    {
      name: 'ext: relative symlink ../outside/secret.bin',
      stage: 'load',
      expect: fail('unsafe_path', 'w1.bin'),
      make: (dir, outside) => {
        secret(outside);
        symlinkSync(path.join('..', path.basename(outside), 'secret.bin'), path.join(dir, 'w1.bin'));
        return extModel(dir, 'w1.bin', null);
      },
    },
    {
      name: 'ext: a symlinked folder on the path leads outside',
      stage: 'load',
      expect: fail('unsafe_path', 'sub/w1.bin'),
      make: (dir, outside) => {
        writeFileSync(path.join(outside, 'w1.bin'), w1Bytes());
        symlinkSync(outside, path.join(dir, 'sub'));
        return extModel(dir, 'sub/w1.bin', null);
      },
    },
    {
      name: 'ext: a chain of symlinks inside that ends outside',
      stage: 'load',
      expect: fail('unsafe_path', 'a.bin'),
      make: (dir, outside) => {
        symlinkSync(secret(outside), path.join(dir, 'b.bin'));
        symlinkSync('b.bin', path.join(dir, 'a.bin'));
        return extModel(dir, 'a.bin', null);
      },
    },
    {
      name: 'ext: symlink to a device (/dev/zero)',
      stage: 'load',
      expect: fail('unsafe_path', 'w1.bin'),
      make: (dir) => {
        symlinkSync('/dev/zero', path.join(dir, 'w1.bin'));
        return extModel(dir, 'w1.bin', null);
      },
    },
    {
      name: 'ext: symlink to /etc/passwd',
      stage: 'load',
      expect: fail('unsafe_path', 'w1.bin'),
      make: (dir) => {
        symlinkSync('/etc/passwd', path.join(dir, 'w1.bin'));
        return extModel(dir, 'w1.bin', null);
      },
    },
    {
      name: 'ext: hard link to a file outside',
      stage: 'load',
      expect: fail('unsafe_path', 'w1.bin', 'hard link'),
      make: (dir, outside) => {
        const f = path.join(outside, 'w1-real.bin');
        writeFileSync(f, w1Bytes());
        linkSync(f, path.join(dir, 'w1.bin'));
        return extModel(dir, 'w1.bin', null);
      },
    },
    {
      name: 'ext: two hard links inside the folder',
      stage: 'load',
      expect: fail('unsafe_path', 'w1.bin', 'hard link'),
      make: (dir) => {
        writeFileSync(path.join(dir, 'w1.bin'), w1Bytes());
        linkSync(path.join(dir, 'w1.bin'), path.join(dir, 'copy.bin'));
        return extModel(dir, 'w1.bin', null);
      },
    },
    {
      name: 'ext: location is a FIFO (must not block)',
      stage: 'load',
      expect: fail('unsafe_path', 'w1.bin', 'FIFO'),
      make: (dir) => {
        mkfifo(path.join(dir, 'w1.bin'));
        return extModel(dir, 'w1.bin', null);
      },
    },
    {
      name: 'ext: symlink to a FIFO inside the folder',
      stage: 'load',
      expect: fail('unsafe_path', 'w1.bin', 'FIFO'),
      make: (dir) => {
        mkfifo(path.join(dir, 'pipe'));
        symlinkSync('pipe', path.join(dir, 'w1.bin'));
        return extModel(dir, 'w1.bin', null);
      },
    },
    {
      name: "ext: location '.'",
      stage: 'load',
      expect: fail('onnx_external_data', 'w1', "'.'"),
      make: (dir) => extModel(dir, '.', null),
    },
    {
      name: "ext: location './'",
      stage: 'load',
      expect: fail('onnx_external_data', 'w1', "'./'"),
      make: (dir) => extModel(dir, './', null),
    },
    {
      name: 'ext: location is a folder',
      stage: 'load',
      expect: fail('onnx_external_data', 'sub', 'folder'),
      make: (dir) => {
        mkdirSync(path.join(dir, 'sub'));
        return extModel(dir, 'sub', null);
      },
    },
    {
      name: 'ext: location is a symlink to a folder inside',
      stage: 'load',
      expect: fail('onnx_external_data', 'lnk', 'folder'),
      make: (dir) => {
        mkdirSync(path.join(dir, 'sub'));
        symlinkSync('sub', path.join(dir, 'lnk'));
        return extModel(dir, 'lnk', null);
      },
    },
    {
      name: "ext: location with '..'",
      stage: 'load',
      expect: fail('unsafe_path', '../outside/secret.bin'),
      make: (dir, outside) => {
        secret(outside); // the test puts `outside` beside the model's folder, named 'outside'
        return extModel(dir, '../outside/secret.bin', null);
      },
    },
    {
      name: "ext: '..' hidden in the middle",
      stage: 'load',
      expect: fail('unsafe_path', 'sub/../../x.bin'),
      make: (dir) => {
        mkdirSync(path.join(dir, 'sub'));
        return extModel(dir, 'sub/../../x.bin', null);
      },
    },
    {
      name: "ext: '..' with backslashes",
      stage: 'load',
      expect: fail('unsafe_path', '..\\\\x.bin'),
      make: (dir) => extModel(dir, '..\\x.bin', null),
    },
    {
      name: 'ext: absolute location',
      stage: 'load',
      expect: fail('unsafe_path', 'absolute'),
      make: (dir, outside) => extModel(dir, secret(outside), null),
    },
    {
      name: 'ext: NUL byte in the location',
      stage: 'load',
      expect: fail('unsafe_path', 'w1.bin\\x00'),
      make: (dir) => extModel(dir, 'w1.bin\0.txt', 'w1.bin'),
    },
    {
      name: 'ext: symlink loop',
      stage: 'load',
      expect: fail('onnx_external_data', 'w1.bin', 'ELOOP'),
      make: (dir) => {
        symlinkSync('w1.bin', path.join(dir, 'w1.bin'));
        return extModel(dir, 'w1.bin', null);
      },
    },
    {
      name: 'ext: dangling symlink',
      stage: 'load',
      expect: fail('onnx_external_data', 'w1.bin', 'does not exist'),
      make: (dir) => {
        symlinkSync('nothing.bin', path.join(dir, 'w1.bin'));
        return extModel(dir, 'w1.bin', null);
      },
    },
    {
      name: 'ext: missing data file',
      stage: 'load',
      expect: fail('onnx_external_data', 'w1', 'w1.bin', 'does not exist'),
      make: (dir) => extModel(dir, 'w1.bin', null),
    },
    {
      name: 'ext: data file shorter than the tensor',
      stage: 'load',
      expect: fail('onnx_external_data', 'w1', '128'),
      make: (dir) => {
        writeFileSync(path.join(dir, 'w1.bin'), new Uint8Array(100));
        return extModel(dir, 'w1.bin', null);
      },
    },
    {
      name: 'ext: offset past the end of the file',
      stage: 'load',
      expect: fail('onnx_external_data', 'w1', '4096'),
      make: (dir) => {
        writeFileSync(path.join(dir, 'w1.bin'), w1Bytes());
        return writeModel(dir, mlp({ external: { location: 'w1.bin', offset: 4096 } }));
      },
    },
    {
      name: 'ext: negative offset',
      stage: 'load',
      expect: fail('onnx_external_data', 'w1', 'offset'),
      make: (dir) => {
        writeFileSync(path.join(dir, 'w1.bin'), w1Bytes());
        return writeModel(dir, withExternalData([{ key: 'location', value: 'w1.bin' }, { key: 'offset', value: '-8' }]));
      },
    },
    {
      name: 'ext: offset that is not a number',
      stage: 'load',
      expect: fail('onnx_external_data', 'w1', 'offset'),
      make: (dir) => {
        writeFileSync(path.join(dir, 'w1.bin'), w1Bytes());
        return writeModel(dir, withExternalData([{ key: 'location', value: 'w1.bin' }, { key: 'offset', value: '0x10' }]));
      },
    },
    {
      name: "ext: length that does not match the tensor's size",
      stage: 'load',
      expect: fail('onnx_external_data', 'w1', 'length 64'),
      make: (dir) => {
        writeFileSync(path.join(dir, 'w1.bin'), w1Bytes());
        return writeModel(dir, withExternalData([{ key: 'location', value: 'w1.bin' }, { key: 'length', value: '64' }]));
      },
    },
    {
      name: 'ext: no location',
      stage: 'load',
      expect: fail('onnx_external_data', 'w1', 'no location'),
      make: (dir) => writeModel(dir, withExternalData([{ key: 'length', value: '128' }])),
    },
    {
      name: 'ext: terminal escapes in the location',
      stage: 'load',
      expect: fail('onnx_external_data', 'w1', 'wrote FAKE.onnx', '\\x1b[2K\\x0d'),
      make: (dir) => extModel(dir, `w1${ESCAPE}.bin`, null),
    },
    {
      name: 'ext: terminal escapes in the tensor name of an escaping location',
      stage: 'load',
      expect: fail('unsafe_path', 'wrote FAKE.onnx', '\\x1b[2K\\x0d'),
      make: (dir) => writeModel(dir, mlp({ w1Name: `w1${ESCAPE}`, external: { location: '../x.bin' } })),
    },
    // --- external data that is fine ---------------------------------------------------------------------------
    {
      name: 'ok: symlink that stays inside the folder',
      stage: 'load',
      expect: 'ok',
      make: (dir) => {
        mkdirSync(path.join(dir, 'blobs'));
        writeFileSync(path.join(dir, 'blobs', 'real.bin'), w1Bytes());
        symlinkSync('blobs/real.bin', path.join(dir, 'w1.bin'));
        return extModel(dir, 'w1.bin', null);
      },
    },
    {
      name: 'ok: symlinked folder that stays inside',
      stage: 'load',
      expect: 'ok',
      make: (dir) => {
        mkdirSync(path.join(dir, 'real'));
        writeFileSync(path.join(dir, 'real', 'w1.bin'), w1Bytes());
        symlinkSync('real', path.join(dir, 'sub'));
        return extModel(dir, 'sub/w1.bin', null);
      },
    },
    {
      name: 'ok: Hugging Face cache layout (snapshot symlink into blobs/)',
      stage: 'load',
      expect: 'ok',
      make: (dir) => {
        const entry = path.join(dir, 'models--org--tiny');
        const snap = path.join(entry, 'snapshots', 'abc123');
        mkdirSync(snap, { recursive: true });
        mkdirSync(path.join(entry, 'blobs'));
        writeFileSync(path.join(entry, 'blobs', 'sha-w1'), w1Bytes());
        writeFileSync(path.join(entry, 'blobs', 'sha-model'), mlp().encode());
        symlinkSync('../../blobs/sha-w1', path.join(snap, 'w1.bin'));
        symlinkSync('../../blobs/sha-model', path.join(snap, 'model.onnx'));
        return path.join(snap, 'model.onnx');
      },
    },
    {
      name: 'ok: Hugging Face cache layout, model in a snapshot subfolder (onnx/model.onnx, transformers.js)',
      stage: 'load',
      expect: 'ok',
      make: (dir) => {
        const entry = path.join(dir, 'models--onnx-community--tiny');
        const snap = path.join(entry, 'snapshots', 'abc123', 'onnx');
        mkdirSync(snap, { recursive: true });
        mkdirSync(path.join(entry, 'blobs'));
        writeFileSync(path.join(entry, 'blobs', 'sha-w1'), w1Bytes());
        writeFileSync(path.join(entry, 'blobs', 'sha-model'), mlp().encode());
        symlinkSync('../../../blobs/sha-w1', path.join(snap, 'w1.bin'));
        symlinkSync('../../../blobs/sha-model', path.join(snap, 'model.onnx'));
        return path.join(snap, 'model.onnx');
      },
    },
    {
      name: 'hf cache: a snapshot link that leaves the cache entry',
      stage: 'load',
      expect: fail('unsafe_path', 'w1.bin'),
      make: (dir) => {
        const snap = path.join(dir, 'models--org--tiny', 'snapshots', 'abc123');
        const other = path.join(dir, 'models--org--other', 'blobs');
        mkdirSync(snap, { recursive: true });
        mkdirSync(other, { recursive: true });
        writeFileSync(path.join(other, 'sha-w1'), w1Bytes());
        symlinkSync('../../../models--org--other/blobs/sha-w1', path.join(snap, 'w1.bin'));
        return writeModel(snap, mlp());
      },
    },
    {
      name: "hf cache: a look-alike 'snapshots' folder is not a cache entry's",
      stage: 'load',
      expect: fail('unsafe_path', 'w1.bin'),
      make: (dir) => {
        const snap = path.join(dir, 'models', 'snapshots', 'abc');
        mkdirSync(snap, { recursive: true });
        writeFileSync(path.join(dir, 'models', 'w1.bin'), w1Bytes());
        symlinkSync('../../w1.bin', path.join(snap, 'w1.bin'));
        return writeModel(snap, mlp());
      },
    },
    // --- protobuf and structure -------------------------------------------------------------------------------
    {
      name: 'proto: truncated file',
      stage: 'load',
      expect: fail('onnx_invalid', 'model.onnx'),
      make: (dir) => {
        const b = mlp({ external: null }).encode();
        return writeModel(dir, b.subarray(0, Math.floor(b.length * 0.6)));
      },
    },
    {
      name: 'proto: random bytes',
      stage: 'load',
      expect: fail('onnx_invalid', 'model.onnx'),
      make: (dir) => writeModel(dir, Uint8Array.from({ length: 300 }, (_, i) => (i * 73 + 11) & 0xff)),
    },
    {
      name: 'proto: empty file',
      stage: 'load',
      expect: fail('onnx_invalid', 'model.onnx'),
      make: (dir) => writeModel(dir, new Uint8Array(0)),
    },
    {
      name: 'proto: raw_data of the wrong length',
      stage: 'load',
      expect: fail('onnx_invalid', 'b1', '28 bytes'),
      make: (dir) => {
        const p = mlp({ external: null }).proto();
        const b1 = p.graph!.initializer!.find((t) => t.name === 'b1')!;
        b1.rawData = (b1.rawData as Uint8Array).subarray(0, 28);
        return writeModel(dir, p);
      },
    },
    {
      name: 'proto: the same initializer name twice',
      stage: 'load',
      expect: fail('onnx_invalid', 'w2', 'twice'),
      make: (dir) => {
        const p = mlp({ external: null }).proto();
        const w2 = p.graph!.initializer!.find((t) => t.name === 'w2')!;
        p.graph!.initializer!.push({ ...w2 });
        return writeModel(dir, p);
      },
    },
    {
      name: 'proto: terminal escapes in a bad initializer name',
      stage: 'load',
      expect: fail('onnx_invalid', 'wrote FAKE.onnx', '\\x1b[2K\\x0d'),
      make: (dir) => {
        const p = mlp({ external: null, w1Name: `w1${ESCAPE}` }).proto();
        p.graph!.initializer![0]!.rawData = new Uint8Array(3);
        return writeModel(dir, p);
      },
    },
    {
      name: 'proto: negative dimension',
      stage: 'load',
      expect: fail('onnx_invalid', 'b2', '-3'),
      make: (dir) => {
        const p = mlp({ external: null }).proto();
        p.graph!.initializer.find((t) => t.name === 'b2')!.dims = [-3n];
        return writeModel(dir, p);
      },
    },
    {
      name: 'proto: no opset import',
      stage: 'load',
      expect: fail('onnx_invalid', 'opset'),
      make: (dir) => {
        const p = mlp({ external: null }).proto();
        p.opsetImport = [];
        return writeModel(dir, p);
      },
    },
    {
      name: 'proto: opset 99',
      stage: 'load',
      expect: fail('onnx_unsupported_opset', '99'),
      make: (dir) => {
        const p = mlp({ external: null }).proto();
        p.opsetImport = [onnx.create(onnx.OperatorSetIdProtoSchema, { domain: '', version: 99n })];
        return writeModel(dir, p);
      },
    },
    {
      name: 'proto: unknown operator domain with terminal escapes',
      stage: 'load',
      expect: fail('onnx_unsupported_opset', 'wrote FAKE.onnx'),
      make: (dir) => {
        const p = mlp({ external: null }).proto();
        p.opsetImport.push(onnx.create(onnx.OperatorSetIdProtoSchema, { domain: `evil${ESCAPE}`, version: 1n }));
        p.graph!.node.push(onnx.node({ opType: 'Evil', domain: `evil${ESCAPE}`, input: [], output: ['evil_out'] })); // only a used domain is refused
        return writeModel(dir, p);
      },
    },
    {
      name: 'proto: a graph without nodes',
      stage: 'load',
      expect: fail('onnx_invalid', 'no nodes'),
      make: (dir) => {
        const p = mlp({ external: null }).proto();
        p.graph!.node = [];
        return writeModel(dir, p);
      },
    },
    // --- what onnxruntime refuses: named in basin's terms -----------------------------------------------------
    {
      name: 'ort: a cycle in the graph',
      stage: 'session',
      expect: fail('onnx_runtime', 'model.onnx', "at node 'gemm1'", 'acyclic'),
      make: (dir) => {
        const p = mlp({ external: null }).proto();
        p.graph!.node![0]!.input = ['r', 'w1', 'b1']; // gemm1 reads relu's output, relu reads gemm1's
        p.graph!.node[0]!.attribute = [onnx.attribute({ name: 'transB', type: onnx.AttributeProto_AttributeType.INT, i: 1n })];
        p.graph!.input = [];
        return writeModel(dir, p);
      },
    },
    {
      name: 'ort: unsupported IR version',
      stage: 'session',
      expect: fail('onnx_runtime', 'model.onnx', 'IR version'),
      make: (dir) => {
        const p = mlp({ external: null }).proto();
        p.irVersion = 99n;
        return writeModel(dir, p);
      },
    },
    {
      name: 'ort: a node with the wrong number of inputs, terminal escapes in its name',
      stage: 'session',
      expect: fail('onnx_runtime', 'model.onnx', 'wrote FAKE.onnx', '\\x1b[2K\\x0d'),
      make: (dir) => {
        const p = mlp({ external: null, gemmName: `gemm1${ESCAPE}` }).proto();
        p.graph!.node![0]!.input = ['x'];
        return writeModel(dir, p);
      },
    },
    {
      name: 'ort: an operator that does not exist',
      stage: 'session',
      expect: fail('onnx_runtime', 'model.onnx', 'NoSuchOp'),
      make: (dir) => {
        const p = mlp({ external: null }).proto();
        p.graph!.node![1]!.opType = 'NoSuchOp';
        return writeModel(dir, p);
      },
    },
    {
      name: 'ort: an input of the wrong type',
      stage: 'session',
      expect: fail('onnx_runtime', 'model.onnx', 'gemm2'),
      make: (dir) => {
        const g = mlp({ external: null });
        const p = g.proto();
        const w2 = p.graph!.initializer!.find((t) => t.name === 'w2')!;
        w2.dataType = onnx.TensorProto_DataType.INT32; // same byte count, wrong type for Gemm with float input
        return writeModel(dir, p);
      },
    },
  ];
  const names = new Set(cases.map((c) => c.name));
  if (names.size !== cases.length) throw new Error('hostile ONNX cases: duplicate names');
  return cases;
}
