/**
 * `pnpm bench`: the protocol run on a GPU, or, on a machine without one, a clear message and the CPU reference on
 * the default problem. Exit codes: 0 done, 1 a problem failed (results still written), no addon could be timed, or
 * the GPU was required; 2 bad options.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { ADDONS, type AddonLocation, defaultLocateIo, locateAddon, MOE_ADDON } from './addons.js';
import { isProtocolRun, parseBenchArgs, USAGE } from './args.js';
import { noGpuMessage, runCpuReference } from './cpu-fallback.js';
import { type CusparseLtSearch, defaultCusparseLtIo, findCusparseLt } from './cusparselt.js';
import { commitInfo, resultBaseName, shortCommit } from './meta.js';
import { type MoeCliIo, runMoeCli } from './moe-cli.js';
import { benchScriptDirs, findRepoRoot, loadBenchModule, NO_GPU_CODES, probeGpu, toMarlinError } from './native.js';
import { type AddonId, RESULT_FILE, SERIES, type Variant } from './protocol.js';
import { type AddonState, type EagerArgs, type RunDeps, runBench } from './run.js';
import { validateBenchResult } from './schema.js';
import { speedupSvg } from './svg.js';
import { report } from './table.js';

export interface CliIo {
  readonly out: (text: string) => void;
  readonly err: (text: string) => void;
  readonly env: NodeJS.ProcessEnv;
  readonly cwd: string;
  /** Loads marlin_bench.node; tests inject a fake or a failing loader. */
  readonly loadNative: () => unknown;
  /** Finds an addon's binary (addons.ts); tests inject fixed locations. */
  readonly locateAddon: (id: AddonId) => Promise<AddonLocation>;
  /** The launch choice (default @marlin/core dispatch); tests pass a stand-in. */
  readonly dispatch?: RunDeps['dispatch'];
  /** Finds marlin_moe.node for --moe (default: as the other addons); tests inject a location. */
  readonly locateMoe?: MoeCliIo['locateMoe'];
  /** The MoE launch choice (default @marlin/core dispatchMoe); tests pass a stand-in. */
  readonly dispatchMoe?: MoeCliIo['dispatchMoe'];
  /** Where cuSPARSELt may be (default: site-packages and $MARLIN_CUSPARSELT_LIBRARY); tests inject a result. */
  readonly findCusparseLt?: () => CusparseLtSearch;
}

const defaultIo = (): CliIo => {
  const env = process.env;
  const cwd = process.cwd();
  const locate = defaultLocateIo(
    env,
    benchScriptDirs(),
    findRepoRoot(cwd) ?? findRepoRoot(benchScriptDirs()[0] ?? cwd),
  );
  return {
    out: (t) => process.stdout.write(`${t}\n`),
    err: (t) => process.stderr.write(`${t}\n`),
    env,
    cwd,
    loadNative: loadBenchModule,
    locateAddon: (id) => locateAddon(ADDONS[id], locate),
    locateMoe: () => locateAddon(MOE_ADDON, locate),
  };
};

/** The problem part of an error: its first line, without the " Fix: ..." advice MarlinError appends. */
function reasonOf(e: { message: string; fix?: string | undefined }): string {
  const first = e.message.split('\n')[0] ?? e.message;
  return e.fix && first.endsWith(` Fix: ${e.fix}`) ? first.slice(0, -` Fix: ${e.fix}`.length) : first;
}

