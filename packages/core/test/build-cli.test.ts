// `marlin build <addon>`: what it says when tools are missing or too old (fake PATH with stub nvcc / cmake), where
// it writes, and which sources it uses. No compiler runs here; CI's packaging step runs the dry run on a tarball.
import { chmodSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { buildAddon, checkToolchain, findAddonSource } from '../src/cli/build.js';
import { runCli } from '../src/cli/cli.js';
import { ErrorCode, MarlinError } from '../src/index.js';

const repo = resolve(__dirname, '..', '..', '..');
// node-addon-api and node-api-headers are devDependencies of the addon packages.
const fromDense = [join(repo, 'packages', 'dense')];

let bin: string;
let root: string;

function stub(name: string, output: string): void {
  const p = join(bin, name);
  writeFileSync(p, `#!/bin/sh\necho '${output}'\n`);
  chmodSync(p, 0o755);
}

function env(extra: NodeJS.ProcessEnv = {}): NodeJS.ProcessEnv {
  return { PATH: bin, XDG_CACHE_HOME: join(root, 'cache'), ...extra };
}

function thrown(fn: () => unknown): MarlinError {
  try {
    fn();
  } catch (e) {
    if (e instanceof MarlinError) return e;
    throw e;
  }
  throw new Error('expected a MarlinError');
}

beforeEach(() => {
  root = mkdtempSync(join(tmpdir(), 'marlin-build-'));
  bin = join(root, 'bin');
  mkdirSync(bin);
});
afterEach(() => rmSync(root, { recursive: true, force: true }));

describe('marlin build: the toolchain check names exactly what is missing', () => {
  it('an empty PATH: nvcc, cmake, the C++ compiler and make / ninja are each named with how to get them', () => {
    const t = checkToolchain({ env: env(), resolveFrom: fromDense, cudaBinDirs: [] });
    const text = t.problems.join('\n');
    expect(t.problems).toHaveLength(4);
    expect(text).toMatch(/^nvcc: not found \(looked at \$CUDACXX and on PATH\)\. Install the CUDA Toolkit 13\.0/m);
    expect(text).toMatch(/^cmake: not found on PATH\. Install CMake 3\.25 or newer/m);
    expect(text).toMatch(/^C\+\+ compiler: no c\+\+ or g\+\+ on PATH/m);
    expect(text).toMatch(/^build tool: neither ninja nor make on PATH/m);
    expect(text).not.toMatch(/Node-API/);
  });

  it('nvcc in a toolkit folder that is not on PATH: says where it is and the export line', () => {
    const cuda = join(root, 'cuda-13.0', 'bin');
    mkdirSync(cuda, { recursive: true });
    writeFileSync(join(cuda, 'nvcc'), '');
    const t = checkToolchain({ env: env(), resolveFrom: fromDense, cudaBinDirs: [cuda] });
    expect(t.problems[0]).toBe(
      `nvcc: not on PATH, but ${join(cuda, 'nvcc')} exists: export PATH=${cuda}:$PATH (or CUDACXX=${join(cuda, 'nvcc')}).`,
    );
  });

  it('too old: nvcc 12.4 and cmake 3.22 are reported with found and required versions', () => {
    stub('nvcc', 'Cuda compilation tools, release 12.4, V12.4.131');
    stub('cmake', 'cmake version 3.22.1');
    stub('c++', 'g++ 12');
    stub('make', 'GNU Make 4.3');
    const t = checkToolchain({ env: env(), resolveFrom: fromDense, cudaBinDirs: [] });
    expect(t.problems).toEqual([
      `nvcc: ${join(bin, 'nvcc')} is CUDA 12.4; CUDA 13.0 or newer is needed. Put a newer toolkit first on PATH.`,
      `cmake: ${join(bin, 'cmake')} is 3.22.1; 3.25 or newer is needed (pip install cmake gives a current one).`,
    ]);
  });

  it('a complete toolchain has no problems; ninja is preferred over make', () => {
    stub('nvcc', 'Cuda compilation tools, release 13.0, V13.0.88');
    stub('cmake', 'cmake version 3.31.6');
    stub('g++', 'g++ 12');
    stub('make', 'GNU Make 4.3');
    stub('ninja', '1.11.1');
    const t = checkToolchain({ env: env(), resolveFrom: fromDense, cudaBinDirs: [] });
    expect(t.problems).toEqual([]);
    expect(t.nvcc?.version).toBe('13.0');
    expect(t.generator).toBe('Ninja');
    expect(t.cxx).toBe(join(bin, 'g++'));
  });

  it('Node-API headers not resolvable from the project: the npm install line to fix it', () => {
    const t = checkToolchain({ env: env(), resolveFrom: [root], cudaBinDirs: [] });
    expect(t.problems.join('\n')).toContain('Run: npm install --save-dev node-addon-api');
  });
});

describe('marlin build: sources and output folder', () => {
  it('in the repository the workspace is the source tree; the output goes to <cache>/<addon>/<version>/', () => {
    const src = findAddonSource('fp8', fromDense);
    expect(src.packageName).toBe('@marlin/fp8');
    expect(src.sourceRoot === repo || src.sourceRoot === join(repo, 'packages', 'fp8', 'dist', 'source')).toBe(true);
    stub('nvcc', 'Cuda compilation tools, release 13.0, V13.0.88');
    stub('cmake', 'cmake version 3.31.6');
    stub('c++', 'c++');
    stub('make', 'make');
    const lines: string[] = [];
    const r = buildAddon('fp8', {
      env: env(),
      resolveFrom: fromDense,
      dryRun: true,
      archs: '80',
      log: (s) => lines.push(s),
    });
    expect(r.built).toBe(false);
    expect(r.binary).toBe(join(root, 'cache', 'marlin', 'fp8', src.version, 'marlin_fp8.node'));
    expect(r.binary).not.toContain('node_modules');
    expect(r.commands[0]).toContain(`-DCMAKE_CUDA_COMPILER=${join(bin, 'nvcc')}`);
    expect(lines.join('\n')).toContain('targets  sm_80');
    // PTX targets take CMake's -virtual suffix (MarlinAddon.cmake reads them from MARLIN_CUDA_ARCHS).
    lines.length = 0;
    buildAddon('fp8', {
      env: env(),
      resolveFrom: fromDense,
      dryRun: true,
      archs: '90a;80-virtual',
      log: (s) => lines.push(s),
    });
    expect(lines.join('\n')).toContain('targets  sm_90a, compute_80 (PTX)');
  });

  it('missing tools fail the build with NO_BINARY listing each one, before anything is written', () => {
    const e = thrown(() => buildAddon('fp8', { env: env(), resolveFrom: fromDense, cudaBinDirs: [] }));
    expect(e.code).toBe(ErrorCode.NO_BINARY);
    expect(e.message).toContain('cannot build @marlin/fp8@');
    expect(e.message).toContain('  - nvcc: not found');
    expect(e.message).toContain('  - cmake: not found');
  });

  it('an unknown addon or a bad name is a coded error; the CLI exits 1 with the code, 2 on usage errors', async () => {
    expect(thrown(() => findAddonSource('nosuch', [root])).message).toContain('@marlin/nosuch is not installed');
    expect(thrown(() => findAddonSource('../x', [root])).code).toBe(ErrorCode.VALUE);
    const err: string[] = [];
    const io = { stdout: { write: () => true }, stderr: { write: (s: string) => err.push(s) } };
    expect(await runCli(['build', '../x'], io)).toBe(1);
    expect(err.join('')).toContain('MARLIN_E_VALUE');
    expect(await runCli(['build', 'fp8', '--archs', 'sm_80'], io)).toBe(2);
    expect(await runCli(['build', 'fp8', '--archs', '80-ptx'], io)).toBe(2);
    expect(await runCli(['build'], io)).toBe(2);
  });
});
