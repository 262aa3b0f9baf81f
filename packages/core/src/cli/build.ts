/**
 * `marlin build <addon>`: compiles an addon from the native sources its package ships (dist/source, written by
 * tools/pack/addon-sources.mjs at pack time) into the cache folder the loader tries last
 * (<cache>/<addon>/<version>/marlin_<addon>.node), never into node_modules (pnpm's store is shared and hard-linked).
 * Run on request only: npm 11 and pnpm 10 block install scripts, and a failed install-time build fails the install.
 */
import { spawnSync } from 'node:child_process';
import {
  accessSync,
  constants,
  cpSync,
  existsSync,
  mkdirSync,
  readdirSync,
  readFileSync,
  realpathSync,
  rmSync,
  symlinkSync,
} from 'node:fs';
import { delimiter, dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { type AddonBinarySpec, addonCacheDir } from '../addon/binary.js';
import { DeviceError, ErrorCode, ValueError } from '../errors/index.js';

/** The oldest tools that build the addons: CUDA 13.0 (the runtime the loader's driver floor is stated for), CMake 3.25. */
export const MIN_NVCC = '13.0';
export const MIN_CMAKE = '3.25';

/** What `marlin build` found of the toolchain. */
export interface Toolchain {
  readonly nvcc: { readonly path: string; readonly version: string } | null;
  readonly cmake: { readonly path: string; readonly version: string } | null;
  readonly cxx: string | null;
  /** 'Ninja' when ninja is on PATH, else 'Unix Makefiles' (needs make). */
  readonly generator: string | null;
  /** Folder of the node-addon-api package (header-only C++ wrapper). */
  readonly nodeAddonApi: string | null;
  /** Folder holding node_api.h (node-api-headers, else Node's own include/node). */
  readonly nodeApiInclude: string | null;
  /** Everything missing or too old, one line each: what, and how to get it. Empty: the build can run. */
  readonly problems: readonly string[];
}

export interface ToolchainOptions {
  readonly env?: NodeJS.ProcessEnv;
  /** Where node-addon-api and node-api-headers are looked up from, in order (the user's project, the addon). */
  readonly resolveFrom?: readonly string[];
  /** Toolkit bin folders to mention when nvcc is there but not on PATH (default /usr/local/cuda*\/bin). */
  readonly cudaBinDirs?: readonly string[];
}

function which(name: string, env: NodeJS.ProcessEnv): string | null {
  for (const dir of (env.PATH ?? '').split(delimiter)) {
    if (dir === '') continue;
    const p = join(dir, name);
    try {
      accessSync(p, constants.X_OK);
      return p;
    } catch {
      // not here
    }
  }
  return null;
}

function versionOf(path: string, pattern: RegExp, env: NodeJS.ProcessEnv): string | null {
  const r = spawnSync(path, ['--version'], { encoding: 'utf8', env, timeout: 30_000 });
  const m = pattern.exec(`${r.stdout ?? ''}${r.stderr ?? ''}`);
  return m?.[1] ?? null;
}

function atLeast(v: string, min: string): boolean {
  const a = v.split('.').map(Number);
  const b = min.split('.').map(Number);
  for (let i = 0; i < b.length; i++) {
    const d = (a[i] ?? 0) - (b[i] ?? 0);
    if (d !== 0) return d > 0;
  }
  return true;
}

function defaultCudaBinDirs(): string[] {
  try {
    return readdirSync('/usr/local')
      .filter((d) => d === 'cuda' || d.startsWith('cuda-'))
      .sort()
      .reverse()
      .map((d) => join('/usr/local', d, 'bin'));
  } catch {
    return [];
  }
}

/** Node's node_modules walk from each folder in turn (NODE_PATH ignored: it is not the user's project). */
function resolvePackageDir(name: string, from: readonly string[]): string | null {
  for (const start of from) {
    let dir = resolve(start);
    for (;;) {
      const candidate = join(dir, 'node_modules', name);
      if (existsSync(join(candidate, 'package.json'))) return realpathSync(candidate);
      const parent = dirname(dir);
      if (parent === dir) break;
      dir = parent;
    }
  }
  return null;
}

/** Finds nvcc, cmake, a C++ compiler, make or ninja and the Node-API headers; says exactly what is missing. */
export function checkToolchain(options: ToolchainOptions = {}): Toolchain {
  const env = options.env ?? process.env;
  const from = options.resolveFrom ?? [process.cwd()];
  const problems: string[] = [];

  let nvcc: Toolchain['nvcc'] = null;
  const nvccPath = env.CUDACXX ? resolve(env.CUDACXX) : which('nvcc', env);
  if (nvccPath === null || !existsSync(nvccPath)) {
    const elsewhere = (options.cudaBinDirs ?? defaultCudaBinDirs()).find((d) => existsSync(join(d, 'nvcc')));
    problems.push(
      elsewhere !== undefined
        ? `nvcc: not on PATH, but ${join(elsewhere, 'nvcc')} exists: export PATH=${elsewhere}:$PATH (or CUDACXX=${join(elsewhere, 'nvcc')}).`
        : `nvcc: not found (looked at $CUDACXX and on PATH). Install the CUDA Toolkit ${MIN_NVCC} or newer (only the compiler is needed, no GPU: https://developer.nvidia.com/cuda-downloads) and put its bin folder on PATH.`,
    );
  } else {
    const v = versionOf(nvccPath, /release (\d+\.\d+)/, env);
    if (v === null) problems.push(`nvcc: ${nvccPath} did not report a version (nvcc --version).`);
    else if (!atLeast(v, MIN_NVCC)) {
      problems.push(
        `nvcc: ${nvccPath} is CUDA ${v}; CUDA ${MIN_NVCC} or newer is needed. Put a newer toolkit first on PATH.`,
      );
    } else nvcc = { path: nvccPath, version: v };
  }

  let cmake: Toolchain['cmake'] = null;
  const cmakePath = which('cmake', env);
  if (cmakePath === null) {
    problems.push(
      `cmake: not found on PATH. Install CMake ${MIN_CMAKE} or newer (apt install cmake, pip install cmake, or https://cmake.org/download).`,
    );
  } else {
    const v = versionOf(cmakePath, /cmake version (\d+\.\d+(?:\.\d+)?)/, env);
    if (v === null) problems.push(`cmake: ${cmakePath} did not report a version (cmake --version).`);
    else if (!atLeast(v, MIN_CMAKE)) {
      problems.push(
        `cmake: ${cmakePath} is ${v}; ${MIN_CMAKE} or newer is needed (pip install cmake gives a current one).`,
      );
    } else cmake = { path: cmakePath, version: v };
  }

  const cxx = env.CXX
    ? (which(env.CXX, env) ?? (existsSync(env.CXX) ? env.CXX : null))
    : (which('c++', env) ?? which('g++', env));
  if (cxx === null) {
    problems.push(
      `C++ compiler: ${env.CXX ? `$CXX (${env.CXX}) not found` : 'no c++ or g++ on PATH'}. Install one nvcc supports (apt install g++).`,
    );
  }
  const generator = which('ninja', env) !== null ? 'Ninja' : which('make', env) !== null ? 'Unix Makefiles' : null;
  if (generator === null) problems.push('build tool: neither ninja nor make on PATH. Install one (apt install make).');

  const nodeAddonApi = resolvePackageDir('node-addon-api', from);
  const headersPkg = resolvePackageDir('node-api-headers', from);
  const nodeInclude = join(dirname(process.execPath), '..', 'include', 'node');
  const nodeApiInclude =
    headersPkg !== null && existsSync(join(headersPkg, 'include', 'node_api.h'))
      ? join(headersPkg, 'include')
      : existsSync(join(nodeInclude, 'node_api.h'))
        ? resolve(nodeInclude)
        : null;
  if (nodeAddonApi === null || nodeApiInclude === null) {
    const need = [nodeAddonApi === null ? 'node-addon-api' : null, nodeApiInclude === null ? 'node-api-headers' : null]
      .filter((x) => x !== null)
      .join(' ');
    problems.push(`Node-API headers: ${need} not found from ${from.join(' or ')}. Run: npm install --save-dev ${need}`);
  }
  return { nvcc, cmake, cxx, generator, nodeAddonApi, nodeApiInclude, problems };
}

/** An addon package as `marlin build` sees it. */
export interface AddonSource {
  readonly name: string;
  readonly packageName: string;
  readonly version: string;
  readonly packageRoot: string;
  /** Root of a tree laid out as the repository (native/, tools/, packages/<addon>/), or null when not shipped. */
  readonly sourceRoot: string | null;
  /** The addon's folder inside sourceRoot (e.g. packages/fp8). */
  readonly cmakeSource: string;
}

/** Finds `@marlin/<addon>` from the user's project (or from core) and the sources it ships. */
export function findAddonSource(addon: string, resolveFrom: readonly string[] = [process.cwd()]): AddonSource {
  const name = addon.replace(/^@marlin\//, '');
  if (!/^[a-z0-9][a-z0-9-]*$/.test(name)) {
    throw new ValueError(`"${addon}" is not an addon name.`, {
      fix: 'name one like dense or fp8: npx marlin build fp8',
    });
  }
  const packageName = `@marlin/${name}`;
  const self = dirname(fileURLToPath(import.meta.url));
  const packageRoot = resolvePackageDir(packageName, [...resolveFrom, self]) ?? workspacePackage(name, resolveFrom);
  if (packageRoot === null) {
    throw new ValueError(`${packageName} is not installed here (looked from ${resolveFrom.join(', ')}).`, {
      fix: `install it first (npm install ${packageName}), then run npx marlin build ${name} in that project.`,
    });
  }
  const pkg = JSON.parse(readFileSync(join(packageRoot, 'package.json'), 'utf8')) as { version: string };
  const shipped = join(packageRoot, 'dist', 'source');
  // A clone of the repository builds from the workspace itself (packages/<addon> sits two levels below the root).
  const repo = resolve(packageRoot, '..', '..');
  let sourceRoot: string | null = null;
  let cmakeSource = join('packages', name);
  if (existsSync(join(shipped, 'manifest.json'))) {
    sourceRoot = shipped;
    const m = JSON.parse(readFileSync(join(shipped, 'manifest.json'), 'utf8')) as { cmakeSource?: string };
    cmakeSource = m.cmakeSource ?? cmakeSource;
  } else if (
    existsSync(join(repo, 'native', 'cmake', 'MarlinAddon.cmake')) &&
    existsSync(join(packageRoot, 'CMakeLists.txt'))
  ) {
    sourceRoot = repo;
    cmakeSource = join('packages', name);
  }
  return { name, packageName, version: pkg.version, packageRoot, sourceRoot, cmakeSource };
}

/** packages/<name> of a clone of this repository that contains one of `from` (a workspace has no link to every addon). */
function workspacePackage(name: string, from: readonly string[]): string | null {
  for (const start of from) {
    let dir = resolve(start);
    for (;;) {
      const pkg = join(dir, 'packages', name);
      if (existsSync(join(dir, 'pnpm-workspace.yaml')) && existsSync(join(pkg, 'CMakeLists.txt'))) return pkg;
      const parent = dirname(dir);
      if (parent === dir) break;
      dir = parent;
    }
  }
  return null;
}

/** SASS targets of the GPUs present (nvidia-smi), e.g. '80;90a'; null when none is found (CMake's default applies). */
export function detectArchs(env: NodeJS.ProcessEnv = process.env): string | null {
  const smi = which('nvidia-smi', env);
  if (smi === null) return null;
  const r = spawnSync(smi, ['--query-gpu=compute_cap', '--format=csv,noheader'], {
    encoding: 'utf8',
    env,
    timeout: 30_000,
  });
  const caps = new Set(
    (r.stdout ?? '')
      .split('\n')
      .map((l) => l.trim().replace('.', ''))
      .filter((c) => /^\d+$/.test(c))
      // sm_90's wgmma kernels need the architecture-specific target.
      .map((c) => (c === '90' ? '90a' : c)),
  );
  return caps.size > 0 ? [...caps].join(';') : null;
}

export interface BuildOptions {
  readonly env?: NodeJS.ProcessEnv;
  /** Where the addon package and the Node-API headers are looked up from (default: the current folder). */
  readonly resolveFrom?: readonly string[];
  /** GPU targets, e.g. '80;90a' or '80-virtual' for PTX (default: the GPUs present, else the CMake release set). */
  readonly archs?: string;
  /** Parallel compile jobs (default: CMake's). */
  readonly jobs?: number;
  /** Print the plan (toolchain, folders, commands) and stop before compiling. */
  readonly dryRun?: boolean;
  readonly cudaBinDirs?: readonly string[];
  readonly log?: (s: string) => void;
}

export interface BuildResult {
  /** The built binary, or (dry run) where it would be written. */
  readonly binary: string;
  readonly commands: readonly string[][];
  readonly built: boolean;
}

/**
 * Builds `@marlin/<addon>` from its shipped sources into <cache>/<addon>/<version>/. Throws DeviceError NO_BINARY
 * naming every missing tool when it cannot build, and with the tail of the log when the build fails.
 */
export function buildAddon(addon: string, options: BuildOptions = {}): BuildResult {
  const env = options.env ?? process.env;
  const log = options.log ?? (() => {});
  const from = options.resolveFrom ?? [process.cwd()];
  const src = findAddonSource(addon, from);
  const binaryName = `marlin_${src.name}.node`;
  const spec: AddonBinarySpec = {
    packageName: src.packageName,
    binaryName,
    envVar: `MARLIN_${src.name.toUpperCase()}_BINARY`,
    packageRoot: src.packageRoot,
    version: src.version,
  };
  const cacheDir = addonCacheDir(spec, env);
  const binary = join(cacheDir, binaryName);
  const tools = checkToolchain({ env, resolveFrom: [...from, src.packageRoot], cudaBinDirs: options.cudaBinDirs });
  const problems = [...tools.problems];
  if (src.sourceRoot === null) {
    problems.unshift(
      `sources: ${src.packageRoot} has no dist/source (the native sources are added when the package is packed); reinstall ${src.packageName} from the registry.`,
    );
  }
  if (problems.length > 0) {
    throw new DeviceError(
      ErrorCode.NO_BINARY,
      `cannot build ${src.packageName}@${src.version} from source; missing:\n${problems.map((p) => `  - ${p}`).join('\n')}\n`,
      { fix: `install what is listed, then run npx marlin build ${src.name} again.`, details: { problems } },
    );
  }
  const stage = join(cacheDir, 'src');
  const buildDir = join(cacheDir, 'build');
  const archs = options.archs ?? detectArchs(env) ?? undefined;
  const configure = [
    tools.cmake!.path,
    '-S',
    join(stage, src.cmakeSource),
    '-B',
    buildDir,
    '-G',
    tools.generator!,
    '-DCMAKE_BUILD_TYPE=Release',
    `-DCMAKE_CUDA_COMPILER=${tools.nvcc!.path}`,
    `-DCMAKE_CXX_COMPILER=${tools.cxx!}`,
    `-DCMAKE_JS_INC=${tools.nodeApiInclude!}`,
    `-DCMAKE_LIBRARY_OUTPUT_DIRECTORY=${join(buildDir, 'Release')}`,
  ];
  const compile = [
    tools.cmake!.path,
    '--build',
    buildDir,
    ...(options.jobs ? ['--parallel', String(options.jobs)] : ['--parallel']),
  ];
  log(
    `${src.packageName}@${src.version}: nvcc ${tools.nvcc!.version} (${tools.nvcc!.path}), cmake ${tools.cmake!.version}`,
  );
  log(`  sources  ${src.sourceRoot}`);
  const named = (a: string) =>
    a.endsWith('-virtual') ? `compute_${a.slice(0, -8)} (PTX)` : `sm_${a.replace(/-real$/, '')}`;
  log(
    `  targets  ${
      archs !== undefined
        ? archs
            .split(/[;,\s]+/)
            .filter(Boolean)
            .map(named)
            .join(', ')
        : 'the release set (MarlinAddon.cmake MARLIN_RELEASE_CUDA_ARCHS)'
    }`,
  );
  log(`  output   ${binary}`);
  if (options.dryRun) {
    for (const c of [configure, compile]) log(`  $ ${c.join(' ')}`);
    return { binary, commands: [configure, compile], built: false };
  }

  // The CMakeLists include ../../native: copy the tree so the layout holds wherever the package was installed.
  rmSync(stage, { recursive: true, force: true });
  mkdirSync(stage, { recursive: true });
  cpSync(src.sourceRoot!, stage, {
    recursive: true,
    filter: (p) => !/[/\\](node_modules|build|dist|\.git)$/.test(p.slice(src.sourceRoot!.length)),
  });
  // MarlinAddon.cmake asks Node for node-addon-api from the addon's folder.
  mkdirSync(join(stage, 'node_modules'), { recursive: true });
  symlinkSync(tools.nodeAddonApi!, join(stage, 'node_modules', 'node-addon-api'), 'dir');
  const childEnv = { ...env, ...(archs !== undefined ? { MARLIN_CUDA_ARCHS: archs } : {}) };
  for (const c of [configure, compile]) {
    log(`  $ ${c.join(' ')}`);
    const r = spawnSync(c[0]!, c.slice(1), { env: childEnv, encoding: 'utf8', maxBuffer: 256 * 2 ** 20 });
    if (r.status !== 0) {
      const tail = `${r.stdout ?? ''}${r.stderr ?? ''}`.trim().split('\n').slice(-30).join('\n');
      throw new DeviceError(
        ErrorCode.NO_BINARY,
        `building ${src.packageName} from source failed (${c[1] === '--build' ? 'compile' : 'configure'}, exit ${r.status ?? r.signal}):\n${tail}\n`,
        {
          fix: `fix what the log says; the build folder is ${buildDir}. Report it with the output of npx marlin doctor.`,
        },
      );
    }
  }
  const out = join(buildDir, 'Release', binaryName);
  if (!existsSync(out)) {
    throw new DeviceError(ErrorCode.NO_BINARY, `the build finished but wrote no ${out}.`, {
      fix: `look in ${buildDir}; report it with the output of npx marlin doctor.`,
    });
  }
  cpSync(out, binary);
  log(
    `built ${binary}; ${src.packageName} loads it when no earlier candidate does (MARLIN_${src.name.toUpperCase()}_BINARY, build/Release, the platform package).`,
  );
  return { binary, commands: [configure, compile], built: true };
}