function addonsOf(variants: readonly Variant[]): AddonId[] {
  return [...new Set(SERIES.filter((s) => variants.includes(s.variant)).map((s) => s.addon))];
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
  const native = probed.native;

  if (opts.moe) {
    return runMoeCli(
      opts,
      {
        out: io.out,
        err: io.err,
        env: io.env,
        cwd: io.cwd,
        locateMoe:
          io.locateMoe ??
          (() => locateAddon(MOE_ADDON, defaultLocateIo(io.env, benchScriptDirs(), repoRoot ?? findRepoRoot(io.cwd)))),
        ...(io.dispatchMoe ? { dispatchMoe: io.dispatchMoe } : {}),
      },
      native,
      repoRoot,
    );
  }

  // The addons under test: found where their loaders find them, opened by the harness (dlopen).
  const addons: Partial<Record<AddonId, AddonState>> = {};
  for (const id of addonsOf(opts.variants)) {
    const at = await io.locateAddon(id);
    if (at.path === null) {
      addons[id] = { unavailable: at.reason };
      continue;
    }
    try {
      addons[id] = { loaded: native.benchLoadAddon({ prefix: ADDONS[id].prefix, path: at.path }) };
      io.err(`${ADDONS[id].packageName}: ${at.path} (${at.source})`);
    } catch (e) {
      addons[id] = { unavailable: `${at.path}: ${toMarlinError(e, 'benchLoadAddon').message}` };
    }
  }
  if (!Object.values(addons).some((a) => a !== undefined && 'loaded' in a)) {
    io.err('GPU benchmark cannot run: no addon binary to time.');
    for (const [id, a] of Object.entries(addons)) {
      if (a && 'unavailable' in a) io.err(`  ${ADDONS[id as AddonId].file}: ${a.unavailable}`);
    }
    io.err('Build one with `pnpm --filter @marlin/dense build:native` (or @marlin/fp8), or set MARLIN_DENSE_BINARY.');
    return 1;
  }

  const started = new Date();
  const run = await runBench(opts, {
    native,
    addons,
    commit: commitInfo(io.env, repoRoot ?? io.cwd),
    now: () => started,
    progress: io.err,
    eager: async (p: EagerArgs, calls: number) => (await import('./eager.js')).timeEagerCalls(p, calls),
    ...(io.dispatch ? { dispatch: io.dispatch } : {}),
    findCusparseLt: io.findCusparseLt ?? (() => findCusparseLt(defaultCusparseLtIo(io.env))),
  });
  for (const r of run.results) {
    const problems = validateBenchResult(r);
    if (problems.length > 0) {
      io.err(`internal error: the ${r.variant} result does not match its schema:\n  ${problems.join('\n  ')}`);
      return 1;
    }
  }

  mkdirSync(opts.outDir, { recursive: true });
  const kind = isProtocolRun(opts) ? 'protocol' : opts.quick ? 'quick' : 'partial';
  let failed = false;
  if (opts.jsonOnly) {
    // One result: the object; several variants: an array of them.
    const docs = run.results.length === 1 ? run.results[0] : run.results;
    io.out(JSON.stringify(docs, null, 2));
  }
  for (const result of run.results) {
    const base = resultBaseName({ file: RESULT_FILE[result.variant], gpu: result.env.gpu, kind });
    const jsonPath = join(opts.outDir, `${base}.json`);
    const text = `${JSON.stringify(result, null, 2)}\n`;
    // Replaces the previous result of this variant and GPU: one current file each, history in git.
    writeFileSync(jsonPath, text);
    if (!opts.jsonOnly) {
      const svgPath = join(opts.outDir, `${base}.svg`);
      const labels = result.series.map((id) => SERIES.find((s) => s.id === id)!.label).join(' + ');
      writeFileSync(
        svgPath,
        speedupSvg({
          title: `Marlin ${labels} vs cuBLAS fp16, ${result.env.gpu} (${shortCommit(result.env.commit)})`,
          blocks: result.blocks,
          mValues: opts.mValues,
          variant: result.variant,
        }),
      );
      io.out(report(result, { json: jsonPath, svg: svgPath }));
    } else {
      io.err(`wrote ${jsonPath}`);
    }
    failed ||= result.failures.length > 0;
  }
  for (const u of run.unavailable) {
    io.out(`${u.variant}: unavailable (${ADDONS[u.addon].file}: ${u.reason}); no result written`);
  }
  if (kind !== 'protocol') io.err(`not a full protocol run (${kind}): files named -${kind}, not the current result`);
  return failed ? 1 : 0;
}
