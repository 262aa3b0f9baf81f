/**
 * The `marlin` CLI entry bundled with esbuild into one file, so tests can spawn it as a real process (exit codes,
 * signals, hangs that only a separate process can be killed out of).
 */
import { execFile } from 'node:child_process';
import { mkdir } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { dirname, resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));

/** Bundles src/cli/main.ts to node_modules/.cache/marlin-cli-test/<name>.mjs (one file per test file: no races). */
export async function buildCliBundle(name: string): Promise<string> {
  const bundle = resolve(here, `../../node_modules/.cache/marlin-cli-test/${name}.mjs`);
  await mkdir(dirname(bundle), { recursive: true });
  // esbuild is tsup's dependency (not hoisted to node_modules/.bin on a fresh install): use its JS API.
  const req = createRequire(import.meta.url);
  const esbuild = createRequire(req.resolve('tsup')).resolve('esbuild');
  const { build } = (await import(pathToFileURL(esbuild).href)) as {
    build(options: Record<string, unknown>): Promise<unknown>;
  };
  await build({
    entryPoints: [resolve(here, '../../src/cli/main.ts')],
    bundle: true,
    platform: 'node',
    format: 'esm',
    packages: 'external',
    outfile: bundle,
    logLevel: 'silent',
  });
  return bundle;
}

export interface CliRun {
  /** Exit code, or null when killed by a signal. */
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
  /** True when the time limit killed it. */
  timedOut: boolean;
  ms: number;
}

/** Runs the bundled CLI with a time limit (SIGKILL after `timeoutMs`), never rejecting. */
export function runCliProcess(bundle: string, args: readonly string[], timeoutMs = 10_000): Promise<CliRun> {
  const t0 = performance.now();
  return new Promise((done) => {
    execFile(
      process.execPath,
      [bundle, ...args],
      { timeout: timeoutMs, killSignal: 'SIGKILL', encoding: 'utf8' },
      (err, stdout, stderr) => {
        const e = err as
          | (NodeJS.ErrnoException & { code?: number | string; signal?: NodeJS.Signals; killed?: boolean })
          | null;
        done({
          code: e === null ? 0 : typeof e.code === 'number' ? e.code : null,
          signal: e?.signal ?? null,
          stdout,
          stderr,
          timedOut: e?.killed === true && e.signal === 'SIGKILL',
          ms: performance.now() - t0,
        });
      },
    );
  });
}
