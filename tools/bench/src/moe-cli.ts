/**
 * `pnpm bench -- --moe` and `-- --sweep-tiles`: opens marlin_moe.node through the harness, runs the MoE layers (or
 * the tile sweep) and writes the result files. Called by cli.ts once the GPU probe succeeded. Exit codes as cli.ts:
 * 0 done, 1 a problem failed (files still written) or nothing could be timed.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import type { AddonLocation } from './addons.js';
import { type BenchOptions, isMoeProtocolRun } from './args.js';
import { commitInfo, resultBaseName, shortCommit } from './meta.js';
import { type MoeRunDeps, runMoeBench, runMoeTileSweep } from './moe-run.js';
import { validateMoeResult } from './moe-schema.js';
import { moeSvg } from './moe-svg.js';
import { moeReport, tileSweepTable } from './moe-table.js';
import { type BenchNative, hasMoeExports, toMarlinError } from './native.js';

export interface MoeCliIo {
  readonly out: (text: string) => void;
  readonly err: (text: string) => void;
  readonly env: NodeJS.ProcessEnv;
  readonly cwd: string;
  /** Finds marlin_moe.node (addons.ts MOE_ADDON). */
  readonly locateMoe: () => Promise<AddonLocation>;
  /** The MoE launch choice (default @marlin/core dispatchMoe); tests pass a stand-in. */
  readonly dispatchMoe?: MoeRunDeps['dispatch'];
}

export async function runMoeCli(
  opts: BenchOptions,
  io: MoeCliIo,
  native: BenchNative,
  repoRoot: string | null,
): Promise<number> {
  if (!hasMoeExports(native)) {
    io.err(
      'GPU benchmark cannot run the MoE layers: the loaded marlin_bench.node lacks benchLoadMoe / benchMoe / ' +
        'benchMoeCublas. Rebuild it: `pnpm --filter @marlin/bench-tool build:native`.',
    );
    return 1;
  }
  const at = await io.locateMoe();
  if (at.path === null) {
    io.err(`GPU benchmark cannot run the MoE layers: marlin_moe.node not found (${at.reason}).`);
    io.err('Build it with `pnpm --filter @marlin/moe build:native`, or set MARLIN_MOE_BINARY.');
    return 1;
  }
  let moe: ReturnType<typeof native.benchLoadMoe>;
  try {
    moe = native.benchLoadMoe({ path: at.path });
  } catch (e) {
    io.err(`GPU benchmark cannot run the MoE layers: ${at.path}: ${toMarlinError(e, 'benchLoadMoe').message}`);
    return 1;
  }
  io.err(`@marlin/moe: ${at.path} (${at.source})`);
  const started = new Date();
  const deps: MoeRunDeps = {
    native,
    moe,
    commit: commitInfo(io.env, repoRoot ?? io.cwd),
    now: () => started,
    progress: io.err,
    ...(io.dispatchMoe ? { dispatch: io.dispatchMoe } : {}),
  };
  mkdirSync(opts.outDir, { recursive: true });
  const kind = isMoeProtocolRun(opts) ? 'protocol' : opts.quick ? 'quick' : 'partial';

  if (opts.sweepTiles) {
    const sweep = await runMoeTileSweep(opts, deps);
    const tablePath = join(opts.outDir, `${resultBaseName({ file: 'moe-tiles', gpu: sweep.gpu, kind })}.json`);
    const pointsPath = join(opts.outDir, `${resultBaseName({ file: 'moe-tile-sweep', gpu: sweep.gpu, kind })}.json`);
    const tableText = `${JSON.stringify(sweep.table, null, 2)}\n`;
    writeFileSync(tablePath, tableText);
    writeFileSync(
      pointsPath,
      `${JSON.stringify({ gpu: sweep.gpu, commit: deps.commit.commit, date: started.toISOString(), codecs: opts.codecs, points: sweep.points, table: sweep.table, failures: sweep.failures }, null, 2)}\n`,
    );
    if (opts.tilesOut !== null) {
      mkdirSync(dirname(opts.tilesOut), { recursive: true });
      writeFileSync(opts.tilesOut, tableText);
    }
    io.out(tileSweepTable(sweep.points));
    io.out(`(* : not the measured best)\nmeasured table:\n${tableText}`);
    io.out(`wrote ${tablePath} and ${pointsPath}${opts.tilesOut !== null ? ` and ${opts.tilesOut}` : ''}`);
    for (const fl of sweep.failures) io.err(`  ${fl.problem}: ${fl.code}: ${fl.message}`);
    if (kind !== 'protocol') io.err(`not a full sweep (${kind}): file names end in -${kind}`);
    return sweep.failures.length > 0 || sweep.points.length === 0 ? 1 : 0;
  }

  const result = await runMoeBench(opts, deps);
  const problems = validateMoeResult(result);
  if (problems.length > 0) {
    io.err(`internal error: the MoE result does not match its schema:\n  ${problems.join('\n  ')}`);
    return 1;
  }
  const base = resultBaseName({ file: 'moe', gpu: result.env.gpu, kind });
  const jsonPath = join(opts.outDir, `${base}.json`);
  writeFileSync(jsonPath, `${JSON.stringify(result, null, 2)}\n`);
  if (opts.jsonOnly) {
    io.out(JSON.stringify(result, null, 2));
    io.err(`wrote ${jsonPath}`);
  } else {
    const svgPath = join(opts.outDir, `${base}.svg`);
    writeFileSync(
      svgPath,
      moeSvg({
        title: `Marlin MoE INT4 g128 vs the cuBLAS layer, ${result.env.gpu} (${shortCommit(result.env.commit)})`,
        rows: result.rows,
        mValues: opts.mValues,
      }),
    );
    io.out(moeReport(result, { json: jsonPath, svg: svgPath }));
  }
  if (kind !== 'protocol') io.err(`not a full protocol run (${kind}): files named -${kind}, not the current result`);
  return result.failures.length > 0 || result.rows.length === 0 ? 1 : 0;
}
