/**
 * `pnpm bench`: the protocol run on a GPU, or, on a machine without one, a clear message and the CPU reference on
 * the default problem. Exit codes: 0 done, 1 a problem failed (results still written) or the GPU was required,
 * 2 bad options.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseBenchArgs, USAGE } from './args.js';
import { noGpuMessage, runCpuReference } from './cpu-fallback.js';
import { commitInfo, resultBaseName } from './meta.js';
import { findRepoRoot, loadDenseModule, NO_GPU_CODES, probeGpu, toMarlinError } from './native.js';
import { type EagerArgs, runBench } from './run.js';
import { validateBenchResult } from './schema.js';
import { speedupSvg } from './svg.js';
import { report } from './table.js';

export interface CliIo {
  readonly out: (text: string) => void;
  readonly err: (text: string) => void;
  readonly env: NodeJS.ProcessEnv;
  readonly cwd: string;
  /** Loads the addon module; tests inject a fake or a failing loader. */
  readonly loadNative: () => unknown;
}

const defaultIo = (): CliIo => ({
  out: (t) => process.stdout.write(`${t}\n`),
  err: (t) => process.stderr.write(`${t}\n`),
  env: process.env,
  cwd: process.cwd(),
  loadNative: loadDenseModule,
});

/** The problem part of an error: its first line, without the " Fix: ..." advice MarlinError appends. */
function reasonOf(e: { message: string; fix?: string | undefined }): string {
  const first = e.message.split('\n')[0] ?? e.message;
  return e.fix && first.endsWith(` Fix: ${e.fix}`) ? first.slice(0, -` Fix: ${e.fix}`.length) : first;
}

export async function main(argv: readonly string[], io: CliIo = defaultIo()): Promise<number> {
  const repoRoot = findRepoRoot(io.cwd);
  let opts: ReturnType<typeof parseBenchArgs>;
  try {
    opts = parseBenchArgs(argv, io.env, repoRoot, io.cwd);
  } catch (e) {
    io.err(e instanceof Error ? e.message : String(e));
    io.err(USAGE);
    return 2;
  }
  if (opts.help) {
    io.out(USAGE);
    return 0;
  }

  let probed: ReturnType<typeof probeGpu>;
  try {
    probed = probeGpu(io.loadNative());
  } catch (e) {
    probed = { error: toMarlinError(e, 'GPU probe') };
  }
  if ('error' in probed) {
    const { error } = probed;
    if (!NO_GPU_CODES.includes(error.code) || io.env['MARLIN_REQUIRE_GPU'] === '1') {
      io.err(`GPU benchmark cannot run: ${error.code}: ${error.message}`);
      return 1;
    }
    io.err(noGpuMessage(error.code, reasonOf(error)));
    const r = runCpuReference();
    const p = r.problem;
    io.out(
      `CPU reference (@marlin/core referenceGemm), M=${p.M} K=${p.K} N=${p.N} g${p.groupSize} ${p.dtype} symmetric INT4: ` +
        `${r.ms.toFixed(1)} ms, checksum ${r.checksum} (sum of accumulators ${r.sum.toFixed(6)})`,
    );
    return 0;
  }

  const started = new Date();
  const result = await runBench(opts, {
    native: probed.native,
    commit: commitInfo(io.env, repoRoot ?? io.cwd),
    now: () => started,
    progress: io.err,
    eager: async (p: EagerArgs, calls: number) => (await import('./eager.js')).timeEagerCalls(p, calls),
  });
  const problems = validateBenchResult(result);
  if (problems.length > 0) {
    io.err(`internal error: the result does not match its schema:\n  ${problems.join('\n  ')}`);
    return 1;
  }

  mkdirSync(opts.outDir, { recursive: true });
  const base = resultBaseName({
    date: started,
    gpu: result.env.gpu,
    commit: result.env.commit,
    quick: opts.quick,
    dir: opts.outDir,
  });
  const jsonPath = join(opts.outDir, `${base}.json`);
  const text = `${JSON.stringify(result, null, 2)}\n`;
  writeFileSync(jsonPath, text);
  let svgPath: string | null = null;
  if (!opts.jsonOnly) {
    svgPath = join(opts.outDir, `${base}.svg`);
    writeFileSync(
      svgPath,
      speedupSvg({
        title: `Marlin W4A16 g128 vs cuBLAS fp16, ${result.env.gpu} (${result.env.commit.slice(0, 12)})`,
        blocks: result.blocks,
        mValues: opts.mValues,
      }),
    );
    io.out(report(result, { json: jsonPath, svg: svgPath }));
  } else {
    io.out(text.trimEnd());
    io.err(`wrote ${jsonPath}`);
  }
  return result.failures.length > 0 ? 1 : 0;
}
